import Foundation
import KiteJSON
import Testing

@testable import KiteTokenizers

/// The two real tokenizers against transformers and against the GGUF's own ids (see
/// scripts/reference/tokenizers_reference.py for how the references were made).
@Suite struct RealTokenizerTests {
    static let names = ["smollm2", "r1"]

    @Test(arguments: names)
    func transformersExportMatchesTransformersIDs(name: String) throws {
        guard Assets.check("tokenizers/\(name)/tokenizer.json", howToGet: Assets.referenceHint)
        else { return }
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
    func ggufMetadataMatchesReference(name: String) throws {
        guard Assets.check("tokenizers/\(name)-gguf/metadata.json", howToGet: Assets.referenceHint)
        else { return }
        let corpus = try CorpusFixture.shared()
        let expected = try #require(corpus.transformers[name])
        let tokenizer = try Tokenizer(ggufMetadata: try ggufMetadataFromDump(name))
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
        guard Assets.check("tokenizers/\(name)-gguf/metadata.json", howToGet: Assets.referenceHint) else { return }
        let reference = try SpecialTokenTests.load(name)
        let tokenizer = try Tokenizer(ggufMetadata: try ggufMetadataFromDump(name))
        #expect(reference.strings.count > 200)
        #expect(tokenizer.bosTokenID == reference.bos)
        #expect(tokenizer.eosTokenID == reference.eos)
        #expect(tokenizer.addBOS == reference.addBOS)
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
        guard Assets.check("tokenizers/\(name)-gguf/metadata.json", howToGet: Assets.referenceHint) else { return }
        let tokenizer = try Tokenizer(ggufMetadata: try ggufMetadataFromDump(name))
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
