import Synchronization

/// Device memory owned by one captured graph: every tensor allocated while the graph is captured comes from
/// here, so no later allocation elsewhere can take an address the graph's kernels write on each replay.
///
/// Inside the capture, freed blocks are handed out again by exact size (the graph's kernels run in capture
/// order on one stream, so reuse between them is as safe as on the stream itself); a decode step's peak is a
/// few layers' activations, not all of them. Each tensor allocated here holds the arena, so the memory goes
/// back to the driver only when the graph and every such tensor are gone.
final class CaptureArena: @unchecked Sendable {
    let context: CUDAContext
    let chunkBytes: Int

    private struct State {
        var chunks: [(base: CUDevicePointer, size: Int)] = []
        var used = 0
        var free: [Int: [CUDevicePointer]] = [:]
    }
    private let state = Mutex(State())

    init(context: CUDAContext, chunkBytes: Int = 64 << 20) {
        self.context = context
        self.chunkBytes = chunkBytes
    }

    /// Bytes taken from the driver.
    var reservedBytes: Int { state.withLock { $0.chunks.reduce(0) { $0 + $1.size } } }

    /// Takes the first chunk from the driver before a capture begins. Inside a capture a failed allocation
    /// can only fail the capture (the pool cannot synchronise there to hand its cached blocks back); here, when
    /// the driver is out of memory (the engine's cache takes most of it), the pool's cached blocks go back
    /// first and the allocation is tried once more.
    func reserveFirstChunk(from pool: DeviceMemoryPool) throws(CUDAError) {
        guard state.withLock({ $0.chunks.isEmpty }) else { return }
        var pointer: CUDevicePointer = 0
        try context.makeCurrent()
        var result = context.driver.cuMemAlloc(&pointer, chunkBytes)
        if result == CUDADriver.outOfMemoryCode {
            try pool.releaseCached()
            result = context.driver.cuMemAlloc(&pointer, chunkBytes)
        }
        try context.driver.check(result, "cuMemAlloc(graph arena, \(chunkBytes) bytes)")
        state.withLock { state in
            state.chunks.append((pointer, chunkBytes))
            state.used = 0
        }
    }

    /// A block of `size` bytes (already rounded by the pool), 512-byte aligned.
    func allocate(_ size: Int) throws(CUDAError) -> CUDevicePointer {
        if let reused = state.withLock({ state -> CUDevicePointer? in
            guard var list = state.free[size], let pointer = list.popLast() else { return nil }
            state.free[size] = list.isEmpty ? nil : list
            return pointer
        }) { return reused }
        let needsChunk = state.withLock { state in state.chunks.isEmpty || state.used + size > state.chunks[state.chunks.count - 1].size }
        if needsChunk {
            let bytes = max(chunkBytes, size)
            var pointer: CUDevicePointer = 0
            try context.makeCurrent()
            try context.driver.check(context.driver.cuMemAlloc(&pointer, bytes), "cuMemAlloc(graph arena, \(bytes) bytes)")
            state.withLock { state in
                state.chunks.append((pointer, bytes))
                state.used = 0
            }
        }
        return state.withLock { state in
            let chunk = state.chunks[state.chunks.count - 1]
            let pointer = chunk.base + CUDevicePointer(state.used)
            state.used += (size + 511) & ~511
            return pointer
        }
    }

    func release(_ pointer: CUDevicePointer, size: Int) {
        state.withLock { $0.free[size, default: []].append(pointer) }
    }

    deinit {
        // Replays still queued may use the memory: wait for them before handing it back.
        guard (try? context.synchronize()) != nil else { return }
        for chunk in state.withLock({ $0.chunks }) { _ = context.driver.cuMemFree(chunk.base) }
    }
}
