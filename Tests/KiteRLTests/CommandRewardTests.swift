import Foundation
import Testing
import KiteJSON
import KiteRL
import KiteTensor

/// `--custom-rm-cmd`: real subprocesses (Tests/Fixtures/rewards/digit_reward.py) that answer, hang or crash.
@Suite(.serialized)
struct CommandRewardTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/rewards/digit_reward.py").path

    static func samples(_ responses: [String]) -> [Sample] {
        responses.map { Sample(prompt: "p", response: $0) }
    }

    @Test func answersComeBackInOrder() async throws {
        let reward = try CommandReward(command: "python3 \(Self.script)", timeout: 20)
        let scores = try await reward.rewards(for: Self.samples(["12ab", "abcd", "9", ""]))
        #expect(scores == [.double(0.5), .double(0), .double(1), .double(0)])
        #expect(reward.counters.timeouts == 0)
    }

    /// The three requests share one timeout (they run concurrently): the batch ends after about one timeout,
    /// far from the three of requests waiting in turn. The slack (5 s) absorbs a loaded CI machine starting
    /// and killing Python; three timeouts in turn would take 15 s.
    @Test func aProgramThatHangsCostsOneTimeoutAndIsReplaced() async throws {
        let reward = try CommandReward(command: "python3 \(Self.script) hang", timeout: 5, timeoutReward: .double(-1))
        let start = MonotonicClock.seconds()
        let scores = try await reward.rewards(for: Self.samples(["1", "2", "3"]))
        let elapsed = MonotonicClock.seconds() - start
        #expect(scores == [.double(-1), .double(-1), .double(-1)])
        #expect(elapsed >= 5 && elapsed < 5 + 5, "the batch waited \(elapsed) s; the timeout is 5 s")
        #expect(reward.counters.timeouts == 3)
    }

    @Test func aProgramThatExitsMidBatchIsRestartedForTheNextBatch() async throws {
        let reward = try CommandReward(command: "python3 \(Self.script) crash-after 2", timeout: 10, timeoutReward: .double(-1))
        let start = MonotonicClock.seconds()
        let first = try await reward.rewards(for: Self.samples(["11", "22", "33", "44"]))
        #expect(MonotonicClock.seconds() - start < 5, "a crash fails the pending requests at once, not at the timeout")
        #expect(first.filter { $0 == .double(1) }.count == 2 && first.filter { $0 == .double(-1) }.count == 2, "\(first)")
        let second = try await reward.rewards(for: Self.samples(["5a"]))
        #expect(second == [.double(0.5)], "a fresh program answers the next batch")
        #expect(reward.counters.restarts >= 2)
    }

    @Test func badSettingsAreRejected() {
        #expect(throws: RLError.self) { try CommandReward(command: "  ", timeout: 1) }
        #expect(throws: RLError.self) { try CommandReward(command: "true", timeout: 0) }
    }
}
