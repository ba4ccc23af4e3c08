import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Rendered chat templates must equal transformers' output byte for byte (fixtures written by
/// scripts/reference/chat_templates.py with transformers' own `render_jinja_template`).
struct ChatTemplateReferenceTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/chat_templates")

    static func json(_ name: String) throws -> JSONValue {
        try JSONValue(parsing: [UInt8](Data(contentsOf: fixtures.appendingPathComponent(name))), source: name)
    }

    static func template(_ name: String) throws -> ChatTemplate {
        let text = try String(contentsOf: fixtures.appendingPathComponent(name + ".jinja"), encoding: .utf8)
        return try ChatTemplate(source: text, name: name)
    }

    /// The message a Python exception of this type and text corresponds to in a `JinjaError`.
    static func expectedMessage(type: String, message: String) -> (JinjaError.Kind, String) {
        type == "TemplateError" ? (.raised, message) : (.render, "\(type): \(message)")
    }

    @Test func rendersEveryTemplateLikeTransformers() throws {
        let conversations = try #require(try Self.json("conversations.json").objectValue)
        let cases = try #require(try Self.json("expected.json")["cases"]?.arrayValue)
        var templates: [String: ChatTemplate] = [:]
        var passed = 0
        var failures: [String] = []
        for testCase in cases {
            let name = try #require(testCase["template"]?.stringValue)
            let conversationName = try #require(testCase["conversation"]?.stringValue)
            let template = try templates[name] ?? Self.template(name)
            templates[name] = template
            let conversation = try #require(conversations[conversationName])
            let messages = try #require(conversation["messages"]?.arrayValue)
            let tools = conversation["tools"]?.arrayValue
            var specialTokens: [String: String] = [:]
            for (key, value) in testCase["special_tokens"]?.objectValue ?? JSONObject() { specialTokens[key] = value.stringValue }
            let label = "\(name) / \(conversationName) / agp=\(testCase["add_generation_prompt"] == .bool(true)) / \(testCase["extra_context"]?.serialized() ?? "")"
            let result = Result { () throws(JinjaError) -> String in
                try template.render(
                    messages: messages, tools: tools,
                    addGenerationPrompt: testCase["add_generation_prompt"]?.boolValue ?? false,
                    extraContext: testCase["extra_context"]?.objectValue ?? JSONObject(),
                    specialTokens: specialTokens)
            }
            if let expected = testCase["output"]?.stringValue {
                switch result {
                case .success(let output) where output == expected: passed += 1
                case .success(let output): failures.append("\(label): output differs\n--- expected\n\(expected)\n--- got\n\(output)")
                case .failure(let error): failures.append("\(label): threw \(error)")
                }
            } else {
                let (kind, message) = Self.expectedMessage(type: testCase["error_type"]?.stringValue ?? "", message: testCase["error"]?.stringValue ?? "")
                switch result {
                case .failure(let error) where error.kind == kind && error.message == message: passed += 1
                case .failure(let error): failures.append("\(label): expected \(kind) '\(message)', threw \(error)")
                case .success(let output): failures.append("\(label): expected \(kind) '\(message)', rendered \(output)")
                }
            }
        }
        for failure in failures.prefix(10) { Issue.record(Comment(rawValue: failure)) }
        #expect(failures.isEmpty, "\(passed) of \(cases.count) cases match transformers")
        #expect(cases.count >= 400)
        print("chat templates: \(passed) of \(cases.count) cases match transformers byte for byte")
    }
}
