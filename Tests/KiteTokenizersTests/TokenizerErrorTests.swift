import Foundation
import KiteGGUF
import KiteJSON
import Testing

@testable import KiteTokenizers

/// Bad input gives one error naming the file, the field and what was expected.
@Suite struct TokenizerErrorTests {
    /// A minimal valid byte-level BPE tokenizer.json: the 256 byte tokens, two merges, one added token (whose
    /// id HF assigns as 258, the next after the vocabulary, whatever the file says).
    static func document(
        merges: JSONValue = [["h", "e"], ["he", "l"]], extraVocab: [(String, JSONValue)] = [],
        addedTokens: JSONValue = [["id": 259, "content": "<s>", "special": true]],
        preTokenizer: JSONValue = ["type": "ByteLevel", "add_prefix_space": false],
        postProcessor: JSONValue = .null
    ) -> JSONValue {
        var vocab = JSONObject()
        for byte in 0..<256 { vocab[ByteLevel.spelling(of: [UInt8(byte)])] = .int(byte) }
        vocab["he"] = 256
        vocab["hel"] = 257
        for (token, id) in extraVocab { vocab[token] = id }
        return [
            "version": "1.0", "added_tokens": addedTokens, "normalizer": nil, "pre_tokenizer": preTokenizer,
            "post_processor": postProcessor, "decoder": ["type": "ByteLevel"],
            "model": ["type": "BPE", "vocab": .object(vocab), "merges": merges],
        ]
    }

    static func loadError(_ document: JSONValue) -> TokenizerError? {
        do {
            _ = try Tokenizer(tokenizerJSON: document, source: "tok.json")
            return nil
        } catch {
            return error
        }
    }

    /// HF finds raw (normalized: false) added tokens first, then normalized ones in what is left.
    @Test func rawAddedTokensWinOverOverlappingNormalizedOnes() throws {
        let added: JSONValue = [
            ["id": 258, "content": "ab", "special": false, "normalized": false],
            ["id": 259, "content": "xa", "special": false, "normalized": true],
        ]
        let tokenizer = try Tokenizer(tokenizerJSON: TokenizerErrorTests.document(addedTokens: added), source: "tok.json")
        #expect(tokenizer.encode("xab", addSpecialTokens: false) == [120, 258])
        #expect(tokenizer.encode("xaxa", addSpecialTokens: false) == [259, 259])
    }

    /// Checked against transformers 5.24 on the same files.
    @Test func directoryFilesAreReadAsTransformersDoes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-dir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(TokenizerErrorTests.document().serialized().utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        let config: JSONValue = ["bos_token": ["content": "<s>"], "eos_token": "e", "chat_template": "from config"]
        try Data(config.serialized().utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"))
        let map: JSONValue = ["pad_token": "<pad>"]
        try Data(map.serialized().utf8).write(to: directory.appendingPathComponent("special_tokens_map.json"))
        var tokenizer = try Tokenizer(directory: directory.path)
        #expect(tokenizer.chatTemplate == "from config")
        #expect(tokenizer.bosTokenID == 258 && tokenizer.eosTokenID == 101)
        // "<pad>" is in no vocabulary: it becomes a new special token, atomic in text.
        #expect(tokenizer.padTokenID == 259 && tokenizer.encode("a<pad>", addSpecialTokens: false) == [97, 259])
        // "e" is a model token named as a special token: transformers makes it atomic and special.
        #expect(tokenizer.isSpecial(101) && tokenizer.encode("hel", addSpecialTokens: false) == [104, 101, 108])
        #expect(try tokenizer.decode([104, 101, 108], skipSpecialTokens: true) == "hl")
        try Data("{{ messages }}".utf8).write(to: directory.appendingPathComponent("chat_template.jinja"))
        tokenizer = try Tokenizer(directory: directory.path)
        #expect(tokenizer.chatTemplate == "{{ messages }}")
    }

    @Test func theBaseDocumentLoadsAndEncodes() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: TokenizerErrorTests.document(), source: "tok.json")
        #expect(tokenizer.encode("hello<s>", addSpecialTokens: false) == [257, 108, 111, 258])
        #expect(tokenizer.vocabularySize == 259)
        #expect(tokenizer.tokenID(of: "<s>") == 258 && tokenizer.isSpecial(258))
    }

    static let badMerges: [(JSONValue, String, String)] = [
        (.array([.array(["h", "☃"])]), "model.merges[0]", "\"☃\" is not in the vocabulary"),
        (.array([.array(["h", "l"])]), "model.merges[0]", "the merged token \"hl\" is not in the vocabulary"),
        (.array(["h e l"]), "model.merges[0]", "expected two tokens separated by one space"),
        (.array([.int(5)]), "model.merges[0]", "expected a string \"a b\" or a pair of strings, found a number"),
        (.array([.array(["h"])]), "model.merges[0]", "expected a pair of strings"),
        (.array(["h e", "he  l"]), "model.merges[1]", "expected two tokens separated by one space"),
    ]

    @Test(arguments: badMerges)
    func badMergesNameTheMerge(merges: JSONValue, field: String, message: String) throws {
        let error = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(merges: merges)))
        #expect(error.source == "tok.json")
        #expect(error.field == field)
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func badIDsAreRejected() throws {
        let huge = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(extraVocab: [("big", .int(1 << 40))])))
        #expect(huge.field == "model.vocab[\"big\"]" && huge.message.contains("outside"), "\(huge)")
        let negative = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(extraVocab: [("neg", -3)])))
        #expect(negative.message.contains("-3"), "\(negative)")
        let fractional = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(extraVocab: [("f", 2.5)])))
        #expect(fractional.message.contains("expected an integer, found 2.5"), "\(fractional)")
        let duplicate = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(extraVocab: [("dup", 256)])))
        #expect(duplicate.message.contains("id 256 is also given to"), "\(duplicate)")
        let template: JSONValue = [
            "type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>"]], ["Sequence": ["id": "A"]]],
            "special_tokens": ["<s>": ["id": "<s>", "ids": [99999], "tokens": ["<s>"]]],
        ]
        let post = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(postProcessor: template)))
        #expect(post.field == "post_processor" && post.message.contains("99999"), "\(post)")
    }

    @Test(arguments: [
        ("(?<=a)b", "lookbehind is not supported"),
        ("a{2,1}", "repeat range {2,1} is empty"),
        ("[z-a]", "range out of order"),
        ("(a)\\1", "backreferences are not supported"),
        ("(a", "missing ')'"),
        ("a)", "unmatched ')'"),
        ("*a", "nothing to repeat"),
        ("\\p{Greek}", "Unicode property 'Greek' is not supported"),
        ("[[:alpha:]]", "POSIX bracket classes are not supported"),
        ("a{5000}", "repeat count above 1000"),
        ("\\x{110000}", "is not a Unicode scalar"),
        ("(?x)a", "not supported"),
    ])
    func badRegexesNameThePattern(pattern: String, message: String) throws {
        let split: JSONValue = ["type": "Split", "pattern": ["Regex": .string(pattern)], "behavior": "Isolated", "invert": false]
        let error = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(preTokenizer: split)))
        #expect(error.kind == .unsupported)
        #expect(error.field == "pre_tokenizer.pattern.Regex")
        #expect(error.message.contains(message), "\(error)")
    }

    @Test func unsupportedComponentsAreNamed() throws {
        let metaspace: JSONValue = ["type": "Metaspace", "replacement": "▁"]
        let error = try #require(TokenizerErrorTests.loadError(TokenizerErrorTests.document(preTokenizer: metaspace)))
        #expect(error.kind == .unsupported && error.field == "pre_tokenizer.type", "\(error)")
        #expect(error.description == "tok.json: pre_tokenizer.type: pre-tokenizer \"Metaspace\" is not supported")
    }

    @Test func syntaxErrorsGiveLineAndColumn() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("{\n  \"version\": \"1.0\",\n  \"model\": {\"vocab\": {\"a\": 0,}}\n}".utf8)
            .write(to: directory.appendingPathComponent("tokenizer.json"))
        do {
            _ = try Tokenizer(directory: directory.path)
            Issue.record("loaded a malformed file")
        } catch {
            #expect(error.kind == .syntax)
            #expect(error.line == 3, "\(error)")
            #expect(error.source.hasSuffix("tokenizer.json"))
        }
        do {
            _ = try Tokenizer(directory: directory.appendingPathComponent("missing").path)
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.kind == .io && error.source.hasSuffix("missing/tokenizer.json"), "\(error)")
        }
    }

    @Test func decodingAnUnknownIDNamesItAndTheVocabularySize() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: TokenizerErrorTests.document(), source: "tok.json")
        #expect(try tokenizer.decode([104, 258]) == "h<s>")
        for id in [-1, 259, 1 << 40, Int.max] {
            do {
                _ = try tokenizer.decode([104, id])
                Issue.record("decoded \(id)")
            } catch {
                #expect(error.kind == .unknownTokenID)
                #expect(error.message.contains("token id \(id)") && error.message.contains("size 259"), "\(error)")
            }
        }
        var stream = tokenizer.makeStreamingDetokenizer()
        #expect(throws: TokenizerError.self) { try stream.append(1_000_000) }
    }

    @Test func badGGUFMetadataIsNamed() throws {
        let tokens = (0..<256).map { ByteLevel.spelling(of: [UInt8($0)]) } + ["he"]
        func error(_ change: (inout GGUFTokenizerMetadata) -> Void) -> TokenizerError? {
            var metadata = GGUFTokenizerMetadata(model: "gpt2", pre: "qwen2", tokens: tokens, merges: ["h e"], source: "m.gguf")
            change(&metadata)
            do {
                _ = try Tokenizer(ggufMetadata: metadata)
                return nil
            } catch {
                return error
            }
        }
        #expect(error { _ in } == nil)
        #expect(error { $0.model = "llama" }?.field == "tokenizer.ggml.model")
        #expect(error { $0.pre = "mystery" }?.message.contains("pre-tokenizer \"mystery\" is not supported") == true)
        #expect(error { $0.tokenTypes = [1, 1] }?.field == "tokenizer.ggml.token_type")
        #expect(error { $0.merges = ["he"] }?.field == "tokenizer.ggml.merges[0]")
        #expect(error { $0.merges = ["h ☃"] }?.message.contains("\"☃\" is not in the vocabulary") == true)
        #expect(error { $0.bosTokenID = 9999 }?.field == "tokenizer.ggml.bos_token_id")
        #expect(error { $0.eosTokenID = -1 }?.field == "tokenizer.ggml.eos_token_id")
        let plain = try Tokenizer(tokens: tokens, merges: ["h e"], preTokenizer: "gpt2", eosTokenID: 256, addEOS: true)
        #expect(plain.encode("hehe h") == [256, 256, 32, 104, 256])
    }
}

/// GGUF files whose tokenizer metadata is missing or mistyped, built in memory.
@Suite struct GGUFTokenizerFileTests {
    enum Value {
        case string(String)
        case strings([String])
        case uint32(UInt32)
        case int32s([Int32])
        case bool(Bool)
    }

    /// A GGUF v3 file with no tensors and the given metadata.
    static func gguf(_ entries: [(String, Value)]) -> [UInt8] {
        var bytes: [UInt8] = Array("GGUF".utf8)
        func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func string(_ text: String) {
            u64(UInt64(text.utf8.count))
            bytes += Array(text.utf8)
        }
        u32(3)
        u64(0)
        u64(UInt64(entries.count))
        for (key, value) in entries {
            string(key)
            switch value {
            case .string(let text): u32(8); string(text)
            case .strings(let texts): u32(9); u32(8); u64(UInt64(texts.count)); texts.forEach(string)
            case .uint32(let number): u32(4); u32(number)
            case .int32s(let numbers): u32(9); u32(5); u64(UInt64(numbers.count)); numbers.forEach { u32(UInt32(bitPattern: $0)) }
            case .bool(let flag): u32(7); bytes.append(flag ? 1 : 0)
            }
        }
        return bytes
    }

    static let tokens = (0..<256).map { ByteLevel.spelling(of: [UInt8($0)]) } + ["he", "<|end|>"]
    static let valid: [(String, Value)] = [
        ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("llama-bpe")),
        ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.merges", .strings(["h e"])),
        ("tokenizer.ggml.token_type", .int32s(Array(repeating: 1, count: 257) + [3])),
        ("tokenizer.ggml.bos_token_id", .uint32(257)), ("tokenizer.ggml.eos_token_id", .uint32(257)),
    ]

    static func load(_ entries: [(String, Value)]) throws(TokenizerError) -> Tokenizer {
        let file: GGUFFile
        do {
            file = try GGUFFile(bytes: gguf(entries), name: "mem.gguf")
        } catch {
            throw TokenizerError(.io, source: "mem.gguf", "\(error)")
        }
        return try Tokenizer(gguf: file)
    }

    @Test func aSmallGGUFTokenizerLoads() throws {
        let tokenizer = try GGUFTokenizerFileTests.load(GGUFTokenizerFileTests.valid)
        // llama-bpe: ignore_merges, Llama 3 regex, BOS added by default.
        #expect(tokenizer.encode("he<|end|>", addSpecialTokens: true) == [257, 256, 257])
        #expect(tokenizer.addBOS && tokenizer.isSpecial(257))
        #expect(try tokenizer.decode([256, 257], skipSpecialTokens: true) == "he")
    }

    @Test func missingAndMistypedKeysAreNamed() throws {
        var entries = GGUFTokenizerFileTests.valid
        entries.removeFirst()
        #expect(throws: TokenizerError(.missingField, source: "mem.gguf", field: "tokenizer.ggml.model", "missing (expected a string)")) {
            try GGUFTokenizerFileTests.load(entries)
        }
        entries = GGUFTokenizerFileTests.valid
        entries[2] = ("tokenizer.ggml.tokens", .uint32(5))
        do {
            _ = try GGUFTokenizerFileTests.load(entries)
            Issue.record("loaded")
        } catch {
            #expect(error.field == "tokenizer.ggml.tokens" && error.message == "expected an array of strings, found a u32", "\(error)")
        }
        entries = GGUFTokenizerFileTests.valid
        entries[5] = ("tokenizer.ggml.bos_token_id", .string("1"))
        do {
            _ = try GGUFTokenizerFileTests.load(entries)
            Issue.record("loaded")
        } catch {
            #expect(error.field == "tokenizer.ggml.bos_token_id", "\(error)")
        }
        #expect(throws: TokenizerError.self) { try Tokenizer(ggufPath: "/nonexistent/model.gguf") }
    }
}
