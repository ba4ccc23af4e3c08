import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

/// Products with block-scaled fp8 weights (DeepSeek-V3's checkpoints: e4m3 values, one fp32 scale per
/// 128 x 128 tile), as SGLang and DeepSeek serve them: the activations are quantised to e4m3 per row in
/// blocks of 128 columns (`kite_quantize_activation_rows`) and cuBLASLt runs the fp8 product with both
/// scale tensors (1 x 128 for the activations, 128 x 128 for the weights, Hopper and cuBLASLt 12.9 on), so a
/// weight is read as one byte per value and never expanded.
///
/// The fp8 path runs in bf16 mode, outside deterministic mode (cuBLASLt's algorithm depends on the shape,
/// so a row's result would depend on its batch), for e4m3 weights with 128-wide tiles and shapes cuBLASLt
/// takes (K a multiple of 16, N of 8); every other case, and any shape cuBLASLt declines, dequantises the
/// weight into the compute dtype and runs the ordinary product (the `Backend` default, to the bit).
/// `fp8Products = false` (or `KITE_FP8_GEMM=0`) forces the dequantising path (for comparisons).
extension CUDABackend {
    public func blockScaledMatmul(_ x: Tensor, values: Tensor, scales: Tensor, blockSize: Int) throws -> Tensor {
        try profiler.measure(.gemm) {
            guard x.rank == 2, values.rank == 2, x.shape[1] == values.shape[1] else {
                throw KiteTensorError.shapeMismatch(operation: "blockScaledMatmul", detail: "x \(x.shape), weight values \(values.shape); expected [M, K] and [N, K]")
            }
            let (m, n) = (x.shape[0], values.shape[0])
            let output = try allocate([m, n], computeDType)
            guard m > 0, n > 0 else { return output }
            let x = try activation(x, "blockScaledMatmul")
            if try !fp8Product(x, values: values, scales: scales, blockSize: blockSize, into: output) {
                blockScaledCounts.withLock { $0.dequantised += 1 }
                let weight = try blockDequantize(values: values, scales: scales, blockSize: blockSize, to: computeDType)
                try product(x, weight, transposeA: false, transposeB: true, into: output, alpha: 1, beta: 0)
            }
            return output
        }
    }

    public func groupedBlockScaledMatmul(_ x: Tensor, values: [Tensor], scales: [Tensor], groupSizes: [Int], blockSize: Int) throws -> Tensor {
        try profiler.measure(.gemm) {
            let (rows, _, n) = try groupedShape(x, values, groupSizes, true, "groupedBlockScaledMatmul")
            guard scales.count == values.count else {
                throw KiteTensorError.invalidArgument(operation: "groupedBlockScaledMatmul", detail: "\(scales.count) scale tensors for \(values.count) weights")
            }
            let x = try activation(x, "groupedBlockScaledMatmul")
            let output = try allocate([rows, n], computeDType)
            var offset = 0
            for (group, size) in groupSizes.enumerated() {
                defer { offset += size }
                guard size > 0 else { continue }
                let range = offset..<(offset + size)
                if try !fp8Product(x.rows(range), values: values[group], scales: scales[group], blockSize: blockSize, into: output.rows(range)) {
                    blockScaledCounts.withLock { $0.dequantised += 1 }
                    let weight = try blockDequantize(values: values[group], scales: scales[group], blockSize: blockSize, to: computeDType)
                    try product(x.rows(range), weight, transposeA: false, transposeB: true, into: output.rows(range), alpha: 1, beta: 0)
                }
            }
            return output
        }
    }

    /// Whether this backend would run `[M, K] x [N, K]^T` with these weights as an fp8 product (not whether
    /// cuBLASLt accepts the shape, which only the first call finds out).
    public func runsFP8Products(values: Tensor, blockSize: Int) -> Bool {
        precision == .bf16 && !deterministic && values.dtype == .fp8e4m3 && blockSize == 128 && values.rank == 2
            && values.shape[1] % 16 == 0 && values.shape[0] % 8 == 0 && blas.version >= CUBLASLt.blockScalingVersion
            && fp8Products
    }

    /// `output = x · dequantize(values)^T` as an fp8 product; false (having written nothing) when this case
    /// takes the dequantising path.
    func fp8Product(_ x: Tensor, values: Tensor, scales: Tensor, blockSize: Int, into output: Tensor) throws -> Bool {
        let (m, k, n) = (x.shape[0], x.shape[1], values.shape[0])
        let (blockRows, blockColumns) = ((n + blockSize - 1) / blockSize, (k + blockSize - 1) / blockSize)
        guard scales.shape == [blockRows, blockColumns] else {
            throw KiteTensorError.shapeMismatch(operation: "blockScaledMatmul", detail: "scales \(scales.shape) for weight values \(values.shape) in \(blockSize)-wide tiles; expected [\(blockRows), \(blockColumns)]")
        }
        guard runsFP8Products(values: values, blockSize: blockSize), output.dtype == .bf16 else { return false }
        let values = try onDevice(values, "blockScaledMatmul")
        let paddedRows = (m + 3) / 4 * 4, paddedColumns = (blockColumns + 3) / 4 * 4
        let problem = CUBLASLt.Problem(
            typeA: .e4m3, typeB: .e4m3, typeC: .bf16, compute: .f32, transposeA: true, transposeB: false,
            m: n, n: paddedRows, k: k, lda: k, ldb: k, ldc: n, batch: 1, strideA: 0, strideB: 0, strideC: 0,
            alignmentA: alignment(values), alignmentB: 256, alignmentC: 256, scaleModeA: .block128x128, scaleModeB: .vector128)
        guard !blas.hasFailed(problem), alignment(values) >= 16 else { return false }

        let quantized = try allocate([paddedRows, k], .fp8e4m3), rowScales = try allocate([blockColumns, paddedRows], .f32)
        var arguments = KernelArguments()
        arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "blockScaledMatmul"))
        arguments.add(int64: m); arguments.add(int64: k); arguments.add(int64: paddedRows)
        arguments.add(address(quantized)); arguments.add(FloatConversion.e4m3Max); arguments.add(address(rowScales))
        // One warp per (row, 128 columns), eight warps a block.
        try launch(.quantize, "kite_quantize_activation_rows", LaunchShape(grid: (paddedRows * blockColumns + 7) / 8, block: 256), arguments)

        var tileScales = try float32(scales, "blockScaledMatmul")
        if paddedColumns != blockColumns {
            let padded = try allocate([blockRows, paddedColumns], .f32)
            var padding = KernelArguments()
            padding.add(address(tileScales)); padding.add(int64: blockRows); padding.add(int64: blockColumns)
            padding.add(address(padded)); padding.add(int64: paddedColumns)
            try launch(.quantize, "kite_pad_scale_columns", elementwiseShape(padded.count, vector: false), padding)
            tileScales = padded
        }

        let padded = paddedRows != m
        let target = padded ? try allocate([paddedRows, n], .bf16) : output
        do {
            try context.makeCurrent()
            try blas.matmul(problem, a: address(values), b: address(quantized), c: address(target), alpha: 1, beta: 0,
                            stream: context.stream.handle, mayTune: !isCapturing, scales: (address(tileScales), address(rowScales)),
                            sideStream: context.isOnSideStream)
        } catch {
            blas.markFailed(problem)
            reportDeclinedFP8(n: n, k: k, error)
            return false
        }
        if padded {
            try context.driver.check(
                context.driver.cuMemcpyDtoDAsync(address(output), address(target), output.byteCount, context.stream.handle), "cuMemcpyDtoDAsync")
        }
        if Self.synchronousLaunches { try context.stream.synchronize() }
        blockScaledCounts.withLock { $0.fp8 += 1 }
        return true
    }

    private func reportDeclinedFP8(n: Int, k: Int, _ error: Error) {
        let line = "kite: cuBLASLt declined the block-scaled fp8 product of a \(n) x \(k) weight (\(error)); such weights are dequantised per use\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }
}
