// Block decoders for ggml's K-quants: super-blocks of 256 elements split into sub-blocks of 16 or 32,
// each sub-block with its own quantised scale (and minimum).

/// Q2_K (84 bytes): 16 bytes of 4-bit scale | 4-bit min per 16-element sub-block, 64 bytes of 2-bit
/// quants, f16 `d`, f16 `dmin`. Each half of 128 elements reads 32 bytes; the four 32-element runs of a
/// half take bits 0-1, 2-3, 4-5, 6-7 of those bytes. x = (d * scale) * q - (dmin * min).
func decodeQ2_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 84
        let out = output + block * 256
        let d = loadHalf(base, 80)
        let dmin = loadHalf(base, 82)
        let quants = base + 16
        for half in 0..<2 {
            for shift in 0..<4 {
                let start = half * 128 + shift * 32
                for sub in 0..<2 {
                    let packed = base.load(fromByteOffset: (start >> 4) + sub, as: UInt8.self)
                    let scale = d * Float(packed & 0x0F)
                    let minimum = dmin * Float(packed >> 4)
                    for e in (sub * 16)..<(sub * 16 + 16) {
                        let q = (quants.load(fromByteOffset: half * 32 + e, as: UInt8.self) >> UInt8(2 * shift)) & 3
                        out[start + e] = scale * Float(q) - minimum
                    }
                }
            }
        }
    }
}

/// Q3_K (110 bytes): 32 bytes of high bits, 64 bytes of 2-bit low quants (laid out as Q2_K), 12 bytes
/// of sixteen 6-bit signed scales, f16 `d`. Element p of a 32-element run r takes bit r of high byte
/// p % 32; a clear bit subtracts 4. x = (d * (scale - 32)) * q.
func decodeQ3_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 110
        let out = output + block * 256
        let d = loadHalf(base, 108)
        let quants = base + 32
        let packedScales = base + 96
        var scales = SIMD16<Float>()
        for i in 0..<16 {
            let lowByte = packedScales.load(fromByteOffset: i & 7, as: UInt8.self)
            let low = i < 8 ? lowByte & 0x0F : lowByte >> 4
            let high = (packedScales.load(fromByteOffset: 8 + (i & 3), as: UInt8.self) >> UInt8(2 * (i >> 2))) & 3
            scales[i] = d * Float(Int8(bitPattern: low | high << 4) &- 32)
        }
        for half in 0..<2 {
            for shift in 0..<4 {
                let run = half * 4 + shift
                let start = run * 32
                for e in 0..<32 {
                    let low = Int8((quants.load(fromByteOffset: half * 32 + e, as: UInt8.self) >> UInt8(2 * shift)) & 3)
                    let high = (base.load(fromByteOffset: e, as: UInt8.self) >> UInt8(run)) & 1
                    let q = high == 0 ? low &- 4 : low
                    out[start + e] = scales[(start + e) >> 4] * Float(q)
                }
            }
        }
    }
}

/// The eight 6-bit scales and minimums of a Q4_K/Q5_K super-block, packed in 12 bytes: bytes 0-3 hold
/// scales 0-3 (low 6 bits), bytes 4-7 minimums 0-3; scales and minimums 4-7 take their low 4 bits from
/// bytes 8-11 and their top 2 bits from the top bits of bytes 0-3 / 4-7.
@inline(__always)
func kQuantScaleMin(_ packed: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, minimum: UInt8) {
    if j < 4 {
        return (packed.load(fromByteOffset: j, as: UInt8.self) & 0x3F,
                packed.load(fromByteOffset: j + 4, as: UInt8.self) & 0x3F)
    }
    let mixed = packed.load(fromByteOffset: j + 4, as: UInt8.self)
    let scaleTop = packed.load(fromByteOffset: j - 4, as: UInt8.self) >> 6
    let minimumTop = packed.load(fromByteOffset: j, as: UInt8.self) >> 6
    return (mixed & 0x0F | scaleTop << 4, mixed >> 4 | minimumTop << 4)
}

/// Q4_K (144 bytes): f16 `d`, f16 `dmin`, 12 bytes of scales/minimums, 128 bytes of nibbles. Sub-block
/// 2c takes the low nibbles of bytes 32c..<32c+32, sub-block 2c+1 their high nibbles.
/// x = (d * scale) * q - (dmin * min).
func decodeQ4_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 144
        let out = output + block * 256
        let d = loadHalf(base, 0)
        let dmin = loadHalf(base, 2)
        let quants = base + 16
        for chunk in 0..<4 {
            let (scaleLow, minLow) = kQuantScaleMin(base + 4, 2 * chunk)
            let (scaleHigh, minHigh) = kQuantScaleMin(base + 4, 2 * chunk + 1)
            let d1 = d * Float(scaleLow), m1 = dmin * Float(minLow)
            let d2 = d * Float(scaleHigh), m2 = dmin * Float(minHigh)
            let bytes = quants + chunk * 32
            let lowOut = out + chunk * 64
            let highOut = lowOut + 32
            for e in 0..<32 {
                let byte = bytes.load(fromByteOffset: e, as: UInt8.self)
                lowOut[e] = d1 * Float(byte & 0x0F) - m1
                highOut[e] = d2 * Float(byte >> 4) - m2
            }
        }
    }
}

/// Q5_K (176 bytes): as Q4_K with 32 bytes of fifth bits after the scales (sub-block j takes bit j of
/// byte e), then the nibbles.
func decodeQ5_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 176
        let out = output + block * 256
        let d = loadHalf(base, 0)
        let dmin = loadHalf(base, 2)
        let highBits = base + 16
        let quants = base + 48
        for chunk in 0..<4 {
            let (scaleLow, minLow) = kQuantScaleMin(base + 4, 2 * chunk)
            let (scaleHigh, minHigh) = kQuantScaleMin(base + 4, 2 * chunk + 1)
            let d1 = d * Float(scaleLow), m1 = dmin * Float(minLow)
            let d2 = d * Float(scaleHigh), m2 = dmin * Float(minHigh)
            let bytes = quants + chunk * 32
            let lowOut = out + chunk * 64
            let highOut = lowOut + 32
            let lowShift = UInt8(2 * chunk), highShift = UInt8(2 * chunk + 1)
            for e in 0..<32 {
                let byte = bytes.load(fromByteOffset: e, as: UInt8.self)
                let fifth = highBits.load(fromByteOffset: e, as: UInt8.self)
                let low = byte & 0x0F | ((fifth >> lowShift) & 1) << 4
                let high = byte >> 4 | ((fifth >> highShift) & 1) << 4
                lowOut[e] = d1 * Float(low) - m1
                highOut[e] = d2 * Float(high) - m2
            }
        }
    }
}

/// Q6_K (210 bytes): 128 bytes of low nibbles, 64 bytes of 2-bit high parts, sixteen signed 8-bit scales,
/// f16 `d`. Each half of 128 elements uses 64 low bytes and 32 high bytes: element l (l < 32) of the four
/// 32-element runs takes the low nibble of byte l / l+32, then the high nibble of byte l / l+32, and bits
/// 0-1 / 2-3 / 4-5 / 6-7 of high byte l. x = (d * scale) * (q - 32).
func decodeQ6_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 210
        let out = output + block * 256
        let d = loadHalf(base, 208)
        for half in 0..<2 {
            let low = base + half * 64
            let high = base + 128 + half * 32
            let scales = base + 192 + half * 8
            let halfOut = out + half * 128
            for sub in 0..<2 {
                let s0 = d * Float(scales.load(fromByteOffset: sub, as: Int8.self))
                let s1 = d * Float(scales.load(fromByteOffset: sub + 2, as: Int8.self))
                let s2 = d * Float(scales.load(fromByteOffset: sub + 4, as: Int8.self))
                let s3 = d * Float(scales.load(fromByteOffset: sub + 6, as: Int8.self))
                for l in (sub * 16)..<(sub * 16 + 16) {
                    let a = low.load(fromByteOffset: l, as: UInt8.self)
                    let b = low.load(fromByteOffset: l + 32, as: UInt8.self)
                    let h = high.load(fromByteOffset: l, as: UInt8.self)
                    let q0 = Int8(bitPattern: a & 0x0F | (h & 3) << 4) &- 32
                    let q1 = Int8(bitPattern: b & 0x0F | ((h >> 2) & 3) << 4) &- 32
                    let q2 = Int8(bitPattern: a >> 4 | ((h >> 4) & 3) << 4) &- 32
                    let q3 = Int8(bitPattern: b >> 4 | (h >> 6) << 4) &- 32
                    halfOut[l] = s0 * Float(q0)
                    halfOut[l + 32] = s1 * Float(q1)
                    halfOut[l + 64] = s2 * Float(q2)
                    halfOut[l + 96] = s3 * Float(q3)
                }
            }
        }
    }
}

/// Q8_K (292 bytes): f32 `d`, 256 signed bytes, 16 i16 block sums (only used by dot products).
/// x = d * q.
func decodeQ8_K(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 292
        let out = output + block * 256
        let d = Float(bitPattern: loadUInt32(base, 0))
        for e in 0..<256 {
            out[e] = d * Float(base.load(fromByteOffset: 4 + e, as: Int8.self))
        }
    }
}
