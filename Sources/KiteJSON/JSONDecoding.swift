/// Typed access to fields of a JSON object, with errors that name the source and the field path.
public struct JSONFieldError: Error, CustomStringConvertible, Sendable {
    public let source: String
    public let field: String
    public let message: String

    public init(source: String, field: String, message: String) {
        self.source = source
        self.field = field
        self.message = message
    }

    public var description: String { "\(source): field '\(field)': \(message)" }
}

extension JSONObject {
    /// The value at `key` as `T`, or nil when absent or null; a present value of the wrong type throws.
    public func optional<T>(_ key: String, source: String, path: String = "", as convert: (JSONValue) -> T?, expected: String) throws(JSONFieldError) -> T? {
        guard let value = self[key], !value.isNull else { return nil }
        guard let converted = convert(value) else {
            throw JSONFieldError(source: source, field: path + key, message: "expected \(expected), found \(value.typeName)")
        }
        return converted
    }

    /// The value at `key` as `T`; absent, null or wrongly typed throws.
    public func required<T>(_ key: String, source: String, path: String = "", as convert: (JSONValue) -> T?, expected: String) throws(JSONFieldError) -> T {
        guard let value = try optional(key, source: source, path: path, as: convert, expected: expected) else {
            throw JSONFieldError(source: source, field: path + key, message: "missing (expected \(expected))")
        }
        return value
    }

    public func int(_ key: String, source: String, path: String = "") throws(JSONFieldError) -> Int? {
        try optional(key, source: source, path: path, as: { $0.intValue }, expected: "an integer")
    }

    public func double(_ key: String, source: String, path: String = "") throws(JSONFieldError) -> Double? {
        try optional(key, source: source, path: path, as: { $0.doubleValue }, expected: "a number")
    }

    public func string(_ key: String, source: String, path: String = "") throws(JSONFieldError) -> String? {
        try optional(key, source: source, path: path, as: { $0.stringValue }, expected: "a string")
    }

    public func bool(_ key: String, source: String, path: String = "") throws(JSONFieldError) -> Bool? {
        try optional(key, source: source, path: path, as: { $0.boolValue }, expected: "a boolean")
    }
}
