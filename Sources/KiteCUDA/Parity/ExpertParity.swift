import KiteTensor

/// Checks of latent attention's column ops and the mixture-of-experts ops, forward and backward.
///
/// Tolerances, beyond those of `OperationParity`:
/// - Copies (split, join, gather, swap, dispatch) and integer results (chosen experts, dispatch plans):
///   exact (0) in both modes: inputs are representable in the activation dtype.
/// - Split's sums of broadcast rows and combine's sum over a token's `k` experts add in the CPU's order:
///   the elementwise tolerance (fp32: fused multiply-adds differ in the last bit; bf16: the output rounding).
/// - Gate weights (`route`, and `routeWeights` of given experts): 1e-5 in both modes, since routing computes in
///   fp32 from the same logits; only the softmax denominator's summation order and `expf`'s last bit differ.
///   `routeWeights` of a backend's own `route` experts equals that backend's `route` weights exactly (0): the
///   same kernel arithmetic after the choice.
/// - Routing's backward, combine's weight gradient (dot products over the hidden size) and the grouped
///   products: the reduction tolerance.
extension OperationParity {
    func columnChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        // Split [T, heads, nope + rope] per head, and the backward of a broadcast key: summed over 4 heads.
        let x = random([10, 4, 24], seed: 600)
        let cpuParts = try cpu.splitColumns(x, widths: [16, 0, 8], summingGroups: nil)
        let cudaParts = try cuda.splitColumns(try device(x), widths: [16, 0, 8], summingGroups: nil)
        for index in [0, 2] {
            results.append(try compare("splitColumns 10x4x24 part \(index) \(cpuParts[index].shape)", cudaParts[index], cpuParts[index], tolerance: 0))
        }
        let cpuSummed = try cpu.splitColumns(x, widths: [16, 8], summingGroups: [1, 4])
        let cudaSummed = try cuda.splitColumns(try device(x), widths: [16, 8], summingGroups: [1, 4])
        results.append(try compare("splitColumns summing groups of 4 rows", cudaSummed[1], cpuSummed[1], tolerance: elementwiseTolerance))
        // Join per-head parts with one part broadcast to every head.
        let heads = random([10, 4, 16], seed: 601), shared = random([10, 1, 8], seed: 602)
        results.append(try compare("concatenateColumns 10x4x16 + broadcast 10x1x8",
                                   try cuda.concatenateColumns([try device(heads), try device(shared)]),
                                   try cpu.concatenateColumns([heads, shared]), tolerance: 0))
        let columns = [0, 2, 4, 6, 1, 3, 5, 7, 7, 0]
        let rotary = random([9, 3, 8], seed: 603)
        results.append(try compare("gatherColumns 9x3x8 (deinterleave, repeats)", try cuda.gatherColumns(try device(rotary), columns: columns),
                                   try cpu.gatherColumns(rotary, columns: columns), tolerance: 0))
        let perToken = random([7, 5, 6], seed: 604), matrix = random([13, 11], seed: 605)
        results.append(try compare("swapLeadingDimensions 7x5x6", try cuda.swapLeadingDimensions(try device(perToken)),
                                   try cpu.swapLeadingDimensions(perToken), tolerance: 0))
        results.append(try compare("swapLeadingDimensions 13x11", try cuda.swapLeadingDimensions(try device(matrix)),
                                   try cpu.swapLeadingDimensions(matrix), tolerance: 0))
        // An fp32 weight split per head (the absorbed path's kv_b_proj): the result is an activation.
        let weight = random([4, 40], seed: 606, activation: false)
        let cpuWeightParts = try cpu.splitColumns(weight, widths: [24, 16], summingGroups: nil)
        let cudaWeightParts = try cuda.splitColumns(try cuda.upload(weight), widths: [24, 16], summingGroups: nil)
        results.append(try compare("splitColumns of an fp32 weight", cudaWeightParts[1], cpuWeightParts[1], tolerance: elementwiseTolerance))
        return results
    }

    func expertChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let tokens = 50
        let routers: [(String, Int, RoutingParameters, Bool)] = [
            ("qwen3-moe softmax E16 k4 normalised", 16, RoutingParameters(scoring: .softmax, topK: 4, normalize: true), false),
            ("deepseek-v2 softmax E32 k3 4 groups (max, 2 kept) x1.5", 32,
             RoutingParameters(scoring: .softmax, topK: 3, groups: 4, topGroups: 2, groupScore: .max, normalize: false, scale: 1.5), false),
            ("deepseek-v3 sigmoid E64 k6 8 groups (top-2 sum, 3 kept) biased x2.5", 64,
             RoutingParameters(scoring: .sigmoid, topK: 6, groups: 8, topGroups: 3, groupScore: .sumOfTopTwo, normalize: true,
                               normalizationEpsilon: 1e-20, scale: 2.5), true),
            // DeepSeek-V3's own router size: more experts than a routing block has threads.
            ("deepseek-v3 full size sigmoid E256 k8 8 groups (4 kept) biased", 256,
             RoutingParameters(scoring: .sigmoid, topK: 8, groups: 8, topGroups: 4, groupScore: .sumOfTopTwo, normalize: true,
                               normalizationEpsilon: 1e-20, scale: 2.5), true),
        ]
        for (index, (name, expertCount, parameters, biased)) in routers.enumerated() {
            let seed = 700 + UInt64(index) * 20
            let k = parameters.topK
            let logits = random([tokens, expertCount], scale: 3, seed: seed)
            let bias = biased ? random([expertCount], scale: 0.5, seed: seed + 1, activation: false) : nil
            let (cpuWeights, cpuExperts) = try cpu.route(logits: logits, correctionBias: bias, parameters: parameters)
            let (cudaWeights, cudaExperts) = try cuda.route(logits: try device(logits), correctionBias: try bias.map { try cuda.upload($0) }, parameters: parameters)
            results.append(try compare("route \(name) experts", cudaExperts, cpuExperts, tolerance: 0))
            results.append(try compare("route \(name) weights", cudaWeights, cpuWeights, tolerance: 1e-5))
            // Routing replay: the weights of given experts. Route's own experts give route's weights to the bit on
            // each backend; the CPU's choice and another valid choice (each row's experts rotated by one, so
            // distinct, mostly unchosen) match the CPU like route's weights.
            results.append(try compare("routeWeights \(name) of CUDA route's experts == CUDA route's weights",
                                       try cuda.routeWeights(logits: try device(logits), experts: cudaExperts, parameters: parameters),
                                       try cuda.download(cudaWeights), tolerance: 0))
            let cpuReplayed = try cpu.routeWeights(logits: logits, experts: cpuExperts, parameters: parameters)
            let cpuSame = zip(cpuReplayed.toFloats(), cpuWeights.toFloats()).allSatisfy { $0.bitPattern == $1.bitPattern }
            results.append(ParityResult(name: "routeWeights \(name) of CPU route's experts == CPU route's weights (bits)", precision: precision,
                                        maxAbsoluteError: 0, relativeError: 0, tolerance: 0, failure: cpuSame ? nil : "CPU replay differs from route"))
            results.append(try compare("routeWeights \(name) of the CPU's experts", try cuda.routeWeights(
                logits: try device(logits), experts: try cuda.upload(cpuExperts), parameters: parameters), cpuReplayed, tolerance: 1e-5))
            let rotated = Tensor(int32: cpuExperts.toInt32s().map { ($0 + 1) % Int32(expertCount) }, shape: [tokens, k])
            results.append(try compare("routeWeights \(name) of other experts (each +1)", try cuda.routeWeights(
                logits: try device(logits), experts: try cuda.upload(rotated), parameters: parameters),
                try cpu.routeWeights(logits: logits, experts: rotated, parameters: parameters), tolerance: 1e-5))
            // Backward from the CPU's choice, so both differentiate the same function.
            let dWeights = random([tokens, k], seed: seed + 2, activation: false)
            let cpuDLogits = try cpu.routeBackward(dWeights: dWeights, logits: logits, experts: cpuExperts, parameters: parameters)
            let cudaDLogits = try cuda.routeBackward(dWeights: try cuda.upload(dWeights), logits: try device(logits), experts: try cuda.upload(cpuExperts),
                                                     parameters: parameters)
            results.append(try compare("routeBackward \(name) dlogits", cudaDLogits, cpuDLogits, tolerance: reductionTolerance))

            // Dispatch the CPU's choice, run one grouped product, combine, and back.
            let width = 40, hidden = 24
            let x = random([tokens, width], seed: seed + 3)
            let (cpuRows, cpuPlan) = try cpu.dispatch(x, experts: cpuExperts, expertCount: expertCount)
            let (cudaRows, cudaPlan) = try cuda.dispatch(try device(x), experts: try cuda.upload(cpuExperts), expertCount: expertCount)
            results.append(try compare("dispatch \(name) rows", cudaRows, cpuRows, tolerance: 0))
            results.append(try compare("dispatch \(name) positions", cudaPlan.positions, cpuPlan.positions, tolerance: 0))
            results.append(try compare("dispatch \(name) assignments", cudaPlan.assignments, cpuPlan.assignments, tolerance: 0))
            let moved = zip(cudaPlan.tokensPerExpert, cpuPlan.tokensPerExpert).reduce(0) { $0 + abs($1.0 - $1.1) }
            results.append(ParityResult(name: "dispatch \(name) group sizes", precision: precision, maxAbsoluteError: Double(moved),
                                        relativeError: Double(moved) / Double(tokens * k), tolerance: 0,
                                        failure: cudaPlan.tokensPerExpert.count == cpuPlan.tokensPerExpert.count ? nil : "\(cudaPlan.tokensPerExpert.count) groups"))

            let sizes = cpuPlan.tokensPerExpert
            let gates = (0..<expertCount).map { random([hidden, width], scale: 0.3, seed: seed + 100 + UInt64($0), activation: false) }
            let cudaGates = try gates.map { try cuda.upload($0) }
            let cpuHidden = try cpu.groupedMatmul(cpuRows, weights: gates, groupSizes: sizes, transposeWeights: true)
            let cudaHidden = try cuda.groupedMatmul(cudaRows, weights: cudaGates, groupSizes: sizes, transposeWeights: true)
            results.append(try compare("groupedMatmul \(name) x W^T", cudaHidden, cpuHidden, tolerance: reductionTolerance))

            let rows = random([tokens * k, width], seed: seed + 4)
            let cpuCombined = try cpu.combine(rows, weights: cpuWeights, plan: cpuPlan)
            let cudaCombined = try cuda.combine(try device(rows), weights: try cuda.upload(cpuWeights), plan: cudaPlan)
            results.append(try compare("combine \(name) weighted", cudaCombined, cpuCombined, tolerance: elementwiseTolerance))
            results.append(try compare("combine \(name) unweighted (dispatch backward)", try cuda.combine(try device(rows), weights: nil, plan: cudaPlan),
                                       try cpu.combine(rows, weights: nil, plan: cpuPlan), tolerance: elementwiseTolerance))
            let dOutput = random([tokens, width], seed: seed + 5)
            let (cpuDRows, cpuDWeights) = try cpu.combineBackward(dOutput: dOutput, rows: rows, weights: cpuWeights, plan: cpuPlan)
            let (cudaDRows, cudaDWeights) = try cuda.combineBackward(dOutput: try device(dOutput), rows: try device(rows),
                                                                     weights: try cuda.upload(cpuWeights), plan: cudaPlan)
            results.append(try compare("combineBackward \(name) drows", cudaDRows, cpuDRows, tolerance: elementwiseTolerance))
            results.append(try compare("combineBackward \(name) dweights", cudaDWeights, cpuDWeights, tolerance: reductionTolerance))
        }
        results += try groupedProductChecks()
        results.append(try routeRejectsBadExpert())
        results += try routeWeightsRejectsBadExperts()
        return results
    }

    /// Grouped products with empty groups, both weight layouts, and the weight gradient accumulated into fp32.
    func groupedProductChecks() throws -> [ParityResult] {
        var results: [ParityResult] = []
        let sizes = [10, 0, 25, 1, 0, 24]
        let (n, k, m) = (sizes.reduce(0, +), 48, 40)
        let x = random([n, k], seed: 800)
        let hfWeights = sizes.indices.map { random([m, k], scale: 0.3, seed: 810 + UInt64($0), activation: false) }
        let plainWeights = sizes.indices.map { random([k, m], scale: 0.3, seed: 830 + UInt64($0), activation: false) }
        results.append(try compare("groupedMatmul 60x48, 6 groups (2 empty), x W^T",
                                   try cuda.groupedMatmul(try device(x), weights: try hfWeights.map { try cuda.upload($0) }, groupSizes: sizes, transposeWeights: true),
                                   try cpu.groupedMatmul(x, weights: hfWeights, groupSizes: sizes, transposeWeights: true), tolerance: reductionTolerance))
        results.append(try compare("groupedMatmul 60x48, 6 groups (2 empty), x W",
                                   try cuda.groupedMatmul(try device(x), weights: try plainWeights.map { try cuda.upload($0) }, groupSizes: sizes, transposeWeights: false),
                                   try cpu.groupedMatmul(x, weights: plainWeights, groupSizes: sizes, transposeWeights: false), tolerance: reductionTolerance))
        let dOutput = random([n, m], seed: 850)
        let initial = sizes.indices.map { random([m, k], scale: 0.1, seed: 860 + UInt64($0), activation: false) }
        let cpuGradients = initial.map { $0.copy() }, cudaGradients = try initial.map { try cuda.upload($0) }
        try cpu.groupedMatmulWeightGradient(dOutput: dOutput, input: x, groupSizes: sizes, weightGradients: cpuGradients)
        try cuda.groupedMatmulWeightGradient(dOutput: try device(dOutput), input: try device(x), groupSizes: sizes, weightGradients: cudaGradients)
        let gpu = try cudaGradients.flatMap { try values($0) }, reference = cpuGradients.flatMap { $0.toFloats() }
        results.append(ParityResult.compare("groupedMatmulWeightGradient into fp32 (empty groups kept)", precision: precision, cuda: gpu, cpu: reference,
                                            tolerance: reductionTolerance))
        return results
    }

    /// Replayed experts out of range or repeated in a row: routeWeights must throw the CPU's error.
    func routeWeightsRejectsBadExperts() throws -> [ParityResult] {
        let parameters = RoutingParameters(scoring: .softmax, topK: 2, normalize: true)
        let logits = random([3, 8], seed: 872)
        let cases: [(String, [Int32])] = [("expert 8 of 8", [0, 1, 2, 8, 3, 4]), ("expert 5 twice in a row", [0, 1, 5, 5, 3, 4])]
        return try cases.map { label, indices in
            let name = "routeWeights rejects \(label)"
            let experts = Tensor(int32: indices, shape: [3, 2])
            var expected: KiteTensorError?
            do { _ = try cpu.routeWeights(logits: logits, experts: experts, parameters: parameters) } catch let error as KiteTensorError { expected = error }
            do {
                _ = try cuda.routeWeights(logits: try device(logits), experts: try cuda.upload(experts), parameters: parameters)
                return ParityResult(name: name, precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0, failure: "no error thrown")
            } catch let error as KiteTensorError {
                return ParityResult(name: name, precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0,
                                    failure: expected != nil && error == expected ? nil : "threw \(error), the CPU \(expected.map { "\($0)" } ?? "nothing")")
            }
        }
    }

    /// An expert index out of range reaches routeBackward: it must throw the CPU's error, naming the position.
    func routeRejectsBadExpert() throws -> ParityResult {
        let name = "routeBackward rejects expert 8 of 8"
        let parameters = RoutingParameters(scoring: .softmax, topK: 2, normalize: true)
        let experts = Tensor(int32: [0, 1, 2, 8, 3, 4], shape: [3, 2])
        do {
            _ = try cuda.routeBackward(dWeights: random([3, 2], seed: 870, activation: false), logits: try device(random([3, 8], seed: 871)),
                                       experts: try cuda.upload(experts), parameters: parameters)
            return ParityResult(name: name, precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0, failure: "no error thrown")
        } catch let error as KiteTensorError {
            let expected = KiteTensorError.indexOutOfRange(operation: "routeBackward", index: 8, limit: 8, position: 3)
            return ParityResult(name: name, precision: precision, maxAbsoluteError: 0, relativeError: 0, tolerance: 0,
                                failure: error == expected ? nil : "threw \(error)")
        }
    }
}
