import ArgumentParser
import KiteCUDA
import KiteJSON
import KiteTensor

struct BenchBlockScaled: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fp8-gemm",
        abstract: "Block-scaled fp8 products on the GPU against bf16 products of the same weights, at DeepSeek-V3's shapes.",
        discussion: """
            For each weight shape [N, K] of a DeepSeek-V3 layer and each row count M: the median time of the \
            bf16 product (cuBLASLt, bf16 weight), of the fp8 product Kite serves fp8 checkpoints with (activation \
            rows quantised to e4m3 in blocks of 128, cuBLASLt with 1 x 128 and 128 x 128 scales, quantisation \
            included), and of dequantising the weight per use then the bf16 product (what Kite did before). Ratios \
            are bf16 time / fp8 time, measured in the same run.
            """
    )

    @Option(help: "Row counts (tokens per product), comma-separated.") var rows: String = "1,64,256,4096"
    @Option var repeats: Int = 20
    @Option(help: "Write the results as JSON to this file.") var json: String?

    /// DeepSeek-V3's projection shapes [N, K].
    static let shapes: [(name: String, n: Int, k: Int)] = [
        ("q_a_proj", 1536, 7168), ("kv_a_proj_with_mqa", 576, 7168), ("q_b_proj", 24576, 1536), ("o_proj", 7168, 16384),
        ("dense gate/up_proj", 18432, 7168), ("dense down_proj", 7168, 18432), ("expert gate/up_proj", 2048, 7168), ("expert down_proj", 7168, 2048),
    ]

    func run() async throws {
        let backend = try CUDABackend(precision: .bf16)
        print(backend.summary())
        let rowCounts = rows.split(separator: ",").compactMap { Int($0.filter { $0 != " " }) }
        guard !rowCounts.isEmpty, rowCounts.allSatisfy({ $0 > 0 }) else { throw ValidationError("--rows must list positive integers") }
        let start = try backend.context.makeEvent(), end = try backend.context.makeEvent()
        func time(_ body: () throws -> Void) throws -> Double {
            var samples: [Double] = []
            for iteration in 0..<(repeats + 3) {
                try start.record(on: backend.context.stream)
                try body()
                try end.record(on: backend.context.stream)
                try end.synchronize()
                if iteration >= 3 { samples.append(try end.milliseconds(since: start)) }
            }
            return samples.sorted()[samples.count / 2]
        }
        var entries: [JSONValue] = []
        print("shape                      M     bf16 us    fp8 us  dequant us  fp8 TFLOP/s  bf16/fp8  dequant/fp8")
        for shape in Self.shapes {
            let weight = try backend.zeros([shape.n, shape.k], dtype: .bf16)
            try backend.fillNormal(weight, seed: 1, standardDeviation: 0.02)
            let (values, scales) = try backend.blockQuantize(weight, blockSize: 128, to: .fp8e4m3)
            for m in rowCounts {
                let x = try backend.zeros([m, shape.k], dtype: .bf16)
                try backend.fillNormal(x, seed: 2, standardDeviation: 1)
                let bf16 = try time { _ = try backend.matmul(x, weight, transposeA: false, transposeB: true) }
                backend.fp8Products = true
                let before = backend.blockScaledCounts.withLock { $0.fp8 }
                let fp8 = try time { _ = try backend.blockScaledMatmul(x, values: values, scales: scales, blockSize: 128) }
                let ranFP8 = backend.blockScaledCounts.withLock { $0.fp8 } > before
                backend.fp8Products = false
                let dequantised = try time { _ = try backend.blockScaledMatmul(x, values: values, scales: scales, blockSize: 128) }
                backend.fp8Products = true
                let flops = 2 * Double(m) * Double(shape.n) * Double(shape.k)
                let label = shape.name.count >= 24 ? shape.name : shape.name + String(repeating: " ", count: 24 - shape.name.count)
                print("\(label) \(String(m).leftPadded(5)) \(format(bf16 * 1000).leftPadded(10)) \(format(fp8 * 1000).leftPadded(9)) \(format(dequantised * 1000).leftPadded(11)) \(format(flops / fp8 / 1e9).leftPadded(12)) \(format(bf16 / fp8).leftPadded(9)) \(format(dequantised / fp8).leftPadded(12))\(ranFP8 ? "" : "  (fp8 declined: dequantised)")")
                entries.append(.object([
                    "shape": .string(shape.name), "n": .int(shape.n), "k": .int(shape.k), "m": .int(m), "bf16_ms": .double(bf16), "fp8_ms": .double(fp8),
                    "dequantised_ms": .double(dequantised), "ran_fp8": .bool(ranFP8),
                ]))
            }
        }
        if let json { try writeText(JSONValue.array(entries).serialized(.python), to: json) }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
