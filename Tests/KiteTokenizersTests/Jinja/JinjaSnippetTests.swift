import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Small templates covering the Jinja semantics chat templates use, each compared with what
/// transformers' jinja2 environment renders (fixtures from scripts/reference/jinja_snippets.py and
/// jinja_differential.py). Syntax errors are compared by kind (the wording is Kite's own, with line and
/// column); render errors by Python's exception type and message.
struct JinjaSnippetTests {
    /// Renders every case and returns the descriptions of those that differ from jinja2.
    static func mismatches(_ cases: [JSONValue], context: JSONObject, contexts: JSONObject = JSONObject()) throws -> [String] {
        var failures: [String] = []
        for testCase in cases {
            let source = try #require(testCase["template"]?.stringValue)
            let context = testCase["context"]?.stringValue.flatMap { contexts[$0]?.objectValue } ?? context
            let result = Result { () throws(JinjaError) -> String in
                try ChatTemplate(source: source, name: "snippet").render(context: context)
            }
            if let expected = testCase["output"]?.stringValue {
                switch result {
                case .success(let output) where output == expected: break
                case .success(let output): failures.append("\(source.debugDescription)\n  expected \(expected.debugDescription)\n  got      \(output.debugDescription)")
                case .failure(let error): failures.append("\(source.debugDescription)\n  expected \(expected.debugDescription)\n  threw \(error)")
                }
                continue
            }
            let type = testCase["error_type"]?.stringValue ?? ""
            let message = testCase["error"]?.stringValue ?? ""
            switch result {
            case .failure(let error) where type == "TemplateSyntaxError" && error.kind == .syntax: break
            case .failure(let error) where type == "TemplateError" && error.kind == .raised && error.message == message: break
            case .failure(let error) where error.kind == .render && error.message == "\(type): \(message)": break
            case .failure(let error): failures.append("\(source.debugDescription)\n  expected \(type): \(message)\n  threw \(error)")
            case .success(let output): failures.append("\(source.debugDescription)\n  expected \(type): \(message)\n  rendered \(output.debugDescription)")
            }
        }
        return failures
    }

    @Test func snippetsRenderLikeJinja2() throws {
        let fixture = try ChatTemplateReferenceTests.json("snippets.json")
        let cases = try #require(fixture["cases"]?.arrayValue)
        let failures = try Self.mismatches(cases, context: try #require(fixture["context"]?.objectValue))
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
        print("jinja snippets: \(cases.count - failures.count) of \(cases.count) match jinja2")
        #expect(cases.count >= 200)
    }

    /// Random mutants may use what Kite refuses by design (integers beyond 64 bits, `%f`-style float
    /// formatting); those must fail with Kite's explicit error, and everything else must match. Mutants
    /// whose jinja2 outcome depends on its compile-time constant folding or on Markup strings are not
    /// compared (the generator marks them).
    @Test func randomMutantsRenderLikeJinja2() throws {
        let context = try #require(try ChatTemplateReferenceTests.json("snippets.json")["context"]?.objectValue)
        let file = ProcessInfo.processInfo.environment["KITE_DIFFERENTIAL_FIXTURE"]
        let fixture = try file.map { try JSONValue(parsing: [UInt8](Data(contentsOf: URL(fileURLWithPath: $0)))) } ?? ChatTemplateReferenceTests.json("differential.json")
        let allCases = try #require(fixture["cases"]?.arrayValue)
        let cases = allCases.filter { $0["constant_folding"] == nil && $0["markup"] == nil }
        let all = try Self.mismatches(cases, context: context, contexts: fixture["contexts"]?.objectValue ?? JSONObject())
        let unsupported = all.filter {
            $0.contains("not supported by Kite") || $0.contains("OverflowError: integer result does not fit in 64 bits") || $0.contains("integer literal too large")
        }
        let failures = all.filter { !unsupported.contains($0) }
        for failure in failures.prefix(40) { Issue.record(Comment(rawValue: failure)) }
        print("jinja differential: \(cases.count - all.count) of \(cases.count) mutants match jinja2, \(unsupported.count) use refused features; \(allCases.count - cases.count) depend on constant folding or Markup")
        #expect(cases.count >= 1000)
        #expect(unsupported.count <= 10)
    }
}
