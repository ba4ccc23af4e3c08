import KiteJSON
import KiteTensor

/// The weights of a Hugging Face model directory: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`. Looks tensors up by name across shards.
public final class CheckpointDirectory: @unchecked Sendable {
    public let directory: String
    /// Which file holds each tensor.
    public let location: [String: SafetensorsFile]

    public init(directory: String) throws {
        self.directory = directory
        let indexPath = directory + "/model.safetensors.index.json"
        let singlePath = directory + "/model.safetensors"
        var location: [String: SafetensorsFile] = [:]
        if FileText.exists(indexPath) {
            let text = try FileText.read(indexPath)
            let index: JSONValue
            do { index = try JSONValue(parsing: text, source: indexPath) } catch { throw ModelError.malformed(path: indexPath, detail: error.description) }
            guard let weightMap = index["weight_map"]?.objectValue else {
                throw ModelError.config(path: indexPath, field: "weight_map", detail: "missing or not an object")
            }
            var shards: [String: SafetensorsFile] = [:]
            for (name, value) in weightMap {
                guard let shardName = value.stringValue, !shardName.contains("/"), !shardName.isEmpty else {
                    throw ModelError.config(path: indexPath, field: "weight_map.\(name)", detail: "expected a shard file name in this directory")
                }
                let shard: SafetensorsFile
                if let open = shards[shardName] {
                    shard = open
                } else {
                    shard = try SafetensorsFile(path: directory + "/" + shardName)
                    shards[shardName] = shard
                }
                guard shard.entries[name] != nil else {
                    throw ModelError.missingTensor(path: shard.path, name: name + " (listed in model.safetensors.index.json)")
                }
                location[name] = shard
            }
        } else if FileText.exists(singlePath) {
            let file = try SafetensorsFile(path: singlePath)
            for name in file.names { location[name] = file }
        } else {
            throw ModelError.io(path: directory, detail: "no model.safetensors or model.safetensors.index.json")
        }
        self.location = location
    }

    public var names: [String] { location.keys.sorted() }

    public func entry(_ name: String) -> SafetensorsEntry? { location[name]?.entries[name] }

    /// The tensor as a host tensor of `dtype`.
    public func tensor(_ name: String, as dtype: DType = .f32) throws -> Tensor {
        guard let file = location[name] else { throw ModelError.missingTensor(path: directory, name: name) }
        return try file.tensor(name, as: dtype)
    }
}
