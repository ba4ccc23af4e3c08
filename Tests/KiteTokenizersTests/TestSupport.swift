import Foundation
import KiteGGUF
import KiteJSON
import Testing

@testable import KiteTokenizers

/// Paths of committed fixtures and of fetched or generated assets.
enum Paths {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = testsDirectory.appendingPathComponent("Fixtures/tokenizers")
    static let repository = testsDirectory.deletingLastPathComponent()
    static let assets = repository.appendingPathComponent(".assets")

    static func fixture(_ name: String) -> URL { fixtures.appendingPathComponent(name) }
    static func asset(_ name: String) -> URL { assets.appendingPathComponent(name) }
}

/// Test assets live in the git-ignored `.assets/`. Tests that need one are skipped when it is missing, unless
/// `KITE_REQUIRE_ASSETS=1` (CI), where a missing asset fails the test with a message saying how to get it.
enum Assets {
    static let required = ProcessInfo.processInfo.environment["KITE_REQUIRE_ASSETS"] == "1"

    static func exists(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: Paths.asset(name).path)
    }

    /// Records a clear failure (when assets are required) and returns false when an asset is missing.
    static func check(_ names: String..., howToGet: String) -> Bool {
        let missing = names.filter { !exists($0) }
        if missing.isEmpty { return true }
        if required { Issue.record("missing test assets \(missing.map { ".assets/" + $0 }); \(howToGet)") }
        return false
    }

    static let fetchHint = "run scripts/assets/fetch.sh"
}

func loadJSON(_ url: URL) throws -> JSONValue {
    try JSONValue(parsing: [UInt8](Data(contentsOf: url)), source: url.path)
}

extension JSONValue {
    var ints: [Int] { (arrayValue ?? []).compactMap(\.intValue) }
    var strings: [String] { (arrayValue ?? []).compactMap(\.stringValue) }
}

/// The committed corpus fixture: strings and reference ids.
struct CorpusFixture: Sendable {
    let strings: [String]
    /// transformers' ids per tokenizer name ("smollm2", "r1").
    let transformers: [String: [[Int]]]
    /// Where the GGUF's own reading differs from transformers' conversion: index -> ids.
    let ggufDiffers: [String: [Int: [Int]]]

    private static let loaded = Result { try CorpusFixture(url: Paths.fixture("corpus.json")) }
    static func shared() throws -> CorpusFixture { try loaded.get() }

    init(url: URL) throws {
        let json = try loadJSON(url)
        strings = json["strings"]?.strings ?? []
        var transformers: [String: [[Int]]] = [:]
        for (name, lists) in json["transformers"]?.objectValue ?? JSONObject() {
            transformers[name] = (lists.arrayValue ?? []).map(\.ints)
        }
        self.transformers = transformers
        var differs: [String: [Int: [Int]]] = [:]
        for (name, entries) in json["gguf_differs"]?.objectValue ?? JSONObject() {
            var map: [Int: [Int]] = [:]
            for (key, ids) in entries.objectValue ?? JSONObject() { map[Int(key) ?? -1] = ids.ints }
            differs[name] = map
        }
        ggufDiffers = differs
    }
}

/// The two real tokenizers' GGUF files (fetched by scripts/assets/fetch.sh).
enum RealGGUF {
    static let files = ["smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "r1": "DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf"]

    private static let loaded: [String: Result<(GGUFTokenizerMetadata, Tokenizer), any Error>] = {
        var result: [String: Result<(GGUFTokenizerMetadata, Tokenizer), any Error>] = [:]
        for (name, file) in files where Assets.exists(file) {
            result[name] = Result {
                let metadata = try GGUFTokenizerMetadata(metadata: try GGUFFile(path: Paths.asset(file).path).metadata)
                return (metadata, try Tokenizer(ggufMetadata: metadata))
            }
        }
        return result
    }()

    /// Whether the test may run; records a failure when assets are required but missing.
    static func available(_ name: String) -> Bool {
        Assets.check(files[name] ?? name, howToGet: Assets.fetchHint)
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try #require(loaded[name]).get().1
    }

    static func metadata(_ name: String) throws -> GGUFTokenizerMetadata {
        try #require(loaded[name]).get().0
    }
}

/// Byte equality: Swift's `==` on strings is canonical equivalence, which would hide normalization bugs.
func sameBytes(_ a: String, _ b: String) -> Bool {
    Array(a.utf8) == Array(b.utf8)
}

/// Short, escaped rendering of a string for failure messages.
func show(_ text: String) -> String {
    let escaped = text.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
    return escaped.count > 120 ? String(escaped.prefix(120)) + "..." : escaped
}
