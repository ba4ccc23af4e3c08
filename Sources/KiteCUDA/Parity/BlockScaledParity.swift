import KiteTensor

/// Block-scaled fp8 products (`blockScaledMatmul`, `groupedBlockScaledMatmul`) against the CPU.
///
/// Weights are quantised by the CPU's `blockQuantize` (e4m3, 128 x 128 tiles), as `kite convert` writes them.
/// - fp32 mode (and any case the fp8 path does not take): the CUDA backend dequantises and multiplies, so it
///   must equal the CPU's exact product within the product tolerance (1e-4 fp32, 1e-2 bf16).
/// - bf16 mode: the CUDA backend quantises each activation row in blocks of 128 columns to e4m3 and runs
///   cuBLASLt's fp8 product. The reference does the same arithmetic on the CPU: each row through
///   `blockQuantize` as a one-row tile (the scale `amax / 448` and the rounding are those of the kernel, checked
///   bit for bit in the `blockQuantize` group), dequantised, times the dequantised weight in fp32. What is left
///   is the product's accumulation and the bf16 output (2^-9 relative): tolerance 1e-2, the bf16 product
///   tolerance. A row also reports whether the fp8 path ran (it must, for these shapes, in bf16 mode).
extension OperationParity {
    func blockScaledChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        // (rows, output width, inner width): decode batches (1, 6, 64 rows: padded to 4 and not), a prefill,
        // an inner width with a partial last block (320 = 2.5 blocks), one below a block (scales padded to 4).
        let cases: [(m: Int, n: Int, k: Int)] = [(1, 1024, 2048), (6, 576, 1536), (64, 2048, 1024), (300, 384, 320), (5, 64, 64)]
        for (index, shape) in cases.enumerated() {
            let seed = 900 + UInt64(index) * 10
            let x = random([shape.m, shape.k], seed: seed)
            let (values, scales) = try cpu.blockQuantize(random([shape.n, shape.k], scale: 0.05, seed: seed + 1, activation: false), blockSize: 128, to: .fp8e4m3)
            let before = cuda.blockScaledCounts.withLock { $0.fp8 }
            let result = try cuda.blockScaledMatmul(try device(x), values: try cuda.upload(values), scales: try cuda.upload(scales), blockSize: 128)
            let ranFP8 = cuda.blockScaledCounts.withLock { $0.fp8 } > before
            let label = "blockScaledMatmul \(shape.m)x\(shape.k) * fp8 \(shape.n)x\(shape.k)"
            let reference = try ranFP8 ? emulatedFP8Product(x, values: values, scales: scales) : cpu.blockScaledMatmul(x, values: values, scales: scales, blockSize: 128)
            results.append(try compare("\(label) (\(ranFP8 ? "fp8 product" : "dequantised"))", result, reference, tolerance: reductionTolerance))
            if bf16 {
                results.append(ParityResult(name: "\(label) ran as an fp8 product", precision: precision, maxAbsoluteError: ranFP8 ? 0 : 1,
                                            relativeError: ranFP8 ? 0 : 1, tolerance: 0,
                                            failure: ranFP8 ? nil : "dequantised instead (cuBLASLt declined the shape, or fp8 products are off)"))
            }
        }
        // Experts: groups of 5, 0 (weight never read) and 12 rows.
        let sizes = [5, 0, 12], (n, k) = (256, 384)
        let x = random([sizes.reduce(0, +), k], seed: 990)
        var values: [Tensor] = [], scales: [Tensor] = []
        for group in sizes.indices {
            let quantized = try cpu.blockQuantize(random([n, k], scale: 0.05, seed: 991 + UInt64(group), activation: false), blockSize: 128, to: .fp8e4m3)
            values.append(quantized.values)
            scales.append(quantized.scales)
        }
        let before = cuda.blockScaledCounts.withLock { $0.fp8 }
        let result = try cuda.groupedBlockScaledMatmul(try device(x), values: try values.map { try cuda.upload($0) }, scales: try scales.map { try cuda.upload($0) },
                                                       groupSizes: sizes, blockSize: 128)
        let ranFP8 = cuda.blockScaledCounts.withLock { $0.fp8 } > before
        var reference: [Float] = []
        var offset = 0
        for (group, size) in sizes.enumerated() {
            defer { offset += size }
            guard size > 0 else { continue }
            let rows = Tensor(Array(x.toFloats()[(offset * k)..<((offset + size) * k)]), shape: [size, k])
            let product = try ranFP8 ? emulatedFP8Product(rows, values: values[group], scales: scales[group])
                : cpu.blockScaledMatmul(rows, values: values[group], scales: scales[group], blockSize: 128)
            reference += product.toFloats()
        }
        results.append(try compare("groupedBlockScaledMatmul groups 5/0/12 x fp8 \(n)x\(k) (\(ranFP8 ? "fp8 product" : "dequantised"))", result,
                                   Tensor(reference, shape: [sizes.reduce(0, +), n]), tolerance: reductionTolerance))
        return results
    }

    /// `x · W^T` in fp32 after quantising each row of `x` as the CUDA kernel does (e4m3, one scale per 128 columns).
    func emulatedFP8Product(_ x: Tensor, values: Tensor, scales: Tensor) throws -> Tensor {
        let (m, k) = (x.shape[0], x.shape[1])
        let input = x.toFloats()
        var quantized: [Float] = []
        quantized.reserveCapacity(m * k)
        for row in 0..<m {
            let tile = Tensor(Array(input[(row * k)..<((row + 1) * k)]), shape: [1, k])
            let (rowValues, rowScales) = try cpu.blockQuantize(tile, blockSize: 128, to: .fp8e4m3)
            quantized += try cpu.blockDequantize(values: rowValues, scales: rowScales, blockSize: 128, to: .f32).toFloats()
        }
        return try cpu.blockScaledMatmul(Tensor(quantized, shape: [m, k]), values: values, scales: scales, blockSize: 128)
    }
}
