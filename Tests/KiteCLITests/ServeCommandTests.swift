import Foundation
import Testing

/// `kite serve`'s device flags are checked before any model is loaded, with messages naming the flag.
@Suite struct ServeCommandTests {
    let model = KiteCommand.fixtures.appendingPathComponent("models/qwen3").path

    @Test func gpuFlagsNeedAGPUDevice() throws {
        for flags in [["--mem-fraction-static", "0.5"], ["--disable-cuda-graph"], ["--enable-deterministic-inference"], ["--enable-two-batch-overlap"], ["--disable-overlap-schedule"]] {
            let output = try KiteCommand.run(["serve", "--model", model] + flags)
            #expect(output.status != 0)
            #expect(output.standardError.contains("--mem-fraction-static, --disable-cuda-graph, --enable-two-batch-overlap, --disable-overlap-schedule and --enable-deterministic-inference need --device cuda"), "\(flags): \(output.standardError)")
        }
    }

    @Test func badDeviceValuesAreNamed() throws {
        let fraction = try KiteCommand.run(["serve", "--model", model, "--device", "cuda", "--mem-fraction-static", "1.5"])
        #expect(fraction.status != 0)
        #expect(fraction.standardError.contains("--mem-fraction-static must be between 0 and 1, got 1.5"), "\(fraction.standardError)")
        let threads = try KiteCommand.run(["serve", "--model", model, "--device", "cuda", "--threads", "2"])
        #expect(threads.status != 0)
        #expect(threads.standardError.contains("--threads sets CPU threads; it does not apply with --device cuda"), "\(threads.standardError)")
        let overlap = try KiteCommand.run(["serve", "--model", model, "--device", "cuda", "--enable-two-batch-overlap", "--disable-cuda-graph"])
        #expect(overlap.status != 0)
        #expect(overlap.standardError.contains("--enable-two-batch-overlap overlaps the halves of graph-captured decode steps"), "\(overlap.standardError)")
        let device = try KiteCommand.run(["serve", "--model", model, "--device", "gpu"])
        #expect(device.status != 0)
        #expect(device.standardError.contains("--device must be cpu, cuda or cuda:N, got 'gpu'"), "\(device.standardError)")
    }
}
