import Foundation
import Testing
import KiteGGUF

/// Hand-made malformed files (scripts/reference/gguf_fixtures.py, `write_corpus`): each must open or fail
/// with the kind of error its manifest names, and reading its tensors must succeed or fail likewise.
struct CorpusTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let file: String
        let open: String
        let read: String?
        let note: String
        var testDescription: String { "\(file) (\(note))" }
    }

    static let cases: [Case] = {
        let manifest = (try? Fixtures.json("corpus/manifest.json")) as? [[String: Any]] ?? []
        return manifest.map {
            Case(file: $0["file"] as? String ?? "", open: $0["open"] as? String ?? "",
                 read: $0["read"] as? String, note: $0["note"] as? String ?? "")
        }
    }()

    @Test func manifestIsPresent() {
        #expect(Self.cases.count >= 40)
    }

    @Test(arguments: cases)
    func replay(_ testCase: Case) throws {
        let path = Fixtures.path("corpus/" + testCase.file)
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch let error as GGUFError {
            #expect(error.kind.rawValue == testCase.open, "\(error)")
            #expect(error.description.hasPrefix(path), "errors name the file: \(error)")
            return
        }
        #expect(testCase.open == "ok", "opened, expected \(testCase.open)")
        for tensor in file.tensors {
            do {
                let values = try file.dequantize(tensor)
                #expect(values.count == tensor.elementCount)
                #expect(testCase.read == "ok", "read \(tensor.name), expected \(testCase.read ?? "no tensors")")
            } catch let error as GGUFError {
                #expect(error.kind.rawValue == testCase.read, "\(error)")
                #expect(error.message.contains("'\(tensor.name)'"), "errors name the tensor: \(error)")
            }
        }
    }

    @Test func dataPastTheEndNamesTensorRangeAndFileSize() throws {
        let file = try GGUFFile(path: Fixtures.path("corpus/data_truncated.gguf"))
        let tensor = try file.tensor("t")
        #expect(!file.hasData(for: tensor))
        let error = expectGGUFError(.tensorDataUnavailable) { try file.rawData(of: tensor) }
        let range = "\(tensor.fileOffset)..<\(tensor.fileOffset + 32)"
        #expect(error?.message.contains("tensor 't' occupies bytes \(range), past the end of the file (\(file.fileSize) bytes)") == true,
                "\(String(describing: error))")
    }

    @Test func stringLengthOf2To60IsRejectedWithoutAllocating() {
        let error = expectGGUFError(.truncated) {
            try GGUFFile(path: Fixtures.path("corpus/string_length_2_60.gguf"))
        }
        #expect(error?.message.contains("length of value of metadata 'k' is 1152921504606846976") == true,
                "\(String(describing: error))")
    }
}
