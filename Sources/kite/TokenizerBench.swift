import ArgumentParser
import KiteJSON
import KiteModels
import KiteTokenizers

struct BenchTokenizer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode throughput (MB/s, one thread) next to HF tokenizers (Rust) on the same tokenizer.json and corpus, measured in the same run.",
        discussion: """
            Each TOKENIZER is a directory with tokenizer.json (HF's baseline runs on the same file) or a .gguf (Kite only). \
            Default: .assets/tokenizers/smollm2-gguf and r1-gguf, made by scripts/reference/tokenizers_reference.py: \
            the GGUF tokenizers as llama.cpp reads them. Two modes: encode called per corpus string, and the corpus \
            joined by newlines as one document.
            """
    )

    @Argument(help: "Tokenizer directories (with tokenizer.json) or .gguf files.")
    var tokenizers: [String] = []

    @Option(help: "JSON file whose \"strings\" array is the corpus.")
    var corpus = "Tests/Fixtures/tokenizers/corpus.json"

    @Option(help: "Seconds to spend per measurement, per implementation.")
    var seconds: Double = 2

    @Option(help: "Python interpreter with the tokenizers package, for the baseline.")
    var python = "python3"

    func run() async throws {
        let strings = try loadCorpus()
        let paths = tokenizers.isEmpty ? ["smollm2-gguf", "r1-gguf"].map { ".assets/tokenizers/" + $0 } : tokenizers
        let document = [strings.joined(separator: "\n")]
        print("corpus: \(strings.count) strings, \(strings.reduce(0) { $0 + $1.utf8.count }) bytes; one thread")
        print("tokenizer            mode        kite MB/s   HF MB/s   kite/HF")
        for path in paths {
            let tokenizer: Tokenizer
            do {
                tokenizer = path.hasSuffix(".gguf") ? try Tokenizer(ggufPath: path) : try Tokenizer(directory: path)
            } catch {
                throw ValidationError("cannot load the tokenizer at \(path): \(error)" + (tokenizers.isEmpty ? " (run scripts/reference/tokenizers_reference.py first, or name tokenizers)" : ""))
            }
            let kite = [
                TokenizerBenchmark.run(tokenizer: tokenizer, corpus: strings, minimumSeconds: seconds).megabytesPerSecond,
                TokenizerBenchmark.run(tokenizer: tokenizer, corpus: document, minimumSeconds: seconds).megabytesPerSecond,
            ]
            let baseline = path.hasSuffix(".gguf") ? nil : huggingFaceBaseline(directory: path)
            let name = path.split(separator: "/").last.map(String.init) ?? path
            for (index, mode) in ["strings", "document"].enumerated() {
                let hf = baseline?[index]
                print("\(name.padding(20)) \(mode.padding(11)) \(format(kite[index]).padding(11)) \((hf.map(format) ?? "n/a").padding(9)) \(hf.map { format(kite[index] / $0) } ?? "n/a")")
            }
            if baseline == nil && !path.hasSuffix(".gguf") { print("HF baseline unavailable: '\(python) -c \"import tokenizers\"' failed") }
        }
    }

    func loadCorpus() throws -> [String] {
        let text: String
        do { text = try FileText.read(corpus) } catch { throw ValidationError("cannot read the corpus \(corpus): \(error)") }
        let json = try JSONValue(parsing: text, source: corpus)
        guard let strings = json["strings"]?.arrayValue?.compactMap(\.stringValue), !strings.isEmpty else {
            throw ValidationError("\(corpus): expected an object with a non-empty \"strings\" array of strings")
        }
        return strings
    }

    /// MB/s of HF `tokenizers` on the same file and corpus, per string and as one document; median pass.
    func huggingFaceBaseline(directory: String) -> [Double]? {
        let script = """
            import json, sys, time
            from tokenizers import Tokenizer
            corpus = json.load(open(sys.argv[2], encoding="utf-8"))["strings"]
            tokenizer = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
            def measure(texts):
                size = sum(len(t.encode("utf-8")) for t in texts)
                run = lambda: [tokenizer.encode(t, add_special_tokens=False) for t in texts]
                run(); times = []; start = time.perf_counter()
                while len(times) < 3 or time.perf_counter() - start < \(seconds):
                    t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
                times.sort(); print(size / times[len(times) // 2] / 1e6)
            measure(corpus); measure(["\\n".join(corpus)])
            """
        let oneThread = ["RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"]
        guard let result = ProcessRunner.run([python, "-c", script, directory, corpus], environment: oneThread), result.status == 0 else { return nil }
        let values = result.output.split(separator: "\n").compactMap { Double($0) }
        return values.count == 2 ? values : nil
    }
}
