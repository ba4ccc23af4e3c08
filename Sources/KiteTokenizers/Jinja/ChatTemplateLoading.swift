#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import KiteJSON

/// A model directory whose chat templates cannot be read or chosen.
public struct ChatTemplateLoadError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

extension ChatTemplate {
    /// The chat templates of a Hugging Face model directory, by name, read as transformers reads them:
    /// `chat_template.jinja` (named "default") and `additional_chat_templates/<name>.jinja` take
    /// priority; otherwise `chat_template` in `tokenizer_config.json`, a string or a list of
    /// `{"name", "template"}`; otherwise a processor's legacy `chat_template.json`. Empty when the
    /// directory has none.
    public static func templateSources(directory: String) throws(ChatTemplateLoadError) -> [String: String] {
        let base = URL(fileURLWithPath: directory)
        var templates: [String: String] = [:]
        let main = base.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: main.path) {
            templates["default"] = try readText(main)
        }
        let extras = base.appendingPathComponent("additional_chat_templates")
        if let names = try? FileManager.default.contentsOfDirectory(atPath: extras.path) {
            for file in names.sorted() where file.hasSuffix(".jinja") {
                templates[String(file.dropLast(".jinja".count))] = try readText(extras.appendingPathComponent(file))
            }
        }
        if !templates.isEmpty { return templates }

        for file in ["tokenizer_config.json", "chat_template.json"] {
            let url = base.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else { continue }
            let config: JSONValue
            do {
                config = try JSONValue(parsing: try readText(url), source: url.path)
            } catch let error as JSONParseError {
                throw ChatTemplateLoadError(path: url.path, message: error.message)
            } catch {
                throw ChatTemplateLoadError(path: url.path, message: "\(error)")
            }
            switch config["chat_template"] {
            case nil, .null?:
                continue
            case .string(let text)?:
                return ["default": text]
            case .array(let entries)?:
                for (i, entry) in entries.enumerated() {
                    guard let name = entry["name"]?.stringValue, let text = entry["template"]?.stringValue else {
                        throw ChatTemplateLoadError(path: url.path, message: "chat_template[\(i)]: expected an object with string fields 'name' and 'template'")
                    }
                    templates[name] = text
                }
                return templates
            case let other?:
                throw ChatTemplateLoadError(path: url.path, message: "chat_template: expected a string or a list of {name, template}, found \(other.typeName)")
            }
        }
        return templates
    }

    /// The template transformers' `get_chat_template` picks from a model directory: the one called
    /// `name` if given; otherwise `tool_use` when the render will pass tools and the model has one,
    /// else `default`.
    public static func load(directory: String, name: String? = nil, withTools: Bool = false) throws -> ChatTemplate {
        let templates = try templateSources(directory: directory)
        guard !templates.isEmpty else {
            throw ChatTemplateLoadError(path: directory, message: "no chat template (looked for chat_template.jinja, tokenizer_config.json and chat_template.json)")
        }
        let chosen: String
        if let name {
            guard templates[name] != nil else {
                throw ChatTemplateLoadError(path: directory, message: "no chat template named '\(name)'; available: \(templates.keys.sorted().joined(separator: ", "))")
            }
            chosen = name
        } else if withTools && templates["tool_use"] != nil {
            chosen = "tool_use"
        } else if templates["default"] != nil {
            chosen = "default"
        } else {
            throw ChatTemplateLoadError(path: directory, message: "several chat templates and none named 'default'; pick one of: \(templates.keys.sorted().joined(separator: ", "))")
        }
        let label = URL(fileURLWithPath: directory).lastPathComponent + (chosen == "default" ? "" : ":" + chosen)
        return try ChatTemplate(source: templates[chosen] ?? "", name: label)
    }

    private static func readText(_ url: URL) throws(ChatTemplateLoadError) -> String {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ChatTemplateLoadError(path: url.path, message: "cannot read: \(error)")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ChatTemplateLoadError(path: url.path, message: "not valid UTF-8")
        }
        return text
    }
}
