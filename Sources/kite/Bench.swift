import ArgumentParser
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Kite's kernels against a baseline measured in the same run, or a running server.",
        subcommands: [BenchGEMM.self, BenchMoE.self, BenchBlockScaled.self, BenchTrainStep.self, BenchAttention.self, BenchCUDAParity.self, BenchServe.self, BenchDecode.self, BenchGRPOStep.self, BenchTokenizer.self]
    )
}

struct BenchGEMM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "fp32 GEMM GFLOP/s for 1024^3, 2048^3 and 16x4096x4096, next to numpy's matmul (OpenBLAS) measured in the same run."
    )

    @Option(help: "Threads for Kite and for OpenBLAS.")
    var threads: Int = 2

    @Option(help: "Seconds to spend measuring each shape, per implementation.")
    var seconds: Double = 2

    @Option(help: "Python interpreter with numpy, for the baseline.")
    var python: String = "python3"

    @Option(name: .customLong("shape"), help: "Shapes to measure instead of the defaults, as MxNxK (repeatable).")
    var customShapes: [String] = []

    static let defaultShapes = [(1024, 1024, 1024), (2048, 2048, 2048), (16, 4096, 4096)]

    var shapes: [(Int, Int, Int)] {
        customShapes.isEmpty ? Self.defaultShapes : customShapes.compactMap { text in
            let parts = text.split(separator: "x").compactMap { Int($0) }
            return parts.count == 3 ? (parts[0], parts[1], parts[2]) : nil
        }
    }

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        for text in customShapes {
            let parts = text.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 3, parts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--shape '\(text)': expected MxNxK with positive sizes") }
        }
    }

    func run() async throws {
        let baseline = numpyBaseline()
        print("shape (m x n x k)   kite GFLOP/s   numpy GFLOP/s   kite/numpy   (\(threads) threads)")
        for (index, (m, n, k)) in shapes.enumerated() {
            let kite = measureKite(m: m, n: n, k: k)
            let label = "\(m)x\(n)x\(k)".padding(18)
            if let numpy = baseline?[index] {
                print("\(label)  \(format(kite).padding(13))  \(format(numpy).padding(14))  \(format(kite / numpy))")
            } else {
                print("\(label)  \(format(kite).padding(13))  unavailable")
            }
        }
        if baseline == nil { print("numpy baseline unavailable: '\(python) -c \"import numpy\"' failed") }
    }

    func measureKite(m: Int, n: Int, k: Int) -> Double {
        var generator = SeededGenerator(seed: 1)
        let a = (0..<(m * k)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) }
        let b = (0..<(k * n)).map { _ in Float(generator.nextUnitDouble() * 2 - 1) }
        var c = [Float](repeating: 0, count: m * n)
        let seconds = self.seconds, threads = self.threads
        let perCall = a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    Stopwatch.secondsPerCall(budget: seconds) {
                        GEMM.sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1,
                                   a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: n, beta: 0,
                                   c: pc.baseAddress!, ldc: n, threads: threads)
                    }
                }
            }
        }
        return 2 * Double(m) * Double(n) * Double(k) / perCall / 1e9
    }

    /// GFLOP/s of `numpy.matmul` per shape, median of calls within the same time budget.
    func numpyBaseline() -> [Double]? {
        let shapeList = shapes.map { "(\($0.0),\($0.1),\($0.2))" }.joined(separator: ",")
        let script = """
            import numpy as np, time
            for m, n, k in [\(shapeList)]:
                a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)
                a @ b; times = []; start = time.perf_counter()
                while time.perf_counter() - start < \(seconds) or len(times) < 3:
                    t = time.perf_counter(); a @ b; times.append(time.perf_counter() - t)
                times.sort(); print(2.0 * m * n * k / times[len(times) // 2] / 1e9)
            """
        let threadVariables = ["OPENBLAS_NUM_THREADS": "\(threads)", "OMP_NUM_THREADS": "\(threads)", "MKL_NUM_THREADS": "\(threads)"]
        guard let result = ProcessRunner.run([python, "-c", script], environment: threadVariables), result.status == 0 else { return nil }
        let values = result.output.split(separator: "\n").compactMap { Double($0) }
        return values.count == shapes.count ? values : nil
    }
}

enum Stopwatch {
    static func now() -> Double { MonotonicClock.seconds() }

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

func format(_ value: Double) -> String {
    let rounded = (value * 100).rounded() / 100
    return "\(rounded)"
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
