#if canImport(Glibc)
import Glibc
#endif

/// Seconds on a clock that never jumps (for durations, rates and timeouts).
public enum MonotonicClock {
    public static func seconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }
}
