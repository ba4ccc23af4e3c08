import KiteTensor

extension CUDABackend {
    /// Elements per AdamW block: large enough that per-block bookkeeping is noise, small enough that a
    /// few hundred million parameters give thousands of blocks.
    static let adamChunk = 1 << 16

    public func adamw(parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, step: AdamWStep) throws {
        try adamw(parameters: [parameter], gradients: [gradient], firstMoments: [firstMoment], secondMoments: [secondMoment], step: step)
    }

    public func adamw(parameters: [Tensor], gradients: [Tensor], firstMoments: [Tensor], secondMoments: [Tensor], step: AdamWStep) throws {
        try profiler.measure(.optimizer) {
            guard gradients.count == parameters.count, firstMoments.count == parameters.count, secondMoments.count == parameters.count else {
                throw KiteTensorError.invalidArgument(operation: "adamw", detail: "\(parameters.count) parameters, \(gradients.count) gradients, \(firstMoments.count) and \(secondMoments.count) moments")
            }
            guard step.step >= 1 else {
                throw KiteTensorError.invalidArgument(operation: "adamw", detail: "step must start at 1, got \(step.step)")
            }
            guard !parameters.isEmpty else { return }
            // Table rows: param, grad, m, v, bf16 copy (or 0), element count.
            var table: [Int64] = []
            var chunks: [Int32] = []
            for index in parameters.indices {
                let tensors = [parameters[index], gradients[index], firstMoments[index], secondMoments[index]]
                for tensor in tensors {
                    guard tensor.shape == parameters[index].shape else {
                        throw KiteTensorError.shapeMismatch(operation: "adamw", detail: "parameter \(index): \(parameters[index].shape) with \(tensor.shape)")
                    }
                    guard tensor.dtype == .f32 else {
                        throw KiteTensorError.unsupportedDType(operation: "adamw", dtype: tensor.dtype, expected: "f32 parameters, gradients and moments")
                    }
                    try requireOwn(tensor, "adamw")
                }
                let copy = computeCopies.lookup(parameters[index])
                table += [parameters[index], gradients[index], firstMoments[index], secondMoments[index]].map { Int64(bitPattern: address($0)) }
                table.append(copy.map { Int64(bitPattern: address($0)) } ?? 0)
                table.append(Int64(parameters[index].count))
                for chunk in 0..<((parameters[index].count + Self.adamChunk - 1) / Self.adamChunk) {
                    chunks += [Int32(index), Int32(chunk)]
                }
                computeCopies.invalidateExcept(parameters[index], keeping: copy)
            }
            guard !chunks.isEmpty else { return }
            let tableTensor = try upload(Tensor(int64Bits: table))
            let chunkTensor = try upload(Tensor(int32: chunks))
            let (b1, b2) = (step.beta1, step.beta2)
            let biasCorrection1 = 1 - Float(integerPower(Double(b1), step.step))
            let biasCorrection2Sqrt = Float((1 - integerPower(Double(b2), step.step)).squareRoot())
            var arguments = KernelArguments()
            arguments.add(address(tableTensor)); arguments.add(address(chunkTensor)); arguments.add(int64: Self.adamChunk)
            arguments.add(b1); arguments.add(b2); arguments.add(step.epsilon)
            arguments.add(1 - step.learningRate * step.weightDecay); arguments.add(step.learningRate / biasCorrection1)
            arguments.add(biasCorrection2Sqrt); arguments.add(step.gradientScale)
            try launch(.optimizer, "kite_adamw", LaunchShape(grid: chunks.count / 2, block: 512), arguments)
        }
    }

    // MARK: Quantisation

    public func blockQuantize(_ x: Tensor, blockSize: Int, to dtype: DType) throws -> (values: Tensor, scales: Tensor) {
        try profiler.measure(.other) {
            let maximum = try CPUBackend.validateBlockQuantize(x, blockSize: blockSize, to: dtype)
            let x = try onDevice(x, "blockQuantize")
            let (rows, columns) = (x.shape[0], x.shape[1])
            let (blockRows, blockColumns) = ((rows + blockSize - 1) / blockSize, (columns + blockSize - 1) / blockSize)
            let values = try allocate([rows, columns], dtype), scales = try allocate([blockRows, blockColumns], .f32)
            guard blockRows > 0 && blockColumns > 0 else { return (values, scales) }
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "blockQuantize"))
            arguments.add(int64: rows); arguments.add(int64: columns); arguments.add(int: blockSize)
            arguments.add(address(values)); arguments.add(try dtypeCode(dtype, "blockQuantize")); arguments.add(maximum)
            arguments.add(address(scales)); arguments.add(int64: blockColumns)
            try launch(.quantize, "kite_block_quantize", LaunchShape(grid: (blockColumns, blockRows, 1), block: (256, 1, 1)), arguments)
            return (values, scales)
        }
    }

    public func blockDequantize(values: Tensor, scales: Tensor, blockSize: Int, to dtype: DType) throws -> Tensor {
        try profiler.measure(.other) {
            guard values.dtype == .fp8e4m3 || values.dtype == .fp8e5m2 else {
                throw KiteTensorError.unsupportedDType(operation: "blockDequantize", dtype: values.dtype, expected: "fp8e4m3 or fp8e5m2 values")
            }
            guard values.rank == 2, blockSize > 0,
                scales.shape == [(values.shape[0] + blockSize - 1) / blockSize, (values.shape[1] + blockSize - 1) / blockSize]
            else {
                throw KiteTensorError.shapeMismatch(operation: "blockDequantize", detail: "values \(values.shape), scales \(scales.shape), block size \(blockSize)")
            }
            let values = try onDevice(values, "blockDequantize"), scales = try float32(scales, "blockDequantize")
            let output = try allocate(values.shape, dtype)
            guard values.count > 0 else { return output }
            var arguments = KernelArguments()
            arguments.add(address(values)); arguments.add(try dtypeCode(values.dtype, "blockDequantize")); arguments.add(address(scales))
            arguments.add(int64: values.shape[0]); arguments.add(int64: values.shape[1]); arguments.add(int: blockSize)
            arguments.add(int64: scales.shape[1])
            arguments.add(address(output)); arguments.add(try dtypeCode(dtype, "blockDequantize"))
            try launch(.quantize, "kite_block_dequantize", elementwiseShape(values.count, vector: false), arguments)
            return output
        }
    }
}

/// `base` to a non-negative integer power by repeated squaring (as the CPU backend computes bias corrections).
func integerPower(_ base: Double, _ exponent: Int) -> Double {
    var result = 1.0, square = base, e = exponent
    while e > 0 {
        if e & 1 == 1 { result *= square }
        square *= square
        e >>= 1
    }
    return result
}

extension Tensor {
    /// A host i64 tensor holding raw 64-bit values (device addresses for kernel tables).
    init(int64Bits values: [Int64]) {
        self.init(zeros: [values.count], dtype: .i64)
        values.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            self.rawPointer.copyMemory(from: base, byteCount: bytes.count)
        }
    }
}
