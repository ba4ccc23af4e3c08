import KiteTensor

/// Multi-head latent attention's column ops and the mixture-of-experts ops are not implemented on CUDA yet:
/// each throws `CUDAError.unsupported` at run time, naming the operation. DeepSeek and Qwen3-MoE models
/// therefore run on the CPU backend only for now; the CPU backend is the reference these kernels must match.
extension CUDABackend {
    func notYet(_ operation: String) -> CUDAError {
        .unsupported("\(operation) is unsupported on CUDA yet (mixture-of-experts and latent-attention kernels are CPU-only for now)")
    }

    public func splitColumns(_ x: Tensor, widths: [Int], summingGroups: [Int]?) throws -> [Tensor] { throw notYet("splitColumns") }
    public func concatenateColumns(_ parts: [Tensor]) throws -> Tensor { throw notYet("concatenateColumns") }
    public func gatherColumns(_ x: Tensor, columns: [Int]) throws -> Tensor { throw notYet("gatherColumns") }
    public func swapLeadingDimensions(_ x: Tensor) throws -> Tensor { throw notYet("swapLeadingDimensions") }

    public func route(logits: Tensor, correctionBias: Tensor?, parameters: RoutingParameters) throws -> (weights: Tensor, experts: Tensor) {
        throw notYet("route")
    }

    public func routeBackward(dWeights: Tensor, logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor {
        throw notYet("routeBackward")
    }

    public func dispatch(_ x: Tensor, experts: Tensor, expertCount: Int) throws -> (rows: Tensor, plan: ExpertDispatch) { throw notYet("dispatch") }
    public func combine(_ rows: Tensor, weights: Tensor?, plan: ExpertDispatch) throws -> Tensor { throw notYet("combine") }

    public func combineBackward(dOutput: Tensor, rows: Tensor, weights: Tensor, plan: ExpertDispatch) throws -> (dRows: Tensor, dWeights: Tensor) {
        throw notYet("combineBackward")
    }

    public func groupedMatmul(_ x: Tensor, weights: [Tensor], groupSizes: [Int], transposeWeights: Bool) throws -> Tensor {
        throw notYet("groupedMatmul")
    }

    public func groupedMatmulWeightGradient(dOutput: Tensor, input: Tensor, groupSizes: [Int], weightGradients: [Tensor]) throws {
        throw notYet("groupedMatmulWeightGradient")
    }
}
