import KiteTensor

/// A SwiGLU MLP, `down(silu(gate(x)) * up(x))`: the dense feed-forward of every dense layer, and DeepSeek's
/// shared experts. Weights are `<prefix>{gate,up,down}_proj.*`.
struct FeedForward {
    let gateProj: LinearWeight, upProj: LinearWeight, downProj: LinearWeight
    let gateBias: Tensor?, upBias: Tensor?, downBias: Tensor?
    /// gate and up as one product, when the weights lie back to back (an inference copy of the model).
    let stackedGateUp: StackedProjection?

    static func parameterShapes(prefix p: String, hidden d: Int, width i: Int, bias: Bool) -> [(String, [Int])] {
        var shapes: [(String, [Int])] = [(p + "gate_proj.weight", [i, d])]
        if bias { shapes.append((p + "gate_proj.bias", [i])) }
        shapes.append((p + "up_proj.weight", [i, d]))
        if bias { shapes.append((p + "up_proj.bias", [i])) }
        shapes.append((p + "down_proj.weight", [d, i]))
        if bias { shapes.append((p + "down_proj.bias", [d])) }
        return shapes
    }

    init(prefix p: String, bias: Bool, blockSize: Int, parameters: ParameterSet, buffers: ParameterSet) throws {
        func projection(_ name: String) throws -> LinearWeight { try LinearWeight(p + name, parameters: parameters, buffers: buffers, blockSize: blockSize) }
        func optional(_ name: String) throws -> Tensor? { bias ? try parameters.require(p + name) : nil }
        gateProj = try projection("gate_proj.weight")
        upProj = try projection("up_proj.weight")
        downProj = try projection("down_proj.weight")
        gateBias = try optional("gate_proj.bias")
        upBias = try optional("up_proj.bias")
        downBias = try optional("down_proj.bias")
        stackedGateUp = StackedProjection([gateProj, upProj], biases: [gateBias, upBias])
    }
}

/// What the MLP keeps for its backward.
struct FeedForwardActivations {
    var gate: Tensor
    var up: Tensor
    var activated: Tensor
}

extension Transformer {
    /// `stacked` lets an inference forward (nothing kept) use the stacked gate/up product.
    func feedForward(_ f: FeedForward, input x: Tensor, keep: Bool, stacked useStacked: Bool = false) throws -> (output: Tensor, activations: FeedForwardActivations?) {
        if !keep, useStacked, let stacked = f.stackedGateUp {
            // Inference: one product for gate and up, and SwiGLU reading its rows in place.
            return (try linear(try backend.swiglu(packed: try linear(x, stacked)), f.downProj, f.downBias), nil)
        }
        let gate = try linear(x, f.gateProj, f.gateBias)
        let up = try linear(x, f.upProj, f.upBias)
        let activated = try backend.swiglu(gate: gate, up: up)
        let output = try linear(activated, f.downProj, f.downBias)
        return (output, keep ? FeedForwardActivations(gate: gate, up: up, activated: activated) : nil)
    }

    /// Backward of `feedForward`: returns d(loss)/d(input) and adds the weights' gradients.
    func feedForwardBackward(_ f: FeedForward, _ saved: FeedForwardActivations, input x: Tensor, dOutput: Tensor, gradients g: GradientLookup) throws -> Tensor {
        let dActivated = try linearBackward(dOutput, input: saved.activated, weight: f.downProj, weightGradient: try g("down_proj.weight"), biasGradient: try g.optional("down_proj.bias", f.downBias != nil))
        let (dGate, dUp) = try backend.swigluBackward(dOutput: dActivated, gate: saved.gate, up: saved.up)
        let dInput = try linearBackward(dGate, input: x, weight: f.gateProj, weightGradient: try g("gate_proj.weight"), biasGradient: try g.optional("gate_proj.bias", f.gateBias != nil))
        try backend.accumulate(
            try linearBackward(dUp, input: x, weight: f.upProj, weightGradient: try g("up_proj.weight"), biasGradient: try g.optional("up_proj.bias", f.upBias != nil)),
            into: dInput, scale: 1)
        return dInput
    }
}
