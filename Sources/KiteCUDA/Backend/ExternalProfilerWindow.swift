import Synchronization

/// Opens and closes an external profiler's recording (`cuProfilerStart` / `cuProfilerStop`) around chosen
/// engine steps, so that `ncu --profile-from-start off` records exactly those kernels.
///
/// `KITE_CUDA_PROFILE_STEPS=first:count` counts `sampleTokens` calls (one per engine step that samples):
/// recording starts when call `first` returns and stops when call `first + count` returns, so the kernels of
/// `count` whole steps (forward and sampling) are recorded. Unset, this does nothing.
final class ExternalProfilerWindow: @unchecked Sendable {
    private let range: (first: Int, count: Int)?
    private let calls = Mutex(0)
    private let driver: CUDADriver

    init(driver: CUDADriver) {
        self.driver = driver
        let parts = environment("KITE_CUDA_PROFILE_STEPS")?.split(separator: ":").compactMap { Int($0) } ?? []
        range = parts.count == 2 && parts[0] >= 0 && parts[1] > 0 ? (parts[0], parts[1]) : nil
    }

    /// Counts one step; starts or stops the profiler at the window's edges.
    func stepFinished() throws {
        guard let range else { return }
        let call = calls.withLock { count -> Int in
            count += 1
            return count
        }
        if call == range.first, let start = driver.cuProfilerStart {
            try driver.check(start(), "cuProfilerStart")
        } else if call == range.first + range.count, let stop = driver.cuProfilerStop {
            try driver.check(stop(), "cuProfilerStop")
        }
    }
}
