import ArgumentParser
import KiteCUDA
import KiteTensor

struct CUDA: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cuda",
        abstract: "Inspect the GPU setup and the CUDA kernels.",
        subcommands: [CUDAInfo.self, CUDACompileKernels.self]
    )
}

struct CUDAInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "The GPU, driver, NVRTC, cuBLASLt and NCCL that Kite finds, or why it cannot use them."
    )

    func run() async throws {
        let backend = try CUDABackend()
        print(backend.summary())
        let compiler = try backend.compiler()
        print("NVRTC: \(compiler.path)")
        do {
            let nccl = try NCCL.load()
            print("NCCL \(nccl.versionString)")
        } catch {
            print("NCCL unavailable: \(error)")
        }
        let (free, total) = try backend.context.memoryInfo()
        print("memory: \(free / 1_000_000) MB free of \(total / 1_000_000) MB")
    }
}

struct CUDACompileKernels: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compile-kernels",
        abstract: "Compile every kernel module with NVRTC (no GPU needed) and print register and spill counts."
    )

    @Option(help: "Target architecture.") var arch: String = "sm_90"

    func run() async throws {
        let compiler = try NVRTC()
        print("NVRTC \(compiler.version.major).\(compiler.version.minor) from \(compiler.path)")
        for result in try KernelSources.compileAll(with: compiler, architecture: arch) {
            print("\(result.module.rawValue): \(result.bytes) bytes of \(arch) code")
            for line in result.log.split(separator: "\n") where line.contains("Compiling entry") || line.contains("Used") || line.contains("spill") {
                print("  " + line.trimmingPrefix("ptxas info    : ").trimmingPrefix("ptxas         .     "))
            }
        }
    }
}
