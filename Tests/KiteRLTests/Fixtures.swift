import Foundation
import KiteJSON
import Testing

/// Loads the committed reference fixtures under Tests/Fixtures/rl.
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/rl")

    static func load(_ name: String) throws -> JSONValue {
        let data = try Data(contentsOf: directory.appendingPathComponent(name))
        return try JSONValue(parsing: [UInt8](data), source: name)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
}

extension JSONValue {
    func get(_ key: String) throws -> JSONValue {
        guard let value = self[key] else { throw FixtureError(description: "fixture: missing key \(key)") }
        return value
    }

    func doubles() throws -> [Double] {
        guard let array = arrayValue else { throw FixtureError(description: "fixture: expected an array, found \(typeName)") }
        return try array.map { element in
            guard let v = element.doubleValue else { throw FixtureError(description: "fixture: expected a number") }
            return v
        }
    }

    func ints() throws -> [Int] {
        guard let array = arrayValue else { throw FixtureError(description: "fixture: expected an array, found \(typeName)") }
        return try array.map { element in
            guard let v = element.intValue else { throw FixtureError(description: "fixture: expected an integer") }
            return v
        }
    }

    func array() throws -> [JSONValue] {
        guard let array = arrayValue else { throw FixtureError(description: "fixture: expected an array, found \(typeName)") }
        return array
    }

    func double() throws -> Double {
        guard let v = doubleValue else { throw FixtureError(description: "fixture: expected a number, found \(typeName)") }
        return v
    }

    func int() throws -> Int {
        guard let v = intValue else { throw FixtureError(description: "fixture: expected an integer, found \(typeName)") }
        return v
    }

    func string() throws -> String {
        guard let v = stringValue else { throw FixtureError(description: "fixture: expected a string, found \(typeName)") }
        return v
    }
}

/// |a − b| ≤ tolerance · max(1, |b|), element-wise.
func close(_ a: [Double], _ b: [Double], tolerance: Double) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { close($0, $1, tolerance: tolerance) }
}

func close(_ a: Double, _ b: Double, tolerance: Double) -> Bool {
    abs(a - b) <= tolerance * max(1, abs(b))
}
