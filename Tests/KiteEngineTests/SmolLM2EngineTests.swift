import Foundation
import Testing
import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
import KiteTokenizers

/// The real SmolLM2-135M-Instruct with its real tokenizer, both from the GGUF, through the engine: greedy
/// output equals transformers' (Tests/Fixtures/smollm2, scripts/reference/smollm2_gguf.py) and text
/// features (stop strings, streaming text) work on real tokens.
@Suite(.serialized)
struct SmolLM2EngineTests {
    static let asset = EngineFixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(".assets/SmolLM2-135M-Instruct.Q4_1.gguf").path

    static func engine() throws -> InferenceEngine? {
        guard FileManager.default.fileExists(atPath: asset) else {
            if ProcessInfo.processInfo.environment["KITE_REQUIRE_ASSETS"] == "1" { Issue.record("asset \(asset) is missing: run scripts/assets/fetch.sh") }
            return nil
        }
        let model = try Transformer.load(gguf: asset, backend: CPUBackend())
        return try InferenceEngine(model: model, tokenizer: TokenizerAdapter(try Tokenizer(ggufPath: asset)))
    }

    static func reference() throws -> (prompt: [Int32], greedy: [Int32], text: String) {
        let json = try JSONValue(parsing: String(contentsOfFile: EngineFixtures.root.appendingPathComponent("smollm2/reference.json").path, encoding: .utf8))
        return ((json["prompt_ids"]?.arrayValue ?? []).compactMap(\.intValue).map(Int32.init),
                (json["greedy_ids"]?.arrayValue ?? []).compactMap(\.intValue).map(Int32.init),
                json["greedy_text"]?.stringValue ?? "")
    }

    @Test func greedyAnswerMatchesTransformers() async throws {
        guard let engine = try Self.engine() else { return }
        defer { engine.shutdown() }
        let reference = try Self.reference()
        var sampling = SamplingParameters()
        sampling.temperature = 0
        sampling.maxNewTokens = reference.greedy.count
        let result = try await engine.generate(GenerationRequest(id: "paris", promptTokens: reference.prompt, sampling: sampling))[0]
        #expect(result.outputTokens == reference.greedy)
        #expect(result.text == reference.text)
        #expect(result.text.contains("Paris"))
    }

    @Test func stopStringsCutTheTextAndStreamingTextAddsUp() async throws {
        guard let engine = try Self.engine() else { return }
        defer { engine.shutdown() }
        let reference = try Self.reference()
        var sampling = SamplingParameters()
        sampling.temperature = 0
        sampling.maxNewTokens = 20
        sampling.stop = [" is"]
        let stream = try engine.submit(GenerationRequest(id: "stop", promptTokens: reference.prompt, sampling: sampling))
        var streamed = ""
        var final: GenerationResult?
        for try await event in stream {
            switch event {
            case .tokens(_, _, _, let text): streamed += text
            case .finished(let result): final = result
            }
        }
        let result = try #require(final)
        #expect(result.text == "The capital of France")
        #expect(result.finishReason == .stopString(" is"))
        #expect(streamed == result.text)
    }
}
