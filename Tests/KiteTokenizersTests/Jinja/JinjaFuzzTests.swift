import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Mutates real chat templates and the reference snippets (truncation, deleted, duplicated and swapped
/// spans, inserted Jinja fragments and odd characters, deep nesting) and checks that every mutant
/// either renders or throws a `JinjaError` with a sane position: nothing crashes or hangs.
///
/// The normal test run fuzzes for 3 seconds. `KITE_FUZZ_SECONDS=300` fuzzes longer; with
/// `KITE_FUZZ_CORPUS_OUT=dir` mutants whose outcome is new are saved there, to be curated into
/// Tests/Fixtures/chat_templates/fuzz_corpus/, which `replaysTheCorpus` runs every time.
struct JinjaMutator {
    struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let fragments: [String] = [
        "{%", "%}", "{{", "}}", "{#", "#}", "{%-", "-%}", "{{-", "-}}", "+%}", "{%+", "(", ")", "[", "]", "{", "}",
        "'", "\"", "\\", "|", ".", ",", ":", "=", "~", "*", "**", "%", "//", "==", "!=", "<", ">=", " if ", " else ",
        " elif ", "{% for x in messages %}", "{% endfor %}", "{% if true %}", "{% endif %}", " set ", "{% set ns = namespace(a=1) %}",
        "{% set ns.a = ns.a + 1 %}", "{% macro m(a, b=2) %}", "{% endmacro %}", "{{ m(1) }}", "{% call m(1) %}", "{% endcall %}",
        "{% filter upper %}", "{% endfilter %}", "{% raw %}", "{% endraw %}", " is defined ", " is not none ", " not ", " and ", " or ",
        " in ", "loop.index", "loop.last", "loop.previtem", "loop(", " recursive ", "{% break %}", "{% continue %}", "{% generation %}",
        "{% endgeneration %}", "{% with a = 1 %}", "{% endwith %}", "\n", "\r\n", "\r", "\t", "\u{0}", "é", "e\u{301}", "😀", "\u{200B}",
        "\u{3000}", "\u{FEFF}", "0x", "1e9", "99999999999999999999", "1_000", "'\\x", "'\\u12", "'\\N{", "messages[0]", "messages[-1]",
        "tools", "message.content", "message['role']", "|tojson", "|tojson(indent=4)", "|join(', ')", "|map(attribute='role')",
        "|selectattr('role', 'equalto', 'user')", "|list", "|length", "|first", "|last", "|trim", "|default('x')", "|items",
        "|dictsort", "|sort", "|unique", "|reverse", "|batch(2)", "|indent(4)", "|replace('a', 'b')", "|int", "|float", "|string",
        "raise_exception('x')", "range(10)", "range(99999)", "caller()", "namespace(", "dict(a=1)", ".split('</think>')[-1]",
        ".strip()", ".startswith('<')", "[::-1]", "[1:]", "[:-1]", "* 1000", "~ 'x'", "'%s' % ", "not not ", "- - ",
    ]

    var rng: SplitMix64
    let seeds: [[Unicode.Scalar]]

    init(seed: UInt64, sources: [String]) {
        rng = SplitMix64(state: seed)
        seeds = sources.map { Array($0.unicodeScalars) }
    }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    mutating func randomScalar() -> Unicode.Scalar {
        switch below(4) {
        case 0, 1: return Unicode.Scalar(UInt8(32 + below(95)))
        case 2: return Unicode.Scalar(UInt8(below(32)))
        default: return Unicode.Scalar(UInt32(below(0x10FFFF))) ?? "\u{FFFD}"
        }
    }

    mutating func mutant() -> String {
        var text = seeds[below(seeds.count)]
        for _ in 0..<(1 + below(4)) {
            let n = text.count
            let a = below(n + 1)
            let b = min(n, a + below(24))
            switch below(10) {
            case 0: text = Array(text[..<a])
            case 1: text.removeSubrange(a..<b)
            case 2: text.insert(contentsOf: text[a..<b], at: below(n + 1))
            case 3:
                let c = below(n + 1)
                let d = min(n, c + below(24))
                if b <= c { text = Array(text[..<a] + text[c..<d] + text[b..<c] + text[a..<b] + text[d...]) }
            case 4, 5: text.insert(contentsOf: Self.fragments[below(Self.fragments.count)].unicodeScalars, at: a)
            case 6: text.insert(randomScalar(), at: a)
            case 7:
                let other = seeds[below(seeds.count)]
                let c = below(other.count + 1)
                text.insert(contentsOf: other[c..<min(other.count, c + below(80))], at: a)
            case 8:
                let (open, close) = [("(", ")"), ("[", "]"), ("{% if x %}", "{% endif %}"), ("{{ ", " }}"), ("{% for i in l %}", "{% endfor %}"), ("{'a': ", "}")][below(6)]
                let depth = below(3) == 0 ? 40 + below(120) : 1 + below(8)
                text = Array(text[..<a]) + Array(String(repeating: open, count: depth).unicodeScalars) + Array(text[a..<b])
                    + Array(String(repeating: close, count: depth).unicodeScalars) + Array(text[b...])
            default:
                if a < n { text[a] = randomScalar() }
            }
        }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: text)
        return String(view)
    }

}

extension JinjaFuzzTests {
    /// What happened to one input: "ok" or the error's kind and the start of its message.
    static func run(_ source: String, contexts: (chat: [JSONValue], tools: [JSONValue], plain: JSONObject)) -> String {
        let limits = JinjaRenderLimits(maximumIterations: 20_000, maximumOutputBytes: 1 << 18, maximumCallDepth: 16)
        let lineCount = source.unicodeScalars.filter { $0 == "\n" || $0 == "\r" }.count + 1
        func outcome(_ error: JinjaError) -> String {
            #expect(error.line >= 0 && error.line <= lineCount && error.column >= 0, "\(error) for \(source.debugDescription)")
            #expect(!error.message.isEmpty || error.kind == .raised, "\(error) for \(source.debugDescription)")
            // A coarse signature: the error kind and the message with quoted names and numbers dropped.
            var signature = ""
            var quoted = false
            for character in error.message.prefix(60) {
                if character == "'" { quoted.toggle(); continue }
                if !quoted && !character.isNumber { signature.append(character) }
            }
            return "\(error.kind) \(signature)"
        }
        var template: ChatTemplate
        do {
            template = try ChatTemplate(source: source, name: "fuzz")
        } catch {
            return outcome(error)
        }
        template.limits = limits
        var results: [String] = []
        do {
            _ = try template.render(messages: contexts.chat, tools: contexts.tools, addGenerationPrompt: true, extraContext: JSONObject([("enable_thinking", false)]))
            results.append("ok")
        } catch {
            results.append(outcome(error))
        }
        do {
            _ = try template.render(context: contexts.plain)
            results.append("ok")
        } catch {
            results.append(outcome(error))
        }
        return results.joined(separator: " / ")
    }

    static func contexts() throws -> (chat: [JSONValue], tools: [JSONValue], plain: JSONObject) {
        let conversations = try ChatTemplateReferenceTests.json("conversations.json")
        let chat = try #require(conversations["thinking_with_tools"]?["messages"]?.arrayValue)
        let tools = try #require(conversations["tools_offered"]?["tools"]?.arrayValue)
        let plain = try #require(try ChatTemplateReferenceTests.json("snippets.json")["context"]?.objectValue)
        return (chat, tools, plain)
    }

    static func seedSources() throws -> [String] {
        var sources: [String] = []
        let files = try FileManager.default.contentsOfDirectory(atPath: ChatTemplateReferenceTests.fixtures.path)
        for file in files.sorted() where file.hasSuffix(".jinja") {
            sources.append(try String(contentsOf: ChatTemplateReferenceTests.fixtures.appendingPathComponent(file), encoding: .utf8))
        }
        for snippet in try ChatTemplateReferenceTests.json("snippets.json")["cases"]?.arrayValue ?? [] {
            if let text = snippet["template"]?.stringValue { sources.append(text) }
        }
        return sources
    }

}

struct JinjaFuzzTests {
    @Test func mutatedTemplatesRenderOrFailCleanly() throws {
        let environment = ProcessInfo.processInfo.environment
        let seconds = Double(environment["KITE_FUZZ_SECONDS"] ?? "") ?? 3
        let corpusOut = environment["KITE_FUZZ_CORPUS_OUT"].map { URL(fileURLWithPath: $0) }
        if let corpusOut { try FileManager.default.createDirectory(at: corpusOut, withIntermediateDirectories: true) }
        let contexts = try Self.contexts()
        let seed = UInt64(environment["KITE_FUZZ_SEED"] ?? "") ?? 0x4B49_5445
        var fuzzer = JinjaMutator(seed: seed, sources: try Self.seedSources())
        var seen = Set<String>()
        var runs = 0
        var saved = 0
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var slowest: (Duration, String) = (.zero, "")
        var index = ""
        defer { if let corpusOut { try? index.write(to: corpusOut.appendingPathComponent("outcomes.tsv"), atomically: true, encoding: .utf8) } }
        while ContinuousClock.now < deadline {
            let source = fuzzer.mutant()
            let start = ContinuousClock.now
            let outcome = Self.run(source, contexts: contexts)
            let elapsed = ContinuousClock.now - start
            if elapsed > slowest.0 { slowest = (elapsed, source) }
            runs += 1
            if seen.insert(outcome).inserted, let corpusOut, source.utf8.count < 4096 {
                saved += 1
                let name = String(format: "%05d.jinja", saved)
                try source.write(to: corpusOut.appendingPathComponent(name), atomically: true, encoding: .utf8)
                index += "\(name)\t\(outcome)\n"
            }
        }
        print("fuzz: \(runs) mutants in \(seconds) s, \(seen.count) distinct outcomes, slowest \(slowest.0) (\(slowest.1.utf8.count) bytes)")
        #expect(runs > 0)
        // One input must never take long: limits bound every render.
        #expect(slowest.0 < .seconds(2), "slowest input: \(slowest.1.debugDescription.prefix(500))")
    }

    @Test func replaysTheCorpus() throws {
        let directory = ChatTemplateReferenceTests.fixtures.appendingPathComponent("fuzz_corpus")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".jinja") }.sorted()
        #expect(files.count >= 20)
        let contexts = try Self.contexts()
        for file in files {
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            let first = Self.run(source, contexts: contexts)
            #expect(Self.run(source, contexts: contexts) == first, "\(file) is not deterministic")
        }
    }
}
