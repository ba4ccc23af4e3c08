import Foundation
import KiteGGUF
import KiteJSON
import Testing

@testable import KiteTokenizers

/// The two real tokenizers against transformers and against the GGUF's own ids (see
/// scripts/reference/tokenizers_reference.py for how the references were made).
@Suite struct RealTokenizerTests {
    static let names = ["smollm2", "r1"]

    /// transformers' own export (made by scripts/reference/tokenizers_reference.py, so only where Python ran;
    /// skipped otherwise, also in CI).
    @Test(arguments: names)
    func transformersExportMatchesTransformersIDs(name: String) throws {
        guard Assets.exists("tokenizers/\(name)/tokenizer.json") else { return }
        let corpus = try CorpusFixture.shared()
        let expected = try #require(corpus.transformers[name])
        let tokenizer = try Tokenizer(directory: Paths.asset("tokenizers/\(name)").path)
        var mismatches = 0
        for (index, text) in corpus.strings.enumerated() {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            if ids != expected[index] {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(name) #\(index) \(show(text)): \(ids) != \(expected[index])") }
            }
        }
        #expect(mismatches == 0)
        #expect(corpus.strings.count >= 300)
    }

    @Test(arguments: names)
    func ggufMatchesReference(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let corpus = try CorpusFixture.shared()
        let expected = try #require(corpus.transformers[name])
        let tokenizer = try RealGGUF.tokenizer(name)
        var mismatches = 0
        for (index, text) in corpus.strings.enumerated() {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            let reference = corpus.ggufDiffers[name]?[index] ?? expected[index]
            if ids != reference {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(name) #\(index) \(show(text)): \(ids) != \(reference)") }
            }
            let decoded = try tokenizer.decode(ids)
            if !sameBytes(decoded, text) { Issue.record("\(name) #\(index): decode(encode) = \(show(decoded))") }
        }
        #expect(mismatches == 0)
        #expect(corpus.ggufDiffers[name]?.count ?? 0 <= 12)
    }

    /// tokenizer.json written the way transformers converts these GGUFs (SmolLM2 without the digit split),
    /// loaded as a directory: exactly transformers' ids, the digit cases included.
    @Test(arguments: names)
    func tokenizerJSONLikeTransformersConversionMatchesTransformersIDs(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let corpus = try CorpusFixture.shared()
        let expected = try #require(corpus.transformers[name])
        let directory = try TransformersStyleExport.write(try RealGGUF.metadata(name))
        defer { try? FileManager.default.removeItem(at: directory) }
        let tokenizer = try Tokenizer(directory: directory.path)
        let gguf = try RealGGUF.tokenizer(name)
        #expect(tokenizer.bosTokenID == gguf.bosTokenID && tokenizer.eosTokenID == gguf.eosTokenID)
        var mismatches = 0
        for (index, text) in corpus.strings.enumerated() where tokenizer.encode(text, addSpecialTokens: false) != expected[index] {
            mismatches += 1
            if mismatches <= 5 { Issue.record("\(name) #\(index) \(show(text))") }
        }
        #expect(mismatches == 0)
    }
}

/// Writes a tokenizer directory from GGUF metadata as transformers' GGUF conversion lays it out (byte-level
/// vocabulary, merges, control and user-defined tokens as added tokens, transformers' pre-tokenizer for the
/// architecture), for testing `Tokenizer(directory:)` on real data without Python.
enum TransformersStyleExport {
    static func write(_ metadata: GGUFTokenizerMetadata) throws -> URL {
        var vocab = JSONObject()
        for (id, token) in metadata.tokens.enumerated() { vocab[token] = .int(id) }
        var added: [JSONValue] = []
        for (id, type) in (metadata.tokenTypes ?? []).enumerated() where type == 3 || type == 4 {
            added.append(["id": .int(id), "content": .string(metadata.tokens[id]), "special": .bool(type == 3),
                          "normalized": false, "lstrip": false, "rstrip": false, "single_word": false])
        }
        let byteLevel: JSONValue = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let preTokenizer: JSONValue
        switch metadata.pre {
        case "smollm":
            preTokenizer = byteLevel
        case "qwen2", "deepseek-r1-qwen":
            preTokenizer = ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": .string(KnownPattern.qwen2Pattern)], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            ]]
        default:
            throw TestFailure("no transformers conversion known for \(metadata.pre ?? "nil")")
        }
        let document: JSONValue = [
            "version": "1.0", "truncation": nil, "padding": nil, "added_tokens": .array(added), "normalizer": nil,
            "pre_tokenizer": preTokenizer, "post_processor": nil, "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": nil, "unk_token": nil, "byte_fallback": false, "ignore_merges": false,
                      "vocab": .object(vocab), "merges": .array(metadata.merges.map { .string($0) })],
        ]
        var config = JSONObject()
        if let bos = metadata.bosTokenID { config["bos_token"] = .string(metadata.tokens[bos]) }
        if let eos = metadata.eosTokenID { config["eos_token"] = .string(metadata.tokens[eos]) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(document.serialized().utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        try Data(JSONValue.object(config).serialized().utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"))
        return directory
    }
}

/// Special and user-defined tokens inside text, against the GGUF's ids (control and user-defined tokens
/// atomic, as llama.cpp reads them).
@Suite struct SpecialTokenTests {
    struct Case {
        let strings: [String]
        let ids: [[Int]]
        let idsWithSpecialTokens: [[Int]]
        let decoded: [String]
        let decodedSkippingSpecial: [String]
        let atomicTokens: [String: Int]
        let bos: Int
        let eos: Int
        let addBOS: Bool
    }

    static func load(_ name: String) throws -> Case {
        let json = try #require(try loadJSON(Paths.fixture("special.json"))[name])
        var atomic: [String: Int] = [:]
        for (content, id) in json["atomic_tokens"]?.objectValue ?? JSONObject() { atomic[content] = id.intValue }
        return Case(
            strings: json["strings"]?.strings ?? [], ids: (json["ids"]?.arrayValue ?? []).map(\.ints),
            idsWithSpecialTokens: (json["ids_with_special_tokens"]?.arrayValue ?? []).map(\.ints),
            decoded: json["decoded"]?.strings ?? [], decodedSkippingSpecial: json["decoded_skipping_special"]?.strings ?? [],
            atomicTokens: atomic, bos: json["bos_token_id"]?.intValue ?? -1, eos: json["eos_token_id"]?.intValue ?? -1,
            addBOS: json["add_bos_token"]?.boolValue ?? false)
    }

    @Test(arguments: RealTokenizerTests.names)
    func specialTokensInsideTextUseTheGGUFIDs(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let reference = try SpecialTokenTests.load(name)
        let tokenizer = try RealGGUF.tokenizer(name)
        #expect(reference.strings.count > 200)
        #expect(tokenizer.bosTokenID == reference.bos)
        #expect(tokenizer.eosTokenID == reference.eos)
        #expect(tokenizer.addBOS == reference.addBOS)
        #expect(tokenizer.endOfGenerationTokenIDs == (name == "smollm2" ? [0, 2] : [151643]))
        for (content, id) in reference.atomicTokens {
            #expect(tokenizer.tokenID(of: content) == id)
            #expect(tokenizer.token(for: id) == content)
        }
        for (index, text) in reference.strings.enumerated() {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            #expect(ids == reference.ids[index], "\(name) #\(index) \(show(text))")
            #expect(tokenizer.encode(text, addSpecialTokens: true) == reference.idsWithSpecialTokens[index])
            #expect(sameBytes(try tokenizer.decode(ids), reference.decoded[index]))
            #expect(sameBytes(try tokenizer.decode(ids, skipSpecialTokens: true), reference.decodedSkippingSpecial[index]))
        }
    }

    @Test(arguments: RealTokenizerTests.names)
    func streamingDetokenizerEmitsWhatDecodeGives(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let tokenizer = try RealGGUF.tokenizer(name)
        let corpus = try CorpusFixture.shared()
        for text in corpus.strings {
            let ids = tokenizer.encode(text, addSpecialTokens: true)
            for skip in [false, true] {
                var stream = tokenizer.makeStreamingDetokenizer(skipSpecialTokens: skip)
                var pieces: [String] = []
                for id in ids { pieces.append(try stream.append(id)) }
                pieces.append(stream.finish())
                let joined = pieces.joined()
                #expect(sameBytes(joined, try tokenizer.decode(ids, skipSpecialTokens: skip)), "\(show(text))")
                // No emitted piece ends in the middle of a character: each is valid on its own.
                for piece in pieces where piece.unicodeScalars.contains("\u{FFFD}") {
                    #expect(text.unicodeScalars.contains("\u{FFFD}"), "\(show(text)) streamed a replacement character")
                }
            }
        }
    }
}
