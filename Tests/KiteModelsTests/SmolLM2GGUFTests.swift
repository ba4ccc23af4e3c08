import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// The real SmolLM2-135M-Instruct, from its Q4_1 GGUF, against transformers loading the same file
/// (scripts/reference/smollm2_gguf.py). Both dequantise the weights and compute in fp32; 1e-3 absolute on
/// logits allows for the different summation orders over 30 layers.
@Suite(.serialized)
struct SmolLM2GGUFTests {
    static let assetPath = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".assets/SmolLM2-135M-Instruct.Q4_1.gguf").path

    /// The asset, or nil (and a failure when KITE_REQUIRE_ASSETS=1) when scripts/assets/fetch.sh has not run.
    static func asset() -> String? {
        if FileManager.default.fileExists(atPath: assetPath) { return assetPath }
        if ProcessInfo.processInfo.environment["KITE_REQUIRE_ASSETS"] == "1" {
            Issue.record("asset \(assetPath) is missing: run scripts/assets/fetch.sh")
        }
        return nil
    }

    struct Reference {
        let promptIDs: [Int32]
        let promptLogprobs: [Double]
        let greedyIDs: [Int32]
        let lastLogits: [Float]

        init() throws {
            let directory = Fixtures.root.appendingPathComponent("smollm2").path
            let json = try JSONValue(parsing: String(contentsOfFile: directory + "/reference.json", encoding: .utf8))
            promptIDs = (json["prompt_ids"]?.arrayValue ?? []).compactMap(\.intValue).map(Int32.init)
            promptLogprobs = (json["prompt_logprobs"]?.arrayValue ?? []).compactMap(\.doubleValue)
            greedyIDs = (json["greedy_ids"]?.arrayValue ?? []).compactMap(\.intValue).map(Int32.init)
            lastLogits = try SafetensorsFile(path: directory + "/last_logits.safetensors").tensor("last_logits").toFloats()
        }
    }

    @Test func configurationComesFromTheMetadata() throws {
        guard let path = Self.asset() else { return }
        let model = try Transformer.load(gguf: path, backend: CPUBackend())
        let config = model.config
        #expect(config.architecture == .llama && config.layerCount == 30 && config.hiddenSize == 576)
        #expect(config.attentionHeads == 9 && config.keyValueHeads == 3 && config.vocabularySize == 49152)
        #expect(config.tieWordEmbeddings && config.rope.theta == 100_000)
    }

    @Test func logitsAndLogprobsMatchTransformers() throws {
        guard let path = Self.asset() else { return }
        let reference = try Reference()
        #expect(reference.promptIDs.count == 37)
        let model = try Transformer.load(gguf: path, backend: CPUBackend())
        let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount)
        let hidden = try model.forwardHidden(tokens: reference.promptIDs, positions: (0..<reference.promptIDs.count).map(Int32.init), cache: cache)
        let last = try model.logits(hidden: hidden.rows((reference.promptIDs.count - 1)..<reference.promptIDs.count)).toFloats()
        let worst = zip(last, reference.lastLogits).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-3, "largest logit difference \(worst)")

        let forward = try model.forward(tokens: reference.promptIDs, sequences: PackedSequences(lengths: [reference.promptIDs.count]), keepActivations: false)
        let logprobs = forward.logprobs.toFloats().prefix(reference.promptIDs.count - 1)
        let worstLogprob = zip(logprobs, reference.promptLogprobs).map { abs(Double($0) - $1) }.max() ?? .infinity
        #expect(worstLogprob < 1e-3, "largest log-prob difference \(worstLogprob)")
    }

    @Test func greedyContinuationMatchesTransformers() throws {
        guard let path = Self.asset() else { return }
        let reference = try Reference()
        let model = try Transformer.load(gguf: path, backend: CPUBackend())
        let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount)
        var hidden = try model.forwardHidden(tokens: reference.promptIDs, positions: (0..<reference.promptIDs.count).map(Int32.init), cache: cache)
        var generated: [Int32] = []
        for step in 0..<reference.greedyIDs.count {
            let logits = try model.logits(hidden: hidden.rows((hidden.shape[0] - 1)..<hidden.shape[0])).toFloats()
            var best = 0
            for j in logits.indices where logits[j] > logits[best] { best = j }
            generated.append(Int32(best))
            if model.config.eosTokenIDs.contains(best) { break }
            hidden = try model.forwardHidden(tokens: [Int32(best)], positions: [Int32(reference.promptIDs.count + step)], cache: cache)
        }
        #expect(generated == reference.greedyIDs)
    }
}
