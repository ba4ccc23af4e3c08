import Testing
import KiteModels
import KiteTensor

/// Inference copies of a model keep q/k/v and gate/up weights in one allocation each and run one product per
/// group, fused norms and the residual adds inside the next norm. On the CPU that must change no bit: the
/// stacked product sums each output in the order the separate ones do, and the fused steps are the composed
/// operations there.
@Suite(.serialized)
struct StackedProjectionTests {
    let backend = CPUBackend(threads: 2)

    @Test(arguments: Fixtures.denseModels + ["qwen3_moe"])
    func stackedInferenceCopyGivesTheSameBits(model name: String) throws {
        let model = try Transformer.load(directory: Fixtures.modelDirectory(name), backend: backend)
        let stacked = try model.clone(matrixDType: nil)
        let separate = try model.clone(matrixDType: nil, stackProjections: false)
        let q = try stacked.parameters.require("model.layers.0.self_attn.q_proj.weight")
        let k = try stacked.parameters.require("model.layers.0.self_attn.k_proj.weight")
        let v = try stacked.parameters.require("model.layers.0.self_attn.v_proj.weight")
        #expect(Tensor.contiguousStack([q, k, v]) != nil, "q, k and v are views of one allocation")
        #expect(q.toFloats() == (try model.parameters.require("model.layers.0.self_attn.q_proj.weight")).toFloats())
        let sq = try separate.parameters.require("model.layers.0.self_attn.q_proj.weight")
        let sk = try separate.parameters.require("model.layers.0.self_attn.k_proj.weight")
        #expect(Tensor.contiguousStack([sq, sk]) == nil)

        // Prefill then decode through a cache, and the packed forward, on both copies.
        let sequence: [Int32] = [5, 17, 3, 59, 42, 7, 7, 60, 1, 30, 2]
        func cachedHidden(_ copy: Transformer) throws -> [[Float]] {
            let cache = ContiguousKeyValueCache(layerCount: copy.config.layerCount)
            var states = [try copy.forwardHidden(tokens: Array(sequence[0..<8]), positions: (0..<8).map(Int32.init), cache: cache).toFloats()]
            for position in 8..<sequence.count {
                states.append(try copy.forwardHidden(tokens: [sequence[position]], positions: [Int32(position)], cache: cache).toFloats())
            }
            return states
        }
        #expect(try cachedHidden(stacked) == cachedHidden(separate))
        let packing = PackedSequences(lengths: [4, 7])
        #expect(try stacked.forwardHidden(tokens: sequence, sequences: packing).toFloats() == separate.forwardHidden(tokens: sequence, sequences: packing).toFloats())
        #expect(try stacked.forward(tokens: sequence, sequences: packing, keepActivations: false).logprobs.toFloats()
            == model.forward(tokens: sequence, sequences: packing, keepActivations: false).logprobs.toFloats())
    }

    @Test func weightSyncWritesThroughTheStackedViews() throws {
        let model = try Transformer.load(directory: Fixtures.modelDirectory("qwen2"), backend: backend)
        let engine = try model.clone(matrixDType: nil)
        let updated = try Transformer.randomlyInitialized(config: model.config, seed: 9, backend: backend, standardDeviation: 0.05)
        try WeightSync.copy(from: updated, into: engine)
        for name in ["model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.k_proj.bias", "model.layers.0.mlp.up_proj.weight"] {
            #expect(try engine.parameters.require(name).toFloats() == updated.parameters.require(name).toFloats(), "\(name)")
        }
        let cache = ContiguousKeyValueCache(layerCount: model.config.layerCount), reference = ContiguousKeyValueCache(layerCount: model.config.layerCount)
        let tokens: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6]
        let positions = (0..<8).map(Int32.init)
        #expect(try engine.forwardHidden(tokens: tokens, positions: positions, cache: cache).toFloats()
            == updated.forwardHidden(tokens: tokens, positions: positions, cache: reference).toFloats())
    }
}
