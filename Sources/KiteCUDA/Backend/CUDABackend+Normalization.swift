import KiteTensor

extension CUDABackend {
    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> (output: Tensor, inverseRMS: Tensor) {
        try profiler.measure(.other) {
            guard x.rank >= 1, let width = x.shape.last, weight.shape == [width] else {
                throw KiteTensorError.shapeMismatch(operation: "rmsNorm", detail: "input \(x.shape) with weight \(weight.shape)")
            }
            let x = try activation(x, "rmsNorm"), weight = try float32(weight, "rmsNorm")
            let rows = x.count / max(width, 1)
            let output = try allocate(x.shape, computeDType)
            let inverseRMS = try allocate([rows], .f32)
            guard rows > 0 else { return (output, inverseRMS) }
            var arguments = KernelArguments()
            arguments.add(address(x)); arguments.add(try dtypeCode(x.dtype, "rmsNorm"))
            arguments.add(address(weight))
            arguments.add(address(output)); arguments.add(try dtypeCode(output.dtype, "rmsNorm"))
            arguments.add(address(inverseRMS))
            arguments.add(int64: rows); arguments.add(int: width); arguments.add(epsilon)
            arguments.add(Int32(rowVectorizable(width, x, weight, output) ? 1 : 0))
            try launch(.norm, "kite_rmsnorm", LaunchShape(grid: (rows + 7) / 8, block: 256), arguments)
            return (output, inverseRMS)
        }
    }

    public func rmsNormBackward(_ dOutput: Tensor, input: Tensor, weight: Tensor, inverseRMS: Tensor, weightGradient: Tensor?) throws -> Tensor {
        try profiler.measure(.other) {
            guard dOutput.shape == input.shape, let width = input.shape.last, weight.shape == [width],
                inverseRMS.count == input.count / max(width, 1)
            else {
                throw KiteTensorError.shapeMismatch(operation: "rmsNormBackward", detail: "dOutput \(dOutput.shape), input \(input.shape), weight \(weight.shape), inverseRMS \(inverseRMS.shape)")
            }
            if let weightGradient {
                try requireShape(weightGradient, weight.shape, "rmsNormBackward", "weightGradient")
                try inPlaceTarget(weightGradient, "rmsNormBackward")
            }
            let dOutput = try activation(dOutput, "rmsNormBackward"), input = try activation(input, "rmsNormBackward")
            let weight = try float32(weight, "rmsNormBackward"), inverseRMS = try float32(inverseRMS, "rmsNormBackward")
            let rows = inverseRMS.count
            let dInput = try allocate(input.shape, computeDType)
            guard rows > 0 else { return dInput }
            if let weightGradient, [128, 256, 512, 1024].contains(width), rowVectorizable(width, dOutput, input, weight, dInput) {
                // One pass: dx and the weight gradient's per-block column sums, then a fixed-order reduction.
                let rowsPerWarp = 1024 / width
                let blocks = max(1, min((rows + 8 * rowsPerWarp - 1) / (8 * rowsPerWarp), context.multiprocessorCount * 2))
                let partial = try allocate([blocks, width], .f32)
                var fused = KernelArguments()
                fused.add(address(dOutput)); fused.add(try dtypeCode(dOutput.dtype, "rmsNormBackward"))
                fused.add(address(input)); fused.add(try dtypeCode(input.dtype, "rmsNormBackward"))
                fused.add(address(weight)); fused.add(address(inverseRMS))
                fused.add(address(dInput)); fused.add(try dtypeCode(dInput.dtype, "rmsNormBackward"))
                fused.add(int64: rows); fused.add(address(partial))
                try launch(.norm, "kite_rmsnorm_bwd_fused_d\(width)", LaunchShape(grid: blocks, block: 256), fused)
                try reduceColumns(partial, splits: blocks, into: weightGradient)
                return dInput
            }
            var arguments = KernelArguments()
            arguments.add(address(dOutput)); arguments.add(try dtypeCode(dOutput.dtype, "rmsNormBackward"))
            arguments.add(address(input)); arguments.add(try dtypeCode(input.dtype, "rmsNormBackward"))
            arguments.add(address(weight)); arguments.add(address(inverseRMS))
            arguments.add(address(dInput)); arguments.add(try dtypeCode(dInput.dtype, "rmsNormBackward"))
            arguments.add(int64: rows); arguments.add(int: width)
            arguments.add(Int32(rowVectorizable(width, dOutput, input, weight, dInput) ? 1 : 0))
            try launch(.norm, "kite_rmsnorm_bwd", LaunchShape(grid: (rows + 7) / 8, block: 256), arguments)
            // dw += sum over rows of dy * x * (1 / rms)
            if let weightGradient { try columnSums(dOutput, times: input, rowScale: inverseRMS, into: weightGradient) }
            return dInput
        }
    }

    /// Row kernels read four elements at a time when each row starts 16-byte aligned.
    func rowVectorizable(_ width: Int, _ tensors: Tensor...) -> Bool {
        width % 4 == 0 && tensors.allSatisfy { address($0) % 16 == 0 }
    }
}
