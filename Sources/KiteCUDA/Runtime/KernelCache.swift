import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A group of kernels compiled together from one CUDA C source.
public enum KernelModule: String, CaseIterable, Sendable {
    case elementwise
    case norm
    case head
    case optimizer
    case quantize
    case attention
    case flash
    case decode
    case gemm
    case experts

    var body: String {
        switch self {
        case .elementwise: ElementwiseKernels.source
        case .norm: NormKernels.source
        case .head: HeadKernels.source + "\n" + SamplingKernels.source
        case .optimizer: OptimizerKernels.source
        case .quantize: QuantizeKernels.source
        case .attention: AttentionKernels.source
        case .flash: TensorCoreHelpers.source + "\n" + FlashAttentionKernels.source
        case .decode: DecodeAttentionKernels.source
        case .gemm: TensorCoreHelpers.source + "\n" + DeterministicGEMMKernels.source
        case .experts: ExpertKernels.source
        }
    }

    /// The complete translation unit: the shared prelude, then the module's kernels.
    public var source: String { KernelPrelude.source + "\n" + body }
}

/// The kernel sources, compiled without a GPU (for CI and `kite cuda compile-kernels`).
public enum KernelSources {
    /// Compiles every module for `architecture`; returns each module's compiler log (with ptxas's
    /// register and spill report) and binary size.
    public static func compileAll(with compiler: NVRTC, architecture: String) throws(CUDAError) -> [(module: KernelModule, log: String, bytes: Int)] {
        var results: [(KernelModule, String, Int)] = []
        for module in KernelModule.allCases {
            let output = try compiler.compile(source: module.source, name: "kite_\(module.rawValue).cu", architecture: architecture,
                                              extraOptions: KernelCache.options + ["-Xptxas=-v"])
            results.append((module, output.log, output.cubin.count))
        }
        return results
    }
}

/// Compiles kernel modules with NVRTC the first time they are used and keeps the binaries on disk, keyed
/// by a hash of the source, the options, the GPU architecture and the NVRTC version, so later runs load
/// them without compiling.
///
/// The cache folder is `KITE_KERNEL_CACHE`, else `$XDG_CACHE_HOME/kite/kernels`, else
/// `~/.cache/kite/kernels`; a folder that cannot be written only costs recompilation.
final class KernelCache: @unchecked Sendable {
    let context: CUDAContext
    private let compilerResult: Result<NVRTC, CUDAError>
    private var driver: CUDADriver { context.driver }

    /// A driver handle held in shared state; the driver's handles may be used from any thread.
    private struct Handle: @unchecked Sendable { let raw: CUHandle }

    private struct State {
        var modules: [KernelModule: Handle] = [:]
        var functions: [String: Handle] = [:]
        var sharedLimits: [String: Int] = [:]
    }
    private let state = Mutex(State())

    init(context: CUDAContext) {
        self.context = context
        compilerResult = Result { () throws(CUDAError) -> NVRTC in try NVRTC() }
    }

    /// NVRTC, or the error that says why it could not be loaded.
    func compiler() throws(CUDAError) -> NVRTC { try compilerResult.get() }

    static func cacheDirectory() -> String {
        if let configured = environment("KITE_KERNEL_CACHE") { return configured }
        if let xdg = environment("XDG_CACHE_HOME") { return xdg + "/kite/kernels" }
        return (environment("HOME") ?? "/tmp") + "/.cache/kite/kernels"
    }

    /// The kernel `name` of `module`, compiling or loading the module on first use.
    func function(_ module: KernelModule, _ name: String) throws(CUDAError) -> CUHandle {
        if let function = state.withLock({ $0.functions[name] }) { return function.raw }
        let moduleHandle = try load(module)
        var function: CUHandle?
        try driver.check(name.withCString { driver.cuModuleGetFunction(&function, moduleHandle, $0) }, "cuModuleGetFunction(\(name))")
        guard let function else { throw .unsupported("module \(module) has no kernel \(name)") }
        let handle = Handle(raw: function)
        state.withLock { $0.functions[name] = handle }
        return function
    }

    /// Raises a kernel's dynamic shared-memory limit once (needed above 48 KiB).
    func allowSharedMemory(_ function: CUHandle, name: String, bytes: Int) throws(CUDAError) {
        if state.withLock({ ($0.sharedLimits[name] ?? 0) >= bytes }) { return }
        guard bytes <= context.maxSharedMemoryPerBlock else {
            throw .unsupported("\(name) needs \(bytes) bytes of shared memory; \(context.name) allows \(context.maxSharedMemoryPerBlock)")
        }
        try driver.check(driver.cuFuncSetAttribute(function, 8, Int32(bytes)), "cuFuncSetAttribute(\(name), MAX_DYNAMIC_SHARED_SIZE_BYTES, \(bytes))")
        state.withLock { $0.sharedLimits[name] = bytes }
    }

    private func load(_ module: KernelModule) throws(CUDAError) -> CUHandle {
        if let handle = state.withLock({ $0.modules[module] }) { return handle.raw }
        let compiler = try compiler()
        let source = module.source
        let architecture = context.architecture
        let key = "\(module.rawValue)-\(Self.hash(source + Self.options.joined(separator: " ")))-\(architecture)-nvrtc\(compiler.version.major).\(compiler.version.minor)"
        let directory = Self.cacheDirectory()
        let path = "\(directory)/\(key).cubin"
        var binary = Self.readFile(path)
        if binary == nil {
            let output = try compiler.compile(source: source, name: "kite_\(module.rawValue).cu", architecture: architecture, extraOptions: Self.options)
            binary = output.cubin
            Self.writeFileAtomically(path, output.cubin, directory: directory)
        }
        guard let binary else { throw .unsupported("no binary for module \(module)") }
        try context.makeCurrent()
        var handle: CUHandle?
        try driver.check(binary.withUnsafeBytes { driver.cuModuleLoadData(&handle, $0.baseAddress!) }, "cuModuleLoadData(\(module.rawValue))")
        guard let handle else { throw .unsupported("cuModuleLoadData returned no module for \(module)") }
        let entry = Handle(raw: handle)
        state.withLock { $0.modules[module] = entry }
        return handle
    }

    /// Compiler options beyond the architecture: full-precision division and square root stay on (the
    /// defaults), so the CUDA kernels round like the CPU reference.
    static let options: [String] = ["-lineinfo"]

    /// 128-bit FNV-1a (two 64-bit lanes with different offsets), hex.
    static func hash(_ text: String) -> String {
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x8422_2325_cbf2_9ce4
        for byte in text.utf8 {
            a = (a ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 0x9e37_79b9
        }
        return hex(a) + hex(b)
    }

    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        guard fseek(file, 0, SEEK_END) == 0 else { return nil }
        let size = ftell(file)
        guard size > 0, fseek(file, 0, SEEK_SET) == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: size)
        let read = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, file) }
        return read == size ? bytes : nil
    }

    /// Writes to a temporary file and renames it, so a concurrent reader never sees half a binary.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], directory: String) {
        makeDirectories(directory)
        let temporary = "\(path).\(getpid()).tmp"
        guard let file = fopen(temporary, "wb") else { return }
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, file) }
        fclose(file)
        if written == bytes.count { rename(temporary, path) } else { unlink(temporary) }
    }

    static func makeDirectories(_ path: String) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/" + component
            mkdir(current, 0o755)
        }
    }
}
