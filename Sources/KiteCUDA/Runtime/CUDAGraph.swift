import KiteTensor

/// A captured, instantiated CUDA graph and the arena its tensors live in.
public final class CUDAGraph: DeviceGraph, @unchecked Sendable {
    let context: CUDAContext
    private let graph: CUHandle?
    private let executable: CUHandle?
    /// Kept so the addresses baked into the graph stay the graph's: the main stream's arena, then one per
    /// piece of work captured on the side stream (`Backend.overlapped`).
    let arenas: [CaptureArena]

    init(context: CUDAContext, graph: CUHandle?, executable: CUHandle?, arenas: [CaptureArena]) {
        self.context = context
        self.graph = graph
        self.executable = executable
        self.arenas = arenas
    }

    public func launch() throws {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuGraphLaunch(executable, context.mainStream.handle), "cuGraphLaunch")
    }

    /// Device memory the graph's tensors hold.
    public var arenaBytes: Int { arenas.reduce(0) { $0 + $1.reservedBytes } }

    deinit {
        _ = try? context.synchronize()
        _ = context.driver.cuGraphExecDestroy(executable)
        _ = context.driver.cuGraphDestroy(graph)
    }
}
