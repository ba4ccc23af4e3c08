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
