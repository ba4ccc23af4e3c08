import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// Loading templates from a model directory follows transformers' rules (files first, then
/// tokenizer_config.json, named templates, `tool_use` when tools are passed).
struct ChatTemplateLoadingTests {
    static func directory(_ files: [String: String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kite-chat-template-\(UUID().uuidString)")
        for (path, text) in files {
            let file = url.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: file, atomically: true, encoding: .utf8)
        }
        return url
    }

    static let messages: [JSONValue] = [["role": "user", "content": "hi"]]

    @Test func chatTemplateJinjaWinsOverTokenizerConfig() throws {
        let dir = try Self.directory([
            "chat_template.jinja": "file:{{ messages[0].content }}",
            "tokenizer_config.json": #"{"chat_template": "config"}"#,
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try ChatTemplate.load(directory: dir.path).render(messages: Self.messages) == "file:hi")
    }

    @Test func tokenizerConfigStringTemplate() throws {
        let dir = try Self.directory(["tokenizer_config.json": #"{"bos_token": "<s>", "chat_template": "{{ bos_token }}{{ messages|length }}"}"#])
        defer { try? FileManager.default.removeItem(at: dir) }
        let template = try ChatTemplate.load(directory: dir.path)
        #expect(try template.render(messages: Self.messages, specialTokens: ["bos_token": "<s>"]) == "<s>1")
    }

    @Test func namedTemplatesPickToolUseWhenToolsArePassed() throws {
        let config = #"{"chat_template": [{"name": "default", "template": "plain"}, {"name": "tool_use", "template": "tools:{{ tools|length }}"}, {"name": "rag", "template": "rag"}]}"#
        let dir = try Self.directory(["tokenizer_config.json": config])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try ChatTemplate.load(directory: dir.path).render(messages: Self.messages) == "plain")
        #expect(try ChatTemplate.load(directory: dir.path, withTools: true).render(messages: Self.messages, tools: [["type": "function"]]) == "tools:1")
        #expect(try ChatTemplate.load(directory: dir.path, name: "rag").render(messages: Self.messages) == "rag")
        #expect(throws: ChatTemplateLoadError.self) { try ChatTemplate.load(directory: dir.path, name: "missing") }
        #expect(try ChatTemplate.templateSources(directory: dir.path).keys.sorted() == ["default", "rag", "tool_use"])
    }

    @Test func additionalTemplateFiles() throws {
        let dir = try Self.directory([
            "chat_template.jinja": "main",
            "additional_chat_templates/tool_use.jinja": "tools",
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try ChatTemplate.load(directory: dir.path, withTools: true).render(messages: Self.messages) == "tools")
        #expect(try ChatTemplate.load(directory: dir.path).render(messages: Self.messages) == "main")
    }

    @Test func missingOrMalformedConfigGivesOneClearError() throws {
        let empty = try Self.directory(["config.json": "{}"])
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect(throws: ChatTemplateLoadError.self) { try ChatTemplate.load(directory: empty.path) }

        let broken = try Self.directory(["tokenizer_config.json": #"{"chat_template": 5}"#])
        defer { try? FileManager.default.removeItem(at: broken) }
        do {
            _ = try ChatTemplate.load(directory: broken.path)
            Issue.record("expected an error")
        } catch let error as ChatTemplateLoadError {
            #expect(error.description.contains("tokenizer_config.json"))
            #expect(error.message.contains("expected a string or a list"))
        }

        let badSyntax = try Self.directory(["chat_template.jinja": "line one\n{% if x %}unclosed"])
        defer { try? FileManager.default.removeItem(at: badSyntax) }
        do {
            _ = try ChatTemplate.load(directory: badSyntax.path)
            Issue.record("expected a syntax error")
        } catch let error as JinjaError {
            #expect(error.kind == .syntax)
            #expect(error.line == 2)
        }
    }

    /// The lead wires GGUF loading; the template text from `tokenizer.chat_template` goes straight in.
    @Test func ggufTemplateStringRendersLikeTheFixture() throws {
        let text = try String(contentsOf: ChatTemplateReferenceTests.fixtures.appendingPathComponent("smollm2.jinja"), encoding: .utf8)
        let template = try ChatTemplate(source: text, name: "tokenizer.chat_template")
        let output = try template.render(messages: Self.messages, addGenerationPrompt: true)
        #expect(output == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }
}
