import KiteTensor

/// Moves a trainer's weights into an engine's model of the same architecture, in place.
///
/// Weights the engine holds in the trainer's dtype are copied; weights it holds as block-scaled fp8 (it
/// serves an fp8 checkpoint) are quantised on the fly, tile by tile, with the engine's block size — what
/// slime does when the rollout checkpoint is fp8. Buffers (DeepSeek-V3's expert-choice bias) are copied.
public enum WeightSync {
    public static func copy(from source: any CausalLanguageModel, into target: any CausalLanguageModel) throws {
        let backend = target.backend
        let block = target.config.quantization?.blockSize ?? 128
        for (name, parameter) in target.parameters.entries {
            let weights = try source.parameters.require(name, source: "trainer weights")
            guard parameter.dtype == .fp8e4m3 || parameter.dtype == .fp8e5m2 else {
                try backend.copy(weights, into: parameter)
                continue
            }
            let scales = try target.buffers.require(name + "_scale_inv", source: "engine buffers")
            let (values, newScales) = try backend.blockQuantize(weights, blockSize: block, to: parameter.dtype)
            try backend.copy(values, into: parameter)
            try backend.copy(newScales, into: scales)
        }
        for (name, buffer) in target.buffers.entries where source.buffers[name] != nil {
            try backend.copy(try source.buffers.require(name), into: buffer)
        }
    }
}
