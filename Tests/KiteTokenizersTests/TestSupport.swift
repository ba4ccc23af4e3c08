import Foundation
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
    static let referenceHint = "run python3 scripts/reference/tokenizers_reference.py (needs transformers, tokenizers, gguf)"
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

/// GGUF tokenizer metadata dumped by scripts/reference/tokenizers_reference.py (until Kite reads GGUF itself).
func ggufMetadataFromDump(_ name: String) throws -> GGUFTokenizerMetadata {
    let json = try loadJSON(Paths.asset("tokenizers/\(name)-gguf/metadata.json"))
    return GGUFTokenizerMetadata(
        model: json["model"]?.stringValue ?? "", pre: json["pre"]?.stringValue, tokens: json["tokens"]?.strings ?? [],
        merges: json["merges"]?.strings ?? [], tokenTypes: json["token_types"]?.ints.map { Int32($0) },
        bosTokenID: json["bos_token_id"]?.intValue, eosTokenID: json["eos_token_id"]?.intValue,
        paddingTokenID: json["padding_token_id"]?.intValue, unknownTokenID: json["unknown_token_id"]?.intValue,
        addBOS: json["add_bos_token"]?.boolValue, addEOS: json["add_eos_token"]?.boolValue, source: name)
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
