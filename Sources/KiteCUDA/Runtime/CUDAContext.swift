import Synchronization

/// One GPU: the driver's primary context on it, its properties, and the stream Kite's work is ordered on.
///
/// Every entry point that calls the driver first makes the context current on the calling thread
/// (`makeCurrent`), because Swift may run the caller, or a tensor's deinit, on any thread.
public final class CUDAContext: @unchecked Sendable {
    let driver: CUDADriver
    let context: CUHandle
    /// The stream kernels, copies and allocations are issued on: the main stream, or the side stream inside
    /// `onSideStream`.
    public var stream: CUDAStream { issuingOnSide.withLock { $0 } ? sideStream : mainStream }
    /// The stream all of the backend's work is ordered on, apart from what `fork` lets run beside it.
    public let mainStream: CUDAStream
    /// A second stream for work that may overlap the main stream's between a `fork` and a `join`.
    let sideStream: CUDAStream
    private let issuingOnSide = Mutex(false)
    private let forkEvent: CUDAEvent
    private let joinEvent: CUDAEvent
    public let ordinal: Int
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessorCount: Int
    public let totalMemory: Int
    public let l2CacheBytes: Int
    /// The most shared memory one block may ask for (after raising its limit).
    public let maxSharedMemoryPerBlock: Int
    public let memoryPoolsSupported: Bool
    /// The driver's CUDA version, e.g. (13, 0).
    public let driverVersion: (major: Int, minor: Int)

    /// Opens device `ordinal`: loads the driver, retains its primary context and creates a non-blocking stream.
    public init(ordinal: Int = 0) throws(CUDAError) {
        let driver = try CUDADriver()
        self.driver = driver
        self.ordinal = ordinal
        driverVersion = try driver.version()
        var count: Int32 = 0
        try driver.check(driver.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard ordinal >= 0 && ordinal < Int(count) else {
            throw .noDevice("device \(ordinal) requested, the driver sees \(count)")
        }
        var device: Int32 = 0
        try driver.check(driver.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try driver.check(driver.cuDeviceGetName(&nameBuffer, 256, device), "cuDeviceGetName")
        name = String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        func attribute(_ attribute: DeviceAttribute) throws(CUDAError) -> Int {
            var value: Int32 = 0
            try driver.check(driver.cuDeviceGetAttribute(&value, attribute.rawValue, device), "cuDeviceGetAttribute(\(attribute))")
            return Int(value)
        }
        computeCapability = (try attribute(.computeCapabilityMajor), try attribute(.computeCapabilityMinor))
        multiprocessorCount = try attribute(.multiprocessorCount)
        l2CacheBytes = try attribute(.l2CacheSize)
        maxSharedMemoryPerBlock = try attribute(.maxSharedMemoryPerBlockOptin)
        memoryPoolsSupported = try attribute(.memoryPoolsSupported) != 0
        var total = 0
        try driver.check(driver.cuDeviceTotalMem(&total, device), "cuDeviceTotalMem")
        totalMemory = total
        var context: CUHandle?
        try driver.check(driver.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain(\(ordinal))")
        guard let context else { throw .noDevice("cuDevicePrimaryCtxRetain returned no context") }
        self.context = context
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
        mainStream = try CUDAStream(driver: driver)
        sideStream = try CUDAStream(driver: driver)
        forkEvent = try CUDAEvent(driver: driver, timing: false)
        joinEvent = try CUDAEvent(driver: driver, timing: false)
    }

    /// Lets `sideStream` start after everything issued so far on `stream`.
    func fork() throws(CUDAError) {
        try forkEvent.record(on: mainStream)
        try driver.check(driver.cuStreamWaitEvent(sideStream.handle, forkEvent.handle, 0), "cuStreamWaitEvent(side stream)")
    }

    /// Makes later work on `stream` wait for everything issued so far on `sideStream`. Memory that side-stream
    /// work uses is therefore never reused before that work is done: all reuse is ordered on `stream`.
    func join() throws(CUDAError) {
        try joinEvent.record(on: sideStream)
        try driver.check(driver.cuStreamWaitEvent(mainStream.handle, joinEvent.handle, 0), "cuStreamWaitEvent(main stream)")
    }

    /// Whether work is being issued on the side stream (inside `onSideStream`).
    var isOnSideStream: Bool { issuingOnSide.withLock { $0 } }

    /// Issues everything `body` launches on the side stream (between a `fork` and a `join`).
    func onSideStream<R>(_ body: () throws -> R) rethrows -> R {
        issuingOnSide.withLock { $0 = true }
        defer { issuingOnSide.withLock { $0 = false } }
        return try body()
    }

    /// `sm_90` for compute capability 9.0.
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }

    /// Makes this device's context current on the calling thread.
    public func makeCurrent() throws(CUDAError) {
        try driver.check(driver.cuCtxSetCurrent(context), "cuCtxSetCurrent")
    }

    /// Free and total device memory as the driver sees it.
    public func memoryInfo() throws(CUDAError) -> (free: Int, total: Int) {
        try makeCurrent()
        var free = 0, total = 0
        try driver.check(driver.cuMemGetInfo(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    /// Waits for everything issued on the stream; raises any error a kernel hit.
    public func synchronize() throws(CUDAError) {
        try makeCurrent()
        try stream.synchronize()
    }
}

/// A CUDA stream: work issued on it runs in order.
public final class CUDAStream: @unchecked Sendable {
    let driver: CUDADriver
    let handle: CUHandle?

    init(driver: CUDADriver) throws(CUDAError) {
        self.driver = driver
        var handle: CUHandle?
        try driver.check(driver.cuStreamCreate(&handle, 1), "cuStreamCreate(CU_STREAM_NON_BLOCKING)")
        self.handle = handle
    }

    public func synchronize() throws(CUDAError) {
        try driver.check(driver.cuStreamSynchronize(handle), "cuStreamSynchronize")
    }

    deinit { _ = driver.cuStreamDestroy(handle) }
}

/// A CUDA event, for timing regions of a stream.
public final class CUDAEvent: @unchecked Sendable {
    let driver: CUDADriver
    let handle: CUHandle?

    init(driver: CUDADriver, timing: Bool = true) throws(CUDAError) {
        self.driver = driver
        var handle: CUHandle?
        // CU_EVENT_DISABLE_TIMING makes events used only for ordering cheaper to record and wait on.
        try driver.check(driver.cuEventCreate(&handle, timing ? 0 : 2), "cuEventCreate")
        self.handle = handle
    }

    /// Marks the current end of `stream`'s work.
    public func record(on stream: CUDAStream) throws(CUDAError) {
        try driver.check(driver.cuEventRecord(handle, stream.handle), "cuEventRecord")
    }

    public func synchronize() throws(CUDAError) {
        try driver.check(driver.cuEventSynchronize(handle), "cuEventSynchronize")
    }

    /// Milliseconds between `start` and this event (both recorded and complete).
    public func milliseconds(since start: CUDAEvent) throws(CUDAError) -> Double {
        var value: Float = 0
        try driver.check(driver.cuEventElapsedTime(&value, start.handle, handle), "cuEventElapsedTime")
        return Double(value)
    }

    deinit { _ = driver.cuEventDestroy(handle) }
}

extension CUDAContext {
    /// A new event on this device.
    public func makeEvent() throws(CUDAError) -> CUDAEvent {
        try makeCurrent()
        return try CUDAEvent(driver: driver)
    }
}
