import Foundation
import KiteEngine
import KiteModels
import KiteServer
import KiteTensor
import Testing

extension ServerSuite {
    /// SGLang's `return_routed_experts` over HTTP: `meta_info.routed_experts` is base64 of the i32 array
    /// `[prompt + completion - 1, num_hidden_layers, topK]`, and `HTTPRolloutEngine` gives back exactly what the
    /// in-process engine gives for the same request.
    @Suite struct RoutedExpertsHTTPTests {
        static func options() -> EngineOptions {
            var options = Fixtures.engineOptions()
            options.enableReturnRoutedExperts = true
            return options
        }

        static func request(_ id: String, prompt: [Int32]) -> GenerationRequest {
            var sampling = SamplingParameters()
            sampling.n = 2
            sampling.temperature = 1
            sampling.maxNewTokens = 8
            sampling.ignoreEOS = true
            sampling.seed = 21
            return GenerationRequest(id: id, promptTokens: prompt, sampling: sampling, returnLogprob: true, stream: false, returnRoutedExperts: true)
        }

        @Test func routedExpertsOverHTTPEqualTheInProcessEngines() async throws {
            let model = try Transformer.load(directory: Fixtures.modelPath("qwen3_moe"), backend: CPUBackend(threads: 2), options: ModelLoadOptions(log: { _ in }))
            let local = try InferenceEngine(model: try model.clone(), options: Self.options())
            defer { local.shutdown() }
            let prompt = Fixtures.prompt(length: 11, seed: 8, vocabulary: model.config.vocabularySize).map(Int32.init)
            let expected = try await local.generate(Self.request("local", prompt: prompt))

            try await withServer(engine: try InferenceEngine(model: try model.clone(), options: Self.options())) { server in
                let directory = NSTemporaryDirectory() + "kite-sync-\(UUID().uuidString)"
                let remote = try HTTPRolloutEngine(urls: [server.url], weightDirectory: directory, routedExpertsShape: (layers: 3, topK: 2), httpClient: testHTTP)
                let results = try await remote.generate(Self.request("remote", prompt: prompt))
                #expect(results.count == 2)
                for (got, want) in zip(results, expected) {
                    #expect(got.outputTokens == want.outputTokens)
                    let routed = try #require(got.routedExperts)
                    #expect(routed.tokenCount == prompt.count + got.outputTokens.count - 1)
                    #expect(routed == want.routedExperts)
                }

                // The raw answer: base64 of little-endian i32, as SGLang sends it.
                let answers = try await server.client.generate(GenerateRequestBody(inputIDs: prompt.map(Int.init), rid: "raw", stream: false, returnRoutedExperts: true))
                let encoded = try #require(answers.first?.metaInfo.routedExperts)
                let values = try #require(RoutedExpertsEncoding.decode(encoded))
                let rows = prompt.count + (answers.first?.outputIDs.count ?? 0) - 1
                #expect(values.count == rows * 3 * 2)
                #expect(RoutedExpertsEncoding.encode(values) == encoded)
                #expect(RoutedExpertsEncoding.encode([1, -2, 258]) == Data([1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 2, 1, 0, 0]).base64EncodedString())
                #expect(RoutedExpertsEncoding.decode("AQID") == nil, "3 bytes are no i32")

                // Without the shape the client cannot reshape the answer and says so before asking.
                let shapeless = try HTTPRolloutEngine(urls: [server.url], weightDirectory: directory, httpClient: testHTTP)
                await #expect(throws: (any Error).self) { try await shapeless.generate(Self.request("shapeless", prompt: prompt)) }
            }
        }
    }
}
