import ArgumentParser
import KiteRL
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Teach a small model two-digit addition with GRPO, on this CPU, with nothing to download.",
        discussion: """
            Builds a 0.6M-parameter model, warms it up with a short supervised phase, then runs GRPO with dynamic \
            sampling (32 prompts x 8 samples per iteration) through Kite's engine and trainer, printing held-out \
            accuracy as it learns. The last line states the accuracy after warm-up and after GRPO.
            """
    )

    @Option(help: "Seconds of GRPO after the warm-up.")
    var seconds: Double = 240

    @Option(help: "Supervised warm-up steps before GRPO.")
    var warmupSteps: Int = 180

    @Option(help: "Random seed of data, initial weights and sampling.")
    var seed: UInt64 = 1

    @Option(help: "GRPO learning rate.")
    var learningRate: Double = 5e-4

    @Option(help: "Prompt groups per rollout (--rollout-batch-size).")
    var promptsPerRollout: Int = 32

    @Option(help: "Optimizer steps per rollout (--num-steps-per-rollout).")
    var stepsPerRollout: Int = 4

    @Option(help: "Gradient clipping for GRPO (--clip-grad); 0 turns it off.")
    var clipGrad: Double = 1.0

    @Option(help: "Threads (default: KITE_NUM_THREADS or every core).")
    var threads: Int?

    func validate() throws {
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard warmupSteps >= 0 else { throw ValidationError("--warmup-steps must not be negative") }
        guard learningRate > 0 else { throw ValidationError("--learning-rate must be positive") }
        guard promptsPerRollout > 0, stepsPerRollout > 0, promptsPerRollout % stepsPerRollout == 0 else {
            throw ValidationError("--prompts-per-rollout must be a positive multiple of --steps-per-rollout")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() async throws {
        var options = DemoOptions()
        options.grpoSeconds = seconds
        options.warmupSteps = warmupSteps
        options.seed = seed
        options.threads = threads
        options.learningRate = learningRate
        options.promptsPerIteration = promptsPerRollout
        options.overSamplingBatchSize = 2 * promptsPerRollout
        options.stepsPerRollout = stepsPerRollout
        options.clipGradient = clipGrad
        let result = try await Demo.run(options) { line in
            print(line)
            // Progress lines go out as they happen, also into a pipe or a file.
            _ = fflush(nil)
        }
        let gain = 100 * (result.finalAccuracy - result.warmupAccuracy)
        print("kite demo: held-out accuracy \(NumberFormatting.fixed(100 * result.warmupAccuracy, 1))% after warm-up -> \(NumberFormatting.fixed(100 * result.finalAccuracy, 1))% after \(result.iterations) GRPO iterations (\(gain >= 0 ? "+" : "")\(NumberFormatting.fixed(gain, 1)) points) in \(NumberFormatting.fixed(result.totalSeconds, 0)) s")
    }
}
