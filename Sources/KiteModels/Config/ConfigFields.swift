import KiteJSON

/// Typed reads of a config.json object whose errors name the file and the field (`ModelError.config`).
struct ConfigFields {
    let object: JSONObject
    let source: String
    /// Prefix of field names in errors, e.g. `quantization_config.`.
    var path = ""

    func int(_ key: String) throws -> Int? { try read { () throws(JSONFieldError) -> Int? in try object.int(key, source: source, path: path) } }
    func double(_ key: String) throws -> Double? { try read { () throws(JSONFieldError) -> Double? in try object.double(key, source: source, path: path) } }
    func bool(_ key: String) throws -> Bool? { try read { () throws(JSONFieldError) -> Bool? in try object.bool(key, source: source, path: path) } }
    func string(_ key: String) throws -> String? { try read { () throws(JSONFieldError) -> String? in try object.string(key, source: source, path: path) } }

    /// An array of integers, or nil when absent or null.
    func ints(_ key: String) throws -> [Int]? {
        guard let value = object[key], !value.isNull else { return nil }
        let numbers = value.arrayValue?.compactMap(\.intValue)
        guard let numbers, numbers.count == value.arrayValue?.count else {
            throw failure(key, "expected an array of integers, found \(value.typeName)")
        }
        return numbers
    }

    func required<T>(_ key: String, _ value: T?) throws -> T {
        guard let value else { throw failure(key, "missing") }
        return value
    }

    func positive(_ key: String, _ value: Int) throws -> Int {
        guard value > 0 else { throw failure(key, "must be positive, got \(value)") }
        return value
    }

    func failure(_ key: String, _ detail: String) -> ModelError {
        .config(path: source, field: path + key, detail: detail)
    }

    private func read<T>(_ body: () throws(JSONFieldError) -> T?) throws -> T? {
        do { return try body() } catch { throw ModelError.config(path: source, field: error.field, detail: error.message) }
    }
}
