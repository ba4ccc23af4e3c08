import KiteEngine
import KiteModels
import KiteTensor

/// Whatever produces rollouts: the in-process engine (colocated) or engines behind HTTP (disaggregated).
public protocol RolloutEngine: Sendable {
    /// Runs one request (n samples of one prompt) to completion; aborted samples come back with finish reason abort.
    func generate(_ request: GenerationRequest) async throws -> [GenerationResult]
    func abort(requestID: String) async
    /// Frees inference memory while the trainer runs (colocated), and takes it back.
    func releaseMemory() async throws
    func resumeMemory() async throws
    /// Loads the trainer's current weights and stamps them with `version`.
    func updateWeights(from model: DenseTransformer, version: String) async throws
}

/// The engine in this process, on its own copy of the weights (so rollout may overlap training).
public final class InProcessRolloutEngine: RolloutEngine {
    public let engine: InferenceEngine

    public init(engine: InferenceEngine) {
        self.engine = engine
    }

    public func generate(_ request: GenerationRequest) async throws -> [GenerationResult] {
        try await engine.generate(request)
    }

    public func abort(requestID: String) async {
        engine.abort(requestID: requestID)
    }

    public func releaseMemory() async throws {
        await engine.releaseMemory()
    }

    public func resumeMemory() async throws {
        try await engine.resumeMemory()
    }

    public func updateWeights(from model: DenseTransformer, version: String) async throws {
        let source = model
        // One device copy per tensor (a cast where the engine keeps bf16 matrices).
        try await engine.updateWeights(version: version) { target in try target.loadParameters(from: source) }
    }
}

/// A checksum of a model's weights (FNV-1a over their bytes), stamped on every weight sync so a rollout can
/// be traced to exactly the weights that produced it.
public enum WeightChecksum {
    public static func of(_ model: DenseTransformer) throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for (name, parameter) in model.parameters.entries {
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            let host = try model.backend.download(parameter)
            let words = UnsafeRawBufferPointer(start: host.rawPointer, count: host.byteCount)
            var index = 0
            // Eight bytes at a time: the hash only needs to change when any weight changes.
            while index + 8 <= words.count {
                hash = (hash ^ words.loadUnaligned(fromByteOffset: index, as: UInt64.self)) &* 0x100_0000_01b3
                index += 8
            }
            while index < words.count {
                hash = (hash ^ UInt64(words[index])) &* 0x100_0000_01b3
                index += 1
            }
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
