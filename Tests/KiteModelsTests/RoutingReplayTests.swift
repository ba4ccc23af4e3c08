import Foundation
import Testing
import KiteModels
import KiteTensor

/// Routing replay (slime's R2/R3) on the CPU reference with the sparse fixtures.
///
/// Replaying the experts a forward chose must reproduce that forward exactly (0 tolerance: `routeWeights` of
/// `route`'s experts is `route`'s weights to the bit, and everything else is the same arithmetic), however the
/// tokens are packed. Replaying other experts must change the output, and the gradients under the fixed
/// routing must equal central finite differences of the loss (tolerance below).
@Suite(.serialized)
struct RoutingReplayTests {
    let backend = CPUBackend(threads: 2)

    func load(_ name: String) throws -> Transformer {
        try Transformer.load(directory: Fixtures.modelDirectory(name), backend: backend, options: ModelLoadOptions(log: { _ in }))
    }

    struct Pass {
        var logprobs: [Float]
        var entropy: [Float]
        var gradients: [String: [Float]]
    }

    /// Forward and backward of sequences packed in the given order, with the reference's loss weights.
    func pass(_ model: Transformer, _ reference: Fixtures.Reference, order: [Int], routing: ExpertRouting?, recompute: Bool = false) throws -> Pass {
        let sequences = order.map { reference.sequences[$0] }
        let packing = PackedSequences(lengths: sequences.map(\.count))
        let result = try model.forward(tokens: sequences.flatMap { $0 }, sequences: packing, temperature: reference.temperature, recompute: recompute, routing: routing)
        let tape = try #require(result.tape)
        let dLogprobs = order.flatMap { s in (0..<reference.sequences[s].count).map { $0 < reference.sequences[s].count - 1 ? reference.lossWeightsLogprob[s][$0] : 0 } }
        let dEntropy = order.flatMap { s in (0..<reference.sequences[s].count).map { $0 < reference.sequences[s].count - 1 ? reference.lossWeightsEntropy[s][$0] : 0 } }
        let gradients = try model.parameters.zerosLike(backend: backend)
        try model.backward(tape, dLogprobs: Tensor(dLogprobs, shape: [dLogprobs.count]), dEntropy: Tensor(dEntropy, shape: [dEntropy.count]), gradients: gradients)
        return Pass(logprobs: result.logprobs.toFloats(), entropy: result.entropy.toFloats(),
                    gradients: Dictionary(uniqueKeysWithValues: gradients.entries.map { ($0.0, $0.1.toFloats()) }))
    }

    /// Records routing in a no-gradient forward of all sequences packed in order.
    func record(_ model: Transformer, _ reference: Fixtures.Reference) throws -> RoutedExperts {
        let routing = ExpertRouting.recording()
        _ = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, temperature: reference.temperature, keepActivations: false, routing: routing)
        return try routing.recorded()
    }

    /// Sample `s`'s rows of a record of all sequences packed in order.
    func rows(_ record: RoutedExperts, _ reference: Fixtures.Reference, sample s: Int) throws -> RoutedExperts {
        let start = reference.sequences[..<s].reduce(0) { $0 + $1.count }
        return try record.tokens(start..<(start + reference.sequences[s].count))
    }

    @Test(arguments: Fixtures.sparseModels)
    func recordHasEveryTokensExpertsOfEverySparseLayer(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try load(name)
        let record = try record(model, reference)
        let sparse = model.config.sparseLayerIndices
        #expect(record.tokenCount == reference.packedTokens.count)
        #expect(record.layerCount == sparse.count && record.topK == model.config.routedExpertsPerToken)
        // The same forward's expert load counts exactly the recorded choices.
        let load = model.takeExpertLoad()
        let experts = try #require(model.config.experts).expertCount
        for (ordinal, layer) in sparse.enumerated() {
            var counts = [Int](repeating: 0, count: experts)
            for e in record.layer(ordinal) { counts[Int(e)] += 1 }
            #expect(load.tokensPerExpert[layer] == counts, "\(name) layer \(layer)")
        }
    }

    /// R2's contract: record in one packing, replay in another (reversed order, one sequence alone) with
    /// activations kept or recomputed; log-probs, entropies and every gradient equal the free forward's in
    /// that packing bit for bit.
    @Test(arguments: Fixtures.sparseModels)
    func replayOfRecordedRoutingReproducesTheForwardExactly(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try load(name)
        let record = try record(model, reference)
        let count = reference.sequences.count
        for order in [Array((0..<count).reversed()), [2]] {
            let free = try pass(model, reference, order: order, routing: nil)
            let replay = try RoutedExperts.concatenating(order.map { try rows(record, reference, sample: $0) })
            for recompute in [false, true] {
                let replayed = try pass(model, reference, order: order, routing: .replaying(replay), recompute: recompute)
                #expect(replayed.logprobs.map(\.bitPattern) == free.logprobs.map(\.bitPattern), "\(name) order \(order) recompute \(recompute)")
                #expect(replayed.entropy.map(\.bitPattern) == free.entropy.map(\.bitPattern))
                for (parameter, gradient) in free.gradients {
                    #expect(replayed.gradients[parameter]?.map(\.bitPattern) == gradient.map(\.bitPattern), "\(name) recompute \(recompute): \(parameter)")
                }
            }
        }
    }

    /// Every token sent to other experts (each index + 1 mod E: distinct, valid, mostly not the router's
    /// choice): the log-probs change, and the gradients of the loss under that fixed routing, the router's
    /// included (through the gate weights of the replayed experts), equal central finite differences.
    ///
    /// Finite differences in fp32 with step 2e-3 on weights of about 0.02-0.1: the loss (a weighted sum of
    /// about 50 log-probs and entropies) rounds at ~1e-6, so the difference quotient carries up to ~1e-3
    /// absolute error (observed: at most 2e-3 with gradients up to 7); the check is
    /// |numeric - analytic| <= 3e-3 * max |analytic| of the tensor + 1e-3. Differentiating the router's own
    /// choice instead of the replayed one would be off by O(1).
    @Test(arguments: ["deepseek_v3", "qwen3_moe"])
    func replayOfOtherExpertsChangesTheOutputAndItsGradientsMatchFiniteDifferences(model name: String) throws {
        let reference = try Fixtures.Reference(model: name)
        let model = try load(name)
        let record = try record(model, reference)
        let experts = Int32(try #require(model.config.experts).expertCount)
        let other = try RoutedExperts(tokenCount: record.tokenCount, layerCount: record.layerCount, topK: record.topK,
                                      values: record.values.map { ($0 + 1) % experts })
        let order = Array(0..<reference.sequences.count)
        let free = try pass(model, reference, order: order, routing: nil)
        let replayed = try pass(model, reference, order: order, routing: .replaying(other))
        let change = zip(replayed.logprobs, free.logprobs).map { abs($0 - $1) }.max() ?? 0
        #expect(change > 1e-3, "\(name): replaying other experts moved the log-probs by only \(change)")

        let weightsLogprob = reference.packedWeights(reference.lossWeightsLogprob), weightsEntropy = reference.packedWeights(reference.lossWeightsEntropy)
        func loss() throws -> Double {
            let result = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, temperature: reference.temperature,
                                           keepActivations: false, routing: .replaying(other))
            let l = result.logprobs.toFloats(), e = result.entropy.toFloats()
            return l.indices.reduce(0.0) { $0 + Double(weightsLogprob[$1]) * Double(l[$1]) + Double(weightsEntropy[$1]) * Double(e[$1]) }
        }
        let sparse = model.config.sparseLayerIndices
        let probes = [
            "model.layers.\(sparse[0]).mlp.gate.weight",
            "model.layers.\(sparse.last!).mlp.experts.\(Int(other.layer(other.layerCount - 1)[0])).down_proj.weight",
            "model.layers.0.self_attn.o_proj.weight",
        ]
        for parameter in probes {
            let tensor = try #require(model.parameters[parameter], "\(parameter)")
            let analytic = try #require(replayed.gradients[parameter])
            let largest = analytic.map { abs($0) }.max() ?? 0
            #expect(largest > 0, "\(name): \(parameter) has no gradient under the replayed routing")
            // The entries with the largest analytic gradients, and a few others.
            let ranked = analytic.indices.sorted { abs(analytic[$0]) > abs(analytic[$1]) }
            let indices = Array(ranked.prefix(6)) + [analytic.count / 3, analytic.count / 2, analytic.count - 1]
            let values = tensor.floats
            let step: Float = 2e-3
            for index in indices {
                let original = values[index]
                values[index] = original + step
                let up = try loss()
                values[index] = original - step
                let down = try loss()
                values[index] = original
                let numeric = (up - down) / (2 * Double(step))
                let error = abs(numeric - Double(analytic[index]))
                #expect(error <= 3e-3 * Double(largest) + 1e-3, "\(name): \(parameter)[\(index)] analytic \(analytic[index]) numeric \(numeric)")
            }
        }
    }

    @Test func replayRejectsARecordOfAnotherShape() throws {
        let reference = try Fixtures.Reference(model: "qwen3_moe")
        let model = try load("qwen3_moe")
        let record = try record(model, reference)
        let tokens = reference.packedTokens, packing = reference.packing
        func attempt(_ routed: RoutedExperts) throws {
            _ = try model.forward(tokens: tokens, sequences: packing, keepActivations: false, routing: .replaying(routed))
        }
        // One sparse layer too few.
        #expect(throws: ModelError.invalidInput("routing replay: the record has 1 sparse layers, the model 2")) {
            try attempt(try record.selectingLayers([0]))
        }
        // Top-3 records for a top-2 model.
        let wide = try RoutedExperts(tokenCount: record.tokenCount, layerCount: 2, topK: 3, values: [Int32](repeating: 0, count: record.tokenCount * 6))
        #expect(throws: ModelError.invalidInput("routing replay: the record has top-3 experts per token, the model routes to 2")) { try attempt(wide) }
        // A token short.
        #expect(throws: ModelError.invalidInput("routing replay: the record has \(tokens.count - 1) tokens, the forward \(tokens.count)")) {
            try attempt(try record.tokens(0..<(tokens.count - 1)))
        }
        // A repeated and an out-of-range expert reach routeWeights' check.
        var repeated = record.values
        repeated[1] = repeated[0]
        #expect(throws: KiteTensorError.self) {
            try attempt(try RoutedExperts(tokenCount: record.tokenCount, layerCount: 2, topK: 2, values: repeated))
        }
        var outside = record.values
        outside[5] = 8
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "routeWeights", index: 8, limit: 8, position: 3)) {
            try attempt(try RoutedExperts(tokenCount: record.tokenCount, layerCount: 2, topK: 2, values: outside))
        }
        #expect(throws: ModelError.self) { try RoutedExperts(tokenCount: 2, layerCount: 2, topK: 2, values: [0, 1, 2]) }
        #expect(throws: ModelError.self) { try ExpertRouting.recording().recorded() }
    }

    /// A dense model has no sparse layer: it records an empty routing, replays one, and rejects any other.
    @Test func denseModelsIgnoreRoutingButRejectARecordWithLayers() throws {
        let reference = try Fixtures.Reference(model: "qwen3")
        let model = try load("qwen3")
        let routing = ExpertRouting.recording()
        let free = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false)
        let recorded = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false, routing: routing)
        #expect(recorded.logprobs.toFloats() == free.logprobs.toFloats())
        let empty = try routing.recorded()
        #expect(empty.layerCount == 0 && empty.tokenCount == reference.packedTokens.count)
        let replayed = try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false, routing: .replaying(empty))
        #expect(replayed.logprobs.toFloats() == free.logprobs.toFloats())
        let wrong = try RoutedExperts(tokenCount: reference.packedTokens.count, layerCount: 1, topK: 1, values: [Int32](repeating: 0, count: reference.packedTokens.count))
        #expect(throws: ModelError.invalidInput("routing replay: the record has 1 sparse layers, the model 0")) {
            try model.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false, routing: .replaying(wrong))
        }
    }

    /// The conversions between a record of the sparse layers and SGLang's every-layer layout, on hand-made values.
    @Test func recordsConvertBetweenSparseAndEveryLayer() throws {
        // 2 tokens, 2 sparse layers (model layers 1 and 3 of 4), top-2.
        let sparse = try RoutedExperts(tokenCount: 2, layerCount: 2, topK: 2, values: [1, 2, 3, 4, 5, 6, 7, 0])
        let every = try sparse.spreading(to: 4, at: [1, 3])
        #expect(every.values == [0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0, 7, 0])
        #expect(try every.selectingLayers([1, 3]) == sparse)
        #expect(sparse.layer(1) == [3, 4, 7, 0])
        #expect(try sparse.tokens(1..<2).values == [5, 6, 7, 0])
        #expect(try RoutedExperts.concatenating([sparse.tokens(1..<2), sparse.tokens(0..<1)]).values == [5, 6, 7, 0, 1, 2, 3, 4])
        #expect(try sparse.appendingPlaceholderToken().values == [1, 2, 3, 4, 5, 6, 7, 0, 0, 1, 0, 1])
        #expect(throws: ModelError.self) { try sparse.tokens(1..<3) }
        #expect(throws: ModelError.self) { try sparse.selectingLayers([2]) }
        #expect(throws: ModelError.self) { try sparse.spreading(to: 4, at: [1, 1]) }
        #expect(throws: ModelError.self) { try RoutedExperts.concatenating([sparse, every]) }
    }
}
