import Foundation
import Testing
import KiteGGUF

/// The real files of .assets/ against what gguf-py reads from them (assets.json), and the
/// hyper-parameters read from GGUF metadata.
struct AssetTests {
    nonisolated(unsafe) static let expectations: [String: [String: Any]] = {
        let list = (try? Fixtures.json("assets.json")) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: list.compactMap { item in (item["file"] as? String).map { ($0, item) } })
    }()

    @Test(Assets.needed(Assets.smolLM2, Assets.r1Part),
          arguments: [Assets.smolLM2, Assets.r1Part])
    func containerMatchesGGUFPy(asset: String) throws {
        let file = try Assets.open(asset)
        let expected = try #require(Self.expectations[asset])
        #expect(file.fileSize == expected["file_size"] as? Int)
        #expect(file.version == expected["version"] as? Int)
        #expect(file.metadata.keys == expected["keys"] as? [String])
        #expect(file.dataOffset == expected["data_offset"] as? Int)
        #expect(file.alignment == expected["alignment"] as? Int)
        #expect(file.tensors.count == expected["tensor_count"] as? Int)
        var counts: [String: Int] = [:]
        for tensor in file.tensors { counts[tensor.type.description, default: 0] += 1 }
        #expect(counts == expected["tensor_type_counts"] as? [String: Int])
        for reference in try #require(expected["tensors"] as? [[String: Any]]) {
            let tensor = try file.tensor(try #require(reference["name"] as? String))
            #expect(tensor.dimensions == reference["dimensions"] as? [Int])
            #expect(tensor.type.description == reference["type"] as? String)
            #expect(tensor.offset == reference["offset"] as? Int)
        }
        let tokens = try file.metadata.stringArray("tokenizer.ggml.tokens")
        #expect(tokens.count == expected["token_count"] as? Int)
        for (index, token) in try #require(expected["tokens_sample"] as? [String: String]) {
            #expect(tokens[try #require(Int(index))] == token)
        }
        #expect(try file.metadata.stringArray("tokenizer.ggml.merges").count == expected["merge_count"] as? Int)
        #expect(try file.metadata.string("tokenizer.chat_template").utf8.count == expected["chat_template_length"] as? Int)
        #expect(try file.metadata.intArray("tokenizer.ggml.token_type").count == tokens.count)
    }

    /// The R1 part ends inside output.weight: opening works, the first rows can be read, tensors past the
    /// end fail naming the tensor, its byte range and the file size.
    @Test(Assets.needed(Assets.r1Part))
    func truncatedR1PartOpensAndReportsMissingDataPerTensor() throws {
        let file = try Assets.open(Assets.r1Part)
        let output = try file.tensor("output.weight")
        #expect(output.shape == [152064, 3584])
        #expect(!file.hasData(for: output))
        #expect(try file.dequantize(output, rows: 0..<4).count == 4 * 3584)
        let embedding = try file.tensor("token_embd.weight")
        let error = expectGGUFError(.tensorDataUnavailable) { try file.dequantize(embedding) }
        let start = embedding.fileOffset, end = embedding.fileOffset + embedding.byteCount
        #expect(error?.description == "\(file.path ?? "") at byte \(start): tensor 'token_embd.weight' occupies bytes "
                    + "\(start)..<\(end), past the end of the file (99614720 bytes); the file is truncated or one part of a split model")
        expectGGUFError(.tensorDataUnavailable) { try file.dequantize(output) }
        expectGGUFError(.tensorDataUnavailable) { try file.dequantize(output, rows: 100_000..<100_001) }
    }

    @Test(Assets.needed(Assets.smolLM2, Assets.r1Part),
          arguments: [Assets.smolLM2, Assets.r1Part])
    func hyperparametersMatchGGUFPy(asset: String) throws {
        let hyper = try GGUFModelHyperparameters(Assets.open(asset))
        let expected = try #require(Self.expectations[asset]?["hyperparameters"] as? [String: Any])
        #expect(hyper.architecture == expected["architecture"] as? String)
        #expect(hyper.vocabularySize == expected["vocabulary_size"] as? Int)
        #expect(hyper.contextLength == expected["context_length"] as? Int)
        #expect(hyper.embeddingLength == expected["embedding_length"] as? Int)
        #expect(hyper.blockCount == expected["block_count"] as? Int)
        #expect(hyper.feedForwardLength == expected["feed_forward_length"] as? Int)
        #expect(hyper.headCount == expected["head_count"] as? Int)
        #expect(hyper.headCountKV == expected["head_count_kv"] as? Int)
        #expect(hyper.keyLength == expected["key_length"] as? Int)
        #expect(hyper.valueLength == expected["key_length"] as? Int)
        #expect(Double(hyper.ropeFrequencyBase) == Fixtures.double(expected["rope_freq_base"]))
        #expect(hyper.ropeDimensionCount == expected["rope_dimension_count"] as? Int)
        #expect(Double(hyper.rmsNormEpsilon) == Fixtures.double(expected["rms_norm_epsilon"]))
        #expect(hyper.tiedEmbeddings == expected["tied_embeddings"] as? Bool)
        #expect(hyper.bosTokenID == expected["bos_token_id"] as? Int)
        #expect(hyper.eosTokenID == expected["eos_token_id"] as? Int)
        #expect(hyper.ropeScalingType == nil && hyper.ropeScalingFactor == nil)
    }
}

struct HyperparameterTests {
    @Test func readsEveryKeyOfTheSyntheticQwen3File() throws {
        let hyper = try GGUFModelHyperparameters(GGUFFile(path: Fixtures.path("metadata.gguf")))
        #expect(hyper.architecture == "qwen3")
        #expect(hyper.vocabularySize == 3)  // no qwen3.vocab_size: the token list's length
        #expect(hyper.contextLength == 4096)
        #expect(hyper.embeddingLength == 64)
        #expect(hyper.blockCount == 2)
        #expect(hyper.feedForwardLength == 128)
        #expect(hyper.headCount == 4 && hyper.headCountKV == 2)
        #expect(hyper.keyLength == 32 && hyper.valueLength == 32)
        #expect(hyper.ropeFrequencyBase == 1_000_000)
        #expect(hyper.ropeScalingType == "yarn")
        #expect(hyper.ropeScalingFactor == 4)
        #expect(hyper.ropeScalingOriginalContextLength == 32768)
        #expect(hyper.rmsNormEpsilon == 1e-6)
        #expect(hyper.tiedEmbeddings)
        #expect(!hyper.hasRopeFrequencyFactors)
        #expect(hyper.bosTokenID == 0 && hyper.eosTokenID == 2)
    }

    @Test func missingOrMistypedKeysAreNamed() throws {
        let base = try GGUFFile(path: Fixtures.path("metadata.gguf")).metadata
        func without(_ key: String, replacing value: GGUFValue? = nil) -> GGUFMetadata {
            var values = base.values
            values[key] = value
            return GGUFMetadata(keys: base.keys, values: values, path: "model.gguf")
        }
        let missing = expectGGUFError(.missingKey) {
            try GGUFModelHyperparameters(metadata: without("qwen3.block_count"), tensorNames: [])
        }
        #expect(missing?.description == "model.gguf: metadata key 'qwen3.block_count' is missing")
        let mistyped = expectGGUFError(.typeMismatch) {
            try GGUFModelHyperparameters(metadata: without("qwen3.attention.head_count", replacing: .string("4")),
                                         tensorNames: [])
        }
        #expect(mistyped?.message.contains("'qwen3.attention.head_count' holds string") == true)
        expectGGUFError(.invalidValue) {
            try GGUFModelHyperparameters(metadata: without("qwen3.attention.head_count", replacing: .uint32(0)),
                                         tensorNames: [])
        }
        expectGGUFError(.missingKey) {
            try GGUFModelHyperparameters(metadata: without("tokenizer.ggml.tokens"), tensorNames: [])
        }
        let untied = try GGUFModelHyperparameters(metadata: base, tensorNames: ["output.weight", "rope_freqs.weight"])
        #expect(!untied.tiedEmbeddings && untied.hasRopeFrequencyFactors)
    }
}

extension AssetTests {
    /// Informative: opening parses all metadata (R1: 152064 tokens, 151387 merges) into Swift values.
    @Test(Assets.needed(Assets.smolLM2, Assets.r1Part))
    func openingTime() throws {
        for asset in [Assets.smolLM2, Assets.r1Part] {
            let path = try Assets.path(asset)
            let elapsed = try ContinuousClock().measure { _ = try GGUFFile(path: path) }
            print("open \(asset): \(elapsed)")
        }
    }
}
