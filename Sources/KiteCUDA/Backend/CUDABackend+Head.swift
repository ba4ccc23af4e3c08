import KiteTensor

/// The output head fused with log-softmax and entropy, a chunk of rows at a time: cuBLASLt writes the
/// chunk's logits in fp32 (bf16 operands, fp32 accumulation and output, so no rounding of logits to bf16),
/// and one block per row reduces them. Only `rows x V` fp32 logits of one chunk ever exist.
extension CUDABackend {
    /// Rows per chunk: about 1.25 GB of fp32 logits (2048 rows for a 150k vocabulary), so the products stay
    /// large; `KITE_HEAD_CHUNK_ROWS` overrides.
    func headChunkRows(vocabulary: Int, rows: Int) -> Int {
        if let override = headChunkRowsOverride { return max(1, min(override, max(rows, 1))) }
        if let text = environment("KITE_HEAD_CHUNK_ROWS"), let value = Int(text), value > 0 { return min(value, max(rows, 1)) }
        let budget = 1_250_000_000 / max(vocabulary * 4, 1)
        let rounded = budget >= 64 ? budget / 64 * 64 : max(budget, 1)
        return max(1, min(rows, rounded))
    }

    func validateHead(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float, operation: String) throws {
        guard hidden.rank == 2, weight.rank == 2, hidden.shape[1] == weight.shape[1] else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "hidden \(hidden.shape) and weight \(weight.shape); expected [T, D] and [V, D]")
        }
        guard targets.dtype == .i32, targets.shape == [hidden.shape[0]] else {
            throw KiteTensorError.shapeMismatch(operation: operation, detail: "targets \(targets), expected i32 [\(hidden.shape[0])]")
        }
        guard temperature > 0, temperature.isFinite else {
            throw KiteTensorError.invalidArgument(operation: operation, detail: "temperature must be a positive number, got \(temperature)")
        }
    }

    public func logprobsAndEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float) throws -> (logprobs: Tensor, entropy: Tensor) {
        try profiler.measure(.head) {
            try validateHead(hidden: hidden, weight: weight, targets: targets, temperature: temperature, operation: "logprobsAndEntropy")
            let (rows, vocabulary) = (hidden.shape[0], weight.shape[0])
            let hidden = try activation(hidden, "logprobsAndEntropy"), targets = try onDevice(targets, "logprobsAndEntropy")
            let weight = try converted(try onDevice(weight, "logprobsAndEntropy"), to: computeDType, keep: true, operation: "logprobsAndEntropy")
            let logprobs = try allocate([rows], .f32), entropy = try allocate([rows], .f32)
            guard rows > 0 else { return (logprobs, entropy) }
            let chunk = headChunkRows(vocabulary: vocabulary, rows: rows)
            let logits = try allocate([chunk, vocabulary], .f32)
            let flag = try resetErrorFlag()
            for start in stride(from: 0, to: rows, by: chunk) {
                let count = min(chunk, rows - start)
                let block = logits.rows(0..<count)
                try product(hidden.rows(start..<(start + count)), weight, transposeA: false, transposeB: true, into: block, alpha: 1, beta: 0)
                var arguments = KernelArguments()
                arguments.add(address(block)); arguments.add(int64: vocabulary); arguments.add(int: vocabulary)
                arguments.add(address(targets) + CUDevicePointer(start * 4)); arguments.add(temperature)
                arguments.add(address(logprobs) + CUDevicePointer(start * 4)); arguments.add(address(entropy) + CUDevicePointer(start * 4))
                arguments.add(flag)
                arguments.add(Int32(vocabulary % 4 == 0 ? 1 : 0))
                try launch(.head, "kite_softmax_stats", LaunchShape(grid: count, block: 512), arguments)
            }
            if let row = try readErrorFlag() {
                throw KiteTensorError.indexOutOfRange(operation: "logprobsAndEntropy", index: try int32Element(targets, row), limit: vocabulary, position: row)
            }
            return (logprobs, entropy)
        }
    }

    public func logprobsAndEntropyBackward(
        dLogprobs: Tensor, dEntropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float,
        weightGradient: Tensor?
    ) throws -> Tensor {
        try profiler.measure(.head) {
            try validateHead(hidden: hidden, weight: weight, targets: targets, temperature: temperature, operation: "logprobsAndEntropyBackward")
            let (rows, vocabulary) = (hidden.shape[0], weight.shape[0])
            try requireShape(dLogprobs, [rows], "logprobsAndEntropyBackward", "dLogprobs")
            try requireShape(dEntropy, [rows], "logprobsAndEntropyBackward", "dEntropy")
            if let weightGradient {
                try requireShape(weightGradient, weight.shape, "logprobsAndEntropyBackward", "weightGradient")
                try inPlaceTarget(weightGradient, "logprobsAndEntropyBackward")
            }
            let hidden = try activation(hidden, "logprobsAndEntropyBackward"), targets = try onDevice(targets, "logprobsAndEntropyBackward")
            let weight = try converted(try onDevice(weight, "logprobsAndEntropyBackward"), to: computeDType, keep: true, operation: "logprobsAndEntropyBackward")
            let dLogprobs = try float32(dLogprobs, "logprobsAndEntropyBackward"), dEntropy = try float32(dEntropy, "logprobsAndEntropyBackward")
            let dHidden = try allocate(hidden.shape, computeDType)
            guard rows > 0 else { return dHidden }
            let chunk = headChunkRows(vocabulary: vocabulary, rows: rows)
            let logits = try allocate([chunk, vocabulary], .f32)
            // In fp32 mode the gradient overwrites the logits in place (each thread reads an element before
            // writing it); in bf16 mode it goes to its own bf16 buffer, the products' operand type.
            let gradients = computeDType == .f32 ? logits : try allocate([chunk, vocabulary], computeDType)
            let flag = try resetErrorFlag()
            for start in stride(from: 0, to: rows, by: chunk) {
                let count = min(chunk, rows - start)
                let block = logits.rows(0..<count), gradientBlock = gradients.rows(0..<count)
                let hiddenBlock = hidden.rows(start..<(start + count))
                try product(hiddenBlock, weight, transposeA: false, transposeB: true, into: block, alpha: 1, beta: 0)
                var arguments = KernelArguments()
                arguments.add(address(block)); arguments.add(int64: vocabulary); arguments.add(int: vocabulary)
                arguments.add(address(targets) + CUDevicePointer(start * 4)); arguments.add(temperature)
                arguments.add(address(dLogprobs) + CUDevicePointer(start * 4)); arguments.add(address(dEntropy) + CUDevicePointer(start * 4))
                arguments.add(address(gradientBlock)); arguments.add(try dtypeCode(gradientBlock.dtype, "logprobsAndEntropyBackward"))
                arguments.add(int64: vocabulary); arguments.add(flag)
                arguments.add(Int32(vocabulary % 4 == 0 && address(gradientBlock) % 16 == 0 ? 1 : 0))
                try launch(.head, "kite_softmax_grad", LaunchShape(grid: count, block: 512), arguments)
                // dHidden = dLogits W ;  dW += dLogits^T H
                try product(gradientBlock, weight, transposeA: false, transposeB: false, into: dHidden.rows(start..<(start + count)), alpha: 1, beta: 0)
                if let weightGradient {
                    try product(gradientBlock, hiddenBlock, transposeA: true, transposeB: false, into: weightGradient, alpha: 1, beta: 1)
                }
            }
            if let row = try readErrorFlag() {
                throw KiteTensorError.indexOutOfRange(operation: "logprobsAndEntropyBackward", index: try int32Element(targets, row), limit: vocabulary, position: row)
            }
            return dHidden
        }
    }
}
