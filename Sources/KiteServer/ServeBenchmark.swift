import Histogram
import NIOCore
import KiteTensor
import Synchronization

/// `kite bench serve`, after SGLang's `bench_serving`: `requests` streamed `/generate` calls with random
/// token prompts, `concurrency` at a time, reporting throughput and latency percentiles.
public enum ServeBenchmark {
    public struct Options: Sendable {
        public var requests = 64
        public var concurrency = 16
        public var inputLength = 32
        public var outputLength = 32
        /// Lengths are drawn uniformly from `[ratio x length, length]` (SGLang's `--random-range-ratio`); 1 fixes them.
        public var rangeRatio = 1.0
        public var seed: UInt64 = 1
        /// Token ids are drawn below this; nil asks the server (`/get_model_info`).
        public var vocabularySize: Int?

        public init() {}
    }

    /// Latency summary in milliseconds.
    public struct Percentiles: Codable, Sendable {
        public var mean: Double
        public var p50: Double
        public var p90: Double
        public var p99: Double
    }

    public struct Report: Codable, Sendable {
        public var requests: Int
        public var completed: Int
        public var failed: Int
        public var concurrency: Int
        public var durationSeconds: Double
        public var inputTokens: Int
        public var outputTokens: Int
        public var requestThroughput: Double
        public var outputTokenThroughput: Double
        public var totalTokenThroughput: Double
        public var timeToFirstToken: Percentiles
        public var interTokenLatency: Percentiles
        public var endToEndLatency: Percentiles
        public var firstError: String?
    }

    /// One request's timings.
    struct Timing: Sendable {
        var inputTokens = 0
        var outputTokens = 0
        var firstToken: Double?
        var gaps: [Double] = []
        var total = 0.0
        var error: String?
    }

    public static func run(client: SGLangClient, options: Options) async throws -> Report {
        let vocabulary: Int
        if let size = options.vocabularySize {
            vocabulary = size
        } else {
            vocabulary = try await client.modelInfo().vocabSize
        }
        var generator = SeededGenerator(seed: options.seed)
        func length(_ maximum: Int) -> Int {
            let low = max(1, Int((Double(maximum) * options.rangeRatio).rounded(.down)))
            return low >= maximum ? maximum : low + Int(generator.next() % UInt64(maximum - low + 1))
        }
        let workload: [([Int], Int)] = (0..<options.requests).map { _ in
            let prompt = (0..<length(options.inputLength)).map { _ in Int(generator.next() % UInt64(max(vocabulary, 1))) }
            return (prompt, length(options.outputLength))
        }

        let clock = ContinuousClock()
        let start = clock.now
        let timings = await withTaskGroup(of: [Timing].self) { group in
            let next = WorkCounter()
            for _ in 0..<max(1, min(options.concurrency, options.requests)) {
                group.addTask {
                    var mine: [Timing] = []
                    while let index = next.take(below: workload.count) {
                        mine.append(await measure(client: client, prompt: workload[index].0, outputLength: workload[index].1, clock: clock))
                    }
                    return mine
                }
            }
            var all: [Timing] = []
            for await batch in group { all += batch }
            return all
        }
        let duration = seconds(clock.now - start)

        var ttft = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var itl = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        var e2e = Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
        let completed = timings.filter { $0.error == nil }
        for timing in completed {
            if let first = timing.firstToken { _ = ttft.record(microseconds(first)) }
            for gap in timing.gaps { _ = itl.record(microseconds(gap)) }
            _ = e2e.record(microseconds(timing.total))
        }
        let input = completed.reduce(0) { $0 + $1.inputTokens }
        let output = completed.reduce(0) { $0 + $1.outputTokens }
        return Report(
            requests: options.requests, completed: completed.count, failed: timings.count - completed.count, concurrency: options.concurrency,
            durationSeconds: duration, inputTokens: input, outputTokens: output,
            requestThroughput: Double(completed.count) / duration, outputTokenThroughput: Double(output) / duration,
            totalTokenThroughput: Double(input + output) / duration,
            timeToFirstToken: percentiles(ttft), interTokenLatency: percentiles(itl), endToEndLatency: percentiles(e2e),
            firstError: timings.first { $0.error != nil }?.error)
    }

    static func measure(client: SGLangClient, prompt: [Int], outputLength: Int, clock: ContinuousClock) async -> Timing {
        var timing = Timing(inputTokens: prompt.count)
        var sampling = SamplingParamsBody(maxNewTokens: outputLength, temperature: 0, ignoreEOS: true)
        sampling.skipSpecialTokens = true
        let start = clock.now
        var last = start
        var seen = 0
        do {
            for try await chunk in client.generateStream(GenerateRequestBody(inputIDs: prompt, samplingParams: sampling)) {
                let count = max(chunk.metaInfo.completionTokens, seen)
                guard count > seen else { continue }
                let now = clock.now
                if timing.firstToken == nil {
                    timing.firstToken = seconds(now - start)
                } else {
                    // Several tokens in one chunk share the gap, as bench_serving counts them.
                    let gap = seconds(now - last) / Double(count - seen)
                    timing.gaps += [Double](repeating: gap, count: count - seen)
                }
                last = now
                seen = count
            }
            timing.outputTokens = seen
        } catch {
            timing.error = "\(error)"
        }
        timing.total = seconds(clock.now - start)
        return timing
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    static func microseconds(_ seconds: Double) -> UInt64 { UInt64(max(1, (seconds * 1e6).rounded())) }

    static func percentiles(_ histogram: Histogram<UInt64>) -> Percentiles {
        guard histogram.totalCount > 0 else { return Percentiles(mean: 0, p50: 0, p90: 0, p99: 0) }
        return Percentiles(
            mean: histogram.mean / 1000, p50: Double(histogram.valueAtPercentile(50)) / 1000,
            p90: Double(histogram.valueAtPercentile(90)) / 1000, p99: Double(histogram.valueAtPercentile(99)) / 1000)
    }
}

/// Hands out work indices to concurrent workers.
private final class WorkCounter: Sendable {
    private let next = Mutex<Int>(0)

    func take(below limit: Int) -> Int? {
        next.withLock { value in
            guard value < limit else { return nil }
            defer { value += 1 }
            return value
        }
    }
}

extension ServeBenchmark.Report {
    /// The report as one line of JSON.
    public var jsonText: String { String(buffer: JSONBody.encode(self)) }
}
