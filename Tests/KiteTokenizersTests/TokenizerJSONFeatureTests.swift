import Foundation
import KiteJSON
import Testing

@testable import KiteTokenizers

/// tokenizer.json features the real tokenizers do not use, on small tokenizers trained by
/// scripts/reference/tiny_tokenizers_reference.py, against HF `tokenizers` and transformers.
@Suite struct TokenizerJSONFeatureTests {
    static let fixture: JSONValue? = try? loadJSON(Paths.fixture("tiny.json"))
    static let variantNames: [String] = fixture?["variants"]?.objectValue?.keys ?? []

    /// The base tokenizer.json with a variant's overrides applied, as the reference script does.
    static func document(_ variant: JSONValue) throws -> JSONValue {
        guard case .object(var root) = try #require(fixture?["base"]) else { throw TestFailure("base is not an object") }
        for (key, value) in variant["overrides"]?.objectValue ?? JSONObject() {
            if key == "model", case .object(var model) = try #require(root["model"]) {
                for (modelKey, modelValue) in value.objectValue ?? JSONObject() {
                    if modelKey == "merges", modelValue.stringValue == "as strings" {
                        let pairs = model["merges"]?.arrayValue ?? []
                        model["merges"] = .array(pairs.map { .string($0.strings.joined(separator: " ")) })
                    } else {
                        model[modelKey] = modelValue
                    }
                }
                root["model"] = .object(model)
            } else {
                root[key] = value
            }
        }
        return .object(root)
    }

    static func tokenizer(_ variant: JSONValue, name: String) throws -> Tokenizer {
        let document = try document(variant)
        guard let files = variant["files"]?.objectValue else {
            return try Tokenizer(tokenizerJSON: document, source: name)
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-tiny-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(document.serialized().utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        for (file, content) in files {
            try Data(content.serialized().utf8).write(to: directory.appendingPathComponent(file))
        }
        return try Tokenizer(directory: directory.path)
    }

    @Test(arguments: variantNames)
    func idsMatchHF(name: String) throws {
        let variant = try #require(TokenizerJSONFeatureTests.fixture?["variants"]?[name])
        let tokenizer = try TokenizerJSONFeatureTests.tokenizer(variant, name: name)
        let strings = TokenizerJSONFeatureTests.fixture?["strings"]?.strings ?? []
        let ids = (variant["ids"]?.arrayValue ?? []).map(\.ints)
        let withSpecial = variant["ids_with_special_tokens"]?.arrayValue.map { $0.map(\.ints) } ?? ids
        func texts(_ key: String) -> [String] {
            strings.indices.map { variant[key]?["\($0)"]?.stringValue ?? strings[$0] }
        }
        let decoded = texts("decoded")
        let skipping = texts("decoded_skipping_special")
        #expect(strings.count >= 150 && ids.count == strings.count)
        var failures = 0
        for (index, text) in strings.enumerated() {
            let kite = tokenizer.encode(text, addSpecialTokens: false)
            let kiteWithSpecial = tokenizer.encode(text, addSpecialTokens: true)
            if kite != ids[index] || kiteWithSpecial != withSpecial[index] {
                failures += 1
                if failures <= 3 {
                    Issue.record("\(name) #\(index) \(show(text)): \(kite) / \(kiteWithSpecial) != \(ids[index]) / \(withSpecial[index])")
                }
            }
            #expect(sameBytes(try tokenizer.decode(kite), decoded[index]), "\(name) #\(index)")
            #expect(sameBytes(try tokenizer.decode(kite, skipSpecialTokens: true), skipping[index]), "\(name) #\(index)")
        }
        #expect(failures == 0)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The GGUF pre-tokenizer names map to the pre-tokenizers HF runs: the small trained vocabulary, given as
/// GGUF-style arrays under a llama.cpp name, tokenizes as the tokenizer.json variant with that pre-tokenizer.
@Suite struct GGUFPreTokenizerNameTests {
    static let cases: [(ggufName: String, variant: String)] = [
        ("gpt2", "string-merges"), ("gpt-2", "string-merges"), ("llama-bpe", "ignore-merges"), ("deepseek-v3", "deepseek-v3"),
    ]

    @Test(arguments: cases)
    func namedPreTokenizerMatchesHF(ggufName: String, variant: String) throws {
        let fixture = try #require(TokenizerJSONFeatureTests.fixture)
        let base = try #require(fixture["base"]?["model"])
        var tokens = [String](repeating: "", count: base["vocab"]?.objectValue?.count ?? 0)
        for (token, id) in base["vocab"]?.objectValue ?? JSONObject() {
            let index = try #require(id.intValue)
            tokens[index] = token
        }
        let merges = (base["merges"]?.arrayValue ?? []).map { $0.strings.joined(separator: " ") }
        let tokenizer = try Tokenizer(tokens: tokens, merges: merges, preTokenizer: ggufName, addBOS: false)
        let strings = fixture["strings"]?.strings ?? []
        let expected = (fixture["variants"]?[variant]?["ids"]?.arrayValue ?? []).map(\.ints)
        #expect(expected.count == strings.count && strings.count > 200)
        var failures = 0
        for (index, text) in strings.enumerated() where tokenizer.encode(text, addSpecialTokens: false) != expected[index] {
            failures += 1
            if failures <= 3 { Issue.record("\(ggufName) #\(index) \(show(text))") }
        }
        #expect(failures == 0)
    }
}
