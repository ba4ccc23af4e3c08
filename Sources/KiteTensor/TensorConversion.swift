/// Bulk conversions between fp32 buffers and host tensors of every dtype.
public enum TensorConversion {
    /// Writes `source` into `tensor`, converting fp32 to its dtype (round-to-nearest-even, NaN-safe).
    public static func store(_ source: UnsafeBufferPointer<Float>, into tensor: Tensor) {
        precondition(tensor.device == .cpu && source.count == tensor.count, "store \(source.count) floats into \(tensor)")
        let count = source.count
        let raw = tensor.rawPointer
        switch tensor.dtype {
        case .f32:
            if let base = source.baseAddress { raw.copyMemory(from: base, byteCount: count * 4) }
        case .bf16:
            let out = raw.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { out[i] = FloatConversion.bf16Bits(source[i]) }
        case .f16:
            let out = raw.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { out[i] = FloatConversion.f16Bits(source[i]) }
        case .fp8e4m3:
            let out = raw.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = FloatConversion.e4m3Bits(source[i]) }
        case .fp8e5m2:
            let out = raw.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = FloatConversion.e5m2Bits(source[i]) }
        case .i32:
            let out = raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { out[i] = Int32(source[i].rounded()) }
        case .i64:
            let out = raw.assumingMemoryBound(to: Int64.self)
            for i in 0..<count { out[i] = Int64(source[i].rounded()) }
        case .u8:
            let out = raw.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { out[i] = UInt8(max(0, min(255, source[i].rounded()))) }
        }
    }

    /// Reads `tensor` into `destination` as fp32.
    public static func load(_ tensor: Tensor, into destination: UnsafeMutableBufferPointer<Float>) {
        precondition(tensor.device == .cpu && destination.count >= tensor.count, "load \(tensor) into \(destination.count) floats")
        let count = tensor.count
        let raw = UnsafeRawPointer(tensor.rawPointer)
        switch tensor.dtype {
        case .f32:
            if let base = destination.baseAddress { base.update(from: raw.assumingMemoryBound(to: Float.self), count: count) }
        case .bf16:
            let source = raw.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { destination[i] = FloatConversion.float(bf16Bits: source[i]) }
        case .f16:
            let source = raw.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { destination[i] = FloatConversion.float(f16Bits: source[i]) }
        case .fp8e4m3:
            let source = raw.assumingMemoryBound(to: UInt8.self)
            FloatConversion.e4m3Table.withUnsafeBufferPointer { table in
                for i in 0..<count { destination[i] = table[Int(source[i])] }
            }
        case .fp8e5m2:
            let source = raw.assumingMemoryBound(to: UInt8.self)
            FloatConversion.e5m2Table.withUnsafeBufferPointer { table in
                for i in 0..<count { destination[i] = table[Int(source[i])] }
            }
        case .i32:
            let source = raw.assumingMemoryBound(to: Int32.self)
            for i in 0..<count { destination[i] = Float(source[i]) }
        case .i64:
            let source = raw.assumingMemoryBound(to: Int64.self)
            for i in 0..<count { destination[i] = Float(source[i]) }
        case .u8:
            let source = raw.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { destination[i] = Float(source[i]) }
        }
    }
}
