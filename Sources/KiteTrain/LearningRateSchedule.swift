#if canImport(Glibc)
import Glibc
#endif

/// The learning rate at each optimizer step, as Megatron's `OptimizerParamScheduler` computes it:
/// linear warm-up from 0 over `warmupSteps`, then `constant`, `linear` or `cosine` decay from `maxLR` to
/// `minLR` over the remaining steps up to `decaySteps`, and `minLR` after that.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public enum Style: String, Sendable, Codable, CaseIterable {
        case constant, linear, cosine
    }

    /// `--lr`
    public var maxLR: Double
    /// `--min-lr`
    public var minLR: Double
    /// `--lr-decay-style`
    public var style: Style
    /// `--lr-warmup-iters`
    public var warmupSteps: Int
    /// `--lr-decay-iters`: defaults to the run's total optimizer steps.
    public var decaySteps: Int

    public init(maxLR: Double, minLR: Double = 0, style: Style = .constant, warmupSteps: Int = 0, decaySteps: Int) {
        self.maxLR = maxLR
        self.minLR = minLR
        self.style = style
        self.warmupSteps = warmupSteps
        self.decaySteps = decaySteps
    }

    /// The rate for optimizer step `step` (1 for the first step).
    public func rate(atStep step: Int) -> Double {
        if warmupSteps > 0 && step <= warmupSteps {
            return maxLR * Double(step) / Double(warmupSteps)
        }
        if style == .constant { return maxLR }
        if step > decaySteps { return minLR }
        let span = Double(max(decaySteps - warmupSteps, 1))
        let ratio = min(max(Double(step - warmupSteps) / span, 0), 1)
        let coefficient = style == .linear ? 1 - ratio : 0.5 * (cos(Double.pi * ratio) + 1)
        return minLR + coefficient * (maxLR - minLR)
    }
}
