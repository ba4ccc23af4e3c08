import Foundation
import KiteEngine
import KiteModels
import KiteTensor

enum EngineFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func model(_ name: String = "qwen3", threads: Int = 2) throws -> Transformer {
        try Transformer.load(directory: root.appendingPathComponent("models/\(name)").path, backend: CPUBackend(threads: threads))
    }

    /// Greedy continuation computed the slow way: the whole sequence through the model for every token,
    /// with no cache reuse between steps.
    static func referenceGreedy(_ model: Transformer, prompt: [Int32], count: Int) throws -> [Int32] {
        var tokens = prompt
        for _ in 0..<count {
            let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount)
            let hidden = try model.forwardHidden(tokens: tokens, positions: (0..<tokens.count).map(Int32.init), cache: cache)
            let logits = try model.logits(hidden: hidden.rows((tokens.count - 1)..<tokens.count)).toFloats()
            var best = 0
            for j in logits.indices where logits[j] > logits[best] { best = j }
            tokens.append(Int32(best))
        }
        return Array(tokens[prompt.count...])
    }

    static func prompt(length: Int, seed: UInt64, vocabulary: Int) -> [Int32] {
        var generator = SeededGenerator(seed: seed)
        return (0..<length).map { _ in Int32(generator.next() % UInt64(vocabulary)) }
    }

    static func greedy(maxNewTokens: Int, n: Int = 1) -> SamplingParameters {
        var sampling = SamplingParameters()
        sampling.temperature = 0
        sampling.maxNewTokens = maxNewTokens
        sampling.ignoreEOS = true
        sampling.n = n
        return sampling
    }
}
