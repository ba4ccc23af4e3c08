import Foundation
import KiteServer
import Testing

extension ServerSuite {
    @Suite struct BenchServeTests {
        /// `kite bench serve`'s measurement: every request completes with exactly its output length, and the
        /// latencies are ordered as they must be (TTFT before end to end).
        @Test func measuresThroughputAndLatencies() async throws {
            try await withServer { server in
                var options = ServeBenchmark.Options()
                options.requests = 24
                options.concurrency = 6
                options.inputLength = 16
                options.outputLength = 12
                options.rangeRatio = 0.5
                let report = try await ServeBenchmark.run(client: server.client, options: options)
                #expect(report.completed == 24 && report.failed == 0, "\(report.firstError ?? "")")
                #expect(report.outputTokens >= 24 * 6 && report.outputTokens <= 24 * 12)
                #expect(report.inputTokens >= 24 * 8 && report.inputTokens <= 24 * 16)
                #expect(report.outputTokenThroughput > 0 && report.requestThroughput > 0)
                #expect(report.timeToFirstToken.p50 > 0 && report.timeToFirstToken.p50 <= report.endToEndLatency.p99)
                #expect(report.jsonText.contains("\"outputTokenThroughput\""))
            }
        }
    }
}
