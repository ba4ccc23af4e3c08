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
            let model = try Transformer.load(gguf: asset, backend: CPUBackend())
            let tokenizer = try #require(try ModelLoading.tokenizer(path: asset))
            let engine = try InferenceEngine(model: model, tokenizer: tokenizer, options: Fixtures.engineOptions(maxTotalTokens: 8192, blockSize: 16))
            let renderer = try TemplateChatRenderer(tokenizer: tokenizer.tokenizer)
            #expect(renderer != nil, "SmolLM2's GGUF carries a chat template")
            try await withServer(engine: engine, chatRenderer: renderer, configure: { $0.modelPath = asset }, body)
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

        /// Chat completions: the model's own template renders the conversation into transformers' prompt, and
        /// the answer, whole or streamed, is transformers' greedy answer.
        @Test func chatCompletionsUseTheModelsTemplate() async throws {
            let reference = try Self.reference()
            try await Self.withSmolLM2 { server in
                let messages = #"[{"role": "system", "content": "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}, {"role": "user", "content": [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]}]"#
                let whole = try await send(.POST, server.url + "/v1/chat/completions", json: #"{"model": "smollm2", "messages": \#(messages), "max_tokens": 16, "temperature": 0, "logprobs": true, "top_logprobs": 2}"#)
                #expect(whole.status == 200, "\(whole.body)")
                let object = try #require(whole.object)
                #expect(object["object"] as? String == "chat.completion" && object["model"] as? String == "smollm2")
                let choice = try #require((object["choices"] as? [[String: Any]])?.first)
                let message = choice["message"] as? [String: Any]
                #expect(message?["role"] as? String == "assistant" && message?["content"] as? String == reference.greedyText)
                #expect(choice["finish_reason"] as? String == "stop")
                let content = (choice["logprobs"] as? [String: Any])?["content"] as? [[String: Any]]
                #expect(content?.count == reference.greedyIDs.count && content?.allSatisfy { ($0["top_logprobs"] as? [Any])?.count == 2 } == true)
                let usage = object["usage"] as? [String: Any]
                #expect(usage?["prompt_tokens"] as? Int == reference.promptIDs.count && usage?["completion_tokens"] as? Int == reference.greedyIDs.count)

                let streamed = try await send(.POST, server.url + "/v1/chat/completions", json: #"{"messages": \#(messages), "max_tokens": 16, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}"#)
                let chunks = ssePayloads(streamed.body).dropLast().compactMap(jsonObject)
                let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
                #expect(deltas.first?["role"] as? String == "assistant")
                #expect(deltas.compactMap { $0["content"] as? String }.joined() == reference.greedyText)
                #expect(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
                #expect((chunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int == reference.greedyIDs.count)
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
