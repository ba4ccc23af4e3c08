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
