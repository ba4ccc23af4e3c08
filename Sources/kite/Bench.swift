import ArgumentParser
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Kite's kernels against a baseline measured in the same run.",
        subcommands: [BenchGEMM.self]
    )
}

struct BenchGEMM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "fp32 GEMM GFLOP/s for 1024^3, 2048^3 and 16x4096x4096, next to numpy (OpenBLAS)."
    )

    @Option(help: "Threads for Kite and for OpenBLAS.")
    var threads: Int = 2

    @Option(help: "Seconds to spend measuring each shape.")
    var seconds: Double = 2

    func run() async throws {
        let shapes = [(1024, 1024, 1024), (2048, 2048, 2048), (16, 4096, 4096)]
        for (m, n, k) in shapes {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1) }
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2.0 * Double(m) * Double(n) * Double(k)
            let perCall = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        Stopwatch.secondsPerCall(budget: seconds) {
                            GEMM.sgemm(
                                transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1,
                                a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n, beta: 0,
                                c: pc.baseAddress!, ldc: n, threads: threads)
                        }
                    }
                }
            }
            print("\(m)x\(n)x\(k): kite \(String(format2: flops / perCall / 1e9)) GFLOP/s")
        }
    }
}

enum Stopwatch {
    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) * 1e-9
    }

    /// Median seconds per call of `body` over repeated calls within `budget` seconds (after one warm-up).
    static func secondsPerCall(budget: Double, _ body: () -> Void) -> Double {
        body()
        var times: [Double] = []
        let start = now()
        while now() - start < budget || times.count < 3 {
            let t0 = now()
            body()
            times.append(now() - t0)
        }
        times.sort()
        return times[times.count / 2]
    }
}

extension String {
    init(format2 value: Double) {
        let scaled = (value * 100).rounded() / 100
        self = "\(scaled)"
    }
}
