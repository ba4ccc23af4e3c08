import Foundation
import KiteJSON
import Testing
@testable import KiteTokenizers

/// The globals transformers adds: `strftime_now` formats the current local time like Python's
/// `datetime.now().strftime`, which Llama 3.x templates use for "Today Date" when `date_string` is not
/// passed.
struct JinjaGlobalsTests {
    @Test func strftimeNowFormatsTheLocalDate() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = .current
        formatter.dateFormat = "dd MMM yyyy"
        let before = formatter.string(from: Date())
        let output = try ChatTemplate(source: "{{ strftime_now('%d %b %Y') }}", name: "t").render(context: JSONObject())
        let after = formatter.string(from: Date())
        #expect(output == before || output == after)
    }

    @Test func llamaTemplateUsesTodayWhenNoDateIsGiven() throws {
        let template = try ChatTemplateReferenceTests.template("llama3_2")
        let output = try template.render(messages: [["role": "user", "content": "hi"]], specialTokens: ["bos_token": "<|begin_of_text|>"])
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "dd MMM yyyy"
        #expect(output.contains("Today Date: \(formatter.string(from: Date()))"))
    }

    @Test func rangeNamespaceAndDict() throws {
        let source = "{{ range(2, 8, 3)|list }} {{ range(3) }} {{ range(3)|length }} {% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ dict(a=1, b=[2]) }}"
        #expect(try ChatTemplate(source: source, name: "t").render(context: JSONObject()) == "[2, 5] range(0, 3) 3 6 {'a': 1, 'b': [2]}")
    }
}
