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
