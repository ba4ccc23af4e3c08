import KiteTensor

/// Parity of the fused inference steps: each fused kernel against the CPU reference (the composed
/// operations, which is what the CPU runs), with the tolerances of the operations it fuses, and against the
/// composed operations on the same GPU, to the bit (what deterministic mode relies on: the engine runs the
/// fused kernels, the trainer the separate ones).
extension OperationParity {
    func fusedChecks() throws -> [ParityResult] {
        try addRMSNormChecks() + packedSwigluChecks() + rotateAndCacheChecks()
    }

    func bits(_ name: String, _ fused: Tensor, _ composed: Tensor) throws -> ParityResult {
        ParityResult.compareBits("\(name) = separate kernels (bits)", precision: precision, cuda: try cuda.download(fused), cpu: try cuda.download(composed))
    }

    func addRMSNormChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        // Rows held in registers (1024, 2048 and 4096 wide: 8, 16 and 32 pieces a lane), 5120 wide (4-wide
        // reads in a loop), and 22 wide (element by element).
        for (index, shape) in [[33, 1024], [5, 22], [3, 2048], [2, 4096], [2, 5120]].enumerated() {
            let label = "addRMSNorm \(shape.map(String.init).joined(separator: "x"))"
            let width = shape[1]
            let x = random(shape, seed: 900 + UInt64(index)), target = random(shape, scale: 2, seed: 910 + UInt64(index))
            var generator = SeededGenerator(seed: 920 + UInt64(index))
            let weight = Tensor((0..<width).map { _ in Float(0.5 + generator.nextUnitDouble()) }, shape: [width])
            let cpuTarget = target.copy()
            let reference = try cpu.addRMSNorm(x, into: cpuTarget, weight: weight, epsilon: 1e-6)
            let (deviceX, deviceWeight) = (try device(x), try cuda.upload(weight))
            let fusedTarget = try device(target), composedTarget = try device(target)
            let fused = try cuda.addRMSNorm(deviceX, into: fusedTarget, weight: deviceWeight, epsilon: 1e-6)
            let composed = try cuda.composedAddRMSNorm(deviceX, into: composedTarget, weight: deviceWeight, epsilon: 1e-6)
            results.append(try compare("\(label) sum", fusedTarget, cpuTarget, tolerance: elementwiseTolerance))
            results.append(try compare("\(label) output", fused, reference, tolerance: elementwiseTolerance))
            results.append(try bits("\(label) sum", fusedTarget, composedTarget))
            results.append(try bits("\(label) output", fused, composed))
        }
        return results
    }

    func packedSwigluChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        // Halves of 1000 (4-wide) and of 501 (element by element).
        for (index, width) in [1000, 501].enumerated() {
            let label = "swiglu(packed:) 7x2x\(width)"
            let packed = random([7, 2 * width], scale: 4, seed: 930 + UInt64(index))
            let halves = try cpu.splitColumns(packed, widths: [width, width], summingGroups: nil)
            let reference = try cpu.swiglu(gate: halves[0], up: halves[1])
            let devicePacked = try device(packed)
            let fused = try cuda.swiglu(packed: devicePacked)
            results.append(try compare(label, fused, reference, tolerance: elementwiseTolerance))
            results.append(try bits(label, fused, try cuda.composedSwiglu(packed: devicePacked)))
        }
        return results
    }

    /// Qwen3's shape (per-head norms, head size 128), head size 128 without norms (both on the register
    /// kernel) and llama's (no norms, head size 64, the general kernel), tokens stored in scattered slots.
    func rotateAndCacheChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let (tokens, slotCount) = (9, 64)
        let slots: [Int32] = [63, 0, 17, 18, 40, 5, 33, 34, 2]
        for (index, (heads, kvHeads, dim, norms)) in [(4, 2, 128, true), (6, 2, 64, false), (2, 1, 128, false)].enumerated() {
            let label = "rotateAndCache \(heads)/\(kvHeads) heads of \(dim)\(norms ? " with q/k norms" : "")"
            let seed = 940 + UInt64(index) * 10
            let projections = random([tokens, (heads + 2 * kvHeads) * dim], scale: 2, seed: seed)
            var generator = SeededGenerator(seed: seed + 1)
            let queryNorm = Tensor((0..<dim).map { _ in Float(0.5 + generator.nextUnitDouble()) }, shape: [dim])
            let keyNorm = Tensor((0..<dim).map { _ in Float(0.5 + generator.nextUnitDouble()) }, shape: [dim])
            var cosValues: [Float] = [], sinValues: [Float] = []
            for t in 0..<tokens {
                for i in 0..<(dim / 2) {
                    let angle = Double(t + 3) / pow10000(Double(2 * i) / Double(dim))
                    cosValues.append(Float(cosine(angle)))
                    sinValues.append(Float(sine(angle)))
                }
            }
            let cos = Tensor(cosValues, shape: [tokens, dim / 2]), sin = Tensor(sinValues, shape: [tokens, dim / 2])
            func inputs(_ packed: Tensor, _ backend: any Backend) throws -> PackedAttentionProjections {
                PackedAttentionProjections(
                    projections: packed, queryHeads: heads, keyValueHeads: kvHeads, headDim: dim,
                    queryNorm: norms ? try backend.upload(queryNorm) : nil, keyNorm: norms ? try backend.upload(keyNorm) : nil,
                    epsilon: 1e-6, cos: try backend.upload(cos), sin: try backend.upload(sin))
            }
            let cpuKeys = Tensor(zeros: [slotCount, kvHeads, dim]), cpuValues = Tensor(zeros: [slotCount, kvHeads, dim])
            let reference = try cpu.rotateAndCache(try inputs(projections, cpu), keyCache: cpuKeys, valueCache: cpuValues, slotIndices: Tensor(int32: slots))
            let cacheDType = cuda.keyValueCacheDType
            let caches = try (0..<4).map { _ in try cuda.zeros([slotCount, kvHeads, dim], dtype: cacheDType) }
            let deviceInputs = try inputs(try device(projections), cuda), deviceSlots = try cuda.upload(Tensor(int32: slots))
            let fused = try cuda.rotateAndCache(deviceInputs, keyCache: caches[0], valueCache: caches[1], slotIndices: deviceSlots)
            let composed = try cuda.composedRotateAndCache(deviceInputs, keyCache: caches[2], valueCache: caches[3], slotIndices: deviceSlots)
            results.append(try compare("\(label) queries", fused, reference, tolerance: reductionTolerance))
            results.append(try compare("\(label) key cache", caches[0], cpuKeys, tolerance: reductionTolerance))
            results.append(try compare("\(label) value cache", caches[1], cpuValues, tolerance: 0))
            results.append(try bits("\(label) queries", fused, composed))
            results.append(try bits("\(label) key cache", caches[0], caches[2]))
            results.append(try bits("\(label) value cache", caches[1], caches[3]))
        }
        return results
    }
}
