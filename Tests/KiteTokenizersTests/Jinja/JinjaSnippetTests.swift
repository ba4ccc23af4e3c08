import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Small templates covering the Jinja semantics chat templates use, each compared with what
/// transformers' jinja2 environment renders (fixture from scripts/reference/jinja_snippets.py).
/// Syntax errors are compared by kind (the wording is Kite's own, with line and column); render
/// errors by Python's exception type and message.
struct JinjaSnippetTests {
    @Test func snippetsRenderLikeJinja2() throws {
        let fixture = try ChatTemplateReferenceTests.json("snippets.json")
        let context = try #require(fixture["context"]?.objectValue)
        let cases = try #require(fixture["cases"]?.arrayValue)
        var passed = 0
        var failures: [String] = []
        for testCase in cases {
            let source = try #require(testCase["template"]?.stringValue)
            let result = Result { () throws(JinjaError) -> String in
                try ChatTemplate(source: source, name: "snippet").render(context: context)
            }
            if let expected = testCase["output"]?.stringValue {
                switch result {
                case .success(let output) where output == expected: passed += 1
                case .success(let output): failures.append("\(source)\n  expected \(expected.debugDescription)\n  got      \(output.debugDescription)")
                case .failure(let error): failures.append("\(source)\n  expected \(expected.debugDescription)\n  threw \(error)")
                }
                continue
            }
            let type = testCase["error_type"]?.stringValue ?? ""
            let message = testCase["error"]?.stringValue ?? ""
            switch result {
            case .failure(let error) where type == "TemplateSyntaxError" && error.kind == .syntax: passed += 1
            case .failure(let error) where type == "TemplateError" && error.kind == .raised && error.message == message: passed += 1
            case .failure(let error) where error.kind == .render && error.message == "\(type): \(message)": passed += 1
            case .failure(let error): failures.append("\(source)\n  expected \(type): \(message)\n  threw \(error)")
            case .success(let output): failures.append("\(source)\n  expected \(type): \(message)\n  rendered \(output.debugDescription)")
            }
        }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
        print("jinja snippets: \(passed) of \(cases.count) match jinja2")
        #expect(cases.count >= 200)
    }
}
