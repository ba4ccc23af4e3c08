import KiteJSON
import KiteModels
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

/// One saved training state, as a directory:
///
///     model/          Hugging Face layout (config.json, model.safetensors, tokenizer files): loads in transformers
///     optimizer/      optimizer.safetensors: AdamW's moments, named `exp_avg.<param>` / `exp_avg_sq.<param>`
///     state.json      rollout id, optimizer step, RNG states, data position: whatever `resume` needs
///
/// It is written into a temporary directory beside its final name and renamed, so a crash leaves either
/// the previous checkpoint or the new one, never half of one.
public enum TrainingCheckpoint {
    /// The file in a save root naming the newest complete checkpoint (as Megatron's tracker file does).
    public static let trackerName = "latest_checkpointed_iteration.txt"

    public static func directoryName(rolloutID: Int) -> String {
        let digits = String(rolloutID)
        return "rollout_" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
    }

    /// Saves under `root/rollout_NNNNNNN`, then points the tracker at it.
    public static func save(
        root: String, rolloutID: Int, model: any CausalLanguageModel, optimizer: AdamW?, state: JSONObject,
        modelFiles: [(name: String, contents: [UInt8])] = []
    ) throws -> String {
        try FileText.makeDirectory(root)
        let final = root + "/" + directoryName(rolloutID: rolloutID)
        let temporary = final + ".partial-\(getpid())"
        try FileText.removeTree(temporary)
        try FileText.makeDirectory(temporary + "/model")
        try exportHuggingFace(model: model, to: temporary + "/model", extraFiles: modelFiles)
        if let optimizer {
            try FileText.makeDirectory(temporary + "/optimizer")
            var tensors: [(name: String, tensor: Tensor)] = []
            for (name, moment) in optimizer.firstMoments.entries { tensors.append(("exp_avg." + name, try model.backend.download(moment))) }
            for (name, moment) in optimizer.secondMoments.entries { tensors.append(("exp_avg_sq." + name, try model.backend.download(moment))) }
            try SafetensorsWriter.write(tensors, metadata: ["step": String(optimizer.stepCount)], to: temporary + "/optimizer/optimizer.safetensors")
        }
        var fullState = state
        fullState["rollout_id"] = .int(rolloutID)
        fullState["optimizer_step"] = .int(optimizer?.stepCount ?? 0)
        try FileText.writeAtomically(temporary + "/state.json", text: JSONValue.object(fullState).serialized(JSONWriteOptions(ensureASCII: false, indent: 2)))
        // Replace an older save of the same rollout only once the new one is complete.
        let stale = final + ".old-\(getpid())"
        if FileText.exists(final) { try FileText.move(final, to: stale) }
        try FileText.move(temporary, to: final)
        try FileText.removeTree(stale)
        try FileText.writeAtomically(root + "/" + trackerName, text: String(rolloutID) + "\n")
        return final
    }

    /// The newest complete checkpoint under `root`, or nil when there is none.
    public static func latest(root: String) throws -> String? {
        let tracker = root + "/" + trackerName
        guard FileText.exists(tracker) else { return nil }
        let text = try FileText.read(tracker).trimmingWhitespace()
        guard let rolloutID = Int(text) else {
            throw ModelError.malformed(path: tracker, detail: "expected a rollout id, found '\(text)'")
        }
        let directory = root + "/" + directoryName(rolloutID: rolloutID)
        guard FileText.isDirectory(directory) else {
            throw ModelError.io(path: directory, detail: "named by \(tracker) but missing")
        }
        return directory
    }

    /// Writes the model as a Hugging Face directory: config.json, model.safetensors (the weights as held,
    /// fp32 for a trained model, and the buffers saved with them), extra files.
    public static func exportHuggingFace(model: any CausalLanguageModel, to directory: String, extraFiles: [(name: String, contents: [UInt8])] = []) throws {
        try FileText.makeDirectory(directory)
        var config = model.config.json
        config["torch_dtype"] = "float32"
        config["dtype"] = nil
        // Weights held in fp32 are written in fp32, whatever the checkpoint they came from held; fp8 weights
        // (an engine's) are written with their scales, so their quantization_config stays.
        if !model.parameters.entries.contains(where: { $0.tensor.dtype == .fp8e4m3 || $0.tensor.dtype == .fp8e5m2 }) {
            config["quantization_config"] = nil
        }
        config["architectures"] = [.string(architectureClassName(model.config.architecture))]
        try FileText.writeAtomically(directory + "/config.json", text: JSONValue.object(config).serialized(JSONWriteOptions(ensureASCII: false, indent: 2)))
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, parameter) in model.parameters.entries { tensors.append((name, try model.backend.download(parameter))) }
        for (name, buffer) in model.buffers.entries { tensors.append((name, try model.backend.download(buffer))) }
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: directory + "/model.safetensors")
        for (name, contents) in extraFiles {
            var bytes = contents
            try bytes.withUnsafeMutableBytes { buffer in
                try FileText.writeAtomically(directory + "/" + name, chunks: [UnsafeRawBufferPointer(buffer)])
            }
        }
    }

    static func architectureClassName(_ architecture: ModelConfig.Architecture) -> String {
        switch architecture {
        case .llama: "LlamaForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .qwen3: "Qwen3ForCausalLM"
        case .qwen3Moe: "Qwen3MoeForCausalLM"
        case .deepseekV2: "DeepseekV2ForCausalLM"
        case .deepseekV3: "DeepseekV3ForCausalLM"
        }
    }

    /// Reads `state.json` of a checkpoint directory.
    public static func readState(_ directory: String) throws -> JSONObject {
        let path = directory + "/state.json"
        let value: JSONValue
        do { value = try JSONValue(parsing: try FileText.read(path), source: path) } catch let error as JSONParseError {
            throw ModelError.malformed(path: path, detail: error.description)
        }
        guard let object = value.objectValue else { throw ModelError.malformed(path: path, detail: "expected a JSON object") }
        return object
    }

    /// Copies a checkpoint's weights into `model` and, when given, its moments into `optimizer`.
    public static func restore(_ directory: String, into model: any CausalLanguageModel, optimizer: AdamW?) throws {
        let weights = try CheckpointDirectory(directory: directory + "/model")
        for (name, parameter) in model.parameters.entries + model.buffers.entries {
            try model.backend.copy(try model.backend.upload(try weights.tensor(name)), into: parameter)
        }
        guard let optimizer else { return }
        let path = directory + "/optimizer/optimizer.safetensors"
        let file = try SafetensorsFile(path: path)
        guard let stepText = file.metadata["step"], let step = Int(stepText) else {
            throw ModelError.malformed(path: path, detail: "missing the optimizer step in the metadata")
        }
        let first = ParameterSet(), second = ParameterSet()
        for (name, _) in model.parameters.entries {
            first.insert(name, try model.backend.upload(try file.tensor("exp_avg." + name)))
            second.insert(name, try model.backend.upload(try file.tensor("exp_avg_sq." + name)))
        }
        try optimizer.restore(firstMoments: first, secondMoments: second, stepCount: step)
    }
}

extension String {
    func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
