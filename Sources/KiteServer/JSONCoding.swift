import FoundationEssentials
import KiteJSON
import NIOCore

/// A field that SGLang accepts either as one value or as a list with one value per prompt of a batch
/// (`text`, `input_ids`, `rid`, `sampling_params`, `return_logprob`, ...).
enum OneOrMany<Element: Decodable & Sendable>: Decodable, Sendable {
    case one(Element)
    case many([Element])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard var list = try? decoder.unkeyedContainer() else {
            self = .one(try container.decode(Element.self))
            return
        }
        // A list is a batch, unless the element is itself a list (`input_ids`): then a list of lists is.
        if Element.self is any JSONListValue.Type {
            let firstIsList = !list.isAtEnd && (try? list.nestedUnkeyedContainer()) != nil
            self = firstIsList ? .many(try container.decode([Element].self)) : .one(try container.decode(Element.self))
        } else {
            self = .many(try container.decode([Element].self))
        }
    }

    var values: [Element] {
        switch self {
        case .one(let value): [value]
        case .many(let values): values
        }
    }

    var isBatch: Bool {
        if case .many = self { return true }
        return false
    }

    /// The value for prompt `index` of a batch: a single value applies to all.
    func value(at index: Int) -> Element? {
        switch self {
        case .one(let value): value
        case .many(let values): index < values.count ? values[index] : nil
        }
    }
}

/// Marks element types that are JSON lists themselves.
protocol JSONListValue {}
extension Array: JSONListValue {}

/// A coding key for objects whose keys are checked against a known set.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension Decoder {
    /// Throws when the object holds a key outside `known`, naming it (typos must not be silently ignored).
    func rejectUnknownKeys(_ known: Set<String>, in object: String) throws {
        let container = try container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key], debugDescription: "unknown field '\(key.stringValue)' in \(object)"))
        }
    }
}

/// Plain JSON, for fields passed through as they are (chat messages, tools, template arguments).
/// Nothing from a request is turned into anything but these cases.
indirect enum AnyJSON: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([AnyJSON])
    case object([(String, AnyJSON)])

    init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: AnyCodingKey.self) {
            var entries: [(String, AnyJSON)] = []
            for key in container.allKeys { entries.append((key.stringValue, try container.decode(AnyJSON.self, forKey: key))) }
            self = .object(entries)
            return
        }
        if var container = try? decoder.unkeyedContainer() {
            var items: [AnyJSON] = []
            while !container.isAtEnd { items.append(try container.decode(AnyJSON.self)) }
            self = .array(items)
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try container.decode(String.self))
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .int(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .double(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        case .object(let entries):
            var container = encoder.container(keyedBy: AnyCodingKey.self)
            for (key, value) in entries { try container.encode(value, forKey: AnyCodingKey(stringValue: key)) }
        }
    }

    static func == (lhs: AnyJSON, rhs: AnyJSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    subscript(key: String) -> AnyJSON? {
        guard case .object(let entries) = self else { return nil }
        return entries.last { $0.0 == key }?.1
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
}

/// Encodes nothing but `null` (SGLang's third element of a log-prob entry without text).
struct JSONNull: Codable, Sendable, Equatable {
    init() {}
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard container.decodeNil() else {
            throw DecodingError.typeMismatch(JSONNull.self, .init(codingPath: decoder.codingPath, debugDescription: "expected null"))
        }
    }
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

/// JSON bodies in and out: one decoder configuration and one error shape for every endpoint.
enum JSONBody {
    /// Decodes a request body, turning every failure into a 400 that names the field.
    static func decode<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws(APIError) -> T {
        guard buffer.readableBytes > 0 else { throw APIError.badRequest("the request body is empty; expected a JSON object") }
        let data = Data(buffer.readableBytesView)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty {
                // JSONDecoder says no more than "not valid JSON"; KiteJSON's parser says where and why.
                do {
                    _ = try JSONValue(parsing: Array(buffer.readableBytesView), source: "request body")
                } catch {
                    throw APIError.badRequest("the request body is not valid JSON: \(error)")
                }
                throw APIError.badRequest("a number in the request does not fit the field it is in (a fraction where an integer is expected, or out of range)")
            }
            throw APIError.decoding(error)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("the request body is not valid JSON: \(error)")
        }
    }

    static func encode<T: Encodable>(_ value: T) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return ByteBuffer(bytes: try encoder.encode(value))
        } catch {
            // Only non-finite floats fail to encode; a response never carries one on purpose.
            return ByteBuffer(string: #"{"error":{"message":"the response could not be encoded: \#(error)","type":"internal_error","param":null,"code":500}}"#)
        }
    }
}
