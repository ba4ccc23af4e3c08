import KiteModels
import KiteTensor

/// Global-norm gradient clipping (`--clip-grad`), as Megatron and `torch.nn.utils.clip_grad_norm_` do it:
/// the L2 norm over all gradients together, and a scale of `maxNorm / (norm + 1e-6)` when that is below 1.
public enum GradientClipping {
    /// The L2 norm of all gradients, accumulated in fp64.
    public static func globalNorm(_ gradients: ParameterSet, backend: any Backend) throws -> Double {
        var sum = 0.0
        for (_, gradient) in gradients.entries { sum += try backend.sumOfSquares(gradient) }
        return sum.squareRoot()
    }

    /// The factor to multiply gradients by: 1 when the norm is within `maxNorm` (or clipping is off, `maxNorm <= 0`).
    public static func scale(norm: Double, maxNorm: Double) -> Float {
        guard maxNorm > 0, norm.isFinite else { return 1 }
        let coefficient = maxNorm / (norm + 1e-6)
        return coefficient < 1 ? Float(coefficient) : 1
    }

    /// Sets every gradient to zero (before accumulating the next step).
    public static func zero(_ gradients: ParameterSet, backend: any Backend) throws {
        for (_, gradient) in gradients.entries { try backend.fill(gradient, with: 0) }
    }
}
