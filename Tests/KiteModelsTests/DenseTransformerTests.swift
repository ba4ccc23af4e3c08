import Foundation
import Testing
import KiteModels
import KiteTensor

/// Dense models against transformers: log-probs and entropies within 1e-4 absolute (fp32 here vs fp64 there;
/// fp32 rounding over two tiny layers stays near 1e-6). Gradients of a masked weighted sum of log-probs and
/// entropies against fp64 autograd: each element within 1e-4 relative, where the denominator is floored at 5%
/// of the tensor's largest gradient — an entry that is a sum of terms as large as that maximum cancels to a
/// small value with an fp32 rounding error of about (rows x 2^-24) of the maximum — and the whole tensor
/// within 1e-5 normwise relative.
@Suite(.serialized)
struct DenseTransformerTests {
    let backend = CPUBackend(threads: 2)

    @Test(arguments: Fixtures.denseModels)
    func logprobsAndEntropyMatchTransformers(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try Transformer.load(directory: Fixtures.modelDirectory(name), backend: backend)
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

    @Test(arguments: Fixtures.denseModels)
    func gradientsMatchAutograd(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let directory = Fixtures.modelDirectory(name)
        let model = try Transformer.load(directory: directory, backend: backend)
        let expected = try SafetensorsFile(path: directory + "/gradients.safetensors")
        for recompute in [false, true] {
            let gradients = try model.parameters.zerosLike(backend: backend)
            let result = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, temperature: reference.temperature, recompute: recompute)
            let tape = try #require(result.tape)
            let rows = reference.packedTokens.count
            try model.backward(
                tape, dLogprobs: Tensor(reference.packedWeights(reference.lossWeightsLogprob), shape: [rows]),
                dEntropy: Tensor(reference.packedWeights(reference.lossWeightsEntropy), shape: [rows]), gradients: gradients)
            #expect(Set(expected.names) == Set(gradients.names), "\(name): gradient names")
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

    @Test func packingDoesNotChangeLogprobs() throws {
        let reference = try Fixtures.Reference(model: "qwen3")
        let model = try Transformer.load(directory: Fixtures.modelDirectory("qwen3"), backend: backend)
        let packed = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false).logprobs.toFloats()
        var separate: [Float] = []
        for sequence in reference.sequences {
            separate += try model.forward(tokens: sequence, sequences: PackedSequences(lengths: [sequence.count]), keepActivations: false).logprobs.toFloats()
        }
        #expect(maxDifference(packed, separate) < 1e-6)
    }

    @Test(arguments: Fixtures.denseModels)
    func cachedDecodingMatchesTrainingForward(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try Transformer.load(directory: Fixtures.modelDirectory(name), backend: backend)
        let sequence = reference.sequences[3]
        let full = try model.forward(tokens: sequence, sequences: PackedSequences(lengths: [sequence.count]), keepActivations: false).logprobs.toFloats()
        // Prefill 9 tokens, then decode the rest one at a time; score each next token from the logits.
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
        #expect(maxDifference(Array(full[8..<(sequence.count - 1)]), cached) < 1e-5)
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}
