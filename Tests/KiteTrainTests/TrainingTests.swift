import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

struct TrainingTests {
    let backend = CPUBackend(threads: 2)

    static func tinyConfig(layers: Int = 2) throws -> ModelConfig {
        try ModelConfig(json: [
            "model_type": "llama", "vocab_size": 32, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": .int(layers), "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 128,
        ], source: "test")
    }

    /// Mean negative log-likelihood of next tokens, and its gradient, for a fixed packed batch.
    func crossEntropyStep(_ model: Transformer, tokens: [Int32], sequences: PackedSequences, gradients: ParameterSet) throws -> Double {
        let result = try model.forward(tokens: tokens, sequences: sequences)
        let targets = Transformer.nextTokenTargets(tokens: tokens, sequences: sequences)
        let counted = targets.filter { $0 >= 0 }.count
        let logprobs = result.logprobs.toFloats()
        let loss = -zip(logprobs, targets).filter { $0.1 >= 0 }.map { Double($0.0) }.reduce(0, +) / Double(counted)
        let dLogprobs = targets.map { $0 >= 0 ? -1 / Float(counted) : 0 }
        try model.backward(try #require(result.tape), dLogprobs: Tensor(dLogprobs, shape: [tokens.count]),
                           dEntropy: Tensor(zeros: [tokens.count]), gradients: gradients)
        return loss
    }

    @Test func twoLayerModelOverfitsAFixedBatch() throws {
        let model = try Transformer.randomlyInitialized(config: try Self.tinyConfig(), seed: 3, backend: backend)
        var generator = SeededGenerator(seed: 11)
        let lengths = [16, 16, 12, 20]
        let tokens = (0..<lengths.reduce(0, +)).map { _ in Int32(generator.next() % 32) }
        let sequences = PackedSequences(lengths: lengths)
        let gradients = try model.parameters.zerosLike(backend: backend)
        let optimizer = try AdamW(parameters: model.parameters, config: AdamWConfig(weightDecay: 0.01), backend: backend)
        var losses: [Double] = []
        for _ in 0..<200 {
            try GradientClipping.zero(gradients, backend: backend)
            losses.append(try crossEntropyStep(model, tokens: tokens, sequences: sequences, gradients: gradients))
            let norm = try GradientClipping.globalNorm(gradients, backend: backend)
            try optimizer.step(parameters: model.parameters, gradients: gradients, learningRate: 1e-2,
                               gradientScale: GradientClipping.scale(norm: norm, maxNorm: 1.0))
        }
        #expect(losses[0] > 3.0, "an untrained model is near uniform over 32 tokens (ln 32 = 3.47): \(losses[0])")
        #expect(losses[199] < losses[0] / 10, "loss \(losses[0]) -> \(losses[199])")
    }

    /// Central differences of the whole model's loss with respect to a sample of parameters, in fp32
    /// (step 1e-2): agreement to a few parts in a thousand is what fp32 forward passes allow.
    @Test func gradientsMatchFiniteDifferences() throws {
        let model = try Transformer.randomlyInitialized(config: try Self.tinyConfig(), seed: 5, backend: backend, standardDeviation: 0.2)
        let tokens: [Int32] = [1, 5, 9, 2, 30, 7, 7, 3, 0, 12, 19]
        let sequences = PackedSequences(lengths: [6, 5])
        let gradients = try model.parameters.zerosLike(backend: backend)
        _ = try crossEntropyStep(model, tokens: tokens, sequences: sequences, gradients: gradients)
        let loss = { () throws -> Double in
            let scratch = try model.parameters.zerosLike(backend: backend)
            return try crossEntropyStep(model, tokens: tokens, sequences: sequences, gradients: scratch)
        }
        var checked = 0
        for (name, parameter) in model.parameters.entries {
            let values = parameter.floats
            let gradient = try gradients.require(name).toFloats()
            // The entries with the largest gradients, where the finite difference is well above rounding noise.
            let indices = gradient.indices.sorted { abs(gradient[$0]) > abs(gradient[$1]) }.prefix(2)
            for index in indices {
                let saved = values[index]
                values[index] = saved + 1e-2
                let plus = try loss()
                values[index] = saved - 1e-2
                let minus = try loss()
                values[index] = saved
                let numeric = (plus - minus) / 2e-2
                #expect(abs(numeric - Double(gradient[index])) <= 5e-3 * max(abs(numeric), 1e-2), "\(name)[\(index)]: analytic \(gradient[index]), numeric \(numeric)")
                checked += 1
            }
        }
        #expect(checked == 2 * model.parameters.count)
    }

    static func deepseekConfig() throws -> ModelConfig {
        try ModelConfig(json: [
            "model_type": "deepseek_v3", "vocab_size": 32, "hidden_size": 32, "intermediate_size": 48, "moe_intermediate_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "q_lora_rank": 16, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
            "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
            "n_shared_experts": 1, "first_k_dense_replace": 1, "max_position_embeddings": 128,
        ], source: "test")
    }

    /// A DeepSeek-V3 model (latent attention, experts, router) trains through the policy trainer like a dense
    /// one; each step reports the router's load, and the expert-choice bias is kept, not trained, and saved.
    @Test func sparseModelTrainsAndReportsItsExpertLoad() throws {
        let model = try Transformer.randomlyInitialized(config: try Self.deepseekConfig(), seed: 9, backend: backend, standardDeviation: 0.1)
        let bias = try #require(model.buffers["model.layers.1.mlp.gate.e_score_correction_bias"])
        for i in 0..<8 { bias.floats[i] = 0.01 * Float(i) }
        let trainer = try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: 1e-2, decaySteps: 1))
        var generator = SeededGenerator(seed: 4)
        let batch = (0..<4).map { _ in TrainingSequence(tokens: (0..<12).map { _ in Int32(generator.next() % 32) }, responseLength: 8) }
        var losses: [Double] = []
        var reports: [StepReport] = []
        for _ in 0..<40 {
            reports.append(try trainer.step(microBatches: [batch], temperature: 1) { _, scores in
                losses.append(-scores.logprobs.joined().map(Double.init).reduce(0, +) / 32)
                return ResponseGradients(dLogprobs: scores.logprobs.map { $0.map { _ in -1 / 32 } }, dEntropy: scores.entropy.map { $0.map { _ in 0 } })
            })
        }
        #expect(losses[39] < losses[0] / 4, "loss \(losses[0]) -> \(losses[39])")
        let load = try #require(reports.last?.expertLoad)
        #expect(Array(load.tokensPerExpert.keys) == [1] && load.assignments == 2 * 48)
        #expect(bias.toFloats() == (0..<8).map { 0.01 * Float($0) })
        #expect(!trainer.gradients.names.contains { $0.hasSuffix("e_score_correction_bias") })

        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kite-sparse-\(UUID().uuidString)").path
        let saved = try TrainingCheckpoint.save(root: root, rolloutID: 1, model: model, optimizer: trainer.optimizer, state: [:])
        let restored = try Transformer.load(directory: saved + "/model", backend: backend)
        #expect(restored.config.architecture == .deepseekV3)
        #expect(restored.buffers["model.layers.1.mlp.gate.e_score_correction_bias"]?.toFloats() == bias.toFloats())
        for (name, parameter) in model.parameters.entries { #expect(restored.parameters[name]?.toFloats() == parameter.toFloats(), "\(name)") }
        let config = try String(contentsOfFile: saved + "/model/config.json", encoding: .utf8)
        #expect(config.contains("DeepseekV3ForCausalLM"))
    }

    @Test func clippingScalesOnlyAboveTheThreshold() {
        #expect(GradientClipping.scale(norm: 0.5, maxNorm: 1) == 1)
        #expect(abs(GradientClipping.scale(norm: 4, maxNorm: 1) - Float(1 / (4 + 1e-6))) < 1e-7)
        #expect(GradientClipping.scale(norm: 4, maxNorm: 0) == 1)
        #expect(GradientClipping.scale(norm: .nan, maxNorm: 1) == 1)
    }

    @Test func globalNormIsTheNormOfAllGradientsTogether() throws {
        let set = ParameterSet([("a", Tensor([3, 0], shape: [2])), ("b", Tensor([4], shape: [1]))])
        #expect(try GradientClipping.globalNorm(set, backend: backend) == 5)
    }
}
