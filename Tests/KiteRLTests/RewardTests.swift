import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// Reward functions against tables of graded answers scored by slime's own rm_hub code
/// (scripts/reference/rl_rewards.py → Tests/Fixtures/rl/rewards.json).
struct RewardTests {
    static func table(_ type: String) throws -> [JSONValue] {
        try Fixtures.load("rewards.json").get(type).array()
    }

    static func label(_ row: JSONValue) -> JSONValue? {
        guard let value = row["label"], !value.isNull else { return Optional<JSONValue>.none }
        return value
    }

    /// Runs every row of a table through Kite's RewardHub and checks it against slime's result.
    static func check(_ type: RewardType, table name: String? = nil, minimumCases: Int, compare: (JSONValue, JSONValue) -> Bool = { $0 == $1 }) throws {
        let rows = try table(name ?? type.rawValue)
        #expect(rows.count >= minimumCases)
        var mismatches: [String] = []
        for row in rows {
            let response = try row.get("response").string()
            let metadata = row["metadata"]?.objectValue ?? JSONObject()
            do {
                let reward = try RewardHub.reward(rmType: type.rawValue, response: response, label: label(row), metadata: metadata)
                if let expected = row["reward"] {
                    if !compare(reward, expected) { mismatches.append("\(response.debugDescription) label \(String(describing: row["label"])): Kite \(reward.serialized()) slime \(expected.serialized())") }
                } else {
                    mismatches.append("\(response.debugDescription): Kite \(reward.serialized()), slime raised \(row["error"]?.stringValue ?? "")")
                }
            } catch {
                if row["error"] == nil { mismatches.append("\(response.debugDescription): Kite threw \(error)") }
            }
        }
        #expect(mismatches.isEmpty, "\(type): \(mismatches.count) of \(rows.count) differ:\n\(mismatches.joined(separator: "\n"))")
    }

    static func numericallyEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        guard let x = a.doubleValue, let y = b.doubleValue else { return a == b }
        return abs(x - y) < 1e-12
    }

    @Test func deepscalerMatchesSlime() throws { try Self.check(.deepscaler, minimumCases: 60, compare: Self.numericallyEqual) }
    @Test func dapoMatchesSlime() throws { try Self.check(.dapo, minimumCases: 60) }
    @Test func mathMatchesSlime() throws { try Self.check(.math, minimumCases: 60, compare: Self.numericallyEqual) }
    /// 600 random answer/label pairs in mixed notations, graded by `--rm-type math`.
    @Test func generatedMathAnswersMatchSlime() throws { try Self.check(.math, table: "generated", minimumCases: 600, compare: Self.numericallyEqual) }
    @Test func hubReadsTheSampleAsSlimesAsyncRmDoes() throws {
        // metadata.rm_type overrides --rm-type; boxed_ first reduces the response to its last \boxed{}.
        var sample = Sample(index: 0, response: "<think>t</think> Answer: 12", label: "12", metadata: JSONObject([("rm_type", "dapo")]))
        let dapo = try RewardHub.reward(for: sample, rmType: "deepscaler")
        #expect(dapo["score"] == 1.0 && dapo["acc"] == true && dapo["pred"] == "12")
        sample.reward = dapo
        #expect(try sample.rewardValue(key: "score") == 1)
        sample.metadata = JSONObject()
        #expect(try RewardHub.reward(for: sample, rmType: "deepscaler") == 0)
        let boxed = Sample(index: 1, response: "work \\boxed{The Eiffel Tower}", label: "Eiffel Tower")
        #expect(try RewardHub.reward(for: boxed, rmType: "boxed_f1") == 1.0)
        #expect(try RewardHub.reward(rmType: " math ".trimmingCharacters(in: .whitespaces), response: "\\boxed{\\frac{1}{2}}", label: "0.5") == 1)
        #expect(throws: RLError.self) { try RewardHub.reward(for: boxed, rmType: "remote_rm") }
        #expect(throws: RLError.self) { try RewardHub.reward(for: boxed, rmType: nil) }
        #expect(throws: RLError.self) { try RewardHub.reward(rmType: "dapo", response: "Answer: 3", label: "three") }
    }

    @Test func f1MatchesSlime() throws { try Self.check(.f1, minimumCases: 10, compare: Self.numericallyEqual) }
    @Test func gpqaMatchesSlime() throws { try Self.check(.gpqa, minimumCases: 10, compare: Self.numericallyEqual) }
}

/// Inputs a model can produce that must not crash or hang the graders.
struct AdversarialRewardTests {
    @Test func pathologicalAnswersAreGradedWithoutCrashing() throws {
        let deep = String(repeating: "{", count: 20_000) + "5" + String(repeating: "}", count: 20_000)
        let parens = String(repeating: "(", count: 20_000) + "1" + String(repeating: ")", count: 20_000)
        let longText = String(repeating: "lorem ipsum \\frac{1}{2} ", count: 5_000)
        let answers = [
            deep, parens, "\\sqrt{" + parens + "}", "9223372036854775807/9223372036854775807", "-9223372036854775808",
            "1e-9223372036854775808", "2^9999999999", "99999999999999999999999999999", "\\frac{1}{0}", "0^{-1}", "(-8)^{1/3}",
            "\\sqrt{-4}", "x^x", "\\\\\\\\", "\\", "{", "}", "$", "\\boxed{", "\\frac", "\\sqrt", "3037000500^2",
        ]
        for answer in answers {
            for type in ["deepscaler", "math", "dapo"] {
                let response = "<think>t</think> \\boxed{\(answer)} Answer: \(answer)"
                _ = try RewardHub.reward(rmType: type, response: response, label: "5")
            }
            _ = MathAnswer.gradeSympy(given: answer, groundTruth: answer + "+0")
        }
        let long = try RewardHub.reward(rmType: "deepscaler", response: "<think>" + longText + "</think>" + longText + "\\boxed{1/2}", label: "\\frac{1}{2}")
        #expect(long == 1)
        #expect(try RewardHub.reward(rmType: "gpqa", response: longText + " answer is C", label: "C") == 1.0)
        #expect(try RewardHub.reward(rmType: "f1", response: longText, label: "lorem") != 1.0)
    }
}
