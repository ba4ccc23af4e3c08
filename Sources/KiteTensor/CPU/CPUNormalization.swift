extension CPUBackend {
    public func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> (output: Tensor, inverseRMS: Tensor) {
        try requireFloat32(x, "rmsNorm")
        try requireFloat32(weight, "rmsNorm")
        guard x.rank >= 1, let width = x.shape.last, weight.shape == [width] else {
            throw KiteTensorError.shapeMismatch(operation: "rmsNorm", detail: "input \(x.shape) with weight \(weight.shape)")
        }
        let rows = x.count / max(width, 1)
        let output = Tensor(uninitialized: x.shape)
        let inverseRMS = Tensor(uninitialized: [rows])
        let (px, pw, py, pr) = (x.floats, weight.floats, output.floats, inverseRMS.floats)
        Parallel.forRanges(count: rows, threads: rows * width < 1 << 15 ? 1 : threads) { range in
            for row in range {
                let base = row * width
                var sum: Float = 0
                for i in 0..<width { sum += px[base + i] * px[base + i] }
                let r = 1 / (sum / Float(width) + epsilon).squareRoot()
                pr[row] = r
                // Normalise first, then scale by the weight: the order Hugging Face's RMSNorm uses.
                for i in 0..<width { py[base + i] = pw[i] * (px[base + i] * r) }
            }
        }
        return (output, inverseRMS)
    }

    public func rmsNormBackward(_ dOutput: Tensor, input: Tensor, weight: Tensor, inverseRMS: Tensor, weightGradient: Tensor?) throws -> Tensor {
        try requireSameShape(dOutput, input, "rmsNormBackward")
        guard let width = input.shape.last, weight.shape == [width], inverseRMS.count == input.count / max(width, 1) else {
            throw KiteTensorError.shapeMismatch(operation: "rmsNormBackward", detail: "input \(input.shape), weight \(weight.shape), inverseRMS \(inverseRMS.shape)")
        }
        if let weightGradient { try requireShape(weightGradient, weight.shape, "rmsNormBackward", "weightGradient") }
        let rows = inverseRMS.count
        let dInput = Tensor(uninitialized: input.shape)
        let (pdy, px, pw, pr, pdx) = (dOutput.floats, input.floats, weight.floats, inverseRMS.floats, dInput.floats)
        // dx = r * (dy * w) - x * r^3 * <dy * w, x> / D;   dw += dy * x * r (summed over rows).
        let parts = rows * width < 1 << 15 ? 1 : min(threads, rows)
        var partialWeightGradients = [Float](repeating: 0, count: weightGradient == nil ? 0 : parts * width)
        partialWeightGradients.withUnsafeMutableBufferPointer { partials in
            Parallel.forEach(parts: parts) { part in
                let lo = rows * part / parts, hi = rows * (part + 1) / parts
                for row in lo..<hi {
                    let base = row * width
                    let r = pr[row]
                    var dot: Float = 0
                    for i in 0..<width { dot += pdy[base + i] * pw[i] * px[base + i] }
                    let coefficient = r * r * r * dot / Float(width)
                    for i in 0..<width {
                        pdx[base + i] = r * pdy[base + i] * pw[i] - coefficient * px[base + i]
                    }
                    if !partials.isEmpty {
                        let partial = part * width
                        for i in 0..<width { partials[partial + i] += pdy[base + i] * px[base + i] * r }
                    }
                }
            }
        }
        if let weightGradient {
            let pg = weightGradient.floats
            for part in 0..<parts {
                for i in 0..<width { pg[i] += partialWeightGradients[part * width + i] }
            }
        }
        return dInput
    }
}
