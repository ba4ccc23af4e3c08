import KiteJSON

/// Typed access to JSON with errors naming the file and the JSON path.
struct JSONAccess {
    let source: String

    func error(_ path: String, _ message: String, kind: TokenizerError.Kind = .invalidField) -> TokenizerError {
        TokenizerError(kind, source: source, field: path, message)
    }

    func object(_ value: JSONValue, _ path: String) throws(TokenizerError) -> JSONObject {
        guard let object = value.objectValue else { throw error(path, "expected an object, found \(value.typeName)") }
        return object
    }

    func array(_ value: JSONValue, _ path: String) throws(TokenizerError) -> [JSONValue] {
        guard let array = value.arrayValue else { throw error(path, "expected an array, found \(value.typeName)") }
        return array
    }

    func string(_ value: JSONValue, _ path: String) throws(TokenizerError) -> String {
        guard let string = value.stringValue else { throw error(path, "expected a string, found \(value.typeName)") }
        return string
    }

    func int(_ value: JSONValue, _ path: String) throws(TokenizerError) -> Int {
        guard case .int(let number) = value else {
            throw error(path, "expected an integer, found \(value.typeName == "a number" ? "\(value.serialized())" : value.typeName)")
        }
        return number
    }

    func bool(_ value: JSONValue, _ path: String) throws(TokenizerError) -> Bool {
        guard let bool = value.boolValue else { throw error(path, "expected a boolean, found \(value.typeName)") }
        return bool
    }

    /// `object[key]`, treating null as absent.
    func field(_ object: JSONObject, _ key: String) -> JSONValue? {
        guard let value = object[key], !value.isNull else { return nil }
        return value
    }

    func required(_ object: JSONObject, _ key: String, _ path: String) throws(TokenizerError) -> JSONValue {
        guard let value = field(object, key) else {
            throw error(join(path, key), "missing", kind: .missingField)
        }
        return value
    }

    func optionalBool(_ object: JSONObject, _ key: String, _ path: String, default fallback: Bool) throws(TokenizerError) -> Bool {
        guard let value = field(object, key) else { return fallback }
        return try bool(value, join(path, key))
    }

    func optionalString(_ object: JSONObject, _ key: String, _ path: String) throws(TokenizerError) -> String? {
        guard let value = field(object, key) else { return nil }
        return try string(value, join(path, key))
    }

    func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
}
