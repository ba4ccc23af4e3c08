/// Converts GGUF tensor data to Float32.
///
/// Results are bit-identical to gguf-py's `gguf.quants.dequantize` (which transformers uses to load a
/// GGUF): every block is decoded with the same Float32 operations in the same order (e.g. `d * q + m`
/// for Q4_1, `(d * scale) * q - (dmin * min)` for Q4_K), never fused into an FMA.
public enum GGUFDequantizer {
    /// Dequantizes `destination.count` elements from `source`, which holds whole blocks of `type`.
    ///
    /// - Throws: `unsupportedDequantization` when the type cannot be dequantized or the count is not
    ///   a whole number of blocks; `invalidValue` when `source` holds fewer bytes than those blocks need.
    public static func dequantize(_ source: UnsafeRawBufferPointer, type: GGMLType,
                                  into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard type.isDequantizable else {
            throw GGUFError(.unsupportedDequantization, path: nil, "dequantizing \(type) is not supported")
        }
        guard destination.count % type.blockSize == 0 else {
            throw GGUFError(.unsupportedDequantization, path: nil,
                            "\(destination.count) elements are not a whole number of \(type) blocks of \(type.blockSize)")
        }
        let blocks = destination.count / type.blockSize
        let (needed, overflow) = blocks.multipliedReportingOverflow(by: type.typeSize)
        guard !overflow, needed <= source.count else {
            throw GGUFError(.invalidValue, path: nil,
                            "\(blocks) blocks of \(type) need \(blocks) x \(type.typeSize) bytes, the source has \(source.count)")
        }
        guard blocks > 0, let input = source.baseAddress, let output = destination.baseAddress else { return }
        decode(input, type: type, blocks: blocks, into: output)
    }

    /// Dispatches to the block decoder of `type`; the caller has checked sizes and support.
    static func decode(_ input: UnsafeRawPointer, type: GGMLType, blocks: Int, into output: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32: UnsafeMutableRawPointer(output).copyMemory(from: input, byteCount: blocks * 4)
        case .f16: decodeF16(input, blocks, output)
        case .bf16: decodeBF16(input, blocks, output)
        case .q4_0: decodeQ4_0(input, blocks, output)
        case .q4_1: decodeQ4_1(input, blocks, output)
        case .q5_0: decodeQ5_0(input, blocks, output)
        case .q5_1: decodeQ5_1(input, blocks, output)
        case .q8_0: decodeQ8_0(input, blocks, output)
        case .q2_K: decodeQ2_K(input, blocks, output)
        case .q3_K: decodeQ3_K(input, blocks, output)
        case .q4_K: decodeQ4_K(input, blocks, output)
        case .q5_K: decodeQ5_K(input, blocks, output)
        case .q6_K: decodeQ6_K(input, blocks, output)
        case .q8_K: decodeQ8_K(input, blocks, output)
        default: break
        }
    }
}
