import KiteJSON
import KiteTensor

/// `quantization_config` of a block-scaled fp8 checkpoint (DeepSeek-V3's layout): projection weights stored as
/// fp8 e4m3 with one fp32 scale per `blockSize x blockSize` tile in `<name>_scale_inv` (dequantised value =
/// fp8 value times scale).
public struct BlockQuantization: Sendable, Equatable {
    public var blockSize: Int
    public var format: DType
    /// Modules the checkpoint leaves unquantised (`modules_to_not_convert`), as written.
    public var modulesToNotConvert: [String]

    public init(blockSize: Int = 128, format: DType = .fp8e4m3, modulesToNotConvert: [String] = []) {
        self.blockSize = blockSize
        self.format = format
        self.modulesToNotConvert = modulesToNotConvert
    }

    init(fields: ConfigFields) throws {
        let method = try fields.string("quant_method")
        guard method == "fp8" else {
            throw fields.failure("quant_method", "only block-scaled 'fp8' checkpoints are supported, got '\(method ?? "none")'")
        }
        let format = try fields.string("fmt") ?? "e4m3"
        guard format == "e4m3" else { throw fields.failure("fmt", "only 'e4m3' is supported, got '\(format)'") }
        guard let block = try fields.ints("weight_block_size") else {
            throw fields.failure("weight_block_size", "missing: per-tensor fp8 scales are not supported, only block scales")
        }
        guard block.count == 2, block[0] == block[1], block[0] > 0 else {
            throw fields.failure("weight_block_size", "expected square blocks [n, n], got \(block)")
        }
        if let scaleFormat = try fields.string("scale_fmt"), scaleFormat != "float" {
            throw fields.failure("scale_fmt", "only fp32 scales ('float') are supported, got '\(scaleFormat)'")
        }
        self.init(blockSize: block[0], format: .fp8e4m3, modulesToNotConvert: (fields.object["modules_to_not_convert"]?.arrayValue ?? []).compactMap(\.stringValue))
    }

    /// The `quantization_config` object as DeepSeek-V3's config.json writes it.
    public var jsonObject: JSONObject {
        var object: JSONObject = [
            "activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
            "weight_block_size": [.int(blockSize), .int(blockSize)],
        ]
        if !modulesToNotConvert.isEmpty { object["modules_to_not_convert"] = .array(modulesToNotConvert.map { .string($0) }) }
        return object
    }
}
