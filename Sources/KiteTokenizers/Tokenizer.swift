/// A byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2, DeepSeek, SmolLM...), loaded from a Hugging Face
/// tokenizer directory (`Tokenizer(directory:)`) or from GGUF metadata (`Tokenizer(ggufMetadata:)`).
///
/// `encode` gives the ids transformers gives (`tokenizer(text).input_ids`): added tokens inside the text are
/// recognised as whole tokens, and `addSpecialTokens` adds what the post-processor adds (usually a BOS).
/// Immutable after loading and safe to share between threads.
public final class Tokenizer: Sendable {
    let model: BPEModel
    /// Added tokens matched in the raw text, and those matched after normalization.
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    /// What `addSpecialTokens` puts before and after the ids of the text.
    let prefixIDs: [Int]
    let suffixIDs: [Int]
    let table: TokenTable
    let cache = PieceCache()

    /// Number of ids: one more than the largest id of any token (model or added).
    public var vocabularySize: Int { table.count }
    /// The special token ids named by the tokenizer files (nil when they name none).
    public let bosTokenID: Int?
    public let eosTokenID: Int?
    public let padTokenID: Int?
    public let unknownTokenID: Int?
    /// Whether `encode(_:addSpecialTokens: true)` starts with the BOS token / ends with the EOS token.
    public let addBOS: Bool
    /// See `addBOS`.
    public let addEOS: Bool
    /// Every added token (special or not), in id order.
    public let addedTokens: [AddedToken]
    /// The Jinja chat template shipped with the tokenizer, if any.
    public let chatTemplate: String?

    init(parts: TokenizerParts) throws(TokenizerError) {
        let source = parts.source
        var added = parts.addedTokens
        added.sort { $0.id < $1.id }
        // Later entries win for a repeated spelling (as in llama.cpp's map): insert in reverse, first one wins.
        var vocabulary = ByteStringTable(expectedCount: parts.vocabulary.count)
        for (spelling, id) in parts.vocabulary.reversed() { vocabulary.insert(spelling.utf8, id: id) }
        // Tokens matched in the normalized text are found in a second pass, after the raw ones (as in HF, even
        // without a normalizer: a raw token anywhere wins over an overlapping normalized one).
        var normalizedForms: [Int: String] = [:]
        var normalizedTokens: [AddedToken] = []
        for token in added where token.normalized {
            var normalizedToken = token
            normalizedToken.content = parts.normalizer?.normalize(token.content) ?? token.content
            normalizedTokens.append(normalizedToken)
            if normalizedToken.content != token.content { normalizedForms[token.id] = normalizedToken.content }
        }
        let table = try TokenTable(
            vocabulary: parts.vocabulary, modelLookup: vocabulary, added: added, normalizedForms: normalizedForms,
            source: source)
        self.table = table
        model = try BPEModel(
            vocabulary: vocabulary, merges: parts.merges, unknownToken: parts.unknownModelToken,
            ignoreMerges: parts.ignoreMerges, source: source, mergesField: parts.mergesField)
        rawAddedTokens = AddedTokenMatcher(added.filter { !$0.normalized })
        normalizedAddedTokens = AddedTokenMatcher(normalizedTokens)
        normalizer = parts.normalizer
        preTokenizer = parts.preTokenizer
        prefixIDs = parts.prefixIDs
        suffixIDs = parts.suffixIDs
        for id in parts.prefixIDs + parts.suffixIDs where !table.contains(id) {
            throw TokenizerError(.invalidField, source: source, field: "post_processor",
                                 "adds token id \(id), which is not in the vocabulary of \(table.count)")
        }
        func check(_ id: Int?, _ name: String) throws(TokenizerError) -> Int? {
            guard let id else { return nil }
            guard table.contains(id) else {
                throw TokenizerError(.invalidField, source: source, field: name,
                                     "token id \(id) is not in the vocabulary of \(table.count)")
            }
            return id
        }
        bosTokenID = try check(parts.bosTokenID, "bos_token")
        eosTokenID = try check(parts.eosTokenID, "eos_token")
        padTokenID = try check(parts.padTokenID, "pad_token")
        unknownTokenID = try check(parts.unknownTokenID, "unk_token")
        addBOS = bosTokenID.map { parts.prefixIDs.contains($0) } ?? false
        addEOS = eosTokenID.map { parts.suffixIDs.contains($0) } ?? false
        addedTokens = added
        chatTemplate = parts.chatTemplate
    }

    /// The token ids of `text`. Added tokens written in the text are recognised as whole tokens (as
    /// transformers does by default); with `addSpecialTokens`, the post-processor's tokens (BOS...) are added.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + prefixIDs.count + suffixIDs.count + 1)
        if addSpecialTokens { ids.append(contentsOf: prefixIDs) }
        var scratch = EncodeScratch()
        var text = text
        text.withUTF8 { buffer in
            scratch.segments.removeAll(keepingCapacity: true)
            rawAddedTokens.split(buffer, lower: 0, upper: buffer.count, into: &scratch.segments)
            let segments = scratch.segments
            for segment in segments {
                if segment.token >= 0 {
                    ids.append(segment.token)
                } else {
                    encodeUnmatched(buffer, lower: segment.start, upper: segment.end, into: &ids, scratch: &scratch)
                }
            }
        }
        if addSpecialTokens { ids.append(contentsOf: suffixIDs) }
        return ids
    }

    /// Normalizes text between raw added tokens, finds normalized added tokens, and tokenizes the rest.
    private func encodeUnmatched(_ buffer: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into ids: inout [Int], scratch: inout EncodeScratch) {
        if let normalizer {
            var normalized = normalizer.normalize(String(decoding: UnsafeBufferPointer(rebasing: buffer[lower..<upper]), as: UTF8.self))
            normalized.withUTF8 { normalizedBuffer in
                encodeNormalized(normalizedBuffer, lower: 0, upper: normalizedBuffer.count, into: &ids, scratch: &scratch)
            }
        } else {
            encodeNormalized(buffer, lower: lower, upper: upper, into: &ids, scratch: &scratch)
        }
    }

    private func encodeNormalized(_ buffer: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into ids: inout [Int], scratch: inout EncodeScratch) {
        if normalizedAddedTokens.isEmpty {
            encodePreTokenized(buffer, lower: lower, upper: upper, into: &ids, scratch: &scratch)
            return
        }
        var segments: [Segment] = []
        normalizedAddedTokens.split(buffer, lower: lower, upper: upper, into: &segments)
        for segment in segments {
            if segment.token >= 0 {
                ids.append(segment.token)
            } else {
                encodePreTokenized(buffer, lower: segment.start, upper: segment.end, into: &ids, scratch: &scratch)
            }
        }
    }

    private func encodePreTokenized(_ buffer: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, into ids: inout [Int], scratch: inout EncodeScratch) {
        guard lower < upper else { return }
        guard let preTokenizer else {
            tokenize(UnsafeBufferPointer(rebasing: buffer[lower..<upper]), into: &ids, scratch: &scratch)
            return
        }
        if preTokenizer.addsPrefixSpace {
            for piece in preTokenizer.piecesWithPrefixSpace(Array(buffer[lower..<upper]), scratch: &scratch.preTokenizer) {
                piece.withUnsafeBufferPointer { tokenize($0, into: &ids, scratch: &scratch) }
            }
            return
        }
        scratch.pieces.removeAll(keepingCapacity: true)
        scratch.pieces.append((lower, upper))
        preTokenizer.split(buffer, pieces: &scratch.pieces, scratch: &scratch.preTokenizer)
        for (start, end) in scratch.pieces {
            tokenize(UnsafeBufferPointer(rebasing: buffer[start..<end]), into: &ids, scratch: &scratch)
        }
    }

    /// BPE on one piece, through the cache for pieces of a few bytes or more.
    @inline(__always)
    private func tokenize(_ piece: UnsafeBufferPointer<UInt8>, into ids: inout [Int], scratch: inout EncodeScratch) {
        guard piece.count > 2, piece.count <= PieceCache.maximumPieceLength else {
            model.tokenize(piece, into: &ids, scratch: &scratch.bpe)
            return
        }
        if cache.append(piece, to: &ids) { return }
        let first = ids.count
        model.tokenize(piece, into: &ids, scratch: &scratch.bpe)
        cache.insert(piece, tokens: ids[first...])
    }

    /// The text of `ids`. Token bytes are concatenated, then read as UTF-8, with U+FFFD for bytes that do not
    /// form valid UTF-8 (a multi-byte character cut between a prefix of the ids and the rest). Ids outside the
    /// vocabulary are an error.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws(TokenizerError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        for id in ids {
            try table.appendBytes(of: id, skipSpecial: skipSpecialTokens, to: &bytes)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The id of a token spelled as in the vocabulary ("Ġthe" for " the" in byte-level vocabularies, or an
    /// added token's content such as "<|im_end|>").
    public func tokenID(of token: String) -> Int? {
        table.id(of: token)
    }

    /// The vocabulary spelling of `id`, or nil outside the vocabulary.
    public func token(for id: Int) -> String? {
        table.spelling(of: id)
    }

    /// Whether `id` is a special token (dropped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int) -> Bool {
        table.isSpecial(id)
    }

    /// Tokens that end a generated sample: the EOS token and the special tokens that chat models use to end a
    /// turn ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<｜end▁of▁sentence｜>", ...), as llama.cpp collects
    /// them; sorted.
    public var endOfGenerationTokenIDs: [Int] {
        var ids = Set(eosTokenID.map { [$0] } ?? [])
        for token in addedTokens where token.special && Tokenizer.endOfTurnMarkers.contains(token.content) {
            ids.insert(token.id)
        }
        return ids.sorted()
    }

    static let endOfTurnMarkers: Set<String> = [
        "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
        "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|return|>", "<|call|>",
    ]

    /// The content of every special token, in id order.
    public var specialTokens: [String] { addedTokens.filter(\.special).map(\.content) }
    /// The spellings of the special tokens named by the tokenizer files.
    public var bosToken: String? { bosTokenID.flatMap { token(for: $0) } }
    public var eosToken: String? { eosTokenID.flatMap { token(for: $0) } }
    public var padToken: String? { padTokenID.flatMap { token(for: $0) } }
    public var unknownToken: String? { unknownTokenID.flatMap { token(for: $0) } }

    /// A detokenizer that turns ids into text one at a time, holding back incomplete UTF-8.
    public func makeStreamingDetokenizer(skipSpecialTokens: Bool = false) -> StreamingDetokenizer {
        StreamingDetokenizer(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// Buffers reused within one encode call.
struct EncodeScratch {
    var segments: [Segment] = []
    var pieces: [(Int, Int)] = []
    var preTokenizer = PreTokenizerScratch()
    var bpe = BPEScratch()
}

/// Everything a `Tokenizer` is built from, whichever file it came from.
struct TokenizerParts {
    var source: String
    /// Model vocabulary: spelling and id.
    var vocabulary: [(spelling: String, id: Int)] = []
    /// Merges in rank order, each as its two spellings; `field` names where each came from, for errors.
    var merges: [(left: String, right: String)] = []
    var mergesField = "model.merges"
    var unknownModelToken: String?
    var ignoreMerges = false
    var addedTokens: [AddedToken] = []
    var normalizer: Normalizer?
    var preTokenizer: PreTokenizer?
    var prefixIDs: [Int] = []
    var suffixIDs: [Int] = []
    var hasPostProcessor = false
    var bosTokenID: Int?
    var eosTokenID: Int?
    var padTokenID: Int?
    var unknownTokenID: Int?
    var chatTemplate: String?
}
