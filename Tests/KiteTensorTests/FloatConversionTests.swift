import Testing
@testable import KiteTensor

/// Hand-computed encodings; the rounding cases sit exactly halfway between two representable values.
struct FloatConversionTests {
    @Test func bf16RoundsToNearestEven() {
        #expect(FloatConversion.bf16Bits(1.0) == 0x3F80)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even mantissa (1.0).
        #expect(FloatConversion.bf16Bits(1 + 0x1p-8) == 0x3F80)
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6).
        #expect(FloatConversion.bf16Bits(1 + 3 * 0x1p-8) == 0x3F82)
        #expect(FloatConversion.bf16Bits(-2.5) == 0xC020)
        #expect(FloatConversion.bf16Bits(.infinity) == 0x7F80)
        #expect(FloatConversion.float(bf16Bits: FloatConversion.bf16Bits(.nan)).isNaN)
        // The largest fp32 rounds up past bf16's largest finite value to infinity.
        #expect(FloatConversion.bf16Bits(.greatestFiniteMagnitude) == 0x7F80)
    }

    @Test func f16RoundTripsAndRounds() {
        #expect(FloatConversion.f16Bits(1.0) == 0x3C00)
        #expect(FloatConversion.f16Bits(65504) == 0x7BFF)
        #expect(FloatConversion.f16Bits(70000) == 0x7C00)
        #expect(FloatConversion.float(f16Bits: 0x0001) == 0x1p-24)
        #expect(FloatConversion.float(f16Bits: FloatConversion.f16Bits(.nan)).isNaN)
    }

    /// Expected codes checked against `torch.tensor(...).to(torch.float8_e4m3fn)` (PyTorch 2.15).
    @Test func e4m3EncodesLikePyTorch() {
        #expect(FloatConversion.e4m3Bits(1.0) == 0x38)
        #expect(FloatConversion.e4m3Bits(448) == 0x7E)
        #expect(FloatConversion.e4m3Bits(-448) == 0xFE)
        // e4m3fn saturates: beyond 448, infinity included, is 448.
        #expect(FloatConversion.e4m3Bits(464) == 0x7E)
        #expect(FloatConversion.e4m3Bits(480) == 0x7E)
        #expect(FloatConversion.e4m3Bits(-1000) == 0xFE)
        #expect(FloatConversion.e4m3Bits(.infinity) == 0x7E)
        #expect(FloatConversion.e4m3Bits(-.nan) == 0xFF)
        // Smallest subnormal 2^-9; half of it ties to even (zero), 3/2 of it ties to 2 steps.
        #expect(FloatConversion.e4m3Bits(0x1p-9) == 0x01)
        #expect(FloatConversion.e4m3Bits(0x1p-10) == 0x00)
        #expect(FloatConversion.e4m3Bits(3 * 0x1p-10) == 0x02)
        // 1.0625 is halfway between 1.0 (0x38) and 1.125 (0x39): ties to even, 0x38.
        #expect(FloatConversion.e4m3Bits(1.0625) == 0x38)
        #expect(FloatConversion.e4m3Bits(1.1875) == 0x3A)
        #expect(FloatConversion.float(e4m3Bits: 0x7F).isNaN)
        #expect(FloatConversion.float(e4m3Bits: 0x7E) == 448)
    }

    /// Expected codes checked against `.to(torch.float8_e5m2)` (PyTorch 2.15): e5m2 overflows to infinity.
    @Test func e5m2EncodesLikePyTorch() {
        #expect(FloatConversion.e5m2Bits(1.0) == 0x3C)
        #expect(FloatConversion.e5m2Bits(57344) == 0x7B)
        #expect(FloatConversion.e5m2Bits(61440) == 0x7C)
        #expect(FloatConversion.e5m2Bits(61439) == 0x7B)
        #expect(FloatConversion.e5m2Bits(70000) == 0x7C)
        #expect(FloatConversion.e5m2Bits(-.infinity) == 0xFC)
        #expect(FloatConversion.float(e5m2Bits: 0x7C) == .infinity)
        #expect(FloatConversion.float(e5m2Bits: 0x01) == 0x1p-16)
        #expect(FloatConversion.float(e5m2Bits: FloatConversion.e5m2Bits(.nan)).isNaN)
    }

    @Test func everyFp8CodeRoundTrips() {
        for code in 0...255 {
            let bits = UInt8(code)
            let e4 = FloatConversion.float(e4m3Bits: bits)
            if !e4.isNaN { #expect(FloatConversion.e4m3Bits(e4) == bits || (e4 == 0 && bits & 0x7F == 0)) }
            let e5 = FloatConversion.float(e5m2Bits: bits)
            if !e5.isNaN { #expect(FloatConversion.e5m2Bits(e5) == bits || (e5 == 0 && bits & 0x7F == 0)) }
        }
    }
}
