import Synchronization

/// Page-locked host memory (`cuMemHostAlloc`). Copies between it and the device run in stream order without
/// the host waiting; from pageable memory the driver may instead wait for the stream's earlier work, which
/// would stall a host that queues the next decode step while the device still runs the last one.
final class PinnedHostBuffer: @unchecked Sendable {
    let driver: CUDADriver
    let pointer: UnsafeMutableRawPointer
    let capacity: Int

    init(driver: CUDADriver, capacity: Int) throws(CUDAError) {
        self.driver = driver
        var pointer: UnsafeMutableRawPointer?
        try driver.check(driver.cuMemHostAlloc(&pointer, capacity, 0), "cuMemHostAlloc(\(capacity) bytes)")
        guard let pointer else { throw .unsupported("cuMemHostAlloc returned a null pointer") }
        self.pointer = pointer
        self.capacity = capacity
    }

    /// A capacity of at least `bytes`: a power of two from 4 KiB, so buffers are reused across nearby sizes.
    static func capacity(for bytes: Int) -> Int {
        var capacity = 4096
        while capacity < bytes { capacity <<= 1 }
        return capacity
    }

    deinit { _ = driver.cuMemFreeHost(pointer) }
}

/// Host-to-device copies of small host buffers staged through a ring of pinned slots, so they queue behind
/// the device's work instead of waiting for it. A slot is written again only once its last copy has run
/// (its event), which with `slotCount` slots almost never waits.
final class PinnedUploadRing: @unchecked Sendable {
    /// Copies larger than this go straight from pageable memory.
    static let largestCopy = 16 << 20
    static let slotCount = 8

    private struct Slot {
        var buffer: PinnedHostBuffer?
        var event: CUDAEvent?
    }

    private let driver: CUDADriver
    private let state: Mutex<(slots: [Slot], next: Int)>

    init(driver: CUDADriver) {
        self.driver = driver
        state = Mutex((Array(repeating: Slot(), count: Self.slotCount), 0))
    }

    /// Queues a copy of `bytes` bytes from `source` to `destination` on `stream` through a pinned slot;
    /// false (nothing queued) when the copy is larger than `largestCopy`.
    func copy(from source: UnsafeRawPointer, bytes: Int, to destination: CUDevicePointer, stream: CUDAStream) throws(CUDAError) -> Bool {
        guard bytes <= Self.largestCopy else { return false }
        let driver = self.driver
        return try state.withLock { (state) throws(CUDAError) -> Bool in
            let index = state.next
            state.next = (index + 1) % Self.slotCount
            var slot = state.slots[index]
            // The slot's previous copy must have read its bytes before they are overwritten.
            try slot.event?.synchronize()
            if (slot.buffer?.capacity ?? 0) < bytes {
                slot.buffer = try PinnedHostBuffer(driver: driver, capacity: PinnedHostBuffer.capacity(for: bytes))
            }
            if slot.event == nil { slot.event = try CUDAEvent(driver: driver, timing: false) }
            guard let buffer = slot.buffer, let event = slot.event else { return false }
            buffer.pointer.copyMemory(from: source, byteCount: bytes)
            try driver.check(driver.cuMemcpyHtoDAsync(destination, UnsafeRawPointer(buffer.pointer), bytes, stream.handle), "cuMemcpyHtoDAsync(\(bytes) bytes, pinned)")
            try event.record(on: stream)
            state.slots[index] = slot
            return true
        }
    }
}

/// Pinned buffers for reading results back while later work is queued (`sampleTokensDeferred`), kept for
/// reuse: allocating page-locked memory takes far longer than a decode step's read.
final class PinnedReadbackBuffers: @unchecked Sendable {
    private let driver: CUDADriver
    private let free = Mutex<[PinnedHostBuffer]>([])

    init(driver: CUDADriver) { self.driver = driver }

    func take(bytes: Int) throws(CUDAError) -> PinnedHostBuffer {
        let reused = free.withLock { free -> PinnedHostBuffer? in
            guard let index = free.firstIndex(where: { $0.capacity >= bytes }) else { return nil }
            return free.remove(at: index)
        }
        if let reused { return reused }
        return try PinnedHostBuffer(driver: driver, capacity: PinnedHostBuffer.capacity(for: bytes))
    }

    func give(_ buffer: PinnedHostBuffer) {
        // A few in-flight reads at a time need a few buffers; more would only hold page-locked memory.
        free.withLock { free in if free.count < 8 { free.append(buffer) } }
    }
}
