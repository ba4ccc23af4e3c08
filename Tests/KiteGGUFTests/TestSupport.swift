import Foundation
import Testing
@testable import KiteGGUF

/// Paths of the committed fixtures and the git-ignored real assets.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("Tests/Fixtures/gguf")

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static func json(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// A float written by the fixture script as `{"f": repr(x)}` (every digit kept).
    static func double(_ value: Any?) -> Double? {
        guard let object = value as? [String: Any], let text = object["f"] as? String else { return nil }
        return Double(text)
    }
}

/// The real GGUF files of `.assets/` (scripts/assets/fetch.sh). Tests that need them are skipped when
/// they are missing, unless `KITE_REQUIRE_ASSETS=1`, in which case they run and fail with a clear message.
enum Assets {
    static let smolLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
    static let r1Part = "DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf"

    static let required = ProcessInfo.processInfo.environment["KITE_REQUIRE_ASSETS"] == "1"

    static func location(_ name: String) -> String {
        Fixtures.root.appendingPathComponent(".assets").appendingPathComponent(name).path
    }

    static func available(_ name: String) -> Bool { FileManager.default.fileExists(atPath: location(name)) }

    /// Runs the test when the assets are there, or when they are required (and the test then fails);
    /// otherwise skips it, saying why.
    static func needed(_ names: String...) -> ConditionTrait {
        .enabled(if: names.allSatisfy { available($0) || required },
                 Comment(rawValue: "needs \(names.joined(separator: ", ")) in .assets/ (scripts/assets/fetch.sh); "
                         + "KITE_REQUIRE_ASSETS=1 makes a missing asset a failure"))
    }

    struct Missing: Error, CustomStringConvertible {
        let name: String
        var description: String {
            "asset \(name) is missing from .assets/ and KITE_REQUIRE_ASSETS=1; run scripts/assets/fetch.sh"
        }
    }

    static func path(_ name: String) throws -> String {
        guard available(name) else { throw Missing(name: name) }
        return location(name)
    }

    static func open(_ name: String) throws -> GGUFFile { try GGUFFile(path: path(name)) }
}

/// Bit-exact float comparison that treats any two NaNs as equal; returns the first mismatch.
func firstMismatch(_ actual: [Float], _ expected: [Float]) -> (index: Int, actual: Float, expected: Float)? {
    guard actual.count == expected.count else { return (-1, Float(actual.count), Float(expected.count)) }
    for index in actual.indices {
        let a = actual[index], e = expected[index]
        if a.isNaN && e.isNaN { continue }
        if a.bitPattern != e.bitPattern { return (index, a, e) }
    }
    return nil
}

/// Expects `body` to throw a `GGUFError` of `kind`; returns it.
@discardableResult
func expectGGUFError<R>(_ kind: GGUFError.Kind, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> R) -> GGUFError? {
    do {
        _ = try body()
        Issue.record("expected a GGUFError of kind \(kind), got success", sourceLocation: sourceLocation)
    } catch let error as GGUFError {
        #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a GGUFError of kind \(kind), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Builds small GGUF v3 files in memory: string/u32 metadata and F32 tensors, alignment 32.
struct TinyGGUF {
    var metadata: [(String, GGUFValue)] = []
    var tensors: [(name: String, dimensions: [Int], values: [Float])] = []

    func bytes() -> [UInt8] {
        var out: [UInt8] = Array("GGUF".utf8)
        append(UInt32(3), to: &out)
        append(UInt64(tensors.count), to: &out)
        append(UInt64(metadata.count), to: &out)
        for (key, value) in metadata {
            appendString(key, to: &out)
            switch value {
            case .string(let text):
                append(GGUFValueType.string.rawValue, to: &out)
                appendString(text, to: &out)
            case .uint32(let number):
                append(GGUFValueType.uint32.rawValue, to: &out)
                append(number, to: &out)
            default:
                preconditionFailure("TinyGGUF writes strings and u32 only")
            }
        }
        var offset = 0
        for tensor in tensors {
            appendString(tensor.name, to: &out)
            append(UInt32(tensor.dimensions.count), to: &out)
            for dimension in tensor.dimensions { append(UInt64(dimension), to: &out) }
            append(GGMLType.f32.rawValue, to: &out)
            append(UInt64(offset), to: &out)
            offset += (tensor.values.count * 4 + 31) / 32 * 32
        }
        for tensor in tensors {
            out += [UInt8](repeating: 0, count: (32 - out.count % 32) % 32)
            for value in tensor.values { append(value.bitPattern, to: &out) }
        }
        return out
    }

    private func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    private func appendString(_ text: String, to out: inout [UInt8]) {
        append(UInt64(text.utf8.count), to: &out)
        out += Array(text.utf8)
    }
}
