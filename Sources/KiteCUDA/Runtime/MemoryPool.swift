import Synchronization

/// Device memory in use and held, in bytes.
public struct MemoryReport: Sendable, Equatable, CustomStringConvertible {
    /// Bytes of live tensors (requested sizes).
    public var inUse: Int
    /// The largest `inUse` since the last `resetPeak`.
    public var peakInUse: Int
    /// Bytes the allocator holds from the driver (in use plus cached).
    public var reserved: Int
    /// The largest `reserved` since the last `resetPeak`.
    public var peakReserved: Int
    /// Live allocations.
    public var allocations: Int

    public var description: String {
        "in use \(Self.gigabytes(inUse)), peak \(Self.gigabytes(peakInUse)), reserved \(Self.gigabytes(reserved)), peak reserved \(Self.gigabytes(peakReserved)), \(allocations) allocations"
    }

    static func gigabytes(_ bytes: Int) -> String {
        let value = Double(bytes) / 1e9
        return "\(Double(Int(value * 1000)) / 1000) GB"
    }
}

/// Stream-ordered device memory for one context and its one stream.
///
/// Two strategies, chosen by `KITE_CUDA_ALLOCATOR`:
/// - `caching` (default): blocks from `cuMemAlloc` are kept on free lists by size and handed out again
///   without a driver call. Every kernel runs on the one stream, so a block freed by the host can be reused
///   by the next kernel at once: the stream orders the old user's work before the new user's.
/// - `driver`: the driver's stream-ordered pool (`cuMemAllocAsync` / `cuMemFreeAsync`), with its release
///   threshold raised so freed memory stays reserved instead of going back to the OS each synchronisation.
public final class DeviceMemoryPool: @unchecked Sendable {
    public enum Strategy: String, Sendable {
        case caching
        case driver
    }

    public let strategy: Strategy
    let context: CUDAContext
    private var driver: CUDADriver { context.driver }
    private var pool: CUHandle?

    private struct State {
        var inUse = 0
        var peakInUse = 0
        var reserved = 0
        var peakReserved = 0
        var allocations = 0
        /// Cached blocks by rounded size (caching strategy).
        var free: [Int: [CUDevicePointer]] = [:]
        var cachedBytes = 0
        /// Where allocations go during a graph capture.
        var activeArena: CaptureArena?
    }

    private let state = Mutex(State())

    init(context: CUDAContext, strategy: Strategy) throws(CUDAError) {
        self.context = context
        self.strategy = context.memoryPoolsSupported ? strategy : .caching
        if self.strategy == .driver {
            try context.makeCurrent()
            var pool: CUHandle?
            try driver.check(driver.cuDeviceGetDefaultMemPool(&pool, Int32(context.ordinal)), "cuDeviceGetDefaultMemPool")
            var threshold = UInt64.max
            try driver.check(driver.cuMemPoolSetAttribute(pool, 4, &threshold), "cuMemPoolSetAttribute(RELEASE_THRESHOLD)")
            self.pool = pool
        }
    }

    /// Sizes round up to 512 bytes below 1 MiB and to 2 MiB above, so freed blocks fit later requests of
    /// similar size; the rounding is what `reserved` counts beyond `inUse`.
    static func roundedSize(_ bytes: Int) -> Int {
        let size = max(bytes, 1)
        return size < (1 << 20) ? (size + 511) & ~511 : (size + (2 << 20) - 1) & ~((2 << 20) - 1)
    }

    /// A block of at least `bytes` bytes, ready for work issued on the stream after this call.
    func allocate(_ bytes: Int) throws(CUDAError) -> CUDevicePointer {
        let size = Self.roundedSize(bytes)
        switch strategy {
        case .caching:
            let reused: CUDevicePointer? = state.withLock { state in
                guard var list = state.free[size], let pointer = list.popLast() else { return nil }
                state.free[size] = list.isEmpty ? nil : list
                state.cachedBytes -= size
                return pointer
            }
            if let reused {
                record(allocated: bytes, reservedDelta: 0)
                return reused
            }
            try context.makeCurrent()
            var pointer: CUDevicePointer = 0
            var result = driver.cuMemAlloc(&pointer, size)
            if result == CUDADriver.outOfMemoryCode {
                try releaseCached()
                result = driver.cuMemAlloc(&pointer, size)
            }
            if result == CUDADriver.outOfMemoryCode { throw .outOfMemory(bytes: bytes, report: report()) }
            try driver.check(result, "cuMemAlloc(\(size) bytes)")
            record(allocated: bytes, reservedDelta: size)
            return pointer
        case .driver:
            try context.makeCurrent()
            var pointer: CUDevicePointer = 0
            let result = driver.cuMemAllocAsync(&pointer, size, context.stream.handle)
            if result == CUDADriver.outOfMemoryCode { throw .outOfMemory(bytes: bytes, report: report()) }
            try driver.check(result, "cuMemAllocAsync(\(size) bytes)")
            record(allocated: bytes, reservedDelta: 0)
            return pointer
        }
    }

    /// Returns a block; work already issued on the stream that uses it still completes first.
    func free(_ pointer: CUDevicePointer, bytes: Int) {
        let size = Self.roundedSize(bytes)
        switch strategy {
        case .caching:
            state.withLock { state in
                state.free[size, default: []].append(pointer)
                state.cachedBytes += size
                state.inUse -= bytes
                state.allocations -= 1
            }
        case .driver:
            // A failure here has nowhere to go (this runs from a deinit); the next synchronising call reports
            // any sticky context error.
            if (try? context.makeCurrent()) != nil { _ = driver.cuMemFreeAsync(pointer, context.stream.handle) }
            state.withLock { state in
                state.inUse -= bytes
                state.allocations -= 1
            }
        }
    }

    private func record(allocated bytes: Int, reservedDelta: Int) {
        state.withLock { state in
            state.inUse += bytes
            state.allocations += 1
            state.peakInUse = max(state.peakInUse, state.inUse)
            state.reserved += reservedDelta
            state.peakReserved = max(state.peakReserved, state.reserved)
        }
    }

    /// Hands every cached block back to the driver (after the stream has finished with them).
    public func releaseCached() throws(CUDAError) {
        try context.synchronize()
        switch strategy {
        case .caching:
            let blocks: [(Int, CUDevicePointer)] = state.withLock { state in
                let all = state.free.flatMap { size, pointers in pointers.map { (size, $0) } }
                state.free = [:]
                state.cachedBytes = 0
                return all
            }
            for (size, pointer) in blocks {
                try driver.check(driver.cuMemFree(pointer), "cuMemFree")
                state.withLock { $0.reserved -= size }
            }
        case .driver:
            try driver.check(driver.cuMemPoolTrimTo(pool, 0), "cuMemPoolTrimTo")
        }
    }

    /// The arena tensors come from during a graph capture (`CUDABackend.allocate` asks), set by
    /// `beginArena` and cleared by `endArena`.
    var activeArena: CaptureArena? { state.withLock { $0.activeArena } }

    /// Makes `arena` the active one and returns the one it replaces (for work captured beside the main
    /// stream's, which takes its own arena and then restores the first).
    @discardableResult
    func swapArena(_ arena: CaptureArena?) -> CaptureArena? {
        state.withLock { state in
            let previous = state.activeArena
            state.activeArena = arena
            return previous
        }
    }

    func beginArena(_ arena: CaptureArena) {
        state.withLock { $0.activeArena = arena }
    }

    func endArena() {
        state.withLock { $0.activeArena = nil }
    }

    /// Bytes the caching allocator holds on its free lists (reusable without the driver).
    public var cachedBytes: Int { state.withLock { $0.cachedBytes } }

    /// Bytes in use, peak, and reserved.
    public func report() -> MemoryReport {
        var report = state.withLock { state in
            MemoryReport(inUse: state.inUse, peakInUse: state.peakInUse, reserved: state.reserved,
                         peakReserved: state.peakReserved, allocations: state.allocations)
        }
        if strategy == .driver, let pool {
            var current: UInt64 = 0, high: UInt64 = 0
            if driver.cuMemPoolGetAttribute(pool, 5, &current) == 0 { report.reserved = Int(current) }
            if driver.cuMemPoolGetAttribute(pool, 6, &high) == 0 { report.peakReserved = Int(high) }
        }
        return report
    }

    /// Starts a new peak measurement from what is in use and reserved now.
    public func resetPeak() {
        state.withLock { state in
            state.peakInUse = state.inUse
            state.peakReserved = state.reserved
        }
        if strategy == .driver, let pool {
            var zero: UInt64 = 0
            _ = driver.cuMemPoolSetAttribute(pool, 6, &zero)
        }
    }
}
