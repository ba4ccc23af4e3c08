import KiteTensor
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The `Backend` on one NVIDIA GPU.
///
/// ## Dtype policy
/// - **Weights** are whatever the caller uploads; the model uploads fp32, which are the master weights
///   AdamW updates. Optimizer moments and parameter gradients are fp32.
/// - **bf16 mode** (the default, for training and inference): every operation that produces an activation
///   returns bf16 (`computeDType`); matrix products take bf16 operands with fp32 accumulation
///   (cuBLASLt, `CUBLAS_COMPUTE_32F`), reading a kept bf16 copy of each fp32 weight (`ComputeCopies`)
///   that AdamW refreshes in its own pass. Attention runs on tensor cores (`FlashAttentionKernels`) for
///   head sizes 64 and 128. Reductions, softmax statistics, norms and the optimizer compute in fp32
///   (sums of squares in fp64); `inverseRMS`, `logSumExp`, log-probs and entropies are fp32.
/// - **fp32 mode** (for parity with the CPU reference): every tensor stays fp32 and products use exact
///   fp32 arithmetic (TF32 only with `KITE_CUDA_TF32=1`); attention uses the CUDA-core kernels.
/// - Inputs of another dtype are converted first; host tensors passed to an operation are uploaded;
///   in-place operations (`accumulate`, `scale`, `fill`, `addBias`, products `into:`) keep the target's dtype.
/// - `add` returns the inputs' dtype when they agree, else `computeDType`.
///
/// All work is ordered on one stream; `download` and operations that must report an error found on the
/// device (a bad token id) wait for it. Kernels are CUDA C compiled by NVRTC on first use (`KernelCache`).
public final class CUDABackend: Backend, @unchecked Sendable {
    public enum Precision: String, Sendable, CaseIterable {
        case bf16
        case fp32
    }

    public let device: Device
    public let precision: Precision
    public let context: CUDAContext
    /// Device memory: in use, peak and reserved bytes (`memory.report()`).
    public let memory: DeviceMemoryPool
    /// Per-family GPU time, when started.
    public let profiler: OpProfiler
    /// Steps an external profiler records (`KITE_CUDA_PROFILE_STEPS`).
    let externalProfilerWindow: ExternalProfilerWindow
    let kernels: KernelCache
    let blas: CUBLASLt
    let computeCopies = ComputeCopies()
    let layouts = LayoutCache()
    let useTF32: Bool
    /// Rows of logits per chunk of the fused head; nil picks about 1.25 GB of fp32 logits.
    public var headChunkRowsOverride: Int?
    /// One i32 on the device where kernels record the first bad index they meet.
    private let errorFlag: CUDevicePointer
    /// Set while `captureGraph` records: operations then skip their host read-backs.
    let capturing = Mutex(false)
    /// Arenas of the side-stream work of the capture under way (`overlapped`), kept by its graph.
    let sideArenas = Mutex<[CaptureArena]>([])
    /// Batch-invariant mode (`--deterministic`): results of every forward operation for a row do not depend
    /// on which other rows share the batch, so the engine's log-probs equal the trainer's bit for bit.
    /// Products `x · W^T` run a fixed-order tensor-core kernel instead of cuBLASLt (whose algorithm and
    /// split-K choice change with the shape), and decode attention gathers the cache and runs the same
    /// kernel as training and prefill instead of the split-K decode kernel.
    public let deterministic: Bool
    /// Whether block-scaled fp8 weights run as fp8 products (`blockScaledMatmul`); false dequantises them per
    /// use. Defaults to true unless `KITE_FP8_GEMM=0`.
    public var fp8Products = environment("KITE_FP8_GEMM") != "0"
    /// Block-scaled products run so far: as fp8 products, and dequantised (by choice or because cuBLASLt
    /// declined the shape).
    public let blockScaledCounts = Mutex<(fp8: Int, dequantised: Int)>((0, 0))
    /// Small host-to-device copies (`copy(_:into:)` from the host) go through pinned slots.
    let pinnedUploads: PinnedUploadRing
    /// Pinned buffers that deferred sampling results are read back into.
    let readbackBuffers: PinnedReadbackBuffers
    /// Static layouts of deterministic decode attention, by batch size.
    let decodeLayouts = Mutex<[Int: (queryOffsets: Tensor, tiles: Tensor)]>([:])

    /// The dtype of activations this backend returns.
    public var computeDType: DType { precision == .bf16 ? .bf16 : .f32 }

    /// Opens GPU `ordinal` (loading the driver, cuBLASLt and, on first kernel use, NVRTC).
    ///
    /// - Parameters:
    ///   - precision: bf16 activations (default) or fp32 throughout.
    ///   - allocator: memory strategy; nil reads `KITE_CUDA_ALLOCATOR` (`caching` or `driver`).
    ///   - deterministic: batch-invariant kernels (see `deterministic`); nil reads `KITE_DETERMINISTIC=1`.
    public init(ordinal: Int = 0, precision: Precision = .bf16, allocator: DeviceMemoryPool.Strategy? = nil, deterministic: Bool? = nil) throws {
        let context = try CUDAContext(ordinal: ordinal)
        self.context = context
        self.device = .cuda(ordinal)
        self.precision = precision
        let strategy = allocator ?? environment("KITE_CUDA_ALLOCATOR").flatMap(DeviceMemoryPool.Strategy.init(rawValue:)) ?? .caching
        memory = try DeviceMemoryPool(context: context, strategy: strategy)
        profiler = OpProfiler(context: context)
        externalProfilerWindow = ExternalProfilerWindow(driver: context.driver)
        kernels = KernelCache(context: context)
        blas = try CUBLASLt(driver: context.driver)
        pinnedUploads = PinnedUploadRing(driver: context.driver)
        readbackBuffers = PinnedReadbackBuffers(driver: context.driver)
        useTF32 = environment("KITE_CUDA_TF32") == "1"
        self.deterministic = deterministic ?? (environment("KITE_DETERMINISTIC") == "1")
        var flag: CUDevicePointer = 0
        try context.driver.check(context.driver.cuMemAlloc(&flag, 256), "cuMemAlloc(error flag)")
        errorFlag = flag
    }

    /// NVRTC as loaded for this backend's kernels (throws why not, if it could not be loaded).
    public func compiler() throws -> NVRTC { try kernels.compiler() }

    /// Waits for all issued work.
    public func synchronize() throws { try context.synchronize() }

    /// A one-line description: device, memory, libraries.
    public func summary() -> String {
        let nvrtc = (try? kernels.compiler()).map { "NVRTC \($0.version.major).\($0.version.minor)" } ?? "NVRTC unavailable"
        return "\(context.name) (\(context.architecture), \(context.multiprocessorCount) SMs, \(MemoryReport.gigabytes(context.totalMemory))), driver CUDA \(context.driverVersion.major).\(context.driverVersion.minor), \(nvrtc), cuBLASLt \(blas.version), \(precision) mode\(deterministic ? " (deterministic)" : ""), \(memory.strategy) allocator"
    }

    // MARK: Memory

    /// An uninitialised device tensor.
    func allocate(_ shape: [Int], _ dtype: DType) throws -> Tensor {
        let bytes = shape.reduce(1, *) * dtype.byteSize
        let arena = memory.activeArena
        let pointer = try arena?.allocate(DeviceMemoryPool.roundedSize(bytes)) ?? memory.allocate(bytes)
        guard let address = UnsafeMutableRawPointer(bitPattern: UInt(pointer)) else {
            throw CUDAError.unsupported("allocator returned a null pointer")
        }
        let pool = memory
        let storage = TensorStorage(address: address, byteCount: bytes, device: device) { address in
            // A tensor of a graph's arena keeps the arena alive and returns its block there.
            if let arena {
                arena.release(CUDevicePointer(UInt(bitPattern: address)), size: DeviceMemoryPool.roundedSize(bytes))
            } else {
                pool.free(CUDevicePointer(UInt(bitPattern: address)), bytes: bytes)
            }
        }
        return Tensor(shape: shape, dtype: dtype, storage: storage)
    }

    public func zeros(_ shape: [Int], dtype: DType) throws -> Tensor {
        let tensor = try allocate(shape, dtype)
        try context.makeCurrent()
        try context.driver.check(context.driver.cuMemsetD8Async(address(tensor), 0, tensor.byteCount, context.stream.handle), "cuMemsetD8Async")
        return tensor
    }

    public func upload(_ host: Tensor) throws -> Tensor {
        guard host.device == .cpu else {
            if host.device == device { return host }
            throw KiteTensorError.invalidArgument(operation: "upload", detail: "tensor on \(host.device) given to the backend of \(device)")
        }
        let tensor = try allocate(host.shape, host.dtype)
        try context.makeCurrent()
        if host.byteCount > 0 {
            try context.driver.check(
                context.driver.cuMemcpyHtoDAsync(address(tensor), UnsafeRawPointer(host.rawPointer), host.byteCount, context.stream.handle),
                "cuMemcpyHtoDAsync(\(host.byteCount) bytes)")
        }
        return tensor
    }

    public func download(_ tensor: Tensor) throws -> Tensor {
        if tensor.device == .cpu { return tensor }
        try requireOwn(tensor, "download")
        let host = Tensor(zeros: tensor.shape, dtype: tensor.dtype)
        try context.makeCurrent()
        if tensor.byteCount > 0 {
            try context.driver.check(
                context.driver.cuMemcpyDtoHAsync(host.rawPointer, address(tensor), tensor.byteCount, context.stream.handle),
                "cuMemcpyDtoHAsync(\(tensor.byteCount) bytes)")
        }
        try context.stream.synchronize()
        return host
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        guard source.shape == destination.shape else {
            throw KiteTensorError.shapeMismatch(operation: "copy", detail: "\(source) into \(destination)")
        }
        try requireOwn(destination, "copy")
        try context.makeCurrent()
        computeCopies.invalidate(destination)
        guard source.byteCount > 0 else { return }
        if source.dtype != destination.dtype {
            // A converting copy (fp32 master weights into an engine's bf16 weights): one cast kernel.
            _ = try dtypeCode(destination.dtype, "copy")
            try launchCast(try onDevice(source, "copy"), into: destination, scale: 1)
            return
        }
        if source.device == .cpu {
            // A capture records the copy's host address, so it must not be a ring slot that is written again.
            if !isCapturing,
                try pinnedUploads.copy(from: UnsafeRawPointer(source.rawPointer), bytes: source.byteCount, to: address(destination), stream: context.stream)
            {
                return
            }
            try context.driver.check(
                context.driver.cuMemcpyHtoDAsync(address(destination), UnsafeRawPointer(source.rawPointer), source.byteCount, context.stream.handle),
                "cuMemcpyHtoDAsync")
        } else {
            try requireOwn(source, "copy")
            try context.driver.check(
                context.driver.cuMemcpyDtoDAsync(address(destination), address(source), source.byteCount, context.stream.handle),
                "cuMemcpyDtoDAsync")
        }
    }

    public func cast(_ x: Tensor, to dtype: DType) throws -> Tensor {
        try profiler.measure(.other) {
            let x = try onDevice(x, "cast")
            return try converted(x, to: dtype, keep: false, operation: "cast", forceCopy: true)
        }
    }

    // MARK: Helpers for the operation files

    func address(_ tensor: Tensor) -> CUDevicePointer { CUDevicePointer(UInt(bitPattern: tensor.rawPointer)) }

    func requireOwn(_ tensor: Tensor, _ operation: String) throws {
        guard tensor.device == device else {
            throw KiteTensorError.invalidArgument(operation: operation, detail: "tensor on \(tensor.device) given to the backend of \(device)")
        }
    }

    /// `tensor` on this device: host tensors are uploaded (small inputs such as loss weights come from the host).
    func onDevice(_ tensor: Tensor, _ operation: String) throws -> Tensor {
        if tensor.device == .cpu { return try upload(tensor) }
        try requireOwn(tensor, operation)
        return tensor
    }

    /// `tensor` as `dtype`: itself when it already is; a kept copy of an fp32 weight when `keep` (bf16
    /// compute copies); else a fresh conversion.
    func converted(_ tensor: Tensor, to dtype: DType, keep: Bool, operation: String, forceCopy: Bool = false) throws -> Tensor {
        if tensor.dtype == dtype && !forceCopy { return tensor }
        guard tensor.dtype.isFloatingPoint && dtype.isFloatingPoint || tensor.dtype == dtype else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: tensor.dtype, expected: "a floating-point tensor to convert to \(dtype)")
        }
        if keep, tensor.dtype == .f32, dtype == .bf16, let copy = computeCopies.lookup(tensor) { return copy }
        let output = try allocate(tensor.shape, dtype)
        if tensor.dtype == dtype {
            try context.makeCurrent()
            try context.driver.check(context.driver.cuMemcpyDtoDAsync(address(output), address(tensor), tensor.byteCount, context.stream.handle), "cuMemcpyDtoDAsync")
        } else {
            try launchCast(tensor, into: output, scale: 1)
        }
        if keep, tensor.dtype == .f32, dtype == .bf16 { computeCopies.insert(tensor, copy: output) }
        return output
    }

    /// An activation input in `computeDType` (uploaded and converted as needed).
    func activation(_ tensor: Tensor, _ operation: String) throws -> Tensor {
        let onDevice = try onDevice(tensor, operation)
        guard onDevice.dtype.isFloatingPoint else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: onDevice.dtype, expected: "a floating-point tensor")
        }
        return try converted(onDevice, to: computeDType, keep: false, operation: operation)
    }

    /// A small fp32 input (norm weights, rotary tables, loss weights).
    func float32(_ tensor: Tensor, _ operation: String) throws -> Tensor {
        try converted(try onDevice(tensor, operation), to: .f32, keep: false, operation: operation)
    }

    /// A tensor written in place must already live here, in a dtype kernels can store.
    func inPlaceTarget(_ tensor: Tensor, _ operation: String) throws {
        try requireOwn(tensor, operation)
        _ = try dtypeCode(tensor.dtype, operation)
        computeCopies.invalidate(tensor)
    }

    func launchCast(_ source: Tensor, into destination: Tensor, scale: Float) throws {
        var arguments = KernelArguments()
        arguments.add(address(source)); arguments.add(try dtypeCode(source.dtype, "cast"))
        arguments.add(address(destination)); arguments.add(try dtypeCode(destination.dtype, "cast"))
        arguments.add(int64: source.count)
        let vector = vectorizable(source, destination)
        arguments.add(Int32(vector ? 1 : 0))
        arguments.add(scale)
        try launch(.elementwise, "kite_cast", elementwiseShape(source.count, vector: vector), arguments)
    }

    /// The kernels' dtype code (`DT_F32` ...) of a floating-point dtype.
    func dtypeCode(_ dtype: DType, _ operation: String) throws -> Int32 {
        switch dtype {
        case .f32: 0
        case .bf16: 1
        case .f16: 2
        case .fp8e4m3: 3
        case .fp8e5m2: 4
        default: throw KiteTensorError.unsupportedDType(operation: operation, dtype: dtype, expected: "f32, bf16, f16, fp8e4m3 or fp8e5m2")
        }
    }

    /// Whether four-element vector accesses suit every tensor: 16-byte aligned, element count a multiple of 4.
    func vectorizable(_ tensors: Tensor...) -> Bool {
        tensors.allSatisfy { address($0) % 16 == 0 && $0.count % 4 == 0 }
    }

    /// A grid-stride launch over `count` elements (a quarter of them with vector accesses).
    func elementwiseShape(_ count: Int, vector: Bool, block: Int = 256) -> LaunchShape {
        let work = vector ? max(count / 4, 1) : max(count, 1)
        return LaunchShape(grid: max(1, min((work + block - 1) / block, context.multiprocessorCount * 16)), block: block)
    }

    func launch(_ module: KernelModule, _ name: String, _ shape: LaunchShape, _ arguments: KernelArguments, side: Bool = false) throws {
        let function = try kernels.function(module, name)
        if shape.sharedBytes > 48 * 1024 { try kernels.allowSharedMemory(function, name: name, bytes: shape.sharedBytes) }
        try context.makeCurrent()
        let driver = context.driver
        let stream = side ? context.sideStream.handle : context.stream.handle
        try arguments.withParameterArray { (parameters) throws(CUDAError) in
            try driver.check(
                driver.cuLaunchKernel(
                    function, UInt32(shape.grid.x), UInt32(shape.grid.y), UInt32(shape.grid.z),
                    UInt32(shape.block.x), UInt32(shape.block.y), UInt32(shape.block.z), UInt32(shape.sharedBytes),
                    stream, parameters, nil),
                "cuLaunchKernel(\(name), grid \(shape.grid), block \(shape.block), shared \(shape.sharedBytes))")
        }
        if Self.synchronousLaunches {
            do { try (side ? context.sideStream : context.stream).synchronize() } catch { throw CUDAError.unsupported("\(name) failed on the device: \(error)") }
        }
    }

    /// `KITE_CUDA_SYNC=1` waits after every kernel, so a fault names the kernel that caused it.
    static let synchronousLaunches = environment("KITE_CUDA_SYNC") == "1"

    /// Sets the device error flag to "no error" (Int32.max) before a validating kernel.
    func resetErrorFlag() throws -> CUDevicePointer {
        try context.makeCurrent()
        try context.driver.check(context.driver.cuMemsetD32Async(errorFlag, UInt32(Int32.max), 1, context.stream.handle), "cuMemsetD32Async")
        return errorFlag
    }

    /// The smallest bad position a validating kernel recorded, or nil (waits for the stream).
    func readErrorFlag() throws -> Int? {
        var value: Int32 = 0
        try context.makeCurrent()
        try context.driver.check(context.driver.cuMemcpyDtoHAsync(&value, errorFlag, 4, context.stream.handle), "cuMemcpyDtoHAsync(error flag)")
        try context.stream.synchronize()
        return value == Int32.max ? nil : Int(value)
    }

    /// Element `index` of an i32 device tensor (for error messages).
    func int32Element(_ tensor: Tensor, _ index: Int) throws -> Int {
        var value: Int32 = 0
        try context.makeCurrent()
        try context.driver.check(context.driver.cuMemcpyDtoHAsync(&value, address(tensor) + CUDevicePointer(index * 4), 4, context.stream.handle), "cuMemcpyDtoHAsync")
        try context.stream.synchronize()
        return Int(value)
    }

    func requireShape(_ x: Tensor, _ shape: [Int], _ operation: String, _ name: String) throws {
        guard x.shape == shape else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "\(name) has shape \(x.shape), expected \(shape)")
        }
    }

    func requireInt32(_ x: Tensor, _ operation: String, _ name: String) throws -> Tensor {
        guard x.dtype == .i32 else {
            throw KiteTensorError.unsupportedDType(operation: operation, dtype: x.dtype, expected: "i32 \(name)")
        }
        return try onDevice(x, operation)
    }
}
