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
            // ptxas reports, per kernel: "Compiling entry function 'name'", then its stack/spill line and register line.
            var name = "", spills = ""
            for line in result.log.split(separator: "\n") {
                if let start = line.firstIndex(of: "'"), line.contains("Compiling entry function") {
                    name = String(line[line.index(after: start)...].prefix { $0 != "'" })
                } else if line.contains("spill stores") {
                    spills = line.split(separator: ",").dropFirst().map { $0.trimmingPrefix(" ") }.joined(separator: ",")
                } else if line.contains("Used"), let used = line.firstRange(of: "Used") {
                    print("  \(name): \(line[used.lowerBound...]), \(spills)")
                }
            }
        }
    }
}
