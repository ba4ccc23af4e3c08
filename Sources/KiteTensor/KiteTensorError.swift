/// Errors from tensor operations: a shape, dtype or index that an operation cannot accept.
public enum KiteTensorError: Error, CustomStringConvertible, Sendable, Equatable {
    case shapeMismatch(operation: String, detail: String)
    case unsupportedDType(operation: String, dtype: DType, expected: String)
    case indexOutOfRange(operation: String, index: Int, limit: Int, position: Int)
    case invalidArgument(operation: String, detail: String)
    case deviceUnavailable(String)

    public var description: String {
        switch self {
        case .shapeMismatch(let operation, let detail):
            "\(operation): shape mismatch: \(detail)"
        case .unsupportedDType(let operation, let dtype, let expected):
            "\(operation): dtype \(dtype) is not supported here (expected \(expected))"
        case .indexOutOfRange(let operation, let index, let limit, let position):
            "\(operation): index \(index) at position \(position) is out of range 0..<\(limit)"
        case .invalidArgument(let operation, let detail):
            "\(operation): \(detail)"
        case .deviceUnavailable(let detail):
            "device unavailable: \(detail)"
        }
    }
}
