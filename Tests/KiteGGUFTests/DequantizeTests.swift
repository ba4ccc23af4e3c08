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
    @Test(Assets.needed(Assets.smolLM2, Assets.r1Part))
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

    /// Informative only: single-thread output bandwidth, over every Q4_1 and Q8_0 tensor of SmolLM2 and the
    /// Q6_K rows present in the R1 part (about 0.5 GB of Float32 output in all). Printed, not asserted.
    @Test(Assets.needed(Assets.smolLM2, Assets.r1Part))
    func dequantizationSpeed() throws {
        let smol = try Assets.open(Assets.smolLM2)
        let r1 = try Assets.open(Assets.r1Part)
        let output = try r1.tensor("output.weight")
        let presentRows = (r1.fileSize - output.fileOffset) / output.rowByteCount
        var jobs: [(type: GGMLType, file: GGUFFile, tensor: GGUFTensorInfo, rows: Range<Int>)] =
            smol.tensors.filter { $0.type != .f32 }.map { ($0.type, smol, $0, 0..<$0.rowCount) }
        jobs.append((.q6_K, r1, output, 0..<presentRows))
        let largest = jobs.map { $0.rows.count * $0.tensor.rowLength }.max() ?? 0
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: largest)
        defer { buffer.deallocate() }
        var seconds: [GGMLType: Double] = [:], megabytes: [GGMLType: Double] = [:]
        for pass in 0..<2 {  // the first pass also faults the mapped pages in
            for job in jobs {
                let count = job.rows.count * job.tensor.rowLength
                let clock = ContinuousClock()
                let elapsed = try clock.measure {
                    try job.file.dequantize(job.tensor, rows: job.rows, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
                }
                if pass == 1 {
                    seconds[job.type, default: 0] += Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
                    megabytes[job.type, default: 0] += Double(count * 4) / 1e6
                }
            }
        }
        for (type, time) in seconds.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            let size = megabytes[type] ?? 0
            print("dequantize \(type) into a reused buffer: \(Int(size / time)) MB/s of Float32 output "
                  + "(\(Int(size)) MB in \(Int(time * 1000)) ms, one thread)")
        }
        // What a model load sees: every tensor into newly allocated memory (page faults included).
        var total = 0
        let elapsed = try ContinuousClock().measure {
            for tensor in smol.tensors { total += try smol.dequantize(tensor).count }
        }
        let time = Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
        print("dequantize all of SmolLM2 into new arrays: \(Int(Double(total * 4) / 1e6 / time)) MB/s "
              + "(\(total * 4 / 1_000_000) MB in \(Int(time * 1000)) ms, one thread)")
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
