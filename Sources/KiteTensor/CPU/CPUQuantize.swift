/// fp8 block quantisation (one fp32 scale per square tile), the reference the CUDA kernels match bit for bit.
extension CPUBackend {
    /// The largest finite value of an fp8 dtype, or nil for any other dtype.
    static func fp8Maximum(_ dtype: DType) -> Float? {
        switch dtype {
        case .fp8e4m3: FloatConversion.e4m3Max
        case .fp8e5m2: 57344
        default: nil
        }
    }

    /// Checks a block-quantisation request and returns the target dtype's largest finite value.
    public static func validateBlockQuantize(_ x: Tensor, blockSize: Int, to dtype: DType) throws -> Float {
        guard let maximum = fp8Maximum(dtype) else {
            throw KiteTensorError.unsupportedDType(operation: "blockQuantize", dtype: dtype, expected: "fp8e4m3 or fp8e5m2")
        }
        guard x.rank == 2, blockSize > 0 else {
            throw KiteTensorError.shapeMismatch(operation: "blockQuantize", detail: "input \(x.shape) with block size \(blockSize); expected a rank-2 tensor and a positive block size")
        }
        return maximum
    }

    public func blockQuantize(_ x: Tensor, blockSize: Int, to dtype: DType) throws -> (values: Tensor, scales: Tensor) {
        try requireHost(x, "blockQuantize")
        let maximum = try Self.validateBlockQuantize(x, blockSize: blockSize, to: dtype)
        let (rows, columns) = (x.shape[0], x.shape[1])
        let (blockRows, blockColumns) = ((rows + blockSize - 1) / blockSize, (columns + blockSize - 1) / blockSize)
        let input = x.toFloats()
        let values = Tensor(zeros: [rows, columns], dtype: dtype)
        let scales = Tensor(zeros: [blockRows, blockColumns])
        let (out, scaleValues) = (values.rawPointer.assumingMemoryBound(to: UInt8.self), scales.floats)
        for blockRow in 0..<blockRows {
            for blockColumn in 0..<blockColumns {
                let rowRange = (blockRow * blockSize)..<min(rows, (blockRow + 1) * blockSize)
                let columnRange = (blockColumn * blockSize)..<min(columns, (blockColumn + 1) * blockSize)
                var amax: Float = 0
                for r in rowRange {
                    // `>` skips NaN, as the GPU's comparison does.
                    for c in columnRange where abs(input[r * columns + c]) > amax { amax = abs(input[r * columns + c]) }
                }
                let scale = amax > 0 ? amax / maximum : 1
                scaleValues[blockRow * blockColumns + blockColumn] = scale
                for r in rowRange {
                    for c in columnRange {
                        let v = input[r * columns + c] / scale
                        out[r * columns + c] = dtype == .fp8e4m3 ? FloatConversion.e4m3Bits(v) : FloatConversion.e5m2Bits(v)
                    }
                }
            }
        }
        return (values, scales)
    }

    public func blockDequantize(values: Tensor, scales: Tensor, blockSize: Int, to dtype: DType) throws -> Tensor {
        try requireHost(values, "blockDequantize")
        try requireFloat32(scales, "blockDequantize")
        guard values.dtype == .fp8e4m3 || values.dtype == .fp8e5m2 else {
            throw KiteTensorError.unsupportedDType(operation: "blockDequantize", dtype: values.dtype, expected: "fp8e4m3 or fp8e5m2 values")
        }
        guard values.rank == 2, blockSize > 0,
            scales.shape == [(values.shape[0] + blockSize - 1) / blockSize, (values.shape[1] + blockSize - 1) / blockSize]
        else {
            throw KiteTensorError.shapeMismatch(operation: "blockDequantize", detail: "values \(values.shape), scales \(scales.shape), block size \(blockSize)")
        }
        let (rows, columns) = (values.shape[0], values.shape[1])
        let blockColumns = scales.shape[1]
        let (input, scaleValues) = (values.rawPointer.assumingMemoryBound(to: UInt8.self), scales.floats)
        var output = [Float](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for c in 0..<columns {
                let bits = input[r * columns + c]
                let v = values.dtype == .fp8e4m3 ? FloatConversion.float(e4m3Bits: bits) : FloatConversion.float(e5m2Bits: bits)
                output[r * columns + c] = v * scaleValues[(r / blockSize) * blockColumns + c / blockSize]
            }
        }
        return Tensor(output, shape: [rows, columns], dtype: dtype)
    }
}
