import AsyncHTTPClient
import Foundation
import KiteEngine
import KiteServer
import NIOCore
import Testing

extension ServerSuite {
    @Suite struct LoadTests {
        static func body(_ prompt: [Int], maxNewTokens: Int, stream: Bool = false) -> String {
            #"{"input_ids": [\#(prompt.map(String.init).joined(separator: ","))], "sampling_params": {"max_new_tokens": \#(maxNewTokens), "ignore_eos": true}, "stream": \#(stream)}"#
        }

        /// 1000 requests at once against a queue limit of 200: those admitted complete, the rest get 503 at
        /// once, nothing else happens, and memory stays bounded.
        @Test func aThousandConcurrentRequestsAreHeldWithBoundedMemoryThenRefused() async throws {
            var options = Fixtures.engineOptions()
            options.maxQueuedRequests = 200
            options.maxRunningRequests = 64
            try await withServer(options: options) { server in
                let before = residentBytes()
                let peak = PeakMemory()
                let sampler = Task { while !Task.isCancelled { peak.observe(residentBytes()); try? await Task.sleep(for: .milliseconds(20)) } }
                // The engine holds what it admits (its cache released) until all 1000 have arrived, so that exactly
                // the queue limit is admitted however fast this machine is.
                await server.engine.releaseMemory()
                let started = Date()
                let refusedSoFar = PeakMemory()
                let resume = Task {
                    let deadline = Date().addingTimeInterval(60)
                    while (server.frontend.inFlightRequests < 200 || refusedSoFar.value < 800) && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
                    try await server.engine.resumeMemory()
                }
                let outcomes = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                    for index in 0..<1000 {
                        let prompt = Fixtures.prompt(length: 8, seed: UInt64(index), vocabulary: 72)
                        group.addTask {
                            let exchange = try await send(.POST, server.url + "/generate", json: Self.body(prompt, maxNewTokens: 32))
                            if exchange.status == 503 { refusedSoFar.add(1) }
                            return (exchange.status, (exchange.object?["output_ids"] as? [Int])?.count ?? -1)
                        }
                    }
                    var all: [(Int, Int)] = []
                    for try await outcome in group { all.append(outcome) }
                    return all
                }
                try await resume.value
                sampler.cancel()
                let elapsed = Date().timeIntervalSince(started)
                let served = outcomes.filter { $0.0 == 200 }
                let refused = outcomes.filter { $0.0 == 503 }
                #expect(served.count + refused.count == 1000, "statuses: \(Set(outcomes.map(\.0)))")
                #expect(served.count == 200 && refused.count == 800, "served \(served.count), refused \(refused.count)")
                #expect(served.allSatisfy { $0.1 == 32 })
                let growth = (peak.value - before) >> 20
                print("1000 concurrent: \(served.count) served, \(refused.count) refused (503) in \(String(format: "%.2f", elapsed)) s; peak RSS growth \(growth) MiB")
                #expect(growth < 256, "resident memory grew by \(growth) MiB")
                let statistics = try await server.waitUntilIdle()
                #expect(statistics.freeBlocks + statistics.cachedBlocks == statistics.totalBlocks)
            }
        }

        /// Hundreds of streams in flight, one `abort_all`: every stream ends (finish reason abort) within a
        /// second or two and every cache block is free again.
        @Test func abortingHundredsOfStreamsEndsThemAndFreesEveryBlock() async throws {
            var options = Fixtures.engineOptions()
            options.maxRunningRequests = 64
            options.disableRadixCache = true
            try await withServer(options: options) { server in
                let count = 300
                // The tiny model would finish every request before the last one arrives: hold the engine (its cache
                // released) until all are in flight, then let it run and abort while they generate.
                await server.engine.releaseMemory()
                let streams = Task {
                    try await withThrowingTaskGroup(of: String?.self) { group in
                        for index in 0..<count {
                            let prompt = Fixtures.prompt(length: 8, seed: UInt64(index), vocabulary: 72)
                            group.addTask {
                                let exchange = try await send(.POST, server.url + "/generate", json: Self.body(prompt, maxNewTokens: 110, stream: true))
                                let payloads = ssePayloads(exchange.body)
                                guard payloads.last == "[DONE]", let last = payloads.dropLast().last.flatMap(jsonObject) else { return nil }
                                return ((last["meta_info"] as? [String: Any])?["finish_reason"] as? [String: Any])?["type"] as? String
                            }
                        }
                        var reasons: [String?] = []
                        for try await reason in group { reasons.append(reason) }
                        return reasons
                    }
                }
                let deadline = Date().addingTimeInterval(30)
                while server.frontend.inFlightRequests < count && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
                #expect(server.frontend.inFlightRequests == count)
                try await server.engine.resumeMemory()
                while await server.engine.statistics().generatedTokens < 64 && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
                let abortSent = Date()
                let abort = try await send(.POST, server.url + "/abort_request", json: #"{"abort_all": true}"#)
                #expect(abort.status == 200)
                let reasons = try await streams.value
                let elapsed = Date().timeIntervalSince(abortSent)
                let aborted = reasons.filter { $0 == "abort" }.count
                print("abort_all over \(count) streams: all ended in \(String(format: "%.3f", elapsed)) s, \(aborted) aborted")
                #expect(reasons.count == count && reasons.allSatisfy { $0 == "abort" || $0 == "length" }, "\(reasons.filter { $0 != "abort" && $0 != "length" })")
                #expect(aborted >= count / 2)
                #expect(elapsed < 2)
                let statistics = try await server.waitUntilIdle(timeout: 2)
                #expect(statistics.freeBlocks == statistics.totalBlocks, "free \(statistics.freeBlocks) of \(statistics.totalBlocks)")
                #expect(server.frontend.inFlightRequests == 0)
            }
        }

        /// Clients that go away mid-request (streamed or not) are aborted in the engine: it goes idle and every
        /// block is free.
        @Test func clientsThatVanishMidRequestFreeTheirBlocks() async throws {
            var options = Fixtures.engineOptions()
            options.maxRunningRequests = 8
            options.disableRadixCache = true
            try await withServer(options: options) { server in
                for stream in [true, false] {
                    let generatedBefore = await server.engine.statistics().generatedTokens
                    await server.engine.releaseMemory()
                    let clients = (0..<40).map { index in
                        Task {
                            let prompt = Fixtures.prompt(length: 8, seed: UInt64(index), vocabulary: 72)
                            _ = try await send(.POST, server.url + "/generate", json: Self.body(prompt, maxNewTokens: 110, stream: stream))
                        }
                    }
                    let deadline = Date().addingTimeInterval(30)
                    while server.frontend.inFlightRequests < 40 && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
                    try await server.engine.resumeMemory()
                    while await server.engine.statistics().generatedTokens < generatedBefore + 8 && Date() < deadline { try await Task.sleep(for: .milliseconds(1)) }
                    for client in clients { client.cancel() }
                    let vanished = Date()
                    let statistics = try await server.waitUntilIdle(timeout: 3)
                    print("40 vanished clients (stream: \(stream)): engine idle after \(String(format: "%.3f", Date().timeIntervalSince(vanished))) s")
                    #expect(statistics.freeBlocks == statistics.totalBlocks)
                    #expect(statistics.generatedTokens - generatedBefore < 40 * 110, "vanished requests must not run to the end")
                    while server.frontend.inFlightRequests > 0 && Date() < deadline { try await Task.sleep(for: .milliseconds(5)) }
                    #expect(server.frontend.inFlightRequests == 0)
                }
            }
        }
    }
}

/// The largest value seen (or a running count), shared between tasks.
final class PeakMemory: @unchecked Sendable {
    private let lock = NSLock()
    private var peak = 0
    func observe(_ value: Int) { lock.withLock { peak = max(peak, value) } }
    func add(_ value: Int) { lock.withLock { peak += value } }
    var value: Int { lock.withLock { peak } }
}
