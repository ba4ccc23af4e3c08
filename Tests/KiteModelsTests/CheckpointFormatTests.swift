import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

struct CheckpointFormatTests {
    let backend = CPUBackend(threads: 2)

    func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-ckpt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The same weights split over two shards with an index load to the same model.
    @Test func shardedCheckpointLoadsLikeASingleFile() throws {
        let source = Fixtures.modelDirectory("llama")
        let directory = try temporaryDirectory()
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: directory + "/config.json")
        let file = try SafetensorsFile(path: source + "/model.safetensors")
        let names = file.names
        let half = names.count / 2
        var weightMap = JSONObject()
        for (shardIndex, shardNames) in [Array(names[..<half]), Array(names[half...])].enumerated() {
            let shardName = "model-0000\(shardIndex + 1)-of-00002.safetensors"
            try SafetensorsWriter.write(try shardNames.map { (name: $0, tensor: try file.tensor($0)) }, to: directory + "/" + shardName)
            for name in shardNames { weightMap[name] = .string(shardName) }
        }
        let index: JSONValue = ["metadata": ["total_size": 0], "weight_map": .object(weightMap)]
        try index.serialized(JSONWriteOptions(indent: 2)).write(toFile: directory + "/model.safetensors.index.json", atomically: true, encoding: .utf8)

        let reference = try Fixtures.Reference(model: "llama")
        let single = try Transformer.load(directory: source, backend: backend)
        let sharded = try Transformer.load(directory: directory, backend: backend)
        let a = try single.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false).logprobs.toFloats()
        let b = try sharded.forward(tokens: reference.packedTokens, sequences: reference.packing, keepActivations: false).logprobs.toFloats()
        #expect(a == b)

        // An index naming a tensor its shard does not hold is reported with both names.
        let normIndex = try #require(names.firstIndex(of: "model.norm.weight"))
        weightMap["model.norm.weight"] = .string(normIndex < half ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors")
        let broken: JSONValue = ["weight_map": .object(weightMap)]
        try broken.serialized().write(toFile: directory + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        do {
            _ = try CheckpointDirectory(directory: directory)
            Issue.record("a lying index loaded")
        } catch {
            #expect("\(error)".contains("missing tensor 'model.norm.weight (listed in model.safetensors.index.json)'"), "\(error)")
        }
    }

    /// transformers 4.x wrote `rope_theta` at the top level and scaling under `rope_scaling` with `type`.
    @Test func legacyRopeFieldsReadLikeRopeParameters() throws {
        let modern = try ModelConfig.load(path: Fixtures.modelDirectory("qwen3") + "/config.json")
        var legacy = modern.json
        legacy["rope_parameters"] = nil
        legacy["rope_theta"] = 10000.0
        legacy["rope_scaling"] = ["type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32]
        let config = try ModelConfig(json: legacy, source: "legacy.json")
        #expect(config.rope == modern.rope)
        #expect(config.rope.kind == .yarn && config.rope.theta == 10000 && config.rope.factor == 4)
        // YaRN's default attention factor: 0.1 ln(4) + 1.
        #expect(abs(config.rope.attentionScaling - Float(0.1 * log(4.0) + 1)) < 1e-7)
    }
}
