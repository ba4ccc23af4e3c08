import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// Every malformed checkpoint or configuration gives one error that names the file and what is wrong.
struct BadInputTests {
    let backend = CPUBackend(threads: 1)

    /// A fresh copy of a fixture model in a temporary directory, to damage.
    func copyOfFixture(_ name: String = "qwen3") throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: Fixtures.modelDirectory(name) + "/" + file, toPath: directory.path + "/" + file)
        }
        return directory.path
    }

    /// A safetensors file with `header` as its JSON header and `dataBytes` bytes of data.
    func writeSafetensors(_ path: String, header: String, dataBytes: Int) throws {
        var bytes = [UInt8]()
        var length = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &length) { bytes += $0 }
        bytes += Array(header.utf8)
        bytes += [UInt8](repeating: 0, count: dataBytes)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func message(_ body: () throws -> Void) -> String {
        do {
            try body()
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func truncatedSafetensorsNamesTheFileAndTheTensor() throws {
        let directory = try copyOfFixture()
        let path = directory + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        let text = message { _ = try Transformer.load(directory: directory, backend: backend) }
        #expect(text.contains(path) && text.contains("run past the end of the data"), "\(text)")

        try data.prefix(5).write(to: URL(fileURLWithPath: path))
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("truncated: 5 bytes"))

        try data.prefix(40).write(to: URL(fileURLWithPath: path))
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("truncated: header claims"))
    }

    @Test func headerThatLiesAboutOffsetsIsRejected() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kite-lie-\(UUID().uuidString).safetensors").path
        try writeSafetensors(path, header: #"{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}"#, dataBytes: 16)
        #expect(message { _ = try SafetensorsFile(path: path) } == "\(path): tensor 'w': data_offsets [0, 12] hold 12 bytes, but F32 [2, 2] needs 16")

        try writeSafetensors(path, header: #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#, dataBytes: 16)
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("overlap"))

        try writeSafetensors(path, header: #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, dataBytes: 8)
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("run past the end of the data (8 bytes)"))

        try writeSafetensors(path, header: #"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 16]}}"#, dataBytes: 16)
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("overflows"))

        try writeSafetensors(path, header: #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]"#, dataBytes: 16)
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("header is not valid JSON"))

        var huge = [UInt8](repeating: 0xFF, count: 8) + Array("{}".utf8)
        huge[7] = 0x00
        try Data(huge).write(to: URL(fileURLWithPath: path))
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("exceeds the"))
    }

    @Test func unknownOrWrongDTypeIsRejected() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kite-dtype-\(UUID().uuidString).safetensors").path
        try writeSafetensors(path, header: #"{"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}"#, dataBytes: 16)
        #expect(message { _ = try SafetensorsFile(path: path) }.contains("unsupported dtype 'F64'"))

        // A weight stored as integers is refused by the model loader, naming the tensor.
        let directory = try copyOfFixture()
        let model = try SafetensorsFile(path: directory + "/model.safetensors")
        var tensors: [(name: String, tensor: Tensor)] = []
        for name in model.names {
            let tensor = try model.tensor(name)
            tensors.append((name, name == "model.norm.weight" ? tensor.converted(to: .i32) : tensor))
        }
        try SafetensorsWriter.write(tensors, to: directory + "/model.safetensors")
        let text = message { _ = try Transformer.load(directory: directory, backend: backend) }
        #expect(text == "\(directory)/model.safetensors: tensor 'model.norm.weight': dtype i32 is not a floating-point type", "\(text)")
    }

    @Test func missingOrInvalidConfigFieldsAreNamed() throws {
        let base = try #require(try JSONValue(parsing: String(contentsOfFile: Fixtures.modelDirectory("qwen3") + "/config.json", encoding: .utf8)).objectValue)
        var missing = base
        missing["hidden_size"] = nil
        #expect(message { _ = try ModelConfig(json: missing, source: "c.json") } == "c.json: field 'hidden_size': missing")
        var wrongType = base
        wrongType["num_hidden_layers"] = "two"
        #expect(message { _ = try ModelConfig(json: wrongType, source: "c.json") } == "c.json: field 'num_hidden_layers': expected an integer, found a string")
        var unknown = base
        unknown["model_type"] = "mamba"
        #expect(message { _ = try ModelConfig(json: unknown, source: "c.json") }.contains("unsupported model type 'mamba'"))
        var heads = base
        heads["num_key_value_heads"] = 3
        #expect(message { _ = try ModelConfig(json: heads, source: "c.json") }.contains("'num_key_value_heads': 3 does not divide num_attention_heads 4"))
        var rope = base
        rope["rope_parameters"] = ["rope_type": "longrope", "rope_theta": 10000.0]
        #expect(message { _ = try ModelConfig(json: rope, source: "c.json") }.contains("unsupported RoPE type 'longrope'"))
        var negative = base
        negative["vocab_size"] = -5
        #expect(message { _ = try ModelConfig(json: negative, source: "c.json") } == "c.json: field 'vocab_size': must be positive, got -5")
    }

    @Test func missingTensorAndWrongShapeNameTheTensor() throws {
        let directory = try copyOfFixture()
        let model = try SafetensorsFile(path: directory + "/model.safetensors")
        var tensors = try model.names.filter { $0 != "model.layers.1.mlp.up_proj.weight" }.map { (name: $0, tensor: try model.tensor($0)) }
        try SafetensorsWriter.write(tensors, to: directory + "/model.safetensors")
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) } == "\(directory): missing tensor 'model.layers.1.mlp.up_proj.weight'")

        tensors = try model.names.map { name in
            (name: name, tensor: name == "model.norm.weight" ? Tensor(zeros: [31]) : try model.tensor(name))
        }
        try SafetensorsWriter.write(tensors, to: directory + "/model.safetensors")
        #expect(message { _ = try Transformer.load(directory: directory, backend: backend) }.contains("tensor 'model.norm.weight': shape [31], expected [32] from config.json"))
    }

    @Test func idsOutsideTheVocabularyAreRejected() throws {
        let model = try Transformer.load(directory: Fixtures.modelDirectory("qwen3"), backend: backend)
        #expect(message { _ = try model.forward(tokens: [1, 72], sequences: PackedSequences(lengths: [2])) } == "token id 72 at position 1 is outside the vocabulary (0..<72)")
        #expect(message { _ = try model.forward(tokens: [-3, 1], sequences: PackedSequences(lengths: [2])) }.contains("token id -3 at position 0"))
        #expect(message { _ = try model.forward(tokens: [1, 2], sequences: PackedSequences(lengths: [3])) }.contains("2 tokens for packed sequences of total length 3"))
    }

    @Test func safetensorsRoundTripsEveryDType() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kite-rt-\(UUID().uuidString).safetensors").path
        let values: [Float] = [1.5, -2.25, 0, 448]
        let tensors: [(name: String, tensor: Tensor)] = DType.allCases.map { ("t_\($0)", Tensor(values, shape: [2, 2], dtype: $0)) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: path)
        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == ["format": "pt"])
        for (name, tensor) in tensors {
            let read = try file.tensor(name, as: tensor.dtype)
            #expect(read.shape == [2, 2] && read.dtype == tensor.dtype)
            #expect(read.toFloats() == tensor.toFloats(), "\(name)")
        }
    }
}
