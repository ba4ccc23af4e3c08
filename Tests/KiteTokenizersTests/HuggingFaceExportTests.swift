import Foundation
import Testing

@testable import KiteTokenizers

/// A GGUF tokenizer written as Hugging Face files (what `--save-hf` saves for a model trained from a GGUF) reads
/// back as the same tokenizer: the same ids for every corpus string, plain and with special tokens inside, with
/// and without the added beginning-of-sequence token, and the same chat template and special ids. The GGUF
/// reading itself is checked against transformers and llama.cpp's ids elsewhere (RealTokenizerTests).
struct HuggingFaceExportTests {
    @Test(arguments: RealTokenizerTests.names)
    func exportedFilesReadBackAsTheGGUFTokenizer(name: String) throws {
        guard RealGGUF.available(name) else { return }
        let metadata = try RealGGUF.metadata(name)
        let gguf = try RealGGUF.tokenizer(name)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-hf-export-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let files = try HuggingFaceTokenizerExport.files(for: metadata)
        #expect(Set(files.map(\.name)) == ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
        for file in files { try Data(file.contents).write(to: directory.appendingPathComponent(file.name)) }

        let exported = try Tokenizer(directory: directory.path)
        #expect(exported.vocabularySize == gguf.vocabularySize)
        #expect(exported.bosTokenID == gguf.bosTokenID && exported.eosTokenID == gguf.eosTokenID && exported.addBOS == gguf.addBOS)
        #expect(exported.chatTemplate.map { Array($0.utf8) } == metadata.chatTemplate.map { Array($0.utf8) })
        let texts = try CorpusFixture.shared().strings + SpecialTokenTests.load(name).strings
        var mismatches: [String] = []
        for text in texts {
            for specials in [false, true] where exported.encode(text, addSpecialTokens: specials) != gguf.encode(text, addSpecialTokens: specials) {
                mismatches.append(show(text))
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(texts.count * 2) encodings differ, first: \(mismatches.first ?? "")")
    }

    @Test func unknownPreTokenizersAreRefusedNamingTheField() {
        let metadata = GGUFTokenizerMetadata(model: "gpt2", pre: "no-such-pre", tokens: ["a", "b"], merges: [])
        #expect {
            _ = try HuggingFaceTokenizerExport.files(for: metadata)
        } throws: { error in
            "\(error)".contains("tokenizer.ggml.pre")
        }
    }
}
