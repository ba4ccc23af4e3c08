import Foundation
import KiteModels
import KiteTensor
import Testing
@testable import KiteCUDA

/// The CUDA backend against the CPU reference: every operation (the `OperationParity` table) and a whole
/// fixture model. Needs a GPU, so these run on the GPU machine (`swift test` there, or, without Swift,
/// `kite bench cuda-parity`, which runs the same checks) and are skipped elsewhere.
@Suite(.serialized)
struct CUDABackendTests {
    static let gpuAvailable: Bool = (try? CUDABackend()) != nil

    @Test(.enabled(if: gpuAvailable, "no usable GPU"), arguments: CUDABackend.Precision.allCases)
    func everyOperationMatchesTheCPUBackend(precision: CUDABackend.Precision) throws {
        let results = OperationParity(cuda: try CUDABackend(precision: precision), cpu: CPUBackend()).run()
        for result in results {
            #expect(result.passed, "\(result.name) (\(result.precision)): relative error \(result.relativeError), tolerance \(result.tolerance) \(result.failure ?? "")")
        }
    }

    @Test(.enabled(if: gpuAvailable, "no usable GPU"))
    func fixtureModelLogprobsMatchTheCPUInFP32Mode() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/qwen3").path
        let cuda = try CUDABackend(precision: .fp32)
        let cpuModel = try Transformer.load(directory: directory, backend: CPUBackend())
        let cudaModel = try Transformer.load(directory: directory, backend: cuda)
        let tokens: [Int32] = [1, 5, 9, 2, 7, 7, 30, 41, 12, 3, 60, 8]
        let packing = PackedSequences(lengths: [5, 7])
        let expected = try cpuModel.forward(tokens: tokens, sequences: packing, keepActivations: false).logprobs.toFloats()
        let actual = try cuda.download(try cudaModel.forward(tokens: tokens, sequences: packing, keepActivations: false).logprobs).toFloats()
        let result = ParityResult.compare("qwen3 logprobs", precision: "fp32", cuda: actual, cpu: expected, tolerance: 1e-5)
        #expect(result.passed, "relative error \(result.relativeError)")
    }

    @Test(.enabled(if: gpuAvailable, "no usable GPU"))
    func badTokenIDsThrowTheCPUsError() throws {
        let cuda = try CUDABackend()
        let table = try cuda.upload(Tensor(zeros: [10, 4]))
        #expect(throws: KiteTensorError.indexOutOfRange(operation: "embedding", index: -1, limit: 10, position: 1)) {
            try cuda.embedding(ids: Tensor(int32: [3, -1, 12]), table: table)
        }
    }

    @Test(.enabled(if: gpuAvailable, "no usable GPU"))
    func memoryReportCountsLiveTensorsAndPeak() throws {
        let cuda = try CUDABackend()
        let before = cuda.memory.report()
        var tensor: Tensor? = try cuda.zeros([1 << 20], dtype: .f32)
        #expect(cuda.memory.report().inUse == before.inUse + (4 << 20))
        tensor = nil
        _ = tensor
        let after = cuda.memory.report()
        #expect(after.inUse == before.inUse)
        #expect(after.peakInUse >= before.inUse + (4 << 20))
    }
}
