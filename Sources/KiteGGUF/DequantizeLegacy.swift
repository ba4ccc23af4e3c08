// Block decoders for the plain float types and ggml's 32-element quants (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).
// Each takes a pointer to `blocks` whole blocks and writes `blocks * blockSize` floats.
// Multi-byte fields are little-endian and unaligned (a Q4_1 block is 20 bytes).

@inline(__always)
func loadHalf(_ pointer: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
}

@inline(__always)
func loadUInt32(_ pointer: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

func decodeF16(_ input: UnsafeRawPointer, _ count: Int, _ output: UnsafeMutablePointer<Float>) {
    for index in 0..<count {
        output[index] = loadHalf(input, 2 * index)
    }
}

func decodeBF16(_ input: UnsafeRawPointer, _ count: Int, _ output: UnsafeMutablePointer<Float>) {
    for index in 0..<count {
        let bits = UInt16(littleEndian: input.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
        output[index] = Float(bitPattern: UInt32(bits) << 16)
    }
}

/// Q4_0: f16 scale `d`, 16 bytes of nibbles; element j is the low nibble of byte j, element j+16 the
/// high nibble. x = d * (q - 8).
func decodeQ4_0(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 18
        let out = output + block * 32
        let d = loadHalf(base, 0)
        let quants = base + 2
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            out[j] = d * Float(Int8(byte & 0x0F) &- 8)
            out[j + 16] = d * Float(Int8(byte >> 4) &- 8)
        }
    }
}

/// Q4_1: f16 scale `d`, f16 minimum `m`, nibbles as Q4_0. x = d * q + m.
func decodeQ4_1(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 20
        let out = output + block * 32
        let d = loadHalf(base, 0)
        let m = loadHalf(base, 2)
        let quants = base + 4
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            out[j] = d * Float(byte & 0x0F) + m
            out[j + 16] = d * Float(byte >> 4) + m
        }
    }
}

/// Q5_0: f16 `d`, u32 of fifth bits (bit j for element j), nibbles as Q4_0. x = d * (q - 16).
func decodeQ5_0(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 22
        let out = output + block * 32
        let d = loadHalf(base, 0)
        let high = loadUInt32(base, 2)
        let quants = base + 6
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            let low = UInt8(truncatingIfNeeded: (high >> UInt32(j)) & 1) << 4
            let up = UInt8(truncatingIfNeeded: (high >> UInt32(j + 16)) & 1) << 4
            out[j] = d * Float(Int8(byte & 0x0F | low) &- 16)
            out[j + 16] = d * Float(Int8(byte >> 4 | up) &- 16)
        }
    }
}

/// Q5_1: f16 `d`, f16 `m`, u32 of fifth bits, nibbles. x = d * q + m.
func decodeQ5_1(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 24
        let out = output + block * 32
        let d = loadHalf(base, 0)
        let m = loadHalf(base, 2)
        let high = loadUInt32(base, 4)
        let quants = base + 8
        for j in 0..<16 {
            let byte = quants.load(fromByteOffset: j, as: UInt8.self)
            let low = UInt8(truncatingIfNeeded: (high >> UInt32(j)) & 1) << 4
            let up = UInt8(truncatingIfNeeded: (high >> UInt32(j + 16)) & 1) << 4
            out[j] = d * Float(byte & 0x0F | low) + m
            out[j + 16] = d * Float(byte >> 4 | up) + m
        }
    }
}

/// Q8_0: f16 `d`, 32 signed bytes. x = q * d.
func decodeQ8_0(_ input: UnsafeRawPointer, _ blocks: Int, _ output: UnsafeMutablePointer<Float>) {
    for block in 0..<blocks {
        let base = input + block * 34
        let out = output + block * 32
        let d = loadHalf(base, 0)
        let quants = base + 2
        for j in 0..<32 {
            out[j] = Float(quants.load(fromByteOffset: j, as: Int8.self)) * d
        }
    }
}
