import Foundation
import Testing

/// `kite convert` end to end: bf16 to fp8 reproduces the committed fp8 fixture (scripts/reference/fp8_checkpoint.py
/// checked it against PyTorch and transformers), fp8 to bf16 drops the scales, bad usage exits non-zero.
struct ConvertCommandTests {
    @Test func convertsBothWaysAndRejectsBadUsage() throws {
        let fp8 = KiteCommand.fixtures.appendingPathComponent("fp8")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kite-convert-\(UUID().uuidString)").path
        let quantized = try KiteCommand.run(["convert", "--bf16-to-fp8", fp8.appendingPathComponent("source").path, scratch + "/fp8"])
        #expect(quantized.status == 0, "\(quantized.standardError)")
        #expect(quantized.standardOutput.contains("quantised 28 tensors, copied 13 unchanged"))
        let written = try Data(contentsOf: URL(fileURLWithPath: scratch + "/fp8/model.safetensors"))
        let committed = try Data(contentsOf: fp8.appendingPathComponent("quantized/model.safetensors"))
        #expect(written == committed)

        let restored = try KiteCommand.run(["convert", "--fp8-to-bf16", scratch + "/fp8", scratch + "/bf16"])
        #expect(restored.status == 0 && restored.standardOutput.contains("dequantised 28 tensors"), "\(restored.standardError)")
        let config = try String(contentsOfFile: scratch + "/bf16/config.json", encoding: .utf8)
        #expect(!config.contains("quantization_config"))

        let both = try KiteCommand.run(["convert", "--bf16-to-fp8", "--fp8-to-bf16", scratch + "/fp8", scratch + "/x"])
        #expect(both.status != 0 && both.standardError.contains("give exactly one of --fp8-to-bf16 and --bf16-to-fp8"))
        let again = try KiteCommand.run(["convert", "--bf16-to-fp8", scratch + "/fp8", scratch + "/y"])
        #expect(again.status != 0 && again.standardError.contains("already quantised"))
        let occupied = try KiteCommand.run(["convert", "--fp8-to-bf16", scratch + "/fp8", scratch + "/bf16"])
        #expect(occupied.status != 0 && occupied.standardError.contains("refusing to overwrite"))
    }
}
