#if canImport(Glibc)
import Glibc
#endif

extension CPUBackend {
    public func rope(_ x: Tensor, cos: Tensor, sin: Tensor, inverse: Bool) throws -> Tensor {
        try requireFloat32(x, "rope")
        try requireFloat32(cos, "rope")
        try requireFloat32(sin, "rope")
        guard x.rank == 3, x.shape[2] % 2 == 0 else {
            throw KiteTensorError.shapeMismatch(operation: "rope", detail: "input \(x.shape), expected [tokens, heads, even head dim]")
        }
        let (tokens, heads, dim) = (x.shape[0], x.shape[1], x.shape[2])
        let half = dim / 2
        try requireShape(cos, [tokens, half], "rope", "cos")
        try requireShape(sin, [tokens, half], "rope", "sin")
        let output = Tensor(uninitialized: x.shape)
        let (px, pc, ps, po) = (x.floats, cos.floats, sin.floats, output.floats)
        let sign: Float = inverse ? -1 : 1
        Parallel.forRanges(count: tokens, threads: x.count < 1 << 15 ? 1 : threads) { range in
            for t in range {
                for h in 0..<heads {
                    let base = (t * heads + h) * dim
                    for i in 0..<half {
                        let c = pc[t * half + i], s = sign * ps[t * half + i]
                        let x1 = px[base + i], x2 = px[base + half + i]
                        po[base + i] = x1 * c - x2 * s
                        po[base + half + i] = x2 * c + x1 * s
                    }
                }
            }
        }
        return output
    }

    public func swiglu(gate: Tensor, up: Tensor) throws -> Tensor {
        try requireSameShape(gate, up, "swiglu")
        let output = Tensor(uninitialized: gate.shape)
        let (pg, pu, po) = (gate.floats, up.floats, output.floats)
        elementwise(count: gate.count) { range in
            for i in range {
                let g = pg[i]
                po[i] = g / (1 + expf(-g)) * pu[i]
            }
        }
        return output
    }

    public func swigluBackward(dOutput: Tensor, gate: Tensor, up: Tensor) throws -> (dGate: Tensor, dUp: Tensor) {
        try requireSameShape(gate, up, "swigluBackward")
        try requireSameShape(dOutput, gate, "swigluBackward")
        let dGate = Tensor(uninitialized: gate.shape), dUp = Tensor(uninitialized: gate.shape)
        let (pdy, pg, pu, pdg, pdu) = (dOutput.floats, gate.floats, up.floats, dGate.floats, dUp.floats)
        elementwise(count: gate.count) { range in
            for i in range {
                let g = pg[i]
                let s = 1 / (1 + expf(-g))
                let silu = g * s
                pdu[i] = pdy[i] * silu
                // d silu / dg = s + g * s * (1 - s)
                pdg[i] = pdy[i] * pu[i] * (s + g * s * (1 - s))
            }
        }
        return (dGate, dUp)
    }

    public func embedding(ids: Tensor, table: Tensor) throws -> Tensor {
        try requireFloat32(table, "embedding")
        guard ids.dtype == .i32, ids.rank == 1, table.rank == 2 else {
            throw KiteTensorError.shapeMismatch(operation: "embedding", detail: "ids \(ids) and table \(table); expected i32 [T] and [V, D]")
        }
        let (vocabulary, width) = (table.shape[0], table.shape[1])
        let pids = ids.int32s
        for (position, id) in pids.enumerated() where id < 0 || Int(id) >= vocabulary {
            throw KiteTensorError.indexOutOfRange(operation: "embedding", index: Int(id), limit: vocabulary, position: position)
        }
        let output = Tensor(uninitialized: [ids.count, width])
        let (pt, po) = (table.floats.baseAddress!, output.floats.baseAddress!)
        for (row, id) in pids.enumerated() {
            (po + row * width).update(from: pt + Int(id) * width, count: width)
        }
        return output
    }

    public func embeddingBackward(dOutput: Tensor, ids: Tensor, tableGradient: Tensor) throws {
        try requireFloat32(dOutput, "embeddingBackward")
        try requireFloat32(tableGradient, "embeddingBackward")
        guard ids.dtype == .i32, tableGradient.rank == 2, dOutput.shape == [ids.count, tableGradient.shape[1]] else {
            throw KiteTensorError.shapeMismatch(operation: "embeddingBackward", detail: "dOutput \(dOutput.shape), ids \(ids.shape), table gradient \(tableGradient.shape)")
        }
        let (vocabulary, width) = (tableGradient.shape[0], tableGradient.shape[1])
        let (pids, pd, pg) = (ids.int32s, dOutput.floats, tableGradient.floats)
        for (position, id) in pids.enumerated() {
            guard id >= 0 && Int(id) < vocabulary else {
                throw KiteTensorError.indexOutOfRange(operation: "embeddingBackward", index: Int(id), limit: vocabulary, position: position)
            }
            let source = position * width, destination = Int(id) * width
            for i in 0..<width { pg[destination + i] += pd[source + i] }
        }
    }

    public func adamw(parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, step: AdamWStep) throws {
        try requireSameShape(parameter, gradient, "adamw")
        try requireSameShape(parameter, firstMoment, "adamw")
        try requireSameShape(parameter, secondMoment, "adamw")
        guard step.step >= 1 else {
            throw KiteTensorError.invalidArgument(operation: "adamw", detail: "step must start at 1, got \(step.step)")
        }
        let (pp, pg, pm, pv) = (parameter.floats, gradient.floats, firstMoment.floats, secondMoment.floats)
        let (b1, b2) = (step.beta1, step.beta2)
        // PyTorch's AdamW: decay first, then the bias-corrected Adam step.
        let decay = 1 - step.learningRate * step.weightDecay
        let biasCorrection1 = 1 - Float(Double(b1).power(step.step))
        let biasCorrection2Sqrt = Float((1 - Double(b2).power(step.step)).squareRoot())
        let stepSize = step.learningRate / biasCorrection1
        let scale = step.gradientScale
        elementwise(count: parameter.count) { range in
            for i in range {
                let g = pg[i] * scale
                let m = b1 * pm[i] + (1 - b1) * g
                let v = b2 * pv[i] + (1 - b2) * g * g
                pm[i] = m
                pv[i] = v
                let denominator = v.squareRoot() / biasCorrection2Sqrt + step.epsilon
                pp[i] = pp[i] * decay - stepSize * m / denominator
            }
        }
    }
}

extension Double {
    /// `self` raised to a non-negative integer power, by repeated squaring.
    func power(_ exponent: Int) -> Double {
        var result = 1.0, base = self, e = exponent
        while e > 0 {
            if e & 1 == 1 { result *= base }
            base *= base
            e >>= 1
        }
        return result
    }
}
