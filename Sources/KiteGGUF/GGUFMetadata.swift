/// The key/value metadata of a GGUF file, in file order, with typed accessors.
///
/// The values are copied out of the file, so metadata stays valid after the `GGUFFile` is gone
/// (a tokenizer can keep it without keeping the mapping alive).
public struct GGUFMetadata: Sendable, Equatable {
    /// The keys in the order the file lists them.
    public let keys: [String]
    /// Every value by key.
    public let values: [String: GGUFValue]
    /// The file the metadata came from, for error messages.
    public let path: String?

    public init(keys: [String], values: [String: GGUFValue], path: String?) {
        self.keys = keys
        self.values = values
        self.path = path
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    public func contains(_ key: String) -> Bool { values[key] != nil }

    /// The string stored under `key`.
    public func string(_ key: String) throws -> String {
        guard case .string(let value) = try value(key) else { throw mismatch(key, expected: "a string") }
        return value
    }

    /// The integer (of any width) stored under `key`.
    public func int(_ key: String) throws -> Int {
        let stored = try value(key)
        guard let value = stored.intValue else {
            throw mismatch(key, expected: "an integer that fits in Int")
        }
        return value
    }

    /// The float stored under `key`; f64 values are rounded to the nearest Float.
    public func float(_ key: String) throws -> Float {
        Float(try double(key))
    }

    /// The float (f32 or f64) stored under `key`, widened to Double.
    public func double(_ key: String) throws -> Double {
        guard let value = try value(key).doubleValue else { throw mismatch(key, expected: "a float") }
        return value
    }

    /// The bool stored under `key`.
    public func bool(_ key: String) throws -> Bool {
        guard case .bool(let value) = try value(key) else { throw mismatch(key, expected: "a bool") }
        return value
    }

    /// The array stored under `key`, whatever its element type.
    public func array(_ key: String) throws -> GGUFArray {
        guard case .array(let value) = try value(key) else { throw mismatch(key, expected: "an array") }
        return value
    }

    /// The array of strings stored under `key`.
    public func stringArray(_ key: String) throws -> [String] {
        guard case .string(let values) = try array(key) else { throw mismatch(key, expected: "an array of string") }
        return values
    }

    /// The array of integers (any width) stored under `key`.
    public func intArray(_ key: String) throws -> [Int] {
        guard let values = try array(key).intValues else {
            throw mismatch(key, expected: "an array of integers that fit in Int")
        }
        return values
    }

    /// The array of floats stored under `key`; f64 elements are rounded to Float.
    public func floatArray(_ key: String) throws -> [Float] {
        switch try array(key) {
        case .float32(let values): return values
        case .float64(let values): return values.map { Float($0) }
        default: throw mismatch(key, expected: "an array of float")
        }
    }

    /// The value under `key`; throws `missingKey` naming the key when it is absent.
    public func value(_ key: String) throws -> GGUFValue {
        guard let value = values[key] else {
            throw GGUFError(.missingKey, path: path, "metadata key '\(key)' is missing")
        }
        return value
    }

    private func mismatch(_ key: String, expected: String) -> GGUFError {
        let actual = values[key]?.typeDescription ?? "nothing"
        return GGUFError(.typeMismatch, path: path, "metadata key '\(key)' holds \(actual), expected \(expected)")
    }
}
