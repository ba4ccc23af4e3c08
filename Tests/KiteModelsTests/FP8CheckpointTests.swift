import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// Block-scaled fp8 checkpoints (scripts/reference/fp8_checkpoint.py made the fixtures: a bf16 DeepSeek-V3,
/// its `kite convert --bf16-to-fp8` output — checked there byte for byte against PyTorch's quantisation — and
/// the log-probs transformers computes when it dequantises that output itself).
@Suite(.serialized)
struct FP8CheckpointTests {
    let backend = CPUBackend(threads: 2)
    static let root = Fixtures.root.appendingPathComponent("fp8").path
    static let source = root + "/source", quantized = root + "/quantized"

    func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kite-fp8-\(UUID().uuidString)").path
    }

    struct Reference {
        let sequences: [[Int32]]
        let logprobs: [[Double]]

        init() throws {
            let json = try JSONValue(parsing: try String(contentsOfFile: FP8CheckpointTests.root + "/reference.json", encoding: .utf8))
            func matrix(_ key: String) -> [[Double]] { (json[key]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.doubleValue) } }
            sequences = matrix("sequences").map { $0.map { Int32($0) } }
            logprobs = matrix("logprobs")
        }
    }

    func logprobs(_ model: Transformer, _ sequences: [[Int32]]) throws -> [[Float]] {
        try sequences.map { sequence in
            Array(try model.forward(tokens: sequence, sequences: PackedSequences(lengths: [sequence.count]), keepActivations: false).logprobs.toFloats().dropLast())
        }
    }

    @Test func convertingTheSourceReproducesTheCommittedFP8Checkpoint() throws {
        let output = temporaryDirectory()
        let report = try CheckpointConversion.quantize(input: Self.source, output: output, backend: backend)
        #expect(report.converted == 28 && report.copied == 13)
        let ours = try SafetensorsFile(path: output + "/model.safetensors"), committed = try SafetensorsFile(path: Self.quantized + "/model.safetensors")
        #expect(Set(ours.names) == Set(committed.names))
        for name in committed.names {
            #expect(ours.entries[name]?.dtype == committed.entries[name]?.dtype && ours.entries[name]?.shape == committed.entries[name]?.shape, "\(name)")
            #expect(Array(try ours.bytes(of: name)) == Array(try committed.bytes(of: name)), "\(name): bytes differ")
        }
        let config = try ModelConfig.load(path: output + "/config.json")
        #expect(config.quantization == BlockQuantization(blockSize: 128))
        #expect(FileManager.default.fileExists(atPath: output + "/generation_config.json"))
        // The router, norms, embeddings and head stay in bf16; every projection is fp8 with its scales.
        #expect(ours.entries["model.layers.1.mlp.gate.weight"]?.dtype == .bf16)
        #expect(ours.entries["model.layers.1.mlp.experts.3.down_proj.weight"]?.dtype == .fp8e4m3)
        #expect(ours.entries["model.layers.0.self_attn.kv_a_proj_with_mqa.weight_scale_inv"]?.shape == [1, 2])
    }

    @Test func kiteReadsTheFP8CheckpointAsTransformersDequantisesIt() throws {
        let reference = try Reference()
        let dequantized = try Transformer.load(directory: Self.quantized, backend: backend)
        #expect(!dequantized.holdsQuantizedWeights && dequantized.buffers.names.allSatisfy { !$0.hasSuffix("_scale_inv") })
        let ours = try logprobs(dequantized, reference.sequences)
        let worst = zip(ours.joined(), reference.logprobs.joined()).map { abs(Double($0) - $1) }.max() ?? 1
        #expect(worst < 1e-4, "largest log-prob difference from transformers' fp8 path: \(worst)")
        // Kept as fp8 (an engine serving it) and dequantised where used: the same numbers.
        let kept = try Transformer.load(directory: Self.quantized, backend: backend, options: ModelLoadOptions(keepQuantizedWeights: true))
        #expect(kept.holdsQuantizedWeights)
        #expect(kept.parameters["model.layers.0.mlp.up_proj.weight"]?.dtype == .fp8e4m3)
        #expect(try logprobs(kept, reference.sequences) == ours)
        // ...but it cannot be trained.
        let gradients = try dequantized.parameters.zerosLike(backend: backend)
        let sequence = reference.sequences[0]
        let tape = try #require(try kept.forward(tokens: sequence, sequences: PackedSequences(lengths: [sequence.count])).tape)
        #expect(throws: ModelError.self) {
            try kept.backward(tape, dLogprobs: Tensor(zeros: [sequence.count]), dEntropy: Tensor(zeros: [sequence.count]), gradients: gradients)
        }
    }

    /// Quantise then dequantise: every element within e4m3's rounding of its tile (3 mantissa bits: 2^-4 relative
    /// for normal values, 2^-10 of the tile scale below e4m3's smallest normal 2^-6), each tile's scale amax / 448.
    @Test func roundTripStaysWithinE4M3PrecisionPerTile() throws {
        let source = try SafetensorsFile(path: Self.source + "/model.safetensors"), quantized = try SafetensorsFile(path: Self.quantized + "/model.safetensors")
        var checked = 0
        for name in quantized.names where quantized.entries[name]?.dtype == .fp8e4m3 {
            let original = try source.tensor(name, as: .f32)
            let scales = try quantized.tensor(name + "_scale_inv")
            let restored = try backend.blockDequantize(values: try quantized.tensor(name, as: .fp8e4m3), scales: scales, blockSize: 128, to: .f32).toFloats()
            let (rows, columns) = (original.shape[0], original.shape[1])
            let values = original.toFloats(), tileScales = scales.toFloats()
            var amax = [Float](repeating: 0, count: tileScales.count)
            for r in 0..<rows {
                for c in 0..<columns {
                    let tile = (r / 128) * scales.shape[1] + c / 128
                    let (x, scale) = (values[r * columns + c], tileScales[tile])
                    amax[tile] = max(amax[tile], abs(x))
                    let bound = scale * max(abs(x / scale) * 0x1p-4, 0x1p-10) * (1 + 1e-6)
                    #expect(abs(restored[r * columns + c] - x) <= bound, "\(name)[\(r), \(c)]")
                }
            }
            for (tile, scale) in tileScales.enumerated() { #expect(scale == (amax[tile] > 0 ? amax[tile] / 448 : 1), "\(name) tile \(tile)") }
            checked += 1
        }
        #expect(checked == 28)
    }

    @Test func fp8ToBF16GivesTheDequantisedWeightsInBF16() throws {
        let output = temporaryDirectory()
        let report = try CheckpointConversion.dequantize(input: Self.quantized, output: output, backend: backend)
        #expect(report.converted == 28 && report.copied == 13)
        let restored = try SafetensorsFile(path: output + "/model.safetensors"), quantized = try SafetensorsFile(path: Self.quantized + "/model.safetensors")
        #expect(!restored.names.contains { $0.hasSuffix("_scale_inv") })
        for name in restored.names {
            let entry = try #require(quantized.entries[name])
            if entry.dtype == .fp8e4m3 {
                let expected = try backend.blockDequantize(values: try quantized.tensor(name, as: .fp8e4m3), scales: try quantized.tensor(name + "_scale_inv"), blockSize: 128, to: .f32)
                #expect(restored.entries[name]?.dtype == .bf16)
                let bf16 = expected.converted(to: .bf16)
                #expect(Array(try restored.bytes(of: name)) == Array(UnsafeRawBufferPointer(start: bf16.rawPointer, count: bf16.byteCount)), "\(name)")
            } else {
                #expect(Array(try restored.bytes(of: name)) == Array(try quantized.bytes(of: name)), "\(name) changed")
            }
        }
        let config = try ModelConfig.load(path: output + "/config.json")
        #expect(config.quantization == nil && config.storageDType == "bfloat16")
        // bf16 keeps 8 significant bits of each dequantised weight (fp8 kept 4): the log-probs move by a tenth of
        // what quantising to fp8 moved them (0.59 at most on this random model).
        let reference = try Reference()
        let ours = try logprobs(try Transformer.load(directory: output, backend: backend), reference.sequences)
        let worst = zip(ours.joined(), reference.logprobs.joined()).map { abs(Double($0) - $1) }.max() ?? 1
        #expect(worst < 6e-2, "bf16 rounding moved a log-prob by \(worst)")
    }

    /// Weight sync into an engine that serves fp8 quantises the trainer's weights online, tile by tile.
    @Test func weightSyncQuantisesOnlineForAnFP8Engine() throws {
        let trainer = try Transformer.load(directory: Self.quantized, backend: backend)
        let engine = try Transformer.load(directory: Self.quantized, backend: backend, options: ModelLoadOptions(keepQuantizedWeights: true))
        let name = "model.layers.1.mlp.experts.2.up_proj.weight"
        let weight = try #require(trainer.parameters[name])
        let values = weight.floats
        for i in values.indices { values[i] = values[i] * 1.5 + 0.001 * Float(i % 7) }
        try WeightSync.copy(from: trainer, into: engine)
        let (expectedValues, expectedScales) = try backend.blockQuantize(weight, blockSize: 128, to: .fp8e4m3)
        let synced = try #require(engine.parameters[name]), scales = try #require(engine.buffers[name + "_scale_inv"])
        #expect(Array(UnsafeRawBufferPointer(start: synced.rawPointer, count: synced.byteCount)) == Array(UnsafeRawBufferPointer(start: expectedValues.rawPointer, count: expectedValues.byteCount)))
        #expect(scales.toFloats() == expectedScales.toFloats())
        // The expert-choice biases travel as they are.
        #expect(engine.buffers["model.layers.1.mlp.gate.e_score_correction_bias"]?.toFloats() == trainer.buffers["model.layers.1.mlp.gate.e_score_correction_bias"]?.toFloats())
    }

    @Test func badFP8CheckpointsNameWhatIsWrong() throws {
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "no error" } catch { return "\(error)" }
        }
        // An fp8 weight whose scales are missing.
        let directory = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Self.quantized + "/config.json", toPath: directory + "/config.json")
        let file = try SafetensorsFile(path: Self.quantized + "/model.safetensors")
        let kept = try file.names.filter { $0 != "model.layers.0.self_attn.o_proj.weight_scale_inv" }.map { ($0, try file.tensor($0, as: file.entries[$0]!.dtype)) }
        try SafetensorsWriter.write(kept.map { (name: $0.0, tensor: $0.1) }, to: directory + "/model.safetensors")
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) }.contains("missing tensor 'model.layers.0.self_attn.o_proj.weight_scale_inv (the block scales of fp8 'model.layers.0.self_attn.o_proj.weight')'"))
        // Non-square tiles.
        var config = try JSONValue(parsing: try String(contentsOfFile: directory + "/config.json", encoding: .utf8)).objectValue!
        config["quantization_config"] = ["quant_method": "fp8", "weight_block_size": [.int(128), .int(64)]]
        try JSONValue.object(config).serialized().write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) } == "\(directory)/config.json: field 'quantization_config.weight_block_size': expected square blocks [n, n], got [128, 64]")
        // fp8 weights without any quantization_config.
        config["quantization_config"] = nil
        try JSONValue.object(config).serialized().write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) }.contains("F8_E4M3") == false)
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) }.contains("weights need a 'quantization_config' in config.json"))
        // Converting into a directory that has files, or quantising twice.
        #expect(message { _ = try CheckpointConversion.quantize(input: Self.source, output: directory, backend: backend) }.contains("refusing to overwrite"))
        #expect(message { _ = try CheckpointConversion.quantize(input: Self.quantized, output: temporaryDirectory(), backend: backend) }.contains("already quantised"))
    }
}
