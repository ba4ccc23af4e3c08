import Foundation
import Testing
import KiteJSON

/// The writer is checked against Python's `json.dumps` (fixture from scripts/reference/json_dumps.py).
struct JSONTests {
    static let fixtureDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/json")

    static let options: [String: JSONWriteOptions] = [
        "default": .python,
        "utf8": JSONWriteOptions(ensureASCII: false),
        "indent2": JSONWriteOptions(indent: 2),
        "indent4_utf8_sorted": JSONWriteOptions(ensureASCII: false, indent: 4, sortKeys: true),
        "compact": .compact,
    ]

    @Test func writerMatchesPythonJSONDumps() throws {
        let data = try Data(contentsOf: Self.fixtureDirectory.appendingPathComponent("dumps.json"))
        let cases = try #require(try JSONValue(parsing: [UInt8](data)).arrayValue)
        #expect(cases.count >= 9)
        for testCase in cases {
            let input = try #require(testCase["input"]?.stringValue)
            let value = try JSONValue(parsing: input)
            let outputs = try #require(testCase["outputs"]?.objectValue)
            for (name, expected) in outputs {
                let options = try #require(Self.options[name])
                #expect(value.serialized(options) == expected.stringValue, "option set \(name) for \(input)")
            }
        }
    }

    @Test func objectKeysKeepDocumentOrderAndLastDuplicateWins() throws {
        let value = try JSONValue(parsing: #"{"b": 1, "a": 2, "b": 3}"#)
        #expect(value.objectValue?.keys == ["b", "a"])
        #expect(value["b"] == .int(3))
    }

    @Test func integersAndFloatsStayDistinct() throws {
        #expect(try JSONValue(parsing: "2") == .int(2))
        #expect(try JSONValue(parsing: "2.0") == .double(2))
        #expect(try JSONValue(parsing: "2e0") == .double(2))
        #expect(try JSONValue(parsing: "-0") == .int(0))
        #expect(try JSONValue(parsing: "123456789012345678901234567890") == .double(1.2345678901234568e29))
    }

    @Test func surrogatePairsDecodeAndLoneSurrogatesBecomeReplacement() throws {
        #expect(try JSONValue(parsing: #""\ud83d\ude00""#) == .string("😀"))
        #expect(try JSONValue(parsing: #""a\ud83db""#) == .string("a\u{FFFD}b"))
        #expect(try JSONValue(parsing: #""\ude00""#) == .string("\u{FFFD}"))
    }

    @Test(arguments: [
        ("{\"a\": 1,}", 1, 9, "expected a string key"),
        ("[1, 2", 1, 6, "unterminated array"),
        ("{\n  \"a\": tru\n}", 2, 8, "invalid literal"),
        ("\"abc", 1, 1, "unterminated string"),
        ("01", 1, 1, "leading zeros"),
        ("[1] x", 1, 5, "after the JSON value"),
        ("\"\\q\"", 1, 2, "invalid escape"),
        ("", 1, 1, "end of input"),
    ])
    func malformedTextNamesLineAndColumn(text: String, line: Int, column: Int, message: String) {
        do {
            _ = try JSONValue(parsing: text, source: "t.json")
            Issue.record("parsed malformed \(text)")
        } catch {
            #expect(error.line == line && error.column == column, "\(error)")
            #expect(error.message.contains(message), "\(error)")
            #expect(error.description.hasPrefix("t.json:\(line):\(column): "))
        }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let text = String(repeating: "[", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: text) }
    }

    @Test func invalidUTF8IsAnError() {
        #expect(throws: JSONParseError.self) { try JSONValue(parsing: [0x22, 0xFF, 0xFE, 0x22]) }
    }
}
