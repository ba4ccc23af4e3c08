import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// A malformed template gives one error naming the line and column and what was expected; render
/// failures name the expression at fault; hostile templates hit a limit instead of hanging or crashing.
struct JinjaErrorTests {
    static func syntaxError(_ source: String) -> JinjaError? {
        do {
            _ = try ChatTemplate(source: source, name: "t")
            return nil
        } catch {
            return error
        }
    }

    static func renderError(_ source: String, context: JSONObject = JSONObject(), limits: JinjaRenderLimits = JinjaRenderLimits()) -> JinjaError? {
        do {
            var template = try ChatTemplate(source: source, name: "t")
            template.limits = limits
            _ = try template.render(context: context)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [
        ("{% if x %}\nunclosed", 2, 9, "expected 'elif' or 'else' or 'endif' to close the 'if' block opened at 1:1"),
        ("a\n{% for x in y %}{% endif %}", 2, 17, "unexpected tag 'endif': expected 'else' or 'endfor'"),
        ("{{ 1 + }}", 1, 8, "expected an expression"),
        ("line\n  {{ 'abc }}", 2, 6, "unterminated string literal"),
        ("{{ (1, 2 }}", 1, 10, "unexpected '}', expected ')'"),
        ("{% set 1 = 2 %}", 1, 8, "expected a name to assign to"),
        ("{{ a b }}", 1, 6, "expected end of print statement '}}', got 'b'"),
        ("{% break %}", 1, 1, "'break' outside of a loop"),
        ("x\n\n   {% frobnicate %}", 3, 4, "unknown tag 'frobnicate'"),
        ("{{ x|no_such_filter }}", 1, 6, "no filter named 'no_such_filter'"),
        ("{{ x is no_such_test }}", 1, 6, "no test named 'no_such_test'"),
        ("{# open comment", 1, 1, "missing end of comment tag"),
        ("{% macro m(a=1, b) %}{% endmacro %}", 1, 17, "non-default argument follows default argument"),
        ("{{ foo(a=1, 2) }}", 1, 7, "invalid syntax for function call"),
        ("{% include 'x' %}", 1, 1, "'include' tag is not supported"),
        ("{{ 'é' ~ }}", 1, 10, "expected an expression"),
    ])
    func syntaxErrorsNameLineAndColumn(source: String, line: Int, column: Int, message: String) throws {
        let error = try #require(Self.syntaxError(source))
        #expect(error.kind == .syntax)
        #expect(error.message.contains(message), "\(error)")
        #expect(error.line == line && error.column == column, "\(error)")
        #expect(error.description.hasPrefix("t:\(line):\(column): syntax error: "))
    }

    @Test func renderErrorsNameTheFailingExpression() throws {
        let error = try #require(Self.renderError("ok\n{{ messages[0].content.strip() }}", context: JSONObject([("messages", [["role": "user"]])])))
        #expect(error.kind == .render)
        #expect(error.message == "UndefinedError: 'dict object' has no attribute 'content'")
        #expect(error.line == 2)
        #expect(error.description.hasPrefix("t:2:"))

        let typeError = try #require(Self.renderError("{% set x = 'a' %}\n\n  {{ x + 1 }}"))
        #expect(typeError.message == "TypeError: can only concatenate str (not \"int\") to str")
        #expect(typeError.line == 3 && typeError.column == 8)
    }

    @Test func raiseExceptionCarriesTheTemplatesMessage() throws {
        let error = try #require(Self.renderError("{% if true %}\n{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"))
        #expect(error.kind == .raised)
        #expect(error.message == "Only user and assistant roles are supported!")
        #expect(error.line == 2)
    }

    @Test func deeplyNestedTemplatesAreRefusedNotOverflowed() throws {
        for (i, source) in [
            "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}",
            "{{ " + String(repeating: "[", count: 50_000) + " }}",
            "{{ x" + String(repeating: ".a", count: 50_000) + " }}",
            "{{ 1" + String(repeating: " + 1", count: 50_000) + " }}",
            "{{ " + String(repeating: "not ", count: 50_000) + "x }}",
            "{{ " + String(repeating: "- ", count: 50_000) + "x }}",
            "{{ x" + String(repeating: "|trim", count: 50_000) + " }}",
            String(repeating: "{% if x %}", count: 20_000),
            String(repeating: "{% for x in y %}", count: 20_000),
            "{{ " + String(repeating: "{'a': ", count: 30_000) + "1" + String(repeating: "}", count: 30_000) + " }}",
        ].enumerated() {
            let error = Self.syntaxError(source)
            #expect(error?.kind == .syntax, "case \(i)")
        }
    }

    @Test func runawayRendersStopAtALimit() throws {
        let limits = JinjaRenderLimits(maximumIterations: 10_000, maximumOutputBytes: 1 << 16, maximumCallDepth: 32)
        let loops = try #require(Self.renderError("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", limits: limits))
        #expect(loops.message.contains("loop iterations"))
        let output = try #require(Self.renderError("{% for i in range(5000) %}{{ 'x' * 1000 }}{% endfor %}", limits: limits))
        #expect(output.message.contains("output larger than"))
        let recursion = try #require(Self.renderError("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", limits: limits))
        #expect(recursion.message.contains("RecursionError"))
        let growth = try #require(Self.renderError("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"))
        #expect(growth.message.contains("MemoryError"))
        let nesting = try #require(Self.renderError("{% set ns = namespace(v=[]) %}{% for i in range(5000) %}{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v }}"))
        #expect(nesting.message.contains("nested deeper"))
        let repeatError = try #require(Self.renderError("{{ 'x' * 100000000000 }}"))
        #expect(repeatError.message.contains("MemoryError"))
        let cycle = Self.renderError("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}")
        #expect(cycle?.message.contains("RecursionError") == true)
    }

    @Test func pythonBigIntegersAreRefusedClearly() throws {
        let error = try #require(Self.renderError("{{ 2 ** 64 }}"))
        #expect(error.message.hasPrefix("OverflowError"))
    }

    @Test func emptyConversationIsAnError() throws {
        let template = try ChatTemplate(source: "{{ messages }}", name: "t")
        #expect(throws: JinjaError.self) { try template.render(messages: []) }
    }
}

/// Templates at the deepest nesting the parser accepts still render on a thread with a small stack
/// (512 KiB, the size of a secondary thread on macOS).
struct JinjaStackDepthTests {
    static func renderOnSmallStack(_ source: String, context: JSONObject = JSONObject()) -> Result<String, JinjaError> {
        final class Box: @unchecked Sendable { var result: Result<String, JinjaError>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.result = Result { () throws(JinjaError) -> String in
                try ChatTemplate(source: source, name: "deep").render(context: context)
            }
            done.signal()
        }
        thread.stackSize = 512 << 10
        thread.start()
        done.wait()
        return box.result ?? .failure(JinjaError(kind: .render, message: "no result", templateName: "deep", line: 0, column: 0))
    }

    @Test func deepestAcceptedTemplatesRenderOnASmallStack() throws {
        let depth = 60
        let cases: [(String, String)] = [
            ("{{ " + String(repeating: "(", count: depth) + "1" + String(repeating: ")", count: depth) + " }}", "1"),
            ("{{ 0" + String(repeating: " + 1", count: 120) + " }}", "120"),
            ("{{ x" + String(repeating: "|default(1)", count: 120) + " }}", "1"),
            (String(repeating: "{% if true %}", count: 90) + "in" + String(repeating: "{% endif %}", count: 90), "in"),
            (String(repeating: "{% for i in [1] %}", count: 90) + "{{ loop.depth }}" + String(repeating: "{% endfor %}", count: 90), "1"),
            ("{{ " + String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth) + "|tojson }}",
             String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth)),
            ("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% else %}bottom{% endif %}{% endmacro %}{{ f(47) }}", "bottom"),
            ("{% for x in [[[[[[1]]]]]] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ loop.depth }}{% endif %}{% endfor %}", "6"),
        ]
        for (source, expected) in cases {
            switch Self.renderOnSmallStack(source) {
            case .success(let output): #expect(output == expected, "\(source.prefix(80))")
            case .failure(let error): Issue.record("\(source.prefix(80)): \(error)")
            }
        }
        // One level past the limits is refused with an error, never a crash.
        let tooDeep = "{{ " + String(repeating: "(", count: 200) + "1" + String(repeating: ")", count: 200) + " }}"
        if case .success = Self.renderOnSmallStack(tooDeep) { Issue.record("200 nested parentheses were accepted") }
        let recursion = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
        if case .failure(let error) = Self.renderOnSmallStack(recursion) {
            #expect(error.message.contains("RecursionError"))
        } else {
            Issue.record("unbounded recursion rendered")
        }
    }
}
