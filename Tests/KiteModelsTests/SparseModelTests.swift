import Foundation
import Synchronization
import Testing
import KiteModels
import KiteTensor

/// DeepSeek-V2/V3 (latent attention, sigmoid or softmax routing, groups, shared experts) and Qwen3-MoE against
/// transformers, with the tolerances of `DenseTransformerTests`: log-probs and entropies within 1e-4 absolute of
/// the fp64 reference; gradients (router and experts included) within 1e-4 relative per element (floored at 5%
/// of the tensor's largest gradient) and 1e-5 normwise. The fixtures' routing decisions are at least 2e-5 from
/// a tie (checked by the script), so fp32 makes the same choices.
@Suite(.serialized)
struct SparseModelTests {
    let backend = CPUBackend(threads: 2)

    func load(_ name: String) throws -> Transformer {
        try Transformer.load(directory: Fixtures.modelDirectory(name), backend: backend, options: ModelLoadOptions(log: { _ in }))
    }

    @Test(arguments: Fixtures.sparseModels)
    func logprobsAndEntropyMatchTransformers(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try load(name)
        let result = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, temperature: reference.temperature, keepActivations: false)
        let logprobs = result.logprobs.toFloats(), entropy = result.entropy.toFloats()
        var row = 0
        var worst = 0.0
        for (s, sequence) in reference.sequences.enumerated() {
            for t in 0..<(sequence.count - 1) {
                worst = max(worst, abs(Double(logprobs[row + t]) - reference.logprobs[s][t]))
                worst = max(worst, abs(Double(entropy[row + t]) - reference.entropy[s][t]))
            }
            row += sequence.count
        }
        #expect(worst < 1e-4, "\(name): largest log-prob/entropy difference \(worst)")
    }

    @Test(arguments: Fixtures.sparseModels)
    func gradientsMatchAutograd(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let directory = Fixtures.modelDirectory(name)
        let model = try load(name)
        let expected = try SafetensorsFile(path: directory + "/gradients.safetensors")
        for recompute in [false, true] {
            let gradients = try model.parameters.zerosLike(backend: backend)
            let result = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, temperature: reference.temperature, recompute: recompute)
            let tape = try #require(result.tape)
            let rows = reference.packedTokens.count
            try model.backward(
                tape, dLogprobs: Tensor(reference.packedWeights(reference.lossWeightsLogprob), shape: [rows]),
                dEntropy: Tensor(reference.packedWeights(reference.lossWeightsEntropy), shape: [rows]), gradients: gradients)
            #expect(Set(expected.names) == Set(gradients.names), "\(name): gradient names differ: \(Set(expected.names).symmetricDifference(gradients.names).sorted())")
            for (parameter, gradient) in gradients.entries {
                let truth = try expected.tensor(parameter).toFloats()
                let ours = gradient.toFloats()
                let scale = truth.map { abs($0) }.max() ?? 0
                var worst: Float = 0
                for i in truth.indices {
                    worst = max(worst, abs(ours[i] - truth[i]) / max(abs(truth[i]), 0.05 * scale, 1e-12))
                }
                #expect(worst < 1e-4, "\(name) recompute \(recompute): \(parameter) relative error \(worst)")
                let difference = zip(ours, truth).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
                let norm = truth.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
                #expect(difference <= 1e-5 * max(norm, 1e-12), "\(name): \(parameter) normwise relative error \(difference / norm)")
            }
        }
    }

    /// Prefill and decode through a cache (latent attention absorbed into the cache of latents) give the log-probs
    /// of the training forward (latent attention expanded).
    @Test(arguments: Fixtures.sparseModels)
    func cachedDecodingMatchesTrainingForward(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try load(name)
        let sequence = reference.sequences[3]
        let full = try model.forward(tokens: sequence, sequences: PackedSequences(lengths: [sequence.count]), keepActivations: false).logprobs.toFloats()
        let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount)
        var hidden = try model.forwardHidden(tokens: Array(sequence[0..<9]), positions: (0..<9).map(Int32.init), cache: cache)
        var cached: [Float] = []
        for position in 8..<(sequence.count - 1) {
            let rowIndex = hidden.shape[0] - 1
            let logits = try model.logits(hidden: hidden.rows(rowIndex..<(rowIndex + 1))).toFloats()
            let maximum = logits.max()!
            let logSum = log(logits.map { exp(Double($0 - maximum)) }.reduce(0, +)) + Double(maximum)
            cached.append(Float(Double(logits[Int(sequence[position + 1])]) - logSum))
            hidden = try model.forwardHidden(tokens: [sequence[position + 1]], positions: [Int32(position + 1)], cache: cache)
        }
        let worst = zip(full[8..<(sequence.count - 1)], cached).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5, "\(name): cached decoding differs from the training forward by \(worst)")
    }

    @Test func latentAttentionCachesOneCompressedRowPerToken() throws {
        let model = try load("deepseek_v3")
        let layout = model.cacheLayout
        // kv_lora_rank 16 + qk_rope_head_dim 8, shared by the 4 heads, no separate values.
        #expect(layout == KeyValueCacheLayout(layerCount: 3, keyHeads: 1, keyWidth: 24, values: nil))
        let dense = try load("qwen3_moe").cacheLayout
        #expect(dense.values == .init(heads: 2, width: 8) && dense.keyHeads == 2 && dense.keyWidth == 8)
    }

    @Test func multiTokenPredictionLayersAreSkippedWithALogLine() throws {
        let lines = Mutex<[String]>([])
        let model = try Transformer.load(directory: Fixtures.modelDirectory("deepseek_v3"), backend: backend, options: ModelLoadOptions(log: { line in lines.withLock { $0.append(line) } }))
        let logged = lines.withLock { $0 }
        #expect(logged.count == 1)
        #expect(logged.first?.contains("skipping 5 tensors of layer(s) 3 beyond num_hidden_layers = 3") == true, "\(logged)")
        #expect(!model.parameters.names.contains { $0.hasPrefix("model.layers.3.") })
        // The expert-choice biases are kept, untrained, beside the weights.
        #expect(model.buffers.names == ["model.layers.1.mlp.gate.e_score_correction_bias", "model.layers.2.mlp.gate.e_score_correction_bias"])
        #expect(try load("qwen3_moe").buffers.count == 0)
    }

    @Test func expertLoadCountsEveryRoutedToken() throws {
        let reference = try Fixtures.Reference(model: "qwen3_moe")
        let model = try load("qwen3_moe")
        _ = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false)
        let load = model.takeExpertLoad()
        // Layers 0 and 2 are sparse (layer 1 is in mlp_only_layers); 8 experts, 2 per token.
        #expect(Set(load.tokensPerExpert.keys) == [0, 2])
        for counts in load.tokensPerExpert.values {
            #expect(counts.count == 8 && counts.reduce(0, +) == 2 * reference.packedTokens.count)
        }
        #expect(load.maxImbalance >= 1 && load.maxImbalance <= 8)
        #expect(model.takeExpertLoad().isEmpty)
    }
}

/// The router-load metric on hand-made counts.
struct ExpertLoadTests {
    @Test func imbalanceIsTheBusiestExpertOverTheMean() {
        var load = ExpertLoad()
        load.add(layer: 1, counts: [4, 4, 4, 4])
        load.add(layer: 2, counts: [10, 2, 0, 0])
        load.add(layer: 2, counts: [2, 2, 0, 0])
        #expect(load.tokensPerExpert[2] == [12, 4, 0, 0])
        #expect(load.imbalance == [1: 1, 2: 3])
        #expect(load.maxImbalance == 3 && load.meanImbalance == 2 && load.assignments == 32 && load.idleExperts == 2)
        let metrics = load.metrics(prefix: "train")
        #expect(metrics.map(\.name) == ["train/expert_load_imbalance_max", "train/expert_load_imbalance_mean", "train/expert_idle_count",
                                        "train/expert_load_imbalance/layer_1", "train/expert_load_imbalance/layer_2"])
        #expect(ExpertLoad().metrics(prefix: "train").isEmpty)
    }
}
