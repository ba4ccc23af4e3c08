/// Per-id facts about tokens: the spelling in the vocabulary, the bytes the token decodes to, and whether it
/// is special; plus lookup of added tokens by content. Ids may have holes (no token); they decode as errors.
struct TokenTable: Sendable {
    let count: Int
    private let spellingArena: [UInt8]
    private let spellingOffsets: [Int]
    private let bytesArena: [UInt8]
    private let bytesOffsets: [Int]
    private let flags: [UInt8]
    private let addedLookup: ByteStringTable
    private let modelLookup: ByteStringTable
    private static let present: UInt8 = 1
    private static let special: UInt8 = 2

    /// `vocabulary` is the model's (`modelLookup` indexes it); `added` may repeat model tokens (same id) or add
    /// new ids. `normalizedForms` holds, for added tokens matched after normalization, their normalized
    /// content: HF decodes those tokens from it (so that a byte-level normalizer round-trips).
    init(
        vocabulary: [(spelling: String, id: Int)], modelLookup: ByteStringTable, added: [AddedToken],
        normalizedForms: [Int: String], source: String
    ) throws(TokenizerError) {
        let bound = 4 * (vocabulary.count + added.count) + 1024
        var maxID = -1
        for (spelling, id) in vocabulary {
            guard id >= 0, id < bound else {
                throw TokenizerError(.invalidField, source: source, field: "model.vocab[\(quoted(spelling))]",
                                     "id \(id) is outside 0..<\(bound) (ids must be dense around the vocabulary size)")
            }
            maxID = max(maxID, id)
        }
        for token in added {
            guard token.id >= 0, token.id < bound else {
                throw TokenizerError(.invalidField, source: source, field: "added_tokens[\(quoted(token.content))]",
                                     "id \(token.id) is outside 0..<\(bound)")
            }
            maxID = max(maxID, token.id)
        }
        count = maxID + 1
        var spellings = [String?](repeating: nil, count: count)
        var decodeForms = [String?](repeating: nil, count: count)
        var special = [Bool](repeating: false, count: count)
        let specialContents = Set(added.filter(\.special).map { Array($0.content.utf8) })
        for (spelling, id) in vocabulary {
            if let existing = spellings[id], existing != spelling {
                throw TokenizerError(.invalidField, source: source, field: "model.vocab[\(quoted(spelling))]",
                                     "id \(id) is also given to \(quoted(existing))")
            }
            spellings[id] = spelling
        }
        var addedLookup = ByteStringTable(expectedCount: added.count)
        for token in added {
            if let existing = spellings[token.id], existing != token.content {
                throw TokenizerError(.invalidField, source: source, field: "added_tokens[\(quoted(token.content))]",
                                     "id \(token.id) is already the vocabulary's token \(quoted(existing))")
            }
            spellings[token.id] = token.content
            decodeForms[token.id] = normalizedForms[token.id]
            // HF skips a token when the text it decodes from is a special token's content.
            special[token.id] = specialContents.contains(Array((normalizedForms[token.id] ?? token.content).utf8))
        }
        // The same content at two ids (possible in GGUF): the larger id wins, as in the added-token matcher.
        for token in added.reversed() { addedLookup.insert(token.content.utf8, id: token.id) }
        var spellingArena: [UInt8] = []
        var spellingOffsets = [0]
        var bytesArena: [UInt8] = []
        var bytesOffsets = [0]
        var flags = [UInt8](repeating: 0, count: count)
        spellingOffsets.reserveCapacity(count + 1)
        bytesOffsets.reserveCapacity(count + 1)
        for id in 0..<count {
            if let spelling = spellings[id] {
                flags[id] = TokenTable.present | (special[id] ? TokenTable.special : 0)
                spellingArena.append(contentsOf: spelling.utf8)
                // As HF's ByteLevel decoder: a token made only of byte spellings decodes to those bytes,
                // any other token (added tokens written as plain text) to its own UTF-8.
                let form = decodeForms[id] ?? spelling
                bytesArena.append(contentsOf: ByteLevel.bytes(spelledBy: form) ?? Array(form.utf8))
            }
            spellingOffsets.append(spellingArena.count)
            bytesOffsets.append(bytesArena.count)
        }
        self.spellingArena = spellingArena
        self.spellingOffsets = spellingOffsets
        self.bytesArena = bytesArena
        self.bytesOffsets = bytesOffsets
        self.flags = flags
        self.addedLookup = addedLookup
        self.modelLookup = modelLookup
    }

    func contains(_ id: Int) -> Bool {
        id >= 0 && id < count && flags[id] & TokenTable.present != 0
    }

    func isSpecial(_ id: Int) -> Bool {
        id >= 0 && id < count && flags[id] & TokenTable.special != 0
    }

    func spelling(of id: Int) -> String? {
        guard contains(id) else { return nil }
        return String(decoding: spellingArena[spellingOffsets[id]..<spellingOffsets[id + 1]], as: UTF8.self)
    }

    /// The bytes `id` decodes to.
    func bytes(of id: Int) -> ArraySlice<UInt8>? {
        guard contains(id) else { return nil }
        return bytesArena[bytesOffsets[id]..<bytesOffsets[id + 1]]
    }

    func id(of spelling: String) -> Int? {
        addedLookup.lookup(spelling) ?? modelLookup.lookup(spelling)
    }

    /// Appends the bytes of `id` (nothing for a special token when `skipSpecial`); an unknown id throws.
    @inline(__always)
    func appendBytes(of id: Int, skipSpecial: Bool, to bytes: inout [UInt8]) throws(TokenizerError) {
        guard id >= 0, id < count, flags[id] & TokenTable.present != 0 else {
            throw TokenizerError(.unknownTokenID, source: "decode", "token id \(id) is not in the vocabulary (size \(count))")
        }
        if skipSpecial, flags[id] & TokenTable.special != 0 { return }
        bytes.append(contentsOf: bytesArena[bytesOffsets[id]..<bytesOffsets[id + 1]])
    }
}

/// A token spelling in quotes for error messages, cut short when long.
func quoted(_ text: String) -> String {
    let scalars = text.unicodeScalars
    if scalars.count <= 40 { return "\"\(text)\"" }
    return "\"\(String(String.UnicodeScalarView(scalars.prefix(40))))...\""
}
