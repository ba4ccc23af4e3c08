import KiteJSON

/// A chat template (Jinja) rendered exactly as transformers' `apply_chat_template(..., tokenize=False)`
/// renders it: jinja2's `ImmutableSandboxedEnvironment` with `trim_blocks`, `lstrip_blocks`, the
/// `loopcontrols` extension, `{% generation %}` blocks, the `raise_exception` and `strftime_now`
/// globals and transformers' `tojson`.
///
/// ```swift
/// let template = try ChatTemplate(source: text, name: "qwen3")
/// let prompt = try template.render(messages: messages, addGenerationPrompt: true,
///                                  extraContext: JSONObject([("enable_thinking", false)]))
/// ```
///
/// Values behave as the Python objects jinja2 sees: `{{ none }}` prints `None`, lists and dicts print
/// as Python `repr`, `int` and `float` stay apart, undefined values print as nothing but fail when
/// used, and errors carry Python's messages (`TypeError: can only concatenate str (not "int") to str`).
///
/// Not supported, each failing with an explicit error rather than rendering something different:
/// the `include`/`import`/`extends`/`block` tags (chat templates are self-contained), integers beyond
/// 64 bits, `%f`/`%e`/`%g` string formatting, and the filters `groupby`, `random`, `pprint`, `urlize`,
/// `urlencode`, `wordwrap`, `striptags`, `filesizeformat`, `xmlattr`. Markup is not modelled (no
/// autoescape in transformers): `|safe` and `|escape` return plain strings, so escaping twice escapes
/// twice. jinja2 folds constant `{{ }}` expressions at compile time; Kite evaluates them when rendering,
/// which differs only for odd templates (slicing a literal number yields undefined in jinja2, an error
/// here).
public struct ChatTemplate: Sendable {
    /// Names the template in error messages (`qwen3:12:7: syntax error: ...`).
    public let name: String
    public let source: String
    /// Bounds for every render of this template.
    public var limits = JinjaRenderLimits()
    private let nodes: [Node]
    private let lines: LineTable

    /// Parses `source`; a syntax error names the line and column and what was expected there.
    public init(source: String, name: String = "chat_template") throws(JinjaError) {
        self.name = name
        self.source = source
        let scalars = JinjaLexer.normalize(source)
        lines = LineTable(scalars)
        do {
            var lexer = JinjaLexer(source: scalars)
            var parser = JinjaParser(tokens: try lexer.tokenize(), lines: lines)
            nodes = try parser.parseTemplate()
            try FilterCheck.check(nodes, soft: false)
        } catch {
            throw Self.error(error, name: name, lines: lines)
        }
    }

    private static func error(_ failure: RuntimeFailure, name: String, lines: LineTable) -> JinjaError {
        let (line, column) = lines.position(of: failure.offset)
        return JinjaError(kind: failure.kind, message: failure.message, templateName: name, line: line, column: column)
    }

    /// Renders with exactly these variables (plus the globals), as `Template.render(**context)` does.
    public func render(context: JSONObject) throws(JinjaError) -> String {
        var variables: [String: JinjaValue] = [:]
        do {
            for (key, value) in context { variables[key] = try JinjaValue(json: value) }
        } catch {
            throw Self.error(error, name: name, lines: lines)
        }
        return try render(variables: variables)
    }

    private func render(variables: [String: JinjaValue]) throws(JinjaError) -> String {
        let interpreter = Interpreter(lines: lines, limits: limits, globals: JinjaGlobals.table)
        do {
            return try interpreter.render(nodes, context: variables)
        } catch {
            throw Self.error(error, name: name, lines: lines)
        }
    }

    /// What `tokenizer.apply_chat_template(messages, tools=..., documents=..., add_generation_prompt=...,
    /// tokenize=False, **extraContext)` returns: messages lose their `null` fields and get transformers'
    /// reasoning aliases (`thinking`, `reasoning_content`), the special tokens (`bos_token`,
    /// `eos_token`, ...) are variables, and `extraContext` (e.g. `enable_thinking`) overrides them.
    public func render(
        messages: [JSONValue],
        tools: [JSONValue]? = nil,
        documents: [JSONValue]? = nil,
        addGenerationPrompt: Bool = false,
        extraContext: JSONObject = JSONObject(),
        specialTokens: [String: String] = [:]
    ) throws(JinjaError) -> String {
        guard !messages.isEmpty else {
            throw JinjaError(kind: .render, message: "Cannot apply chat template to an empty conversation. Provide at least one message.", templateName: name, line: 0, column: 0)
        }
        let variables: [String: JinjaValue]
        do {
            variables = try Self.chatVariables(messages: messages, tools: tools, documents: documents, addGenerationPrompt: addGenerationPrompt, extraContext: extraContext, specialTokens: specialTokens)
        } catch {
            throw Self.error(error, name: name, lines: lines)
        }
        return try render(variables: variables)
    }

    private static func chatVariables(
        messages: [JSONValue], tools: [JSONValue]?, documents: [JSONValue]?, addGenerationPrompt: Bool,
        extraContext: JSONObject, specialTokens: [String: String]
    ) throws(RuntimeFailure) -> [String: JinjaValue] {
        var variables: [String: JinjaValue] = [:]
        for (key, value) in specialTokens { variables[key] = .string(value) }
        for (key, value) in extraContext { variables[key] = try JinjaValue(json: value) }
        var chat: [JSONValue] = []
        for (i, message) in messages.enumerated() {
            guard case .object(let object) = message else {
                throw RuntimeFailure("TypeError: Chat messages should be dicts, but message \(i) is \(message.typeName).")
            }
            chat.append(.object(normalized(object)))
        }
        variables["messages"] = try JinjaValue(json: .array(chat))
        variables["tools"] = JinjaValue.none
        if let tools { variables["tools"] = try JinjaValue(json: .array(tools)) }
        variables["documents"] = JinjaValue.none
        if let documents { variables["documents"] = try JinjaValue(json: .array(documents)) }
        variables["add_generation_prompt"] = .bool(addGenerationPrompt)
        return variables
    }

    /// transformers' `_normalize_chat_messages` (drop `None` fields) then `_alias_reasoning_fields`:
    /// a message with reasoning under `reasoning_content`, `thinking` or `reasoning` gets it under
    /// `thinking` (first key) and `reasoning_content` as well.
    static func normalized(_ message: JSONObject) -> JSONObject {
        var kept = JSONObject()
        for (key, value) in message where !value.isNull { kept[key] = value }
        guard let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap({ kept[$0] }).first else {
            return kept
        }
        var aliased = JSONObject()
        aliased["thinking"] = reasoning
        for (key, value) in kept { aliased[key] = value }
        aliased["reasoning_content"] = reasoning
        return aliased
    }
}
