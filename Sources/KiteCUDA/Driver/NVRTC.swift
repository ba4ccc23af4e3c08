/// NVIDIA's run-time CUDA C++ compiler, loaded at run time.
///
/// Where it is looked for, in order: `KITE_NVRTC_PATH` (the library file, or a folder holding it), the CUDA
/// toolkit (`/usr/local/cuda/lib64`), the loader's search path (`libnvrtc.so.13`, `.12`), and the
/// `nvidia-cuda-nvrtc` pip wheel of any Python installation. NVRTC compiles through a companion library,
/// `libnvrtc-builtins`, that some releases (13.0.88) fail to find on their own; it is loaded globally
/// from the same folder first.
public final class NVRTC: @unchecked Sendable {
    let library: DynamicLibrary
    /// NVRTC's version, e.g. (13, 0).
    public let version: (major: Int, minor: Int)
    /// The file NVRTC was loaded from.
    public var path: String { library.path }

    private let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    private let nvrtcCreateProgram: @convention(c) (
        UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
        UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?
    ) -> Int32
    private let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private let nvrtcCompileProgram: @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private let nvrtcGetProgramLogSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let nvrtcGetProgramLog: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    private let nvrtcGetCUBINSize: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    private let nvrtcGetCUBIN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32

    /// Finds and loads NVRTC; throws `libraryNotFound` listing every place tried.
    public init() throws(CUDAError) {
        var candidates: [String] = []
        if let configured = environment("KITE_NVRTC_PATH") {
            if configured.contains(".so") { candidates.append(configured) } else { candidates += Self.files(in: configured) }
        }
        for directory in LibrarySearch.toolkitDirectories { candidates += Self.files(in: directory) }
        candidates += ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
        for directory in LibrarySearch.pythonWheelDirectories(components: ["cu13", "cuda_nvrtc", "cu12"]) {
            candidates += Self.files(in: directory)
        }
        // The builtins must be loadable before the first compilation: preload the copy beside each candidate.
        var tried: [String] = []
        var loaded: DynamicLibrary?
        for candidate in candidates {
            if candidate.hasPrefix("/"), let slash = candidate.lastIndex(of: "/") {
                for builtins in LibrarySearch.versionedFiles(in: String(candidate[..<slash]), prefix: "libnvrtc-builtins.so") {
                    DynamicLibrary.preload(builtins)
                }
            }
            do {
                loaded = try DynamicLibrary.open("libnvrtc", candidates: [candidate])
                break
            } catch {
                if case .libraryNotFound(_, let reasons) = error { tried += reasons }
            }
        }
        guard let library = loaded else { throw .libraryNotFound(library: "libnvrtc", tried: tried.isEmpty ? ["no candidate paths"] : tried) }
        if let directory = DynamicLibrary.loadedDirectory(of: "libnvrtc.so") {
            for builtins in LibrarySearch.versionedFiles(in: directory, prefix: "libnvrtc-builtins.so") { DynamicLibrary.preload(builtins) }
        }
        self.library = library
        let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32 = try library.symbol("nvrtcVersion")
        nvrtcGetErrorString = try library.symbol("nvrtcGetErrorString")
        nvrtcCreateProgram = try library.symbol("nvrtcCreateProgram")
        nvrtcDestroyProgram = try library.symbol("nvrtcDestroyProgram")
        nvrtcCompileProgram = try library.symbol("nvrtcCompileProgram")
        nvrtcGetProgramLogSize = try library.symbol("nvrtcGetProgramLogSize")
        nvrtcGetProgramLog = try library.symbol("nvrtcGetProgramLog")
        nvrtcGetCUBINSize = try library.symbol("nvrtcGetCUBINSize")
        nvrtcGetCUBIN = try library.symbol("nvrtcGetCUBIN")
        var major: Int32 = 0, minor: Int32 = 0
        let status = nvrtcVersion(&major, &minor)
        guard status == 0 else { throw .nvrtc(call: "nvrtcVersion", code: status, message: "cannot read the version", log: "") }
        version = (Int(major), Int(minor))
    }

    private static func files(in directory: String) -> [String] {
        LibrarySearch.versionedFiles(in: directory, prefix: "libnvrtc.so")
    }

    /// The result of one compilation: the device binary and whatever the compiler printed.
    public struct Output: Sendable {
        public var cubin: [UInt8]
        public var log: String
    }

    /// Compiles `source` to a cubin for `architecture` (`sm_90`). Errors carry the compiler's log.
    public func compile(source: String, name: String, architecture: String, extraOptions: [String] = []) throws(CUDAError) -> Output {
        var program: OpaquePointer?
        try check(source.withCString { text in name.withCString { nvrtcCreateProgram(&program, text, $0, 0, nil, nil) } }, "nvrtcCreateProgram(\(name))")
        defer { _ = nvrtcDestroyProgram(&program) }
        let options = ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device"] + extraOptions
        let status = withCStrings(options) { pointers in nvrtcCompileProgram(program, Int32(pointers.count), pointers.baseAddress) }
        let log = programLog(program)
        guard status == 0 else {
            throw .nvrtc(call: "nvrtcCompileProgram(\(name), \(architecture))", code: status, message: errorString(status), log: log)
        }
        var size = 0
        try check(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize(\(name))")
        var cubin = [UInt8](repeating: 0, count: size)
        let copied = cubin.withUnsafeMutableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return 0 }
            return nvrtcGetCUBIN(program, base.assumingMemoryBound(to: CChar.self))
        }
        try check(copied, "nvrtcGetCUBIN(\(name))")
        return Output(cubin: cubin, log: log)
    }

    private func programLog(_ program: OpaquePointer?) -> String {
        var size = 0
        guard nvrtcGetProgramLogSize(program, &size) == 0, size > 1 else { return "" }
        var buffer = [CChar](repeating: 0, count: size)
        guard nvrtcGetProgramLog(program, &buffer) == 0 else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func errorString(_ status: Int32) -> String {
        nvrtcGetErrorString(status).map { String(cString: $0) } ?? "NVRTC error \(status)"
    }

    private func check(_ status: Int32, _ call: @autoclosure () -> String) throws(CUDAError) {
        guard status != 0 else { return }
        throw .nvrtc(call: call(), code: status, message: errorString(status), log: "")
    }
}

/// Calls `body` with a C array of C strings that stays valid for the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { string -> UnsafeMutablePointer<CChar> in
        let bytes = Array(string.utf8CString)
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
        pointer.initialize(from: bytes, count: bytes.count)
        return pointer
    }
    defer { copies.forEach { $0.deallocate() } }
    let pointers = copies.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
    return pointers.withUnsafeBufferPointer(body)
}
