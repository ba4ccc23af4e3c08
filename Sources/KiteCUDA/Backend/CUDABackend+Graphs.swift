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
        defer {
            capturing.withLock { $0 = false }
            memory.endArena()
        }
        try driver.check(driver.cuStreamBeginCapture(context.stream.handle, 2), "cuStreamBeginCapture(relaxed)")
        var graph: CUHandle?
        do {
            try body()
        } catch {
            _ = driver.cuStreamEndCapture(context.stream.handle, &graph)
            if graph != nil { _ = driver.cuGraphDestroy(graph) }
            throw error
        }
        try driver.check(driver.cuStreamEndCapture(context.stream.handle, &graph), "cuStreamEndCapture")
        var executable: CUHandle?
        do {
            try driver.check(driver.cuGraphInstantiateWithFlags(&executable, graph, 0), "cuGraphInstantiateWithFlags")
        } catch {
            _ = driver.cuGraphDestroy(graph)
            throw error
        }
        return CUDAGraph(context: context, graph: graph, executable: executable, arena: arena)
    }

    /// Whether a graph capture is under way on this backend's stream.
    public var isCapturing: Bool { capturing.withLock { $0 } }
}
