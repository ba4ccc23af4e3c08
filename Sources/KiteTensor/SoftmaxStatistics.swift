#if canImport(Glibc)
import Glibc
#endif

/// The log-sum-exp and entropy of a temperature-scaled softmax, computed one way everywhere: the trainer's
/// fused head and the engine's sampler share it, so their log-probs agree to the last bit on the CPU.
public enum SoftmaxStatistics {
    /// Log-sum-exp and entropy of `softmax(row / temperature)`, in one pass after the maximum.
    public static func compute(_ row: UnsafePointer<Float>, count: Int, temperature: Float) -> (logSumExp: Float, entropy: Float) {
        var maximum = -Float.infinity
        for j in 0..<count { maximum = max(maximum, row[j] / temperature) }
        // sum e^(z - m) and sum e^(z - m) (z - m); then H = log S - (sum e (z - m)) / S.
        var sum: Float = 0, weighted: Float = 0
        for j in 0..<count {
            let shifted = row[j] / temperature - maximum
            let e = expf(shifted)
            sum += e
            weighted += e * shifted
        }
        let logSum = logf(sum)
        return (maximum + logSum, logSum - weighted / sum)
    }
}
