import ArgumentParser
import KiteModels
import KiteTensor

struct Convert: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a Hugging Face checkpoint between block-scaled fp8 and bf16.",
        discussion: """
            --bf16-to-fp8 quantises the decoder layers' projection weights to fp8 e4m3 in square tiles (one fp32 \
            scale per tile in <name>_scale_inv, value = fp8 * scale), as DeepSeek-V3 stores them, and adds \
            quantization_config to config.json. --fp8-to-bf16 dequantises them back and drops the scales. Shards, \
            the index and every other file of the directory are carried over.
            """
    )

    @Flag(name: .customLong("fp8-to-bf16"), help: "Dequantise block-scaled fp8 weights to bf16.")
    var fp8ToBF16 = false

    @Flag(name: .customLong("bf16-to-fp8"), help: "Quantise projection weights to block-scaled fp8 e4m3.")
    var bf16ToFP8 = false

    @Option(name: .customLong("block-size"), help: "Tile size of --bf16-to-fp8.")
    var blockSize = 128

    @Argument(help: "The checkpoint directory to read.")
    var input: String

    @Argument(help: "The directory to write (must not exist, or be empty).")
    var output: String

    func validate() throws {
        guard fp8ToBF16 != bf16ToFP8 else { throw ValidationError("give exactly one of --fp8-to-bf16 and --bf16-to-fp8") }
        guard blockSize > 0 else { throw ValidationError("--block-size must be positive, got \(blockSize)") }
    }

    func run() async throws {
        let backend = CPUBackend()
        let report = fp8ToBF16
            ? try CheckpointConversion.dequantize(input: input, output: output, backend: backend)
            : try CheckpointConversion.quantize(input: input, output: output, blockSize: blockSize, backend: backend)
        print("\(fp8ToBF16 ? "dequantised" : "quantised") \(report.converted) tensors, copied \(report.copied) unchanged, into \(output)")
    }
}
