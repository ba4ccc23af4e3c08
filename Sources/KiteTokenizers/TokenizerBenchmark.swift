/// Tokenizer throughput on a corpus, single-threaded, for `kite bench tokenizer`. Compare with
/// `scripts/reference/tokenizer_throughput.py`, which measures HF `tokenizers` (one thread) on the same
/// corpus (`Tests/Fixtures/tokenizers/corpus.json`, its "strings"): per string, and as one document
/// (`run(tokenizer:corpus: [strings.joined(separator: "\n")])`).
public enum TokenizerBenchmark {
    /// One measurement: sizes of a pass and the median time of a pass.
    public struct Result: Sendable {
        /// UTF-8 bytes in one pass over the corpus.
        public let bytesPerPass: Int
        /// Tokens produced by one pass.
        public let tokensPerPass: Int
        /// Timed passes (after one warm-up pass).
        public let passes: Int
        /// Median seconds per pass.
        public let medianSeconds: Double

        /// Throughput in 10^6 UTF-8 bytes per second, and in tokens per second.
        public var megabytesPerSecond: Double { medianSeconds > 0 ? Double(bytesPerPass) / medianSeconds / 1e6 : 0 }
        public var tokensPerSecond: Double { medianSeconds > 0 ? Double(tokensPerPass) / medianSeconds : 0 }
    }

    /// Encodes every string of `corpus` (`addSpecialTokens: false`) pass after pass for at least
    /// `minimumSeconds` and at least three passes; reports the median pass.
    public static func run(tokenizer: Tokenizer, corpus: [String], minimumSeconds: Double = 2) -> Result {
        let bytes = corpus.reduce(0) { $0 + $1.utf8.count }
        if bytes == 0 { return Result(bytesPerPass: 0, tokensPerPass: 0, passes: 0, medianSeconds: 0) }
        var tokens = 0
        for text in corpus { tokens += tokenizer.encode(text, addSpecialTokens: false).count }
        let clock = ContinuousClock()
        var times: [Double] = []
        let start = clock.now
        while times.count < 3 || seconds(clock.now - start) < minimumSeconds {
            let passStart = clock.now
            var sink = 0
            for text in corpus { sink &+= tokenizer.encode(text, addSpecialTokens: false).count }
            times.append(seconds(clock.now - passStart))
            if sink != tokens { tokens = sink }
        }
        times.sort()
        return Result(bytesPerPass: bytes, tokensPerPass: tokens, passes: times.count, medianSeconds: times[times.count / 2])
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (whole, fraction) = duration.components
        return Double(whole) + Double(fraction) * 1e-18
    }
}
