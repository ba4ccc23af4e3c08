import ArgumentParser
import KiteServer

struct BenchServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load a running server like SGLang's bench_serving: random prompts at a concurrency; throughput and TTFT/ITL percentiles.")

    @Option(help: "The server's base URL.")
    var url = "http://127.0.0.1:30000"

    @Option(help: "API key of the server.")
    var apiKey: String?

    @Option(help: "Requests to send.")
    var numPrompts = 64

    @Option(help: "Requests in flight at once.")
    var maxConcurrency = 16

    @Option(help: "Prompt tokens per request.")
    var randomInputLen = 32

    @Option(help: "Output tokens per request (ignore_eos).")
    var randomOutputLen = 32

    @Option(help: "Lengths are uniform in [ratio x length, length].")
    var randomRangeRatio = 1.0

    @Option(help: "Seed of the prompts.")
    var seed: UInt64 = 1

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard numPrompts >= 1, maxConcurrency >= 1, randomInputLen >= 1, randomOutputLen >= 1 else {
            throw ValidationError("--num-prompts, --max-concurrency and the lengths must be at least 1")
        }
        guard (0...1).contains(randomRangeRatio) else { throw ValidationError("--random-range-ratio must be in [0, 1]") }
    }

    func run() async throws {
        var options = ServeBenchmark.Options()
        options.requests = numPrompts
        options.concurrency = maxConcurrency
        options.inputLength = randomInputLen
        options.outputLength = randomOutputLen
        options.rangeRatio = randomRangeRatio
        options.seed = seed
        let http = SGLangClient.makeHTTPClient(maxConnections: maxConcurrency + 8)
        let report: ServeBenchmark.Report
        do {
            report = try await ServeBenchmark.run(client: SGLangClient(baseURL: url, apiKey: apiKey, httpClient: http), options: options)
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
        if json {
            print(report.jsonText)
            return
        }
        print("requests: \(report.completed) completed, \(report.failed) failed, concurrency \(report.concurrency), \(format(report.durationSeconds)) s")
        print("tokens: \(report.inputTokens) input, \(report.outputTokens) output")
        print("throughput: \(format(report.requestThroughput)) req/s, \(format(report.outputTokenThroughput)) output tok/s, \(format(report.totalTokenThroughput)) total tok/s")
        for (name, value) in [("TTFT", report.timeToFirstToken), ("ITL", report.interTokenLatency), ("E2E", report.endToEndLatency)] {
            print("\(name) ms: mean \(format(value.mean)), p50 \(format(value.p50)), p90 \(format(value.p90)), p99 \(format(value.p99))")
        }
        if let error = report.firstError { print("first error: \(error)") }
    }
}
