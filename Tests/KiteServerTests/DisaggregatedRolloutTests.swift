import Foundation
import Hummingbird
import KiteEngine
import KiteJSON
import KiteModels
import KiteRL
import KiteServer
import KiteTensor
import Logging
import ServiceLifecycle
import Synchronization
import Testing

extension ServerSuite {
    /// Rollout over HTTP (`HTTPRolloutEngine`) and `remote_rm` (`RemoteReward`) against real servers on loopback.
    @Suite struct DisaggregatedRolloutTests {
        static func request(_ id: String, prompt: [Int32], n: Int, temperature: Double, seed: UInt64) -> GenerationRequest {
            var sampling = SamplingParameters()
            sampling.n = n
            sampling.temperature = temperature
            sampling.maxNewTokens = 12
            sampling.seed = seed
            return GenerationRequest(id: id, promptTokens: prompt, sampling: sampling, returnLogprob: true, stream: false)
        }

        /// The same request over HTTP and in process gives the same samples: tokens, log-probs (exactly: the
        /// JSON carries floats as their shortest round-trip text), finish reasons and counts.
        @Test func httpSamplesEqualInProcessSamples() async throws {
            let backend = CPUBackend(threads: 2)
            let model = try Transformer.load(directory: Fixtures.modelPath("qwen3"), backend: backend)
            let local = try InferenceEngine(model: try model.clone(), options: Fixtures.engineOptions())
            defer { local.shutdown() }
            let prompt = Fixtures.prompt(length: 9, seed: 4, vocabulary: model.config.vocabularySize).map(Int32.init)
            let expected = try await local.generate(Self.request("local", prompt: prompt, n: 3, temperature: 0.8, seed: 17))

            try await withServer(engine: try InferenceEngine(model: try model.clone(), options: Fixtures.engineOptions())) { server in
                let directory = NSTemporaryDirectory() + "kite-sync-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let remote = try HTTPRolloutEngine(urls: [server.url], weightDirectory: directory, httpClient: testHTTP)
                try await remote.waitUntilHealthy(timeout: 10)
                let results = try await remote.generate(Self.request("remote", prompt: prompt, n: 3, temperature: 0.8, seed: 17))
                #expect(results.count == 3)
                for (got, want) in zip(results, expected) {
                    #expect(got.outputTokens == want.outputTokens)
                    #expect(got.outputLogprobs == want.outputLogprobs)
                    #expect(got.finishReason == want.finishReason)
                    #expect(got.promptTokenCount == want.promptTokenCount)
                    #expect(got.requestID == "remote" && got.weightVersion == "0")
                }
            }
        }

        /// A weight sync writes the trainer's weights, every engine loads them under the new version, and
        /// the engine's log-probs are then those of the trainer's forward on the new weights (1e-5: the same
        /// fp32 kernels, only the cache path differs). The previous version's files are removed.
        @Test func weightSyncLoadsTheTrainersWeightsOnEveryEngine() async throws {
            let backend = CPUBackend(threads: 2)
            let trainer = try Transformer.load(directory: Fixtures.modelPath("qwen3"), backend: backend)
            let engines = try (0..<2).map { _ in try InferenceEngine(model: try trainer.clone(), options: Fixtures.engineOptions()) }
            try await withServer(engine: engines[0]) { first in
                try await withServer(engine: engines[1]) { second in
                    let directory = NSTemporaryDirectory() + "kite-sync-\(UUID().uuidString)"
                    defer { try? FileManager.default.removeItem(atPath: directory) }
                    let remote = try HTTPRolloutEngine(urls: [first.url, second.url], weightDirectory: directory, httpClient: testHTTP)
                    try await remote.updateWeights(from: trainer, version: "1")

                    // The trainer moves on: every weight changes.
                    var generator = SeededGenerator(seed: 3)
                    for (_, parameter) in trainer.parameters.entries {
                        let values = parameter.floats
                        for i in values.indices { values[i] += Float(Int(generator.next() % 2001) - 1000) * 1e-5 }
                    }
                    try await remote.updateWeights(from: trainer, version: "2")
                    #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["weights_v2"])

                    let prompt = Fixtures.prompt(length: 7, seed: 9, vocabulary: trainer.config.vocabularySize).map(Int32.init)
                    for server in [first, second] {
                        #expect(await server.engine.statistics().weightVersion == "2")
                        let single = try HTTPRolloutEngine(urls: [server.url], weightDirectory: directory, httpClient: testHTTP)
                        let result = try #require(try await single.generate(Self.request("check", prompt: prompt, n: 1, temperature: 1, seed: 5)).first)
                        #expect(result.weightVersion == "2")
                        let sequence = prompt + result.outputTokens
                        let forward = try trainer.forward(
                            tokens: sequence, sequences: PackedSequences(lengths: [sequence.count]), targets: nil, temperature: 1, keepActivations: false, recompute: false)
                        let reference = Array(forward.logprobs.toFloats()[(prompt.count - 1)..<(sequence.count - 1)])
                        let difference = zip(reference, result.outputLogprobs).map { abs($0 - $1) }.max() ?? 1
                        #expect(difference <= 1e-5, "engine at \(server.url) vs trainer: \(difference)")
                    }
                }
            }
        }

        /// Aborting a running request over HTTP (dynamic sampling aborts the groups it no longer needs) ends every
        /// sample with finish reason abort and its partial tokens, each with its log-prob.
        @Test func abortEndsTheRequestWithItsPartialSamples() async throws {
            try await withServer { server in
                let remote = try HTTPRolloutEngine(urls: [server.url], weightDirectory: NSTemporaryDirectory(), httpClient: testHTTP)
                var request = Self.request("long", prompt: [1, 2, 3, 4], n: 2, temperature: 1, seed: 1)
                request.sampling.maxNewTokens = 4000
                request.sampling.ignoreEOS = true
                let running = Task { try await remote.generate(request) }
                while await server.engine.statistics().generatedTokens < 8 { try await Task.sleep(for: .milliseconds(5)) }
                await remote.abort(requestID: "long")
                let results = try await running.value
                #expect(results.count == 2)
                for result in results {
                    guard case .abort = result.finishReason else {
                        Issue.record("finish reason \(result.finishReason), expected abort")
                        continue
                    }
                    #expect(result.outputTokens.count < 4000 && result.outputLogprobs.count == result.outputTokens.count)
                }
            }
        }

        /// An engine that cannot load the weights fails the sync with its address; one that is down fails
        /// `waitUntilHealthy` with its address.
        @Test func failedSyncsAndDeadEnginesNameTheEngine() async throws {
            let backend = CPUBackend(threads: 2)
            let other = try Transformer.load(directory: Fixtures.modelPath("llama"), backend: backend)
            try await withServer { server in
                let directory = NSTemporaryDirectory() + "kite-sync-\(UUID().uuidString)"
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let remote = try HTTPRolloutEngine(urls: [server.url], weightDirectory: directory, httpClient: testHTTP)
                let error = await #expect(throws: RLError.self) { try await remote.updateWeights(from: other, version: "1") }
                #expect("\(error.map { "\($0)" } ?? "")".contains(server.url))
                #expect(await server.engine.statistics().weightVersion == "0")
            }
            let dead = try HTTPRolloutEngine(urls: ["http://127.0.0.1:9"], weightDirectory: NSTemporaryDirectory(), httpClient: testHTTP)
            let error = await #expect(throws: RLError.self) { try await dead.waitUntilHealthy(timeout: 0.5) }
            #expect("\(error.map { "\($0)" } ?? "")".contains("127.0.0.1:9"))
            #expect(throws: RLError.self) { try HTTPRolloutEngine(urls: ["localhost:30000"], weightDirectory: "/tmp") }
        }

        // MARK: remote_rm

        /// A reward server on loopback: answers `{"score": 1 if the label is in the response}` and records
        /// what it received; the first `failures` calls answer 503.
        final class RewardServer: Sendable {
            let received = Mutex<[JSONValue]>([])
            let failuresLeft: Mutex<Int>
            let status: HTTPResponse.Status

            init(failures: Int = 0, status: HTTPResponse.Status = .ok) {
                failuresLeft = Mutex(failures)
                self.status = status
            }

            func run<T>(_ body: (String) async throws -> T) async throws -> T {
                let router = Router()
                router.post("/reward") { request, _ -> Response in
                    let bytes = try await request.body.collect(upTo: 1 << 20)
                    let payload = try JSONValue(parsing: String(buffer: bytes))
                    self.received.withLock { $0.append(payload) }
                    if self.failuresLeft.withLock({ left in defer { left -= 1 }; return left > 0 }) {
                        return Response(status: .serviceUnavailable)
                    }
                    guard self.status == .ok else { return Response(status: self.status, body: .init(byteBuffer: ByteBuffer(string: "bad sample"))) }
                    let response = payload["response"]?.stringValue ?? "", label = payload["label"]?.stringValue ?? "\u{0}"
                    let score = response.contains(label) ? 1 : 0
                    return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "{\"score\": \(score)}")))
                }
                let (ports, continuation) = AsyncStream<Int>.makeStream()
                var logger = Logger(label: "test.reward")
                logger.logLevel = .critical
                let application = Application(
                    router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                    onServerRunning: { channel in
                        continuation.yield(channel.localAddress?.port ?? 0)
                        continuation.finish()
                    }, logger: logger)
                let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
                let task = Task { try await group.run() }
                defer { task.cancel() }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw TestFailure("the reward server did not start") }
                let result = try await body("http://127.0.0.1:\(port)/reward")
                await group.triggerGracefulShutdown()
                return result
            }
        }

        static let samples = [
            Sample(index: 0, prompt: "What is 2+3?", response: "The answer is 5.", label: "5"),
            Sample(index: 1, prompt: .array([.object(JSONObject([("role", "user"), ("content", "Say hi")]))]), response: "hello", label: "hi"),
            Sample(index: 2, prompt: "x", response: "no label here", label: nil),
        ]

        /// Each sample is POSTed as {prompt, response, label} (message-list prompts as given, a missing label as
        /// null) and the answer's JSON is its reward, in order.
        @Test func remoteRewardPostsSlimesPayloadAndReturnsTheAnswer() async throws {
            let server = RewardServer()
            try await server.run { url in
                let rewards = try await RemoteReward(url: url, httpClient: testHTTP).rewards(for: Self.samples)
                #expect(rewards.map { $0["score"]?.intValue } == [1, 0, 0])
            }
            let received = server.received.withLock { $0 }.sorted { ($0["response"]?.stringValue ?? "") < ($1["response"]?.stringValue ?? "") }
            #expect(received.count == 3)
            #expect(received.map { Set($0.objectValue?.keys ?? []) }.allSatisfy { $0 == ["prompt", "response", "label"] })
            let chat = try #require(received.first { $0["response"]?.stringValue == "hello" })
            #expect(chat["prompt"] == Self.samples[1].prompt)
            #expect(received.first { $0["response"]?.stringValue == "no label here" }?["label"] == .null)
        }

        /// 503s are retried with backoff until an answer comes; a 4xx fails at once, naming the URL and status.
        @Test func remoteRewardRetriesServerErrorsAndRefusesClientErrors() async throws {
            let flaky = RewardServer(failures: 2)
            try await flaky.run { url in
                var reward = try RemoteReward(url: url, httpClient: testHTTP)
                reward.initialBackoff = 0.01
                let rewards = try await reward.rewards(for: [Self.samples[0]])
                #expect(rewards.first?["score"]?.intValue == 1)
            }
            #expect(flaky.received.withLock { $0.count } == 3)

            let refusing = RewardServer(status: .badRequest)
            try await refusing.run { url in
                var reward = try RemoteReward(url: url, httpClient: testHTTP)
                reward.initialBackoff = 0.01
                let error = await #expect(throws: RLError.self) { try await reward.rewards(for: [Self.samples[0]]) }
                let message = error.map { "\($0)" } ?? ""
                #expect(message.contains(url) && message.contains("400") && message.contains("bad sample"))
            }
            #expect(refusing.received.withLock { $0.count } == 1)
            #expect(throws: RLError.self) { try RemoteReward(url: "reward.local/score") }
        }
    }
}

extension ServerSuite {
    /// `kite train` against a `kite serve` process: slime's disaggregated loop end to end.
    @Suite struct DisaggregatedTrainingTests {
        @Test func kiteTrainRollsOutOnAServerAndSyncsItsWeights() async throws {
            let model = Fixtures.modelPath("tiny_chat")
            let server = try await ServeProcess(arguments: ["--model", model, "--port", "0", "--max-total-tokens", "8192", "--threads", "1"])
            defer { server.kill() }
            let directory = NSTemporaryDirectory() + "kite-disaggregated-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let data = directory + "/arith.jsonl"
            let reward = Fixtures.root.appendingPathComponent("rewards/digit_reward.py").path
            let (made, _) = try runKite(["data", "make", "arithmetic", "--n", "32", "--out", data, "--seed", "3"])
            #expect(made == 0)
            let run = directory + "/run"
            let (status, output) = try runKite([
                "train", "--hf-checkpoint", model, "--prompt-data", data, "--input-key", "prompt", "--label-key", "label",
                "--apply-chat-template", "--custom-rm-cmd", "python3 " + reward, "--num-rollout", "2",
                "--rollout-batch-size", "4", "--n-samples-per-prompt", "4", "--rollout-max-response-len", "6", "--rollout-temperature", "0.8",
                "--num-steps-per-rollout", "1", "--advantage-estimator", "grpo", "--lr", "1e-3", "--save", run, "--threads", "1",
                "--sglang-router-ip", "127.0.0.1", "--sglang-router-port", "\(server.port)",
            ])
            #expect(status == 0, "\(output)")
            #expect(output.contains("disaggregated rollout on \(server.url)"))
            #expect(output.contains("weight sync: 1 engine(s) loaded version 2"))

            let records = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONValue(parsing: String($0)) }
            let training = records.filter { $0["kind"] == "train" }
            #expect(training.count == 2)
            // The server's engine and the trainer run the same CPU kernels on the same weights; the log-probs
            // cross HTTP as shortest round-trip decimals, so they agree to float rounding of the sum at most.
            for record in training {
                let difference = try #require(record["train/train_rollout_logprob_abs_diff"]?.doubleValue)
                #expect(difference <= 1e-5, "rollout vs trainer log-probs: \(difference)")
            }
            let info = try await SGLangClient(baseURL: server.url, httpClient: testHTTP).serverInfo()
            #expect(info.weightVersion == "2")
            #expect(try FileManager.default.contentsOfDirectory(atPath: run + "/weight-sync") == ["weights_v2"])
        }

        func runKite(_ arguments: [String]) throws -> (Int32, String) {
            let process = Process()
            process.executableURL = Fixtures.kiteBinary
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }
}
