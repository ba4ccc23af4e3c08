import KiteTensor
import Synchronization

extension CUDABackend {
    /// Captures the work `body` issues on the stream as a CUDA graph (relaxed capture mode: allocations from
    /// the driver are allowed inside, host round trips are not). Every tensor `body` allocates comes from the
    /// graph's own arena. Operations that would read a result back to the host skip that read while capturing
    /// (`embedding` does not check its ids then; the engine validated them).
    public func captureGraph(_ body: () throws -> Void) throws -> (any DeviceGraph)? {
        try context.makeCurrent()
        let arena = CaptureArena(context: context)
        try arena.reserveFirstChunk(from: memory)
        let driver = context.driver
        memory.beginArena(arena)
        capturing.withLock { $0 = true }
        sideArenas.withLock { $0 = [] }
        defer {
            capturing.withLock { $0 = false }
            memory.endArena()
        }
        try driver.check(driver.cuStreamBeginCapture(context.mainStream.handle, 2), "cuStreamBeginCapture(relaxed)")
        var graph: CUHandle?
        do {
            try body()
        } catch {
            _ = driver.cuStreamEndCapture(context.mainStream.handle, &graph)
            if graph != nil { _ = driver.cuGraphDestroy(graph) }
            throw error
        }
        try driver.check(driver.cuStreamEndCapture(context.mainStream.handle, &graph), "cuStreamEndCapture")
        var executable: CUHandle?
        do {
            try driver.check(driver.cuGraphInstantiateWithFlags(&executable, graph, 0), "cuGraphInstantiateWithFlags")
        } catch {
            _ = driver.cuGraphDestroy(graph)
            throw error
        }
        return CUDAGraph(context: context, graph: graph, executable: executable, arenas: [arena] + sideArenas.withLock { $0 })
    }

    /// Whether a graph capture is under way on this backend's stream.
    public var isCapturing: Bool { capturing.withLock { $0 } }

    /// Inside a graph capture, `second` is captured on the side stream (forked after the main stream's work so
    /// far, joined before anything after this call), with its own arena, so the two run at the same time when
    /// the graph replays: one's memory-bound kernels fill the other's idle multiprocessors. Outside a capture
    /// both run in order on the main stream: the caching allocator reuses blocks at once, which is safe only
    /// in one stream's order, while a capture's arenas keep the two apart.
    public func overlapped(_ first: () throws -> Void, _ second: () throws -> Void) throws {
        guard isCapturing else {
            try first()
            try second()
            return
        }
        try context.fork()
        try first()
        let arena = CaptureArena(context: context)
        try arena.reserveFirstChunk(from: memory)
        sideArenas.withLock { $0.append(arena) }
        let mainArena = memory.swapArena(arena)
        defer { memory.swapArena(mainArena) }
        try context.onSideStream { try second() }
        try context.join()
    }
}
