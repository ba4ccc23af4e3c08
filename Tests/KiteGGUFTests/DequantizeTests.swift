import Foundation
import Testing
import KiteGGUF

/// Dequantisation against gguf-py's `gguf.quants.dequantize` (what transformers uses to load a GGUF).
/// quants.gguf holds, for every type, a tensor and `<name>.expected`: gguf-py's Float32 result.
/// Tolerance: none. Kite decodes every block with the same Float32 operations in the same order,
/// so results are bit-identical (NaNs compare equal to NaNs).
struct DequantizeTests {
    static let file = Result { try GGUFFile(path: Fixtures.path("quants.gguf")) }

    static let types = ["f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                        "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k"]

    @Test(arguments: types)
    func randomTensorMatchesGGUFPyBitForBit(name: String) throws {
        let file = try Self.file.get()
        let tensor = try file.tensor(name)
        #expect(tensor.type.description.lowercased() == name)
        #expect(tensor.shape == [4, 256])
        let expected = try file.dequantize(tensorNamed: name + ".expected")
        let actual = try file.dequantize(tensor)
        let mismatch = firstMismatch(actual, expected)
        #expect(mismatch == nil, "\(name): first mismatch \(String(describing: mismatch))")
    }

    /// Row slices of real tensors (SmolLM2's Q4_1 q_proj, Q8_0 embedding, F32 norm; R1's Q6_K output),
    /// copied into the fixture by the script.
    @Test func realTensorSlicesMatchGGUFPy() throws {
        let file = try Self.file.get()
        let slices = try Self.realSlices(file)
        #expect(Set(slices.map(\.type)) == ["Q4_1", "Q8_0", "F32", "Q6_K"])
        for slice in slices {
            let expected = try file.dequantize(tensorNamed: slice.name + ".expected")
            let mismatch = firstMismatch(try file.dequantize(tensorNamed: slice.name), expected)
            #expect(mismatch == nil, "\(slice.name): \(String(describing: mismatch))")
        }
    }

    /// The same rows read straight from the real assets with the row-range API.
    @Test(.enabled(if: Assets.enabled(Assets.smolLM2) && Assets.enabled(Assets.r1Part)))
    func rowRangesOfRealAssetsMatchGGUFPy() throws {
        let fixture = try Self.file.get()
        for slice in try Self.realSlices(fixture) {
            let asset = try Assets.open(slice.asset)
            let tensor = try asset.tensor(slice.tensor)
            let actual = try asset.dequantize(tensor, rows: slice.rows)
            let expected = try fixture.dequantize(tensorNamed: slice.name + ".expected")
            #expect(firstMismatch(actual, expected) == nil, "\(slice.name)")
        }
    }

    @Test func intoBufferEqualsArrayResult() throws {
        let file = try Self.file.get()
        let tensor = try file.tensor("q4_k")
        var buffer = [Float](repeating: .nan, count: tensor.elementCount)
        try buffer.withUnsafeMutableBufferPointer { try file.dequantize(tensor, into: $0) }
        #expect(buffer == (try file.dequantize(tensor)))
        var short = [Float](repeating: 0, count: 10)
        expectGGUFError(.invalidValue) { try short.withUnsafeMutableBufferPointer { try file.dequantize(tensor, into: $0) } }
    }

    @Test func rowRangesAreSlicesOfTheWholeTensor() throws {
        let file = try Self.file.get()
        for name in Self.types {
            let tensor = try file.tensor(name)
            let whole = try file.dequantize(tensor)
            let rows = try file.dequantize(tensor, rows: 1..<3)
            #expect(firstMismatch(rows, Array(whole[256..<768])) == nil, "\(name)")
        }
        let tensor = try file.tensor("q6_k")
        expectGGUFError(.invalidValue) { try file.dequantize(tensor, rows: 3..<5) }
        #expect(try file.dequantize(tensor, rows: 2..<2).isEmpty)
    }

    @Test func rawBufferDequantizerChecksSizesAndTypes() throws {
        let file = try Self.file.get()
        let tensor = try file.tensor("q4_1")
        let raw = try file.rawData(of: tensor)
        var output = [Float](repeating: 0, count: 64)
        try output.withUnsafeMutableBufferPointer { try GGUFDequantizer.dequantize(raw, type: .q4_1, into: $0) }
        #expect(output == Array(try file.dequantize(tensor)[0..<64]))
        var odd = [Float](repeating: 0, count: 33)
        expectGGUFError(.unsupportedDequantization) {
            try odd.withUnsafeMutableBufferPointer { try GGUFDequantizer.dequantize(raw, type: .q4_1, into: $0) }
        }
        var tooMany = [Float](repeating: 0, count: 32 * 1000)
        expectGGUFError(.invalidValue) {
            try tooMany.withUnsafeMutableBufferPointer { try GGUFDequantizer.dequantize(raw, type: .q4_1, into: $0) }
        }
        expectGGUFError(.unsupportedDequantization) {
            try output.withUnsafeMutableBufferPointer { try GGUFDequantizer.dequantize(raw, type: .iq2_XXS, into: $0) }
        }
    }

    /// Informative only: single-thread output bandwidth on a real Q4_1 tensor (SmolLM2's embedding is Q8_0,
    /// its layers Q4_1) and on the Q6_K rows present in the R1 part. Printed, not asserted.
    @Test(.enabled(if: Assets.enabled(Assets.smolLM2) && Assets.enabled(Assets.r1Part)))
    func dequantizationSpeed() throws {
        let smol = try Assets.open(Assets.smolLM2)
        let r1 = try Assets.open(Assets.r1Part)
        let cases: [(String, GGUFFile, GGUFTensorInfo, Range<Int>)] = [
            ("Q4_1 blk.0.ffn_down", smol, try smol.tensor("blk.0.ffn_down.weight"), 0..<576),
            ("Q8_0 token_embd", smol, try smol.tensor("token_embd.weight"), 0..<8192),
            ("Q6_K R1 output rows", r1, try r1.tensor("output.weight"), 0..<2048),
        ]
        for (label, file, tensor, rows) in cases {
            var output = [Float](repeating: 0, count: rows.count * tensor.rowLength)
            var best = Double.infinity
            for _ in 0..<3 {
                let start = DispatchTime.now().uptimeNanoseconds
                try output.withUnsafeMutableBufferPointer { try file.dequantize(tensor, rows: rows, into: $0) }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let megabytes = Double(output.count * 4) / 1e6
            print("dequantize \(label): \(Int(megabytes / best)) MB/s of Float32 output (\(Int(megabytes)) MB in \(Int(best * 1000)) ms)")
        }
    }

    struct RealSlice {
        var name: String
        var asset: String
        var tensor: String
        var rows: Range<Int>
        var type: String
    }

    static func realSlices(_ file: GGUFFile) throws -> [RealSlice] {
        let manifest = try file.metadata.string("kite.real_slices")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(manifest.utf8)) as? [[String: Any]])
        return try items.map { item in
            let rows = try #require(item["rows"] as? [Int])
            return RealSlice(name: try #require(item["slice"] as? String), asset: try #require(item["asset"] as? String),
                             tensor: try #require(item["tensor"] as? String), rows: rows[0]..<rows[1],
                             type: try #require(item["type"] as? String))
        }
    }
}
