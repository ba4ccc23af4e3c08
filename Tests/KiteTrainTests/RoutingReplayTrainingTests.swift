import Foundation
import Testing
import KiteModels
import KiteTensor
import KiteTrain

/// The trainer's side of routing replay on the Qwen3-MoE fixture: `score` records each sequence's routing,
/// and steps over sequences carrying it replay it in whatever micro-batches they land.
@Suite(.serialized)
struct RoutingReplayTrainingTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/qwen3_moe").path

    func trainer() throws -> PolicyTrainer {
        let model = try Transformer.load(directory: Self.directory, backend: CPUBackend(threads: 2), options: ModelLoadOptions(log: { _ in }))
        return try PolicyTrainer(model: model, optimizer: AdamWConfig(), schedule: LearningRateSchedule(maxLR: 1e-2, decaySteps: 10))
    }

    func sequences() -> [TrainingSequence] {
        var generator = SeededGenerator(seed: 17)
        return [7, 12, 5, 9].map { length in
            TrainingSequence(tokens: (0..<length).map { _ in Int32(generator.next() % 88) }, responseLength: length / 2)
        }
    }

    /// Mean log-prob of every response token: its gradient is -1/count per token.
    static func loss(_ count: Int) -> (Int, ResponseScores) throws -> ResponseGradients {
        { _, scores in
            ResponseGradients(dLogprobs: scores.logprobs.map { $0.map { _ in -1 / Float(count) } }, dEntropy: scores.entropy.map { $0.map { _ in 0 } })
        }
    }

    /// Recorded in batches of at most 16 tokens, replayed in other micro-batches (and recomputed): the step
    /// equals the free step bit for bit, and so do the updated weights.
    @Test func scoreRecordsRoutingAndAReplayedStepEqualsTheFreeStep() throws {
        let sequences = sequences()
        let count = sequences.reduce(0) { $0 + $1.responseLength }
        let free = try trainer(), replaying = try trainer()
        replaying.recompute = true
        free.recompute = true
        let scores = try replaying.score(sequences, temperature: 1, maxTokensPerBatch: 16, recordRouting: true)
        let routed = try #require(scores.routedExperts)
        #expect(routed.map(\.tokenCount) == sequences.map(\.tokens.count))
        #expect(routed.allSatisfy { $0.layerCount == 2 && $0.topK == 2 })
        let freeScores = try free.score(sequences, temperature: 1)
        #expect(scores.logprobs == freeScores.logprobs && freeScores.routedExperts == nil)

        var carrying = sequences
        for index in carrying.indices { carrying[index].routedExperts = routed[index] }
        let order = [[3, 0], [2, 1]]
        let freeReport = try free.step(microBatches: order.map { $0.map { sequences[$0] } }, temperature: 1, loss: Self.loss(count))
        let replayReport = try replaying.step(microBatches: order.map { $0.map { carrying[$0] } }, temperature: 1, loss: Self.loss(count))
        #expect(replayReport.gradientNorm == freeReport.gradientNorm)
        #expect(replayReport.expertLoad == freeReport.expertLoad)
        for (name, parameter) in free.model.parameters.entries {
            #expect(try replaying.model.parameters.require(name).toFloats() == parameter.toFloats(), "\(name)")
        }
    }

    /// After an update the router may choose differently; the replayed step still routes as recorded, so its
    /// experts' load is the record's and differs from a free step's where the choice moved.
    @Test func replayedStepsKeepTheRecordedRoutingAfterTheWeightsMove() throws {
        let sequences = sequences()
        let count = sequences.reduce(0) { $0 + $1.responseLength }
        let trainer = try trainer()
        let routed = try #require(try trainer.score(sequences, temperature: 1, recordRouting: true).routedExperts)
        // Move the routers a lot.
        for name in ["model.layers.0.mlp.gate.weight", "model.layers.2.mlp.gate.weight"] {
            let router = try trainer.model.parameters.require(name)
            var generator = SeededGenerator(seed: 3)
            for i in 0..<router.count { router.floats[i] += Float(generator.nextGaussian()) }
        }
        var carrying = sequences
        for index in carrying.indices { carrying[index].routedExperts = routed[index] }
        let replayed = try trainer.step(microBatches: [carrying], temperature: 1, loss: Self.loss(count))
        var recordedLoad = ExpertLoad()
        for (ordinal, layer) in [0, 2].enumerated() {
            var counts = [Int](repeating: 0, count: 8)
            for record in routed { for e in record.layer(ordinal) { counts[Int(e)] += 1 } }
            recordedLoad.add(layer: layer, counts: counts)
        }
        #expect(replayed.expertLoad == recordedLoad)
        let free = try trainer.step(microBatches: [sequences], temperature: 1, loss: Self.loss(count))
        #expect(free.expertLoad != recordedLoad, "the moved routers should choose other experts for some token")
    }

    @Test func aMicroBatchMixingReplayedAndFreeSequencesIsRefused() throws {
        let sequences = sequences()
        let trainer = try trainer()
        let routed = try #require(try trainer.score(sequences, temperature: 1, recordRouting: true).routedExperts)
        var mixed = sequences
        mixed[0].routedExperts = routed[0]
        #expect(throws: ModelError.invalidInput("routing replay: 1 of the micro-batch's 4 sequences carry routed experts; all or none must")) {
            try trainer.step(microBatches: [mixed], temperature: 1, loss: Self.loss(1))
        }
        var swapped = sequences
        swapped[0].routedExperts = routed[1]
        #expect(throws: ModelError.invalidInput("routing replay: sequence 0 has 7 tokens but routed experts for 12")) {
            try trainer.score([swapped[0]], temperature: 1)
        }
    }
}
