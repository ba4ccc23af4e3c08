/// Scalar conversions between fp32 and the narrow floating-point storage formats.
///
/// Every conversion from fp32 rounds to nearest, ties to even, and keeps NaN a NaN (the sign is kept).
/// Overflow follows PyTorch's casts (2.15): bf16/f16/e5m2 overflow to infinity; e4m3 has no infinity and
/// saturates, so every value beyond ±448, infinities included, becomes ±448.
public enum FloatConversion {
    // MARK: bf16

    @inlinable
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let roundingBias: UInt32 = 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ roundingBias) >> 16)
    }

    @inlinable
    public static func float(bf16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    // MARK: f16

    @inlinable
    public static func f16Bits(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }

    @inlinable
    public static func float(f16Bits bits: UInt16) -> Float {
        Float(Float16(bitPattern: bits))
    }

    // MARK: fp8 E4M3 (e4m3fn)

    /// The largest finite e4m3 value.
    public static let e4m3Max: Float = 448

    public static func e4m3Bits(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits >> 24) & 0x80)
        let magnitude = bits & 0x7FFF_FFFF
        if value.isNaN { return sign | 0x7F }
        if magnitude >= Float(448).bitPattern { return sign | 0x7E }
        if magnitude < Float(0x1p-6).bitPattern {
            // Subnormal range: adding 2^14 leaves an fp32 whose ulp is 2^-9, the e4m3 subnormal step,
            // so the hardware add performs the round-to-nearest-even for us.
            let shifted = Float(bitPattern: magnitude) + Float(0x1p14)
            return sign | UInt8(truncatingIfNeeded: shifted.bitPattern &- Float(0x1p14).bitPattern)
        }
        // Normal: rebias the exponent (127 -> 7) and round the 23-bit mantissa to 3 bits.
        let mantissaOdd = (magnitude >> 20) & 1
        let rounded = magnitude &+ (UInt32(bitPattern: Int32(7 - 127)) << 23) &+ 0x7FFFF &+ mantissaOdd
        return sign | UInt8(truncatingIfNeeded: rounded >> 20)
    }

    public static let e4m3Table: [Float] = (0..<256).map { decodeE4M3(UInt8($0)) }

    @inlinable
    public static func float(e4m3Bits bits: UInt8) -> Float { e4m3Table[Int(bits)] }

    static func decodeE4M3(_ bits: UInt8) -> Float {
        let sign: Float = bits & 0x80 != 0 ? -1 : 1
        let exponent = Int((bits >> 3) & 0xF)
        let mantissa = Float(bits & 0x7)
        if exponent == 0xF && bits & 0x7 == 0x7 { return sign * Float.nan }
        if exponent == 0 { return sign * mantissa * Float(0x1p-9) }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    // MARK: fp8 E5M2

    public static func e5m2Bits(_ value: Float) -> UInt8 {
        let bits = value.bitPattern
        let sign = UInt8(truncatingIfNeeded: (bits >> 24) & 0x80)
        let magnitude = bits & 0x7FFF_FFFF
        if value.isNaN { return sign | 0x7F }
        // 65536 and above (infinity included) overflow; values between 57344 and 65536 round
        // up into the infinity encoding through the normal path, as IEEE rounding does.
        if magnitude >= Float(65536).bitPattern { return sign | 0x7C }
        if magnitude < Float(0x1p-14).bitPattern {
            // Subnormal step is 2^-16: adding 2^7 makes the fp32 ulp exactly that step.
            let shifted = Float(bitPattern: magnitude) + Float(0x1p7)
            return sign | UInt8(truncatingIfNeeded: shifted.bitPattern &- Float(0x1p7).bitPattern)
        }
        let mantissaOdd = (magnitude >> 21) & 1
        let rounded = magnitude &+ (UInt32(bitPattern: Int32(15 - 127)) << 23) &+ 0xFFFFF &+ mantissaOdd
        return sign | UInt8(truncatingIfNeeded: rounded >> 21)
    }

    public static let e5m2Table: [Float] = (0..<256).map { decodeE5M2(UInt8($0)) }

    @inlinable
    public static func float(e5m2Bits bits: UInt8) -> Float { e5m2Table[Int(bits)] }

    static func decodeE5M2(_ bits: UInt8) -> Float {
        let sign: Float = bits & 0x80 != 0 ? -1 : 1
        let exponent = Int((bits >> 2) & 0x1F)
        let mantissa = Float(bits & 0x3)
        if exponent == 0x1F { return bits & 0x3 == 0 ? sign * Float.infinity : sign * Float.nan }
        if exponent == 0 { return sign * mantissa * Float(0x1p-16) }
        return sign * (1 + mantissa / 4) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
    }
}
