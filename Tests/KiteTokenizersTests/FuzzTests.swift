import Foundation
import KiteJSON
import Testing

@testable import KiteTokenizers

/// Malformed tokenizer.json documents must give one clear `TokenizerError`, never a crash: mutations of valid
/// documents (truncation, byte edits, type changes, bad merges, huge and negative ids, duplicate tokens, bad
/// regexes) for a bounded time, plus a replay of the corpus kept in Tests/Fixtures/tokenizers/corpus/.
///
/// `KITE_FUZZ_SECONDS` sets the time (default 3); `KITE_FUZZ_SAVE=1` adds inputs with a new kind of error to
/// the corpus.
@Suite struct FuzzTests {
    static let corpusDirectory = Paths.fixture("corpus")

    /// Loads `text` as a tokenizer.json; if it loads, uses it. Returns the error, if any. Must not crash.
    static func exercise(_ text: [UInt8], name: String) -> TokenizerError? {
        let document: JSONValue
        do {
            document = try JSONValue(parsing: text, source: name)
        } catch {
            return TokenizerError(.syntax, source: name, line: error.line, column: error.column, error.message)
        }
        do {
            let tokenizer = try Tokenizer(tokenizerJSON: document, source: name)
            for sample in ["Hello, world!", " <s>  12345\n\n\tmixed ÉTÉ word [L] [R]", "中文😀", ""] {
                let ids = tokenizer.encode(sample, addSpecialTokens: true)
                _ = try? tokenizer.decode(ids)
                _ = try? tokenizer.decode(ids + [-1, tokenizer.vocabularySize, Int.max], skipSpecialTokens: true)
                var stream = tokenizer.makeStreamingDetokenizer()
                for id in ids { _ = try? stream.append(id) }
                _ = stream.finish()
            }
            return nil
        } catch {
            return error
        }
    }

    /// An error's kind and field with numbers and quoted text removed, to tell new kinds of failure apart.
    static func signature(_ error: TokenizerError) -> String {
        // JSON syntax errors are KiteJSON's business (fuzzed there); a few of them are enough here.
        if error.kind == .syntax { return "syntax " + error.message.split(separator: " ").prefix(2).joined(separator: " ") }
        var field = ""
        var skipping = false
        for character in error.field ?? "" {
            if character == "\"" { skipping.toggle(); continue }
            if skipping || character.isNumber { continue }
            field.append(character)
        }
        var message = ""
        for word in error.message.split(separator: " ").prefix(4) where !word.contains(where: \.isNumber) && !word.contains("\"") {
            message += word + " "
        }
        return "\(error.kind.rawValue) \(field) \(message)"
    }

    @Test func corpusGivesTheRecordedErrors() throws {
        let index = try loadJSON(FuzzTests.corpusDirectory.appendingPathComponent("index.json"))
        let entries = try #require(index.objectValue)
        #expect(entries.count >= 20)
        for (file, expected) in entries {
            let bytes = try [UInt8](Data(contentsOf: FuzzTests.corpusDirectory.appendingPathComponent(file)))
            let error = FuzzTests.exercise(bytes, name: file)
            #expect(error.map { $0.kind.rawValue } == expected["kind"]?.stringValue, "\(file): \(error.map(String.init(describing:)) ?? "loaded")")
            if let error, let field = expected["field"]?.stringValue { #expect(error.field == field, "\(file): \(error)") }
        }
    }

    @Test func mutatedDocumentsThrowInsteadOfCrashing() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["KITE_FUZZ_SECONDS"] ?? "") ?? 3
        let save = ProcessInfo.processInfo.environment["KITE_FUZZ_SAVE"] == "1"
        var seeds: [JSONValue] = []
        let fixture = try #require(TokenizerJSONFeatureTests.fixture)
        for (_, variant) in fixture["variants"]?.objectValue ?? JSONObject() {
            seeds.append(FuzzTests.shrunk(try TokenizerJSONFeatureTests.document(variant)))
        }
        // Shrinking leaves the post-processors of two variants pointing past the vocabulary; use the valid ones.
        seeds = seeds.filter { FuzzTests.exercise(Array($0.serialized().utf8), name: "seed") == nil }
        #expect(seeds.count >= 8)
        var known = Set<String>()
        if let index = try? loadJSON(FuzzTests.corpusDirectory.appendingPathComponent("index.json")).objectValue {
            for (file, _) in index {
                if let bytes = try? [UInt8](Data(contentsOf: FuzzTests.corpusDirectory.appendingPathComponent(file))),
                   let error = FuzzTests.exercise(bytes, name: file) {
                    known.insert(FuzzTests.signature(error))
                }
            }
        }
        var random = SplitMix(seed: UInt64(ProcessInfo.processInfo.environment["KITE_FUZZ_SEED"] ?? "") ?? 20261125)
        var mutator = Mutator()
        let clock = ContinuousClock()
        let start = clock.now
        var runs = 0
        var errors = 0
        var saved: [(String, TokenizerError)] = []
        while clock.now - start < .milliseconds(Int(seconds * 1000)) {
            let seed = seeds[Int(random.next() % UInt64(seeds.count))]
            let bytes = mutator.mutate(seed, random: &random)
            runs += 1
            guard let error = FuzzTests.exercise(bytes, name: "fuzz") else { continue }
            errors += 1
            #expect(!error.description.isEmpty)
            let signature = FuzzTests.signature(error)
            if save, bytes.count < 20_000, known.count < 100, known.insert(signature).inserted {
                saved.append((signature, error))
                let name = String(format: "case-%03d.json", known.count)
                try Data(bytes).write(to: FuzzTests.corpusDirectory.appendingPathComponent(name))
                try FuzzTests.record(name, error)
            }
        }
        #expect(runs > 10)
        print("fuzz: \(runs) documents, \(errors) rejected with an error, \(saved.count) new kinds saved")
    }

    /// Random patterns from the regex syntax (valid or not) compile or throw, and run on random text without
    /// crashing or running away.
    @Test func randomPatternsCompileOrThrowAndMatchSafely() {
        let pieces = [
            "a", "b", "é", "中", ".", "\\s", "\\S", "\\w", "\\d", "\\p{L}", "\\P{N}", "[a-c]", "[^\\s\\p{L}]", "[", "]", "(",
            ")", "(?:", "(?i:", "(?=", "(?!", "(?>", "|", "*", "+", "?", "*?", "++", "{2}", "{1,3}", "{,2}", "{", "}", "^", "$",
            "\\b", "\\A", "\\z", "\\", "\\x{41}", "\\u00e9", "\\1", "(?<=", "-", "\\r\\n", " ",
        ]
        let texts = ["", "a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", "abc éé 中文  \n\t12", String(repeating: "ab ", count: 200)]
        var random = SplitMix(seed: UInt64(ProcessInfo.processInfo.environment["KITE_FUZZ_SEED"] ?? "") ?? 77)
        let seconds = Double(ProcessInfo.processInfo.environment["KITE_FUZZ_SECONDS"] ?? "") ?? 2
        let clock = ContinuousClock()
        let start = clock.now
        var compiled = 0
        while clock.now - start < .milliseconds(Int(seconds * 1000)) {
            let pattern = (0..<Int(1 + random.next() % 10)).map { _ in pieces[Int(random.next() % UInt64(pieces.count))] }.joined()
            guard let program = try? RegexProgram(pattern: pattern) else { continue }
            compiled += 1
            for text in texts {
                var text = text
                text.withUTF8 { buffer in
                    var matcher = RegexMatcher()
                    var matches: [(Int, Int)] = []
                    matcher.findAll(program, in: buffer, lower: 0, upper: buffer.count, into: &matches)
                    var previous = 0
                    for (matchStart, matchEnd) in matches {
                        #expect(matchStart >= previous && matchEnd >= matchStart && matchEnd <= buffer.count, "\(pattern)")
                        previous = matchEnd
                    }
                }
            }
        }
        #expect(compiled > 100)
    }

    /// A valid document with a small vocabulary (ids below 130, the merges among them), so that saved
    /// corpus files stay small.
    static func shrunk(_ document: JSONValue) -> JSONValue {
        guard case .object(var root) = document, case .object(var model)? = root["model"],
              let vocab = model["vocab"]?.objectValue, let merges = model["merges"]?.arrayValue
        else { return document }
        var kept = JSONObject()
        for (token, id) in vocab where (id.intValue ?? 0) < 130 { kept[token] = id }
        model["vocab"] = .object(kept)
        model["merges"] = .array(merges.filter { merge in
            let parts = merge.stringValue.map { $0.split(separator: " ").map(String.init) } ?? merge.strings
            return parts.count == 2 && kept[parts[0]] != nil && kept[parts[1]] != nil && kept[parts[0] + parts[1]] != nil
        })
        root["model"] = .object(model)
        return .object(root)
    }

    /// Adds a corpus file's expected error to index.json.
    static func record(_ file: String, _ error: TokenizerError) throws {
        let url = corpusDirectory.appendingPathComponent("index.json")
        var index = (try? loadJSON(url).objectValue) ?? JSONObject()
        var entry = JSONObject()
        entry["kind"] = .string(error.kind.rawValue)
        if let field = error.field { entry["field"] = .string(field) }
        entry["message"] = .string(error.description)
        index[file] = .object(entry)
        let options = JSONWriteOptions(ensureASCII: true, indent: 1, sortKeys: true)
        try Data((JSONValue.object(index).serialized(options) + "\n").utf8).write(to: url)
    }
}

/// Mutations of a tokenizer.json document.
struct Mutator {
    static let regexes = [
        "(", ")", "[", "[a-", "\\", "a{2,1}", "(?<=a)b", "\\p{Foo}", "(a*)*b", "(?i", "[[:alpha:]]", "\\k<x>",
        "a{99999}", "(?P<n>x)\\1", "[z-a]", "\\x{110000}", "\\u12", "(?#", "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((x))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
        "(a|aa)*$", "(x+x+)+y", "(?:(?:a*)*)*", "", "x{0}", "(?=)", "\\b*", "^*", ".*?", "\\Q", "(?z:a)",
    ]
    static let strings = ["", " ", "a b c", "Ġ", "ĠĠĠĠ", "<s>", "\u{0}", "\u{FFFD}", "a b", "é", "x y"]

    mutating func mutate(_ seed: JSONValue, random: inout SplitMix) -> [UInt8] {
        switch random.next() % 8 {
        case 0:
            // Truncate the text.
            let text = Array(seed.serialized().utf8)
            return Array(text.prefix(Int(random.next() % UInt64(text.count + 1))))
        case 1:
            // Edit bytes of the text.
            var text = Array(seed.serialized().utf8)
            for _ in 0..<(1 + random.next() % 4) where !text.isEmpty {
                let position = Int(random.next() % UInt64(text.count))
                switch random.next() % 3 {
                case 0: text[position] = UInt8(truncatingIfNeeded: random.next())
                case 1: text.remove(at: position)
                default:
                    let punctuation = Array("{}[]\",:0-9e\\".utf8)
                    text.insert(punctuation[Int(random.next() % UInt64(punctuation.count))], at: position)
                }
            }
            return text
        default:
            var document = seed
            for _ in 0..<(1 + random.next() % 3) { document = mutateTree(document, random: &random, depth: 0) }
            return Array(document.serialized().utf8)
        }
    }

    /// Replaces a random node, preferring the parts of a tokenizer.json that loaders interpret.
    func mutateTree(_ value: JSONValue, random: inout SplitMix, depth: Int) -> JSONValue {
        let descend = depth < 6 && random.next() % 5 != 0
        switch value {
        case .object(var object) where descend && !object.isEmpty:
            let keys = object.keys
            let key = keys[Int(random.next() % UInt64(keys.count))]
            if random.next() % 10 == 0 {
                object[key] = nil
            } else if let child = object[key] {
                object[key] = mutateTree(child, random: &random, depth: depth + 1)
            }
            if key == "vocab", random.next() % 3 == 0, let first = keys.first {
                // A duplicate id, or a token whose id is huge or negative.
                let ids: [JSONValue] = [object[first] ?? 0, .int(-1), .int(Int.max), .int(1 << 40), .double(1e300), .int(0)]
                object["duplicate\(random.next() % 5)"] = ids[Int(random.next() % UInt64(ids.count))]
            }
            return .object(object)
        case .array(var array) where descend && !array.isEmpty:
            let index = Int(random.next() % UInt64(array.count))
            switch random.next() % 6 {
            case 0: array.remove(at: index)
            case 1: array.append(array[index])
            default: array[index] = mutateTree(array[index], random: &random, depth: depth + 1)
            }
            return .array(array)
        default:
            return replacement(for: value, random: &random)
        }
    }

    func replacement(for value: JSONValue, random: inout SplitMix) -> JSONValue {
        switch random.next() % 10 {
        case 0: return .null
        case 1: return .bool(random.next() % 2 == 0)
        case 2: return .int([-1, 0, 1, 255, 256, 65_536, Int(Int32.max), Int.max, Int.min][Int(random.next() % 9)])
        case 3: return .double([0.5, -0.0, 1e300, 3.0][Int(random.next() % 4)])
        case 4: return .string(Mutator.regexes[Int(random.next() % UInt64(Mutator.regexes.count))])
        case 5: return .string(Mutator.strings[Int(random.next() % UInt64(Mutator.strings.count))])
        case 6: return .array([])
        case 7: return .object(JSONObject())
        case 8: return ["Regex": .string(Mutator.regexes[Int(random.next() % UInt64(Mutator.regexes.count))])]
        default:
            if case .string(let text) = value { return .string(String(text.reversed())) }
            return .array([value, value])
        }
    }
}
