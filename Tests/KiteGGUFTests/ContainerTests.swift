import Foundation
import Testing
import KiteGGUF

/// The container reader against gguf-py: metadata.gguf was written by gguf-py's GGUFWriter and
/// metadata.json is what gguf-py's GGUFReader reads back (scripts/reference/gguf_fixtures.py).
struct ContainerTests {
    nonisolated(unsafe) static let expected = (try? Fixtures.json("metadata.json")) as? [String: Any] ?? [:]

    @Test(arguments: ["metadata.gguf", "metadata_v2.gguf"])
    func headerAndLayoutMatchGGUFPy(file: String) throws {
        let gguf = try GGUFFile(path: Fixtures.path(file))
        #expect(gguf.version == (file.contains("v2") ? 2 : 3))
        #expect(gguf.alignment == Self.expected["alignment"] as? Int)
        #expect(gguf.dataOffset == Self.expected["data_offset"] as? Int)
        #expect(gguf.fileSize == Self.expected["file_size"] as? Int)
        #expect(gguf.architecture == "qwen3")
    }

    @Test func everyMetadataValueMatchesGGUFPy() throws {
        let file = try GGUFFile(path: Fixtures.path("metadata.gguf"))
        let entries = try #require(Self.expected["entries"] as? [[String: Any]])
        #expect(file.metadata.keys == entries.map { $0["key"] as? String ?? "" })
        for entry in entries {
            let key = try #require(entry["key"] as? String)
            let types = try #require(entry["types"] as? [String])
            let value = try #require(file.metadata[key])
            #expect(Self.typeNames(value) == types, "types of \(key)")
            #expect(Self.matches(value, entry["value"] as Any), "value of \(key): \(value)")
        }
    }

    @Test func tensorTableMatchesGGUFPy() throws {
        let file = try GGUFFile(path: Fixtures.path("metadata.gguf"))
        let tensors = try #require(Self.expected["tensors"] as? [[String: Any]])
        #expect(file.tensors.map(\.name) == tensors.map { $0["name"] as? String ?? "" })
        for (info, reference) in zip(file.tensors, tensors) {
            let dimensions = try #require(reference["dimensions"] as? [Int])
            #expect(info.dimensions == dimensions)
            #expect(info.shape == dimensions.reversed())
            #expect(info.type.description == reference["type"] as? String)
            #expect(info.offset == reference["offset"] as? Int)
            #expect(info.fileOffset == file.dataOffset + info.offset)
            #expect(info.byteCount == reference["byte_count"] as? Int)
            let values = try #require(reference["values"] as? [Double])
            #expect(try file.dequantize(info) == values.map { Float($0) })
            #expect(try file.rawData(of: info).count == info.byteCount)
        }
        let embedding = try file.tensor("token_embd.weight")
        #expect(embedding.shape == [3, 2])
        #expect(embedding.rowCount == 3 && embedding.rowLength == 2)
        #expect(try file.dequantize(embedding, rows: 1..<3) == [2, 3, 4, 5])
    }

    @Test func typedAccessorsConvertAndNameTheKeyOnMismatch() throws {
        let metadata = try GGUFFile(path: Fixtures.path("metadata.gguf")).metadata
        #expect(try metadata.int("test.u8") == 200)
        #expect(try metadata.int("test.i64") == -9_000_000_000_000_000_000)
        #expect(try metadata.float("test.f32") == 0.1)
        #expect(try metadata.double("test.f64") == 0.1)
        #expect(try metadata.bool("test.true"))
        #expect(try metadata.string("test.empty_string") == "")
        #expect(try metadata.stringArray("test.array_string") == ["a", "", "ü"])
        #expect(try metadata.intArray("test.array_u8") == [0, 255, 7])
        #expect(try metadata.floatArray("test.array_f32") == [0.5, -1.25, 3.0])
        #expect(try metadata.array("test.array_nested") == .array([.int32([1, 2]), .int32([3]), .int32([4, 5, 6])]))

        let u64 = expectGGUFError(.typeMismatch) { try metadata.int("test.u64") }
        #expect(u64?.description.contains("'test.u64' holds u64") == true)
        let string = expectGGUFError(.typeMismatch) { try metadata.int("test.string") }
        #expect(string?.description.contains("metadata.gguf: metadata key 'test.string' holds string, expected an integer") == true)
        let array = expectGGUFError(.typeMismatch) { try metadata.stringArray("test.array_i32") }
        #expect(array?.message.contains("holds array of i32, expected an array of string") == true)
        let missing = expectGGUFError(.missingKey) { try metadata.float("qwen3.nothing") }
        #expect(missing?.message == "metadata key 'qwen3.nothing' is missing")
    }

    /// gguf-py's GGML_QUANT_SIZES: ids, block sizes and type sizes of every ggml type.
    @Test func ggmlTypeTableMatchesGGUFPy() throws {
        let rows = try #require(try Fixtures.json("ggml_types.json") as? [[String: Any]])
        #expect(rows.count == GGMLType.allCases.count)
        for row in rows {
            let id = try #require(row["id"] as? Int)
            let type = try #require(GGMLType(rawValue: UInt32(id)), "ggml type \(id)")
            #expect(type.description == row["name"] as? String)
            #expect(type.blockSize == row["block_size"] as? Int, "\(type)")
            #expect(type.typeSize == row["type_size"] as? Int, "\(type)")
        }
    }

    @Test func missingAndNonRegularFilesThrowIOErrors() {
        let missing = expectGGUFError(.io) { try GGUFFile(path: "/nonexistent/model.gguf") }
        #expect(missing?.description.hasPrefix("/nonexistent/model.gguf: cannot open") == true)
        expectGGUFError(.io) { try GGUFFile(path: Fixtures.directory.path) }
    }

    @Test func tensorOfAnotherFileIsRejected() throws {
        let one = try GGUFFile(path: Fixtures.path("metadata.gguf"))
        let other = try GGUFFile(path: Fixtures.path("quants.gguf"))
        let foreign = try other.tensor("q4_0")
        expectGGUFError(.missingTensor) { try one.rawData(of: foreign) }
        let missing = expectGGUFError(.missingTensor) { try one.tensor("q4_0") }
        #expect(missing?.description.hasSuffix("metadata.gguf: has no tensor named 'q4_0'") == true)
    }

    // MARK: helpers

    static func typeNames(_ value: GGUFValue) -> [String] {
        switch value {
        case .array(let array): ["ARRAY"] + elementTypeNames(array)
        default: [gguf(value.type)]
        }
    }

    static func elementTypeNames(_ array: GGUFArray) -> [String] {
        if case .array(let inner) = array { return ["ARRAY"] + (inner.first.map(elementTypeNames) ?? []) }
        return [gguf(array.elementType)]
    }

    static func gguf(_ type: GGUFValueType) -> String {
        switch type {
        case .uint8: "UINT8"
        case .int8: "INT8"
        case .uint16: "UINT16"
        case .int16: "INT16"
        case .uint32: "UINT32"
        case .int32: "INT32"
        case .uint64: "UINT64"
        case .int64: "INT64"
        case .float32: "FLOAT32"
        case .float64: "FLOAT64"
        case .bool: "BOOL"
        case .string: "STRING"
        case .array: "ARRAY"
        }
    }

    static func matches(_ value: GGUFValue, _ reference: Any) -> Bool {
        switch value {
        case .uint64(let v): return (reference as? NSNumber)?.uint64Value == v
        case .int64(let v): return (reference as? NSNumber)?.int64Value == v
        case .float32(let v): return Fixtures.double(reference) == Double(v)
        case .float64(let v): return Fixtures.double(reference) == v
        case .bool(let v): return reference as? Bool == v
        case .string(let v): return reference as? String == v
        case .array(let array): return matches(array, reference)
        default: return value.intValue == reference as? Int
        }
    }

    static func matches(_ array: GGUFArray, _ reference: Any) -> Bool {
        guard let items = reference as? [Any], items.count == array.count else { return false }
        switch array {
        case .float32(let values): return zip(values, items).allSatisfy { Fixtures.double($1) == Double($0) }
        case .float64(let values): return zip(values, items).allSatisfy { Fixtures.double($1) == $0 }
        case .bool(let values): return zip(values, items).allSatisfy { $1 as? Bool == $0 }
        case .string(let values): return zip(values, items).allSatisfy { $1 as? String == $0 }
        case .array(let values): return zip(values, items).allSatisfy { matches($0, $1) }
        case .uint64(let values): return zip(values, items).allSatisfy { ($1 as? NSNumber)?.uint64Value == $0 }
        default: return array.intValues == items.compactMap { $0 as? Int }
        }
    }
}
