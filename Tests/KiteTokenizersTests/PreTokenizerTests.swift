import Foundation
import KiteJSON
import Testing

@testable import KiteTokenizers

/// Pre-tokenization against HF `tokenizers` (Oniguruma) on the corpus, for the regexes llama.cpp names and
/// for each Split behaviour (fixture from scripts/reference/pretokenizer_reference.py).
@Suite struct PreTokenizerTests {
    struct Reference {
        let strings: [String]
        /// Per spec: corpus index -> flattened [start, end, start, end, ...].
        let specs: [(name: String, spec: JSONValue, pieces: [Int: [Int]])]
    }

    static let reference: Reference? = {
        guard let json = try? loadJSON(Paths.fixture("pretokenize.json")), let corpus = try? CorpusFixture.shared() else { return nil }
        var specs: [(String, JSONValue, [Int: [Int]])] = []
        for (name, spec) in json["specs"]?.objectValue ?? JSONObject() {
            var pieces: [Int: [Int]] = [:]
            for (index, encoded) in json["pieces"]?[name]?.objectValue ?? JSONObject() {
                pieces[Int(index) ?? -1] = decodePieces(encoded.stringValue ?? "")
            }
            specs.append((name, spec, pieces))
        }
        return Reference(strings: corpus.strings, specs: specs)
    }()

    /// "L" is a piece of L bytes right after the previous one, "G+L" one after a gap of G bytes.
    static func decodePieces(_ encoded: String) -> [Int] {
        var result: [Int] = []
        var position = 0
        for item in encoded.split(separator: ",") {
            let parts = item.split(separator: "+").compactMap { Int($0) }
            if parts.count == 2 { position += parts[0] }
            let start = position
            position += parts.last ?? 0
            result += [start, position]
        }
        return result
    }

    static let specNames: [String] = reference?.specs.map(\.name) ?? []

    static func pieces(_ preTokenizer: PreTokenizer, _ text: String) -> [Int] {
        var text = text
        return text.withUTF8 { buffer in
            var pieces = [(0, buffer.count)]
            var scratch = PreTokenizerScratch()
            preTokenizer.split(buffer, pieces: &pieces, scratch: &scratch)
            return pieces.flatMap { [$0.0, $0.1] }
        }
    }

    @Test(arguments: specNames)
    func piecesMatchHFTokenizers(name: String) throws {
        let reference = try #require(PreTokenizerTests.reference)
        let entry = try #require(reference.specs.first { $0.name == name })
        let preTokenizer = try TokenizerJSONReader(source: "pretokenize.json").preTokenizer(entry.spec, name)
        #expect(entry.pieces.count >= 300)
        var failures = 0
        for (index, expected) in entry.pieces.sorted(by: { $0.key < $1.key }) {
            let text = reference.strings[index]
            let pieces = PreTokenizerTests.pieces(preTokenizer, text)
            if pieces != expected {
                failures += 1
                if failures <= 3 { Issue.record("\(name) #\(index) \(show(text)): \(pieces) != \(expected)") }
            }
        }
        #expect(failures == 0)
    }

    /// The hand-written matchers give what the general regex engine gives for the same pattern, on the corpus
    /// and on random strings built from the characters the patterns care about.
    @Test(arguments: [
        KnownPattern.gpt2Pattern, KnownPattern.qwen2Pattern, KnownPattern.llama3Pattern, DeepSeekPatterns.digits,
        DeepSeekPatterns.kana, DeepSeekPatterns.words,
    ])
    func handWrittenMatchersAgreeWithTheRegexEngine(pattern: String) throws {
        let knownPattern = try #require(KnownPattern(pattern: pattern))
        let program = try RegexProgram(pattern: pattern)
        var texts = try CorpusFixture.shared().strings
        var generator = SplitMix(seed: 7)
        let alphabet: [String] = [
            "a", "Z", "é", "ß", "中", "ア", "١", "7", "²", "Ⅳ", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{3000}", "\u{A0}",
            "'", "'s", "'S", "'ll", "'LL", "'Re", "'ſ", "'d", "!", "(", "-", "😀", "\u{301}", "\u{200D}", "_", "$", "\u{0}",
            "の", "カ", "龥", "\u{9FA6}", "ｱ", "123", "+", "€", "、", "¿", "\u{E000}",
        ]
        for _ in 0..<3000 {
            let length = Int(generator.next() % 12) + 1
            texts.append((0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }.joined())
        }
        for text in texts {
            var text = text
            text.withUTF8 { buffer in
                var known: [(Int, Int)] = []
                knownPattern.appendMatches(in: buffer, lower: 0, upper: buffer.count, into: &known)
                var matcher = RegexMatcher()
                var matches: [(Int, Int)] = []
                matcher.findAll(program, in: buffer, lower: 0, upper: buffer.count, into: &matches)
                #expect(matches.map(\.0) == known.map(\.0) && matches.map(\.1) == known.map(\.1),
                        "\(show(String(decoding: buffer, as: UTF8.self)))")
            }
        }
    }
}

/// Oniguruma's Unicode classes (through HF `tokenizers`) against Kite's tables built from Swift's Unicode
/// data, on every scalar. Scalars that Oniguruma's older Unicode version leaves unassigned but Swift's newer
/// one assigns may differ; any other difference fails.
@Suite struct UnicodeClassTests {
    static let classes: [(String, UnicodeClass)] = [
        ("\\p{L}", .letter), ("\\p{Lu}", .uppercaseLetter), ("\\p{Ll}", .lowercaseLetter), ("\\p{Lt}", .titlecaseLetter),
        ("\\p{Lm}", .modifierLetter), ("\\p{Lo}", .otherLetter), ("\\p{M}", .mark), ("\\p{N}", .number),
        ("\\p{Nd}", .decimalNumber), ("\\p{P}", .punctuation), ("\\p{S}", .symbol), ("\\p{Z}", .separator),
        ("\\p{C}", .other), ("\\s", .whitespace), ("\\d", .decimalNumber), ("\\w", .word),
    ]

    @Test func classesAgreeWithOniguruma() throws {
        let json = try loadJSON(Paths.fixture("unicode_classes.json"))
        // Scalars that some class disagrees on, to compare with Unicode versions below.
        var newer: [UInt32] = []
        var older: [UInt32] = []
        for (name, classes) in UnicodeClassTests.classes {
            let ranges = try #require(json[name]?.arrayValue)
            var expected = [Bool](repeating: false, count: 0x110000)
            for range in ranges {
                let bounds = range.ints
                for value in bounds[0]...bounds[1] { expected[value] = true }
            }
            for value in 0..<0x110000 where !(0xD800...0xDFFF).contains(value) {
                // Unicode 16 moved U+0295 LATIN LETTER PHARYNGEAL VOICED FRICATIVE from Ll to Lo (a letter either way).
                let recategorized = value == 0x295 && (name == "\\p{Ll}" || name == "\\p{Lo}")
                let kite = name == "\\w" ? isOnigWord(UInt32(value)) : UnicodeClass.contains(UInt32(value), classes)
                if kite != expected[value], !recategorized {
                    let scalar = try #require(Unicode.Scalar(UInt32(value)))
                    // Unicode 15.0 is the newest version Oniguruma 6.9.x (in tokenizers 0.2x) knows.
                    if let age = scalar.properties.age, age.major > 15 || (age.major == 15 && age.minor > 0) {
                        newer.append(UInt32(value))
                    } else {
                        older.append(UInt32(value))
                    }
                }
            }
        }
        #expect(older.isEmpty, "classes differ on scalars assigned before Unicode 15.1: \(older.prefix(20).map { String($0, radix: 16) })")
        // The corpus holds no scalar the two versions classify differently.
        let disputed = Set(newer)
        let corpus = try CorpusFixture.shared()
        for text in corpus.strings {
            #expect(!text.unicodeScalars.contains { disputed.contains($0.value) }, "\(show(text))")
        }
    }
}

/// A small deterministic random generator for generated test inputs.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The patterns real tokenizer.json files spell (CR and LF raw or escaped) get the hand-written matchers.
@Suite struct KnownPatternSelectionTests {
    @Test func realSpellingsSelectHandWrittenMatchers() throws {
        let json = try loadJSON(Paths.fixture("pretokenize.json"))
        for name in ["gpt2", "qwen2", "llama3", "deepseek-v3"] {
            let spec = try #require(json["specs"]?[name])
            let preTokenizer = try TokenizerJSONReader(source: "pretokenize.json").preTokenizer(spec, name)
            var steps: [PreTokenizer] = [preTokenizer]
            if case .sequence(let inner) = preTokenizer { steps = inner }
            for case .split(let pattern, _, _) in steps {
                guard case .known = pattern.matcher else {
                    Issue.record("\(name): \(show(pattern.source)) runs on the regex engine")
                    continue
                }
            }
        }
        #expect(KnownPattern(pattern: KnownPattern.qwen2Pattern.replacingOccurrences(of: "\\r\\n", with: "\r\n")) == .qwen2(maxDigits: 1))
        #expect(KnownPattern(pattern: DeepSeekPatterns.words.replacingOccurrences(of: "\"", with: "\\\"")) == .deepSeekWords)
        #expect(KnownPattern(pattern: "\\\\\"") == nil)
    }
}
