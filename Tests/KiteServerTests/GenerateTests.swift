import Foundation
import KiteEngine
import KiteServer
import NIOCore
import Testing

extension ServerSuite {
    @Suite struct GenerateTests {
        static let lengths = [3, 17, 9, 40, 1, 26, 60, 12]
        static let newTokens = [12, 5, 20, 8, 15, 11, 30, 1]
        static let prompts = lengths.enumerated().map { Fixtures.prompt(length: $0.element, seed: 100 + UInt64($0.offset), vocabulary: 72) }

        /// `kite generate` (the in-process engine, all prompts at once): 30 greedy tokens per prompt. Greedy
        /// outputs of fewer tokens are prefixes of these.
        static func reference() throws -> [[Int]] {
            var arguments = ["generate", "--model", Fixtures.modelPath("qwen3"), "--max-new-tokens", "30", "--ignore-eos", "--temperature", "0"]
            for prompt in prompts { arguments += ["--input-ids", prompt.map(String.init).joined(separator: ",")] }
            let run = try runKite(arguments)
            #expect(run.status == 0, "\(run.error)")
            return run.output.split(separator: "\n").map { line in
                (jsonObject(String(line))?["output_ids"] as? [Int]) ?? []
            }
        }

        func expected(_ reference: [[Int]], _ index: Int) -> [Int] {
            Array(reference[index].prefix(Self.newTokens[index]))
        }

        /// Batching, chunked prefill, streaming and the API used change nothing: every greedy output through
        /// the server equals `kite generate`'s, token for token.
        @Test func greedyOutputsEqualKiteGenerateInBatchesAndConcurrently() async throws {
            let reference = try Self.reference()
            #expect(reference.count == Self.prompts.count && reference.allSatisfy { $0.count == 30 })
            var options = Fixtures.engineOptions()
            options.chunkedPrefillSize = 24
            try await withServer(options: options) { server in

                // One batch request, per-prompt sampling parameters.
                let parameters = Self.newTokens.map { #"{"max_new_tokens": \#($0), "temperature": 0, "ignore_eos": true}"# }.joined(separator: ",")
                let ids = Self.prompts.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",")
                let batch = try await send(.POST, server.url + "/generate", json: #"{"input_ids": [\#(ids)], "sampling_params": [\#(parameters)]}"#)
                #expect(batch.status == 200, "\(batch.body)")
                let answers = try #require(batch.json as? [[String: Any]])
                #expect(answers.count == Self.prompts.count)
                for (index, answer) in answers.enumerated() {
                    #expect(answer["output_ids"] as? [Int] == expected(reference, index), "batch prompt \(index)")
                    let meta = answer["meta_info"] as? [String: Any]
                    #expect(meta?["prompt_tokens"] as? Int == Self.lengths[index])
                    #expect((meta?["finish_reason"] as? [String: Any])?["type"] as? String == "length")
                }

                // Concurrent single requests, streamed and not, through the typed client.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in Self.prompts.indices {
                        let sampling = SamplingParamsBody(maxNewTokens: Self.newTokens[index], temperature: 0, ignoreEOS: true)
                        let want = expected(reference, index)
                        group.addTask {
                            let answer = try await server.client.generate(GenerateRequestBody(inputIDs: Self.prompts[index], samplingParams: sampling))
                            #expect(answer.count == 1 && answer[0].outputIDs == want, "concurrent prompt \(index)")
                        }
                        group.addTask {
                            var last: GenerateResponseBody?
                            for try await chunk in server.client.generateStream(GenerateRequestBody(inputIDs: Self.prompts[index], samplingParams: sampling)) { last = chunk }
                            #expect(last?.outputIDs == want, "streamed prompt \(index)")
                            #expect(last?.metaInfo.finishReason?.type == "length")
                        }
                    }
                    try await group.waitForAll()
                }

                // OpenAI completions with token prompts, and n samples of one greedy prompt.
                let completion = try await send(.POST, server.url + "/v1/completions", json: #"{"prompt": [\#(ids)], "max_tokens": 7, "temperature": 0, "ignore_eos": true}"#)
                #expect(completion.status == 200, "\(completion.body)")
                let choices = try #require(completion.object?["choices"] as? [[String: Any]])
                #expect(choices.count == Self.prompts.count)
                let usage = completion.object?["usage"] as? [String: Any]
                #expect(usage?["completion_tokens"] as? Int == 7 * Self.prompts.count)
                let group = try await server.client.generate(GenerateRequestBody(
                    inputIDs: Self.prompts[3], samplingParams: SamplingParamsBody(maxNewTokens: 8, temperature: 0, ignoreEOS: true, n: 3)))
                #expect(group.count == 3 && group.allSatisfy { $0.outputIDs == Array(reference[3].prefix(8)) })
                _ = try await server.waitUntilIdle()
            }
        }

        /// slime's rollout request, exactly as `sglang_rollout.generate` sends it: token ids, its sampling
        /// parameters (nulls included), `return_logprob`. It reads `output_token_logprobs` as
        /// `[logprob, token_id, _]` and `finish_reason.type`; the log-probs equal the trainer's forward.
        @Test func slimeRolloutRequestGetsTokensAndTrainerLogprobs() async throws {
            try await withServer(model: "llama") { server in
                let prompt = Fixtures.prompt(length: 11, seed: 7, vocabulary: 96)
                let body = """
                    {"sampling_params": {"temperature": 0.7, "top_p": 1.0, "top_k": -1, "max_new_tokens": 16, "stop": null,
                     "stop_token_ids": null, "skip_special_tokens": false, "no_stop_trim": true, "spaces_between_special_tokens": false,
                     "sampling_seed": 1234},
                     "return_logprob": true, "input_ids": [\(prompt.map(String.init).joined(separator: ","))]}
                    """
                let exchange = try await send(.POST, server.url + "/generate", json: body, headers: [("X-SMG-Routing-Key", "session-1")])
                #expect(exchange.status == 200, "\(exchange.body)")
                let answer = try #require(exchange.object)
                let meta = try #require(answer["meta_info"] as? [String: Any])
                let entries = try #require(meta["output_token_logprobs"] as? [[Any]])
                let tokens = entries.compactMap { $0[1] as? Int }
                let logprobs = entries.compactMap { ($0[0] as? NSNumber)?.doubleValue }
                #expect(entries.allSatisfy { $0.count == 3 && $0[2] is NSNull })
                #expect(tokens == answer["output_ids"] as? [Int])
                #expect(tokens.count == meta["completion_tokens"] as? Int)
                let reason = try #require(meta["finish_reason"] as? [String: Any])
                #expect(["stop", "length"].contains(reason["type"] as? String ?? ""))
                #expect(meta["weight_version"] as? String == "0" && meta["id"] is String && meta["e2e_latency"] is NSNumber && meta["cached_tokens"] is Int)

                let model = server.engine.model
                let sequence = (prompt + tokens).map(Int32.init)
                let forward = try model.forward(tokens: sequence, sequences: .init(lengths: [sequence.count]), targets: nil, temperature: 0.7, keepActivations: false, recompute: false)
                let trainer = Array(forward.logprobs.toFloats()[(prompt.count - 1)..<(sequence.count - 1)])
                let difference = zip(trainer, logprobs).map { abs(Double($0) - $1) }.max() ?? 1
                #expect(difference <= 1e-5, "engine vs trainer log-probs differ by \(difference)")

                // The same seed gives the same tokens.
                let again = try await send(.POST, server.url + "/generate", json: body)
                #expect((again.object?["output_ids"] as? [Int]) == tokens)
            }
        }

        /// Streaming chunks carry the output so far (SGLang's default), the last one the finish reason,
        /// then `[DONE]`; with `--incremental-streaming-output` each chunk carries only what is new. (Tokens that
        /// arrive while a chunk is being written go out together in the next one.)
        @Test func streamsInSGLangsShape() async throws {
            let body = #"{"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 5, "temperature": 0, "ignore_eos": true}, "stream": true, "return_logprob": true}"#
            let chunks = try await withServer { server in
                let exchange = try await send(.POST, server.url + "/generate", json: body)
                #expect(exchange.status == 200)
                #expect(exchange.headers.first(name: "Content-Type") == "text/event-stream")
                let payloads = ssePayloads(exchange.body)
                #expect(payloads.last == "[DONE]")
                return payloads.dropLast().compactMap(jsonObject)
            }
            #expect(!chunks.isEmpty)
            let lengths = chunks.map { ($0["output_ids"] as? [Int])?.count ?? -1 }
            #expect(lengths == lengths.sorted() && lengths.last == 5, "cumulative: \(lengths)")
            let finishes = chunks.map { ($0["meta_info"] as? [String: Any])?["finish_reason"] }
            #expect(finishes.dropLast().allSatisfy { $0 is NSNull } && finishes.last is [String: Any])
            let entries = (chunks.last?["meta_info"] as? [String: Any])?["output_token_logprobs"] as? [[Any]]
            #expect(entries?.count == 5)

            try await withServer(configure: { $0.incrementalStreamingOutput = true }) { incremental in
                let deltas = ssePayloads(try await send(.POST, incremental.url + "/generate", json: body).body).dropLast().compactMap(jsonObject)
                let all = deltas.flatMap { ($0["output_ids"] as? [Int]) ?? [] }
                #expect(all.count == 5 && all == (chunks.last?["output_ids"] as? [Int]))
            }
        }
    }
}
