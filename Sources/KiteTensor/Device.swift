/// Where a tensor's memory lives.
public enum Device: Sendable, Hashable, CustomStringConvertible {
    case cpu
    /// A CUDA device by ordinal.
    case cuda(Int)

    public var description: String {
        switch self {
        case .cpu: "cpu"
        case .cuda(let ordinal): "cuda:\(ordinal)"
        }
    }
}
