/// Element types a `Tensor` can hold.
///
/// Floating-point math on the CPU backend is always fp32; bf16, f16 and the fp8 formats are storage
/// formats that convert to and from fp32 with round-to-nearest-even.
public enum DType: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case f32
    case bf16
    case f16
    /// OCP fp8 E4M3 ("e4m3fn"): no infinities, max 448, NaN is S.1111.111.
    case fp8e4m3
    /// OCP fp8 E5M2: IEEE-like, max 57344, with infinities and NaNs.
    case fp8e5m2
    case i32
    case i64
    case u8

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f32, .i32: 4
        case .bf16, .f16: 2
        case .fp8e4m3, .fp8e5m2, .u8: 1
        case .i64: 8
        }
    }

    /// Whether the type stores real numbers (as opposed to integers).
    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .bf16, .f16, .fp8e4m3, .fp8e5m2: true
        case .i32, .i64, .u8: false
        }
    }

    public var description: String { rawValue }

    /// The dtype named the way safetensors headers name it (`F32`, `BF16`, `F8_E4M3`, ...), or nil.
    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .f32
        case "BF16": self = .bf16
        case "F16": self = .f16
        case "F8_E4M3": self = .fp8e4m3
        case "F8_E5M2": self = .fp8e5m2
        case "I32": self = .i32
        case "I64": self = .i64
        case "U8": self = .u8
        default: return nil
        }
    }

    /// The name safetensors headers use for this dtype.
    public var safetensorsName: String {
        switch self {
        case .f32: "F32"
        case .bf16: "BF16"
        case .f16: "F16"
        case .fp8e4m3: "F8_E4M3"
        case .fp8e5m2: "F8_E5M2"
        case .i32: "I32"
        case .i64: "I64"
        case .u8: "U8"
        }
    }
}
