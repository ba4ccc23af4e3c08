import AsyncHTTPClient
import Foundation
import KiteServer
import Logging
import NIOCore
import ServiceLifecycle
import Testing

/// The router's own client, as `kite router` makes it.
let routerHTTP = SGLangClient.makeHTTPClient(maxConnections: 1024, retryConnectionEstablishment: false)

/// A `kite router` in this process, in front of `pool`.
final class TestRouter: Sendable {
    let pool: WorkerPool
    let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)" }

    private init(pool: WorkerPool, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.pool = pool
        self.port = port
        self.group = group
        self.task = task
    }

    static func start(workers: [String], options: WorkerPool.Options = WorkerPool.Options()) async throws -> TestRouter {
        var logger = Logger(label: "test.router")
        logger.logLevel = .critical
        let pool = WorkerPool(urls: workers, options: options, httpClient: routerHTTP, logger: logger)
        var configuration = KiteRouter.Configuration()
        configuration.port = 0
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let group = KiteRouter.makeServiceGroup(pool: pool, configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("the router did not start") }
        return TestRouter(pool: pool, port: port, group: group, task: task)
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}

/// `kite serve` as a child process, so that a test can kill it.
final class ServeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(arguments: [String]) async throws {
        process.executableURL = Fixtures.kiteBinary
        process.arguments = ["serve"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        port = try await ServerSuite.LifecycleTests.announcedPort(output)
    }

    var url: String { "http://127.0.0.1:\(port)" }

    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) } }
}

extension ServerSuite {
    @Suite struct RouterTests {
        static func generate(_ url: String, _ prompt: [Int], maxNewTokens: Int = 8) async throws -> HTTPExchange {
            try await send(.POST, url + "/generate", json: #"{"input_ids": [\#(prompt.map(String.init).joined(separator: ","))], "sampling_params": {"max_new_tokens": \#(maxNewTokens), "temperature": 0, "ignore_eos": true}}"#)
        }

        /// Requests spread over the workers; the same prompt goes back to the same worker (and meets its cached
        /// prefix); answers through the router are the workers' own; control requests reach every worker.
        @Test func balancesWithPrefixAffinityAndBroadcastsControls() async throws {
            try await withServer { first in
                try await withServer { second in
                    let router = try await TestRouter.start(workers: [first.url, second.url])
                    let prompts = (0..<40).map { Fixtures.prompt(length: 20, seed: 500 + UInt64($0), vocabulary: 72) }
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for prompt in prompts {
                            group.addTask {
                                let routed = try await Self.generate(router.url, prompt)
                                let direct = try await Self.generate(first.url, prompt)
                                #expect(routed.status == 200 && routed.object?["output_ids"] as? [Int] == direct.object?["output_ids"] as? [Int])
                            }
                        }
                        try await group.waitForAll()
                    }
                    let generatedFirst = await first.engine.statistics().generatedTokens, generatedSecond = await second.engine.statistics().generatedTokens
                    // The first worker also answered the 40 direct requests (320 tokens).
                    #expect(generatedFirst > 40 * 8 && generatedSecond > 0, "first \(generatedFirst), second \(generatedSecond)")

                    // One prompt, again and again: one worker, its prefix cache hit every time after the first.
                    let prompt = Fixtures.prompt(length: 20, seed: 9, vocabulary: 72)
                    let before = (await first.engine.statistics().generatedTokens, await second.engine.statistics().generatedTokens)
                    var cached: [Int] = []
                    for _ in 0..<10 {
                        let answer = try await Self.generate(router.url, prompt)
                        cached.append((answer.object?["meta_info"] as? [String: Any])?["cached_tokens"] as? Int ?? -1)
                    }
                    let after = (await first.engine.statistics().generatedTokens, await second.engine.statistics().generatedTokens)
                    #expect((after.0 - before.0 == 80 && after.1 == before.1) || (after.1 - before.1 == 80 && after.0 == before.0), "\(before) -> \(after)")
                    #expect(cached.dropFirst().allSatisfy { $0 >= 16 }, "\(cached)")

                    // Streams pass through the router chunk by chunk.
                    var last: GenerateResponseBody?
                    let streamClient = SGLangClient(baseURL: router.url, httpClient: testHTTP)
                    for try await chunk in streamClient.generateStream(GenerateRequestBody(inputIDs: prompt, samplingParams: SamplingParamsBody(maxNewTokens: 8, temperature: 0, ignoreEOS: true))) { last = chunk }
                    #expect(last?.metaInfo.finishReason?.type == "length" && last?.outputIDs.count == 8)

                    // In process, as a rollout manager would use it.
                    let answers = try await router.pool.generate(GenerateRequestBody(inputIDs: prompt, samplingParams: SamplingParamsBody(maxNewTokens: 8, temperature: 0, ignoreEOS: true)))
                    #expect(answers.first?.metaInfo.cachedTokens ?? 0 >= 16)

                    // Controls go to every worker; information comes from one.
                    #expect(try await send(.POST, router.url + "/abort_request", json: #"{"abort_all": true}"#).status == 200)
                    #expect(try await send(.POST, router.url + "/flush_cache").status == 200)
                    let cachedFirst = await first.engine.statistics().cachedBlocks, cachedSecond = await second.engine.statistics().cachedBlocks
                    #expect(cachedFirst == 0 && cachedSecond == 0)
                    #expect(try await send(.GET, router.url + "/get_model_info").object?["vocab_size"] as? Int == 72)
                    #expect(try await send(.GET, router.url + "/health").status == 200)
                    let workers = try await send(.GET, router.url + "/workers")
                    #expect((workers.object?["workers"] as? [[String: Any]])?.count == 2)
                    await router.stop()
                }
            }
        }

        /// A worker killed with requests in flight: every request is retried on the other worker and succeeds;
        /// health checks take the dead worker out, and back in when it returns on the same address.
        @Test func retriesOnAnotherWorkerWhenOneDiesAndReaddsItWhenBack() async throws {
            let common = ["--model", Fixtures.modelPath("qwen3"), "--max-total-tokens", "8192", "--page-size", "4", "--threads", "1"]
            var doomed: ServeProcess? = try await ServeProcess(arguments: common + ["--port", "0"])
            let port = try #require(doomed?.port)
            let survivor = try await ServeProcess(arguments: common + ["--port", "0"])
            var options = WorkerPool.Options()
            options.healthCheckInterval = 0.2
            options.healthCheckTimeout = 1
            let router = try await TestRouter.start(workers: ["http://127.0.0.1:\(port)", survivor.url], options: options)

            // The doomed worker holds what it gets (its cache released) until it is killed.
            #expect(try await send(.POST, "http://127.0.0.1:\(port)/release_memory_occupation").status == 200)
            let prompts = (0..<30).map { Fixtures.prompt(length: 10, seed: 900 + UInt64($0), vocabulary: 72) }
            let requests = Task {
                try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                    for prompt in prompts {
                        group.addTask {
                            let answer = try await Self.generate(router.url, prompt, maxNewTokens: 16)
                            return (answer.status, ((answer.object?["meta_info"] as? [String: Any])?["finish_reason"] as? [String: Any])?["type"] as? String)
                        }
                    }
                    var outcomes: [(Int, String?)] = []
                    for try await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
            }
            let deadline = Date().addingTimeInterval(20)
            var held = 0
            while held == 0 && Date() < deadline {
                let loads = try await send(.GET, "http://127.0.0.1:\(port)/v1/loads")
                held = ((loads.object?["loads"] as? [[String: Any]])?.first?["num_total_reqs"] as? Int) ?? 0
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(held > 0, "the doomed worker must hold some requests when it dies")
            doomed?.kill()
            doomed = nil
            let outcomes = try await requests.value
            #expect(outcomes.count == 30 && outcomes.allSatisfy { $0.0 == 200 && $0.1 == "length" }, "\(outcomes.filter { $0.0 != 200 || $0.1 != "length" })")

            func healthy(_ url: String) -> Bool? { router.pool.workers.first { $0.url == url }?.healthy }
            #expect(healthy("http://127.0.0.1:\(port)") == false)
            #expect(try await Self.generate(router.url, prompts[0]).status == 200)

            // Back on the same address: health checks put it back in rotation, and it gets work again.
            let revived = try await ServeProcess(arguments: common + ["--port", "\(port)"])
            while healthy(revived.url) != true && Date() < deadline.addingTimeInterval(20) { try await Task.sleep(for: .milliseconds(50)) }
            #expect(healthy(revived.url) == true)
            for prompt in prompts { _ = try await Self.generate(router.url, prompt) }
            let served = try await send(.GET, revived.url + "/get_server_info")
            let generated = ((served.object?["internal_states"] as? [[String: Any]])?.first?["generated_tokens"] as? Int) ?? 0
            #expect(generated > 0, "the revived worker gets requests again")
            await router.stop()
            revived.kill()
            survivor.kill()
        }
    }
}
