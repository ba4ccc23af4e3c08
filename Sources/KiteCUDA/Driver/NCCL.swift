/// NCCL, loaded on first use: the collectives that weight sync and data-parallel training will call.
///
/// Nothing in the single-GPU backend needs it, so `CUDABackend` never loads it; `NCCL.load()` resolves the
/// symbols once and reports a missing library as a typed error the way the other loaders do.
public final class NCCL: @unchecked Sendable {
    let library: DynamicLibrary
    /// NCCL's version code (e.g. 22703 for 2.27.3).
    public let version: Int

    /// `ncclUniqueId`: 128 opaque bytes that rank 0 creates and every rank receives.
    public struct UniqueID: Sendable { public var bytes: [UInt8] }

    let ncclGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    let ncclGetUniqueId: @convention(c) (UnsafeMutableRawPointer) -> Int32
    let ncclCommInitRank: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UnsafeRawPointer, Int32) -> Int32
    let ncclCommDestroy: @convention(c) (OpaquePointer?) -> Int32
    let ncclAllReduce: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, CUHandle?) -> Int32
    let ncclBroadcast: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, CUHandle?) -> Int32
    let ncclAllGather: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, OpaquePointer?, CUHandle?) -> Int32
    let ncclReduceScatter: @convention(c) (UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, Int32, Int32, OpaquePointer?, CUHandle?) -> Int32
    let ncclGroupStart: @convention(c) () -> Int32
    let ncclGroupEnd: @convention(c) () -> Int32

    private init(library: DynamicLibrary) throws(CUDAError) {
        self.library = library
        let getVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32 = try library.symbol("ncclGetVersion")
        ncclGetErrorString = try library.symbol("ncclGetErrorString")
        ncclGetUniqueId = try library.symbol("ncclGetUniqueId")
        ncclCommInitRank = try library.symbol("ncclCommInitRank")
        ncclCommDestroy = try library.symbol("ncclCommDestroy")
        ncclAllReduce = try library.symbol("ncclAllReduce")
        ncclBroadcast = try library.symbol("ncclBroadcast")
        ncclAllGather = try library.symbol("ncclAllGather")
        ncclReduceScatter = try library.symbol("ncclReduceScatter")
        ncclGroupStart = try library.symbol("ncclGroupStart")
        ncclGroupEnd = try library.symbol("ncclGroupEnd")
        var code: Int32 = 0
        let status = getVersion(&code)
        guard status == 0 else { throw .nccl(call: "ncclGetVersion", code: status, message: "cannot read the version") }
        version = Int(code)
    }

    /// Loads `libnccl.so.2` (from `KITE_NCCL_PATH`, the loader's path, the distribution or the pip wheel).
    public static func load() throws(CUDAError) -> NCCL {
        var candidates: [String] = []
        if let configured = environment("KITE_NCCL_PATH") { candidates.append(configured) }
        candidates += ["libnccl.so.2", "/usr/lib/x86_64-linux-gnu/libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2"]
        for directory in LibrarySearch.pythonWheelDirectories(components: ["nccl"]) { candidates.append(directory + "/libnccl.so.2") }
        return try NCCL(library: DynamicLibrary.open("libnccl.so.2", candidates: candidates))
    }

    /// A new unique id (rank 0 creates it and sends it to the others out of band).
    public func uniqueID() throws(CUDAError) -> UniqueID {
        var bytes = [UInt8](repeating: 0, count: 128)
        let status = bytes.withUnsafeMutableBytes { ncclGetUniqueId($0.baseAddress!) }
        try check(status, "ncclGetUniqueId")
        return UniqueID(bytes: bytes)
    }

    func check(_ status: Int32, _ call: String) throws(CUDAError) {
        guard status != 0 else { return }
        throw .nccl(call: call, code: status, message: ncclGetErrorString(status).map { String(cString: $0) } ?? "unknown")
    }

    /// "2.27.3" from the version code.
    public var versionString: String { "\(version / 10000).\((version / 100) % 100).\(version % 100)" }
}
