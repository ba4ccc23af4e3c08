import Foundation
import Testing
@testable import KiteCUDA

/// Every kernel source compiles with NVRTC for the H100's architecture, without a GPU. Runs where NVRTC can be
/// found (`KITE_NVRTC_PATH`, the CUDA toolkit, or the `nvidia-cuda-nvrtc` pip wheel), is skipped where it
/// cannot, and fails instead of skipping when `KITE_REQUIRE_NVRTC=1` (CI).
struct KernelCompilationTests {
    static let compiler: Result<NVRTC, CUDAError> = Result { () throws(CUDAError) -> NVRTC in try NVRTC() }
    static let required = ProcessInfo.processInfo.environment["KITE_REQUIRE_NVRTC"] == "1"
    static var enabled: Bool {
        if case .success = compiler { return true }
        return required
    }

    @Test(.enabled(if: enabled, "NVRTC not found (set KITE_NVRTC_PATH, or KITE_REQUIRE_NVRTC=1 to fail instead)"))
    func everyKernelModuleCompilesForSM90() throws {
        let compiler = try Self.compiler.get()
        let results = try KernelSources.compileAll(with: compiler, architecture: "sm_90")
        #expect(results.map(\.module) == KernelModule.allCases)
        for result in results {
            #expect(result.bytes > 0, "\(result.module) produced no code")
            #expect(!result.log.contains("warning"), "\(result.module): \(result.log)")
        }
        // The kernels the backend launches by name are all there.
        let logs = results.map(\.log).joined(separator: "\n")
        for name in ["kite_cast", "kite_rmsnorm", "kite_rmsnorm_bwd_fused_d128", "kite_rope", "kite_swiglu_bwd", "kite_embedding_bwd",
                     "kite_softmax_stats", "kite_softmax_grad", "kite_adamw", "kite_block_quantize", "kite_attn_fwd_simt",
                     "kite_flash_fwd_d128", "kite_flash_bwd_dkv_d128_k64", "kite_flash_bwd_dq_d128", "kite_colsum_reduce",
                     "kite_add_rmsnorm", "kite_rotate_and_cache", "kite_swiglu_packed"] {
            #expect(logs.contains("'\(name)'"), "no kernel \(name)")
        }
    }

    @Test(.enabled(if: enabled, "NVRTC not found"))
    func compilationErrorsCarryTheCompilerLog() throws {
        let compiler = try Self.compiler.get()
        #expect {
            _ = try compiler.compile(source: "extern \"C\" __global__ void broken() { undefined_name(); }", name: "broken.cu", architecture: "sm_90")
        } throws: { error in
            "\(error)".contains("nvrtcCompileProgram(broken.cu, sm_90)") && "\(error)".contains("undefined_name")
        }
    }
}

/// Pieces of the CUDA layer that need no GPU and no CUDA library.
struct CUDAHostTests {
    @Test func withoutADriverTheBackendSaysSoInOneLine() {
        do {
            _ = try CUDABackend()
        } catch let error as CUDAError {
            // On a machine with a GPU the backend opens; on one without, the message names what is missing.
            if case .libraryNotFound(let library, _) = error {
                #expect(library == "libcuda.so.1")
                #expect("\(error)".hasPrefix("no usable CUDA driver: libcuda.so.1 not found"))
            }
        } catch {
            Issue.record("unexpected error type: \(error)")
        }
    }

    @Test func kernelArgumentsGiveEachValueItsOwnSlot() throws {
        var arguments = KernelArguments()
        arguments.add(CUDevicePointer(0x1234_5678_9ABC))
        arguments.add(Int32(-2))
        arguments.add(Float(1.5))
        arguments.add(int64: -3)
        try arguments.withParameterArray { (pointers) throws(CUDAError) in
            guard let pointers else { return }
            #expect(pointers[0]!.load(as: UInt64.self) == 0x1234_5678_9ABC)
            #expect(pointers[1]!.load(as: Int32.self) == -2)
            #expect(pointers[2]!.load(as: Float.self) == 1.5)
            #expect(pointers[3]!.load(as: Int64.self) == -3)
        }
    }

    @Test func cacheKeysChangeWithTheSource() {
        #expect(KernelCache.hash("a") != KernelCache.hash("b"))
        #expect(KernelCache.hash(KernelModule.flash.source) == KernelCache.hash(KernelModule.flash.source))
        #expect(KernelCache.hash("x").count == 32)
    }

    @Test func librariesAreOrderedNewestFirst() {
        #expect(LibrarySearch.compareVersions("libnvrtc.so.13.0.88", "libnvrtc.so.12.9") > 0)
        #expect(LibrarySearch.compareVersions("libnvrtc.so.12", "libnvrtc.so.12.4") < 0)
    }

    @Test func memoryPoolRoundsSizesIntoReusableClasses() {
        #expect(DeviceMemoryPool.roundedSize(1) == 512)
        #expect(DeviceMemoryPool.roundedSize(513) == 1024)
        #expect(DeviceMemoryPool.roundedSize(3 << 20) == 4 << 20)
    }

    @Test func parityComparisonIsNormwiseAndFlagsNonFiniteResults() {
        let close = ParityResult.compare("x", precision: "fp32", cuda: [1, 2, 3.0001], cpu: [1, 2, 3], tolerance: 1e-4)
        #expect(close.passed)
        #expect(abs(close.relativeError - 1e-4 / 14.0.squareRoot()) < 1e-6)
        let broken = ParityResult.compare("x", precision: "fp32", cuda: [1, .nan], cpu: [1, 2], tolerance: 1)
        #expect(!broken.passed)
    }
}
