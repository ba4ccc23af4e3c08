import Foundation
import KiteEngine
import KiteModels
import KiteServer
import KiteTensor
import KiteTokenizers
import Testing

extension ServerSuite {
    /// The real SmolLM2-135M-Instruct and its real tokenizer (both from the GGUF) behind the server: text in,
    /// text out, as transformers computes it (Tests/Fixtures/smollm2, scripts/reference/smollm2_gguf.py).
    @Suite struct SmolLM2ServerTests {
        static let asset = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".assets/SmolLM2-135M-Instruct.Q4_1.gguf").path

        struct Reference {
            var promptText: String
            var promptIDs: [Int]
            var greedyIDs: [Int]
            var greedyText: String
        }

        static func reference() throws -> Reference {
            let data = try Data(contentsOf: Fixtures.root.appendingPathComponent("smollm2/reference.json"))
            let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return Reference(
                promptText: json["prompt_text"] as? String ?? "", promptIDs: json["prompt_ids"] as? [Int] ?? [],
                greedyIDs: json["greedy_ids"] as? [Int] ?? [], greedyText: json["greedy_text"] as? String ?? "")
        }

        /// A server around SmolLM2, or nil (the test passes vacuously) when the asset was not fetched.
        static func withSmolLM2(_ body: (TestServer) async throws -> Void) async throws {
            guard FileManager.default.fileExists(atPath: asset) else {
                if ProcessInfo.processInfo.environment["KITE_REQUIRE_ASSETS"] == "1" { Issue.record("asset \(asset) is missing: run scripts/assets/fetch.sh") }
                return
            }
            let model = try DenseTransformer.load(gguf: asset, backend: CPUBackend())
            let engine = try InferenceEngine(model: model, tokenizer: try ModelLoading.tokenizer(path: asset), options: Fixtures.engineOptions(maxTotalTokens: 8192, blockSize: 16))
            try await withServer(engine: engine, configure: { $0.modelPath = asset }, body)
        }

        /// `/generate` with `text`: the prompt is tokenized as transformers tokenizes it, the greedy answer
        /// and its text are transformers'; logprob entries carry token text on request.
        @Test func textPromptsGiveTransformersGreedyAnswer() async throws {
            let reference = try Self.reference()
            try await Self.withSmolLM2 { server in
                let body = try JSONSerialization.data(withJSONObject: [
                    "text": reference.promptText, "return_logprob": true, "return_text_in_logprobs": true,
                    "sampling_params": ["max_new_tokens": reference.greedyIDs.count, "temperature": 0],
                ] as [String: Any])
                let exchange = try await send(.POST, server.url + "/generate", json: String(decoding: body, as: UTF8.self))
                #expect(exchange.status == 200, "\(exchange.body)")
                let answer = try #require(exchange.object)
                #expect(answer["output_ids"] as? [Int] == reference.greedyIDs)
                #expect(answer["text"] as? String == reference.greedyText)
                let meta = try #require(answer["meta_info"] as? [String: Any])
                #expect(meta["prompt_tokens"] as? Int == reference.promptIDs.count)
                let entries = try #require(meta["output_token_logprobs"] as? [[Any]])
                // The answer ends with the end-of-turn token: a stop, and its text in the log-prob entries.
                #expect(entries.compactMap { $0[2] as? String }.joined() == reference.greedyText + "<|im_end|>")
                let reason = meta["finish_reason"] as? [String: Any]
                #expect(reason?["type"] as? String == "stop" && reason?["matched"] as? Int == reference.greedyIDs.last)
            }
        }

        /// OpenAI completions with a text prompt, streamed: the deltas add up to transformers' text; a stop
        /// string ends the choice with `matched_stop`, cut from the text unless `no_stop_trim`.
        @Test func streamedCompletionsAndStopStrings() async throws {
            let reference = try Self.reference()
            try await Self.withSmolLM2 { server in
                func completion(_ extra: [String: Any]) async throws -> [[String: Any]] {
                    var fields: [String: Any] = ["prompt": reference.promptText, "max_tokens": reference.greedyIDs.count, "temperature": 0, "stream": true]
                    fields.merge(extra) { $1 }
                    let body = String(decoding: try JSONSerialization.data(withJSONObject: fields), as: UTF8.self)
                    let exchange = try await send(.POST, server.url + "/v1/completions", json: body)
                    #expect(exchange.status == 200, "\(exchange.body)")
                    let payloads = ssePayloads(exchange.body)
                    #expect(payloads.last == "[DONE]")
                    return payloads.dropLast().compactMap(jsonObject).compactMap { ($0["choices"] as? [[String: Any]])?.first }
                }
                let choices = try await completion([:])
                #expect(choices.compactMap { $0["text"] as? String }.joined() == reference.greedyText)
                #expect(choices.last?["finish_reason"] as? String == "stop" && choices.last?["matched_stop"] as? Int == reference.greedyIDs.last)

                let stopped = try await completion(["stop": [" Paris"]])
                #expect(stopped.compactMap { $0["text"] as? String }.joined() == "The capital of France is")
                #expect(stopped.last?["finish_reason"] as? String == "stop" && stopped.last?["matched_stop"] as? String == " Paris")

                let kept = try await send(.POST, server.url + "/generate", json: String(decoding: try JSONSerialization.data(withJSONObject: [
                    "text": reference.promptText, "sampling_params": ["max_new_tokens": 8, "temperature": 0, "stop": " Paris", "no_stop_trim": true],
                ] as [String: Any]), as: UTF8.self))
                #expect(kept.object?["text"] as? String == "The capital of France is Paris")
                let reason = (kept.object?["meta_info"] as? [String: Any])?["finish_reason"] as? [String: Any]
                #expect(reason?["type"] as? String == "stop" && reason?["matched"] as? String == " Paris")
            }
        }
    }
}
