import KiteTensor

/// The sparse feed-forward of Qwen3-MoE and DeepSeek: a router picks `k` experts per token, tokens are grouped
/// by expert (`dispatch`), every expert runs its SwiGLU MLP over its group at once (grouped products),
/// outputs come back weighted by the gates (`combine`), and shared experts, when present, add a dense MLP
/// of every token.
///
/// Weights, as Hugging Face checkpoints name them under `<prefix>` = `model.layers.N.mlp.`: the router
/// `gate.weight` `[experts, hidden]`, `experts.E.{gate,up,down}_proj.weight`, `shared_experts.*`, and DeepSeek-V3's
/// `gate.e_score_correction_bias` (a buffer: saved and synced, never trained).
struct MixtureOfExperts {
    let router: Tensor
    let correctionBias: Tensor?
    let gateProjs: [LinearWeight], upProjs: [LinearWeight], downProjs: [LinearWeight]
    let shared: FeedForward?
    let routing: RoutingParameters

    static func parameterShapes(prefix p: String, config: ModelConfig, experts x: ExpertsConfig) -> [(String, [Int])] {
        let (d, i) = (config.hiddenSize, x.intermediateSize)
        var shapes: [(String, [Int])] = [(p + "gate.weight", [x.expertCount, d])]
        for e in 0..<x.expertCount {
            shapes += FeedForward.parameterShapes(prefix: p + "experts.\(e).", hidden: d, width: i, bias: false)
        }
        if x.sharedExpertCount > 0 {
            shapes += FeedForward.parameterShapes(prefix: p + "shared_experts.", hidden: d, width: i * x.sharedExpertCount, bias: config.mlpBias)
        }
        return shapes
    }

    static func bufferShapes(prefix p: String, experts x: ExpertsConfig) -> [(String, [Int])] {
        x.correctionBias ? [(p + "gate.e_score_correction_bias", [x.expertCount])] : []
    }

    init(prefix p: String, config: ModelConfig, experts x: ExpertsConfig, parameters: ParameterSet, buffers: ParameterSet) throws {
        let block = config.quantization?.blockSize ?? 128
        router = try parameters.require(p + "gate.weight")
        correctionBias = x.correctionBias ? try buffers.require(p + "gate.e_score_correction_bias") : nil
        func projections(_ name: String) throws -> [LinearWeight] {
            try (0..<x.expertCount).map { try LinearWeight(p + "experts.\($0).\(name).weight", parameters: parameters, buffers: buffers, blockSize: block) }
        }
        gateProjs = try projections("gate_proj")
        upProjs = try projections("up_proj")
        downProjs = try projections("down_proj")
        shared = x.sharedExpertCount > 0 ? try FeedForward(prefix: p + "shared_experts.", bias: config.mlpBias, blockSize: block, parameters: parameters, buffers: buffers) : nil
        routing = x.routing
    }
}

/// What the sparse feed-forward keeps for its backward.
struct MixtureOfExpertsActivations {
    var logits: Tensor
    var weights: Tensor
    var experts: Tensor
    var plan: ExpertDispatch
    /// Dispatched input rows `[T * k, hidden]`, and each expert MLP's intermediates and outputs on them.
    var rows: Tensor
    var gate: Tensor
    var up: Tensor
    var activated: Tensor
    var expertOutputs: Tensor
    var shared: FeedForwardActivations?
}

extension Transformer {
    /// `routing` records the experts the router chose, or replaces the choice with recorded experts (the gate
    /// weights of those experts still come from this router's logits).
    func mixtureOfExperts(
        _ f: MixtureOfExperts, layer: Int, input x: Tensor, keep: Bool, record: Bool, routing: ExpertRouting? = nil
    ) throws -> (output: Tensor, activations: MixtureOfExpertsActivations?) {
        let logits = try backend.matmul(x, f.router, transposeA: false, transposeB: true)
        let weights: Tensor, experts: Tensor
        let sparseLayer = routing == nil ? nil : config.sparseLayerIndices.firstIndex(of: layer)
        if let routing, let sparseLayer, let replayed = routing.experts(sparseLayer: sparseLayer) {
            experts = try backend.upload(replayed)
            weights = try backend.routeWeights(logits: logits, experts: experts, parameters: f.routing)
        } else {
            (weights, experts) = try backend.route(logits: logits, correctionBias: f.correctionBias, parameters: f.routing)
            if let routing, let sparseLayer, routing.mode == .record {
                try routing.record(sparseLayer: sparseLayer, experts: try backend.download(experts))
            }
        }
        let (rows, plan) = try backend.dispatch(x, experts: experts, expertCount: f.gateProjs.count)
        if record { recordExpertLoad(layer: layer, plan.tokensPerExpert) }
        let sizes = plan.tokensPerExpert
        let gate = try expertProduct(rows, f.gateProjs, sizes)
        let up = try expertProduct(rows, f.upProjs, sizes)
        let activated = try backend.swiglu(gate: gate, up: up)
        let expertOutputs = try expertProduct(activated, f.downProjs, sizes)
        let output = try backend.combine(expertOutputs, weights: weights, plan: plan)
        var sharedActivations: FeedForwardActivations?
        if let shared = f.shared {
            let (sharedOutput, saved) = try feedForward(shared, input: x, keep: keep)
            try backend.accumulate(sharedOutput, into: output, scale: 1)
            sharedActivations = saved
        }
        guard keep else { return (output, nil) }
        return (output, MixtureOfExpertsActivations(
            logits: logits, weights: weights, experts: experts, plan: plan, rows: rows, gate: gate, up: up, activated: activated,
            expertOutputs: expertOutputs, shared: sharedActivations))
    }

    /// Backward of `mixtureOfExperts`: through the combine weights into the router, and through the experts.
    func mixtureOfExpertsBackward(_ f: MixtureOfExperts, _ saved: MixtureOfExpertsActivations, input x: Tensor, dOutput: Tensor, gradients g: GradientLookup) throws -> Tensor {
        let sizes = saved.plan.tokensPerExpert
        let count = f.gateProjs.count
        func gradients(_ name: String) throws -> [Tensor] { try (0..<count).map { try g("experts.\($0).\(name).weight") } }
        let (dExpertOutputs, dWeights) = try backend.combineBackward(dOutput: dOutput, rows: saved.expertOutputs, weights: saved.weights, plan: saved.plan)
        let dActivated = try backend.groupedMatmul(dExpertOutputs, weights: try trainableExpertWeights(f.downProjs, sizes), groupSizes: sizes, transposeWeights: false)
        try backend.groupedMatmulWeightGradient(dOutput: dExpertOutputs, input: saved.activated, groupSizes: sizes, weightGradients: try gradients("down_proj"))
        let (dGate, dUp) = try backend.swigluBackward(dOutput: dActivated, gate: saved.gate, up: saved.up)
        let dRows = try backend.groupedMatmul(dGate, weights: try trainableExpertWeights(f.gateProjs, sizes), groupSizes: sizes, transposeWeights: false)
        try backend.accumulate(
            try backend.groupedMatmul(dUp, weights: try trainableExpertWeights(f.upProjs, sizes), groupSizes: sizes, transposeWeights: false),
            into: dRows, scale: 1)
        try backend.groupedMatmulWeightGradient(dOutput: dGate, input: saved.rows, groupSizes: sizes, weightGradients: try gradients("gate_proj"))
        try backend.groupedMatmulWeightGradient(dOutput: dUp, input: saved.rows, groupSizes: sizes, weightGradients: try gradients("up_proj"))
        // Each token's k dispatched rows sum back to it (dispatch's backward).
        let dInput = try backend.combine(dRows, weights: nil, plan: saved.plan)
        // The router: gate weights depend on the logits, logits on the input and the router weight.
        let dLogits = try backend.routeBackward(dWeights: dWeights, logits: saved.logits, experts: saved.experts, parameters: f.routing)
        try backend.matmul(dLogits, x, transposeA: true, transposeB: false, into: try g("gate.weight"), alpha: 1, beta: 1)
        try backend.accumulate(try backend.matmul(dLogits, f.router, transposeA: false, transposeB: false), into: dInput, scale: 1)
        if let shared = f.shared, let sharedSaved = saved.shared {
            let sharedGradients = GradientLookup(gradients: g.gradients, prefix: g.prefix + "shared_experts.")
            try backend.accumulate(try feedForwardBackward(shared, sharedSaved, input: x, dOutput: dOutput, gradients: sharedGradients), into: dInput, scale: 1)
        }
        return dInput
    }

    /// `x_g · W_g^T` for each expert's group of dispatched rows: block-scaled when the experts hold fp8
    /// weights (a checkpoint quantises all of a layer's experts or none).
    func expertProduct(_ x: Tensor, _ projections: [LinearWeight], _ sizes: [Int]) throws -> Tensor {
        let scales = projections.compactMap(\.scaleInverse)
        if !scales.isEmpty {
            guard scales.count == projections.count, let blockSize = projections.first?.blockSize else {
                throw ModelError.invalidInput("'\(projections.first?.name ?? "experts")': \(scales.count) of \(projections.count) experts hold fp8 weights; expected all or none")
            }
            return try backend.groupedBlockScaledMatmul(x, values: projections.map(\.weight), scales: scales, groupSizes: sizes, blockSize: blockSize)
        }
        return try backend.groupedMatmul(x, weights: projections.map(\.weight), groupSizes: sizes, transposeWeights: true)
    }

    func trainableExpertWeights(_ projections: [LinearWeight], _ sizes: [Int]) throws -> [Tensor] {
        try projections.map { try $0.trainable() }
    }
}
