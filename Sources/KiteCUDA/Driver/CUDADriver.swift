/// Opaque driver handles (`CUcontext`, `CUstream`, `CUevent`, `CUmodule`, `CUfunction`, `CUmemoryPool`).
typealias CUHandle = UnsafeMutableRawPointer
/// A device address.
typealias CUDevicePointer = UInt64

/// The CUDA driver API, loaded from `libcuda.so.1` at run time. Each call goes through `check`, which turns
/// a non-zero `CUresult` into `CUDAError.driver` with the call's name and `cuGetErrorString`'s message.
///
/// Symbols are looked up under the ABI names `cuda.h` maps the API names to (`cuMemAlloc` is
/// `cuMemAlloc_v2`); `cuEventElapsedTime_v2` falls back to the original name on older drivers.
final class CUDADriver: @unchecked Sendable {
    let library: DynamicLibrary

    let cuInit: @convention(c) (UInt32) -> Int32
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    let cuGetErrorString: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32
    let cuGetErrorName: @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Int32
    let cuDeviceTotalMem: @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Int32
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUHandle?>, Int32) -> Int32
    let cuCtxSetCurrent: @convention(c) (CUHandle?) -> Int32
    let cuCtxGetCurrent: @convention(c) (UnsafeMutablePointer<CUHandle?>) -> Int32
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUHandle?>, UInt32) -> Int32
    let cuStreamSynchronize: @convention(c) (CUHandle?) -> Int32
    let cuStreamDestroy: @convention(c) (CUHandle?) -> Int32
    let cuStreamWaitEvent: @convention(c) (CUHandle?, CUHandle?, UInt32) -> Int32
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUHandle?>, UInt32) -> Int32
    let cuEventRecord: @convention(c) (CUHandle?, CUHandle?) -> Int32
    let cuEventSynchronize: @convention(c) (CUHandle?) -> Int32
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUHandle?, CUHandle?) -> Int32
    let cuEventDestroy: @convention(c) (CUHandle?) -> Int32
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUDevicePointer>, Int) -> Int32
    let cuMemFree: @convention(c) (CUDevicePointer) -> Int32
    let cuMemAllocAsync: @convention(c) (UnsafeMutablePointer<CUDevicePointer>, Int, CUHandle?) -> Int32
    let cuMemFreeAsync: @convention(c) (CUDevicePointer, CUHandle?) -> Int32
    let cuDeviceGetDefaultMemPool: @convention(c) (UnsafeMutablePointer<CUHandle?>, Int32) -> Int32
    let cuMemPoolSetAttribute: @convention(c) (CUHandle?, Int32, UnsafeMutableRawPointer) -> Int32
    let cuMemPoolGetAttribute: @convention(c) (CUHandle?, Int32, UnsafeMutableRawPointer) -> Int32
    let cuMemPoolTrimTo: @convention(c) (CUHandle?, Int) -> Int32
    let cuMemHostAlloc: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>, Int, UInt32) -> Int32
    let cuMemFreeHost: @convention(c) (UnsafeMutableRawPointer?) -> Int32
    let cuMemGetInfo: @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Int32
    let cuMemcpyHtoDAsync: @convention(c) (CUDevicePointer, UnsafeRawPointer, Int, CUHandle?) -> Int32
    let cuMemcpyDtoHAsync: @convention(c) (UnsafeMutableRawPointer, CUDevicePointer, Int, CUHandle?) -> Int32
    let cuMemcpyDtoDAsync: @convention(c) (CUDevicePointer, CUDevicePointer, Int, CUHandle?) -> Int32
    let cuMemsetD8Async: @convention(c) (CUDevicePointer, UInt8, Int, CUHandle?) -> Int32
    let cuMemsetD32Async: @convention(c) (CUDevicePointer, UInt32, Int, CUHandle?) -> Int32
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUHandle?>, UnsafeRawPointer) -> Int32
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUHandle?>, CUHandle?, UnsafePointer<CChar>) -> Int32
    let cuFuncSetAttribute: @convention(c) (CUHandle?, Int32, Int32) -> Int32
    let cuFuncGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, CUHandle?) -> Int32
    let cuStreamBeginCapture: @convention(c) (CUHandle?, Int32) -> Int32
    let cuStreamEndCapture: @convention(c) (CUHandle?, UnsafeMutablePointer<CUHandle?>) -> Int32
    let cuGraphInstantiateWithFlags: @convention(c) (UnsafeMutablePointer<CUHandle?>, CUHandle?, UInt64) -> Int32
    let cuGraphLaunch: @convention(c) (CUHandle?, CUHandle?) -> Int32
    let cuGraphExecDestroy: @convention(c) (CUHandle?) -> Int32
    let cuGraphDestroy: @convention(c) (CUHandle?) -> Int32
    /// `cuProfilerStart` / `cuProfilerStop`: bracket what an external profiler started with
    /// `--profile-from-start off` records (nil where the driver lacks them).
    let cuProfilerStart: (@convention(c) () -> Int32)?
    let cuProfilerStop: (@convention(c) () -> Int32)?
    let cuLaunchKernel: @convention(c) (
        CUHandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUHandle?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32

    /// The candidates `libcuda.so.1` is looked for under: the loader's search path, then the usual driver folders.
    static let candidates = [
        "libcuda.so.1", "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1",
        "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1",
    ]

    /// Loads the driver library and calls `cuInit`.
    init() throws(CUDAError) {
        var candidates = Self.candidates
        if let path = environment("KITE_CUDA_DRIVER_PATH") { candidates.insert(path, at: 0) }
        let library = try DynamicLibrary.open("libcuda.so.1", candidates: candidates)
        self.library = library
        cuInit = try library.symbol("cuInit")
        cuDriverGetVersion = try library.symbol("cuDriverGetVersion")
        cuGetErrorString = try library.symbol("cuGetErrorString")
        cuGetErrorName = try library.symbol("cuGetErrorName")
        cuDeviceGetCount = try library.symbol("cuDeviceGetCount")
        cuDeviceGet = try library.symbol("cuDeviceGet")
        cuDeviceGetName = try library.symbol("cuDeviceGetName")
        cuDeviceGetAttribute = try library.symbol("cuDeviceGetAttribute")
        cuDeviceTotalMem = try library.symbol("cuDeviceTotalMem_v2")
        cuDevicePrimaryCtxRetain = try library.symbol("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try library.symbol("cuCtxSetCurrent")
        cuCtxGetCurrent = try library.symbol("cuCtxGetCurrent")
        cuStreamCreate = try library.symbol("cuStreamCreate")
        cuStreamSynchronize = try library.symbol("cuStreamSynchronize")
        cuStreamDestroy = try library.symbol("cuStreamDestroy_v2")
        cuStreamWaitEvent = try library.symbol("cuStreamWaitEvent")
        cuEventCreate = try library.symbol("cuEventCreate")
        cuEventRecord = try library.symbol("cuEventRecord")
        cuEventSynchronize = try library.symbol("cuEventSynchronize")
        cuEventElapsedTime = try library.symbol(anyOf: ["cuEventElapsedTime_v2", "cuEventElapsedTime"])
        cuEventDestroy = try library.symbol("cuEventDestroy_v2")
        cuMemAlloc = try library.symbol("cuMemAlloc_v2")
        cuMemFree = try library.symbol("cuMemFree_v2")
        cuMemAllocAsync = try library.symbol("cuMemAllocAsync")
        cuMemFreeAsync = try library.symbol("cuMemFreeAsync")
        cuDeviceGetDefaultMemPool = try library.symbol("cuDeviceGetDefaultMemPool")
        cuMemPoolSetAttribute = try library.symbol("cuMemPoolSetAttribute")
        cuMemPoolGetAttribute = try library.symbol("cuMemPoolGetAttribute")
        cuMemPoolTrimTo = try library.symbol("cuMemPoolTrimTo")
        cuMemHostAlloc = try library.symbol("cuMemHostAlloc")
        cuMemFreeHost = try library.symbol("cuMemFreeHost")
        cuMemGetInfo = try library.symbol("cuMemGetInfo_v2")
        cuMemcpyHtoDAsync = try library.symbol("cuMemcpyHtoDAsync_v2")
        cuMemcpyDtoHAsync = try library.symbol("cuMemcpyDtoHAsync_v2")
        cuMemcpyDtoDAsync = try library.symbol("cuMemcpyDtoDAsync_v2")
        cuMemsetD8Async = try library.symbol("cuMemsetD8Async")
        cuMemsetD32Async = try library.symbol("cuMemsetD32Async")
        cuModuleLoadData = try library.symbol("cuModuleLoadData")
        cuModuleGetFunction = try library.symbol("cuModuleGetFunction")
        cuFuncSetAttribute = try library.symbol("cuFuncSetAttribute")
        cuFuncGetAttribute = try library.symbol("cuFuncGetAttribute")
        cuLaunchKernel = try library.symbol("cuLaunchKernel")
        cuStreamBeginCapture = try library.symbol(anyOf: ["cuStreamBeginCapture_v2", "cuStreamBeginCapture"])
        cuStreamEndCapture = try library.symbol("cuStreamEndCapture")
        cuGraphInstantiateWithFlags = try library.symbol("cuGraphInstantiateWithFlags")
        cuGraphLaunch = try library.symbol("cuGraphLaunch")
        cuGraphExecDestroy = try library.symbol("cuGraphExecDestroy")
        cuGraphDestroy = try library.symbol("cuGraphDestroy")
        cuProfilerStart = library.optionalSymbol("cuProfilerStart")
        cuProfilerStop = library.optionalSymbol("cuProfilerStop")
        try check(cuInit(0), "cuInit")
    }

    /// Throws `CUDAError.driver` for a failed call.
    func check(_ result: Int32, _ call: @autoclosure () -> String) throws(CUDAError) {
        guard result != 0 else { return }
        throw .driver(call: call(), code: result, name: errorName(result), message: errorString(result))
    }

    func errorString(_ result: Int32) -> String {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorString(result, &text) == 0, let text else { return "unknown error" }
        return String(cString: text)
    }

    func errorName(_ result: Int32) -> String {
        var text: UnsafePointer<CChar>?
        guard cuGetErrorName(result, &text) == 0, let text else { return "CUDA_ERROR_\(result)" }
        return String(cString: text)
    }

    /// The driver's CUDA version as (major, minor), e.g. (13, 0).
    func version() throws(CUDAError) -> (major: Int, minor: Int) {
        var value: Int32 = 0
        try check(cuDriverGetVersion(&value), "cuDriverGetVersion")
        return (Int(value) / 1000, (Int(value) % 1000) / 10)
    }

    static let outOfMemoryCode: Int32 = 2
}

/// `CUdevice_attribute` values Kite reads.
enum DeviceAttribute: Int32 {
    case multiprocessorCount = 16
    case l2CacheSize = 38
    case computeCapabilityMajor = 75
    case computeCapabilityMinor = 76
    case maxSharedMemoryPerBlockOptin = 97
    case memoryPoolsSupported = 115
}
