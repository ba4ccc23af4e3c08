/// Everything that can go wrong between Kite and a GPU, each case naming the library call and the
/// library's own explanation, so a failure reads as one line that says what to fix.
public enum CUDAError: Error, CustomStringConvertible, Sendable {
    /// A shared library was not found or would not load; `tried` lists what was attempted.
    case libraryNotFound(library: String, tried: [String])
    /// A library loaded but lacks a function Kite needs (too old a version).
    case symbolMissing(library: String, symbol: String)
    /// A CUDA driver API call failed.
    case driver(call: String, code: Int32, name: String, message: String)
    /// An NVRTC call failed; `log` holds the compiler's output for compilation errors.
    case nvrtc(call: String, code: Int32, message: String, log: String)
    /// A cuBLASLt call failed.
    case cublas(call: String, code: Int32, message: String)
    /// An NCCL call failed.
    case nccl(call: String, code: Int32, message: String)
    /// The driver loaded but there is no device with this ordinal.
    case noDevice(String)
    /// An allocation did not fit; the report says what was in use.
    case outOfMemory(bytes: Int, report: MemoryReport)
    /// A request the CUDA backend cannot serve (dtype, shape, device capability).
    case unsupported(String)

    public var description: String {
        switch self {
        case .libraryNotFound(let library, let tried):
            if library == "libcuda.so.1" {
                return "no usable CUDA driver: libcuda.so.1 not found (tried \(tried.joined(separator: "; ")))"
            }
            return "\(library) not found (tried \(tried.joined(separator: "; ")))"
        case .symbolMissing(let library, let symbol):
            return "\(library) has no symbol \(symbol) (library too old?)"
        case .driver(let call, let code, let name, let message):
            return "\(call) failed: \(name) (\(code)): \(message)"
        case .nvrtc(let call, let code, let message, let log):
            return log.isEmpty ? "\(call) failed: \(message) (\(code))" : "\(call) failed: \(message) (\(code))\n\(log)"
        case .cublas(let call, let code, let message):
            return "\(call) failed: \(message) (\(code))"
        case .nccl(let call, let code, let message):
            return "\(call) failed: \(message) (\(code))"
        case .noDevice(let detail):
            return "no usable CUDA device: \(detail)"
        case .outOfMemory(let bytes, let report):
            return "out of GPU memory allocating \(bytes) bytes (\(report))"
        case .unsupported(let detail):
            return "CUDA backend: \(detail)"
        }
    }
}
