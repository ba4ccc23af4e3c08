import ArgumentParser
import KiteCUDA
import KiteRL
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Run slime's RL loop (GRPO/DAPO): rollout, rewards, training, weight sync, checkpoints.",
        discussion: FlagParser.help()
    )

    @Argument(parsing: .captureForPassthrough, help: "slime-style flags; see the list above.")
    var arguments: [String] = []

    func run() async throws {
        let flags = try FlagParser.parse(arguments)
        let configuration = try TrainingConfiguration(flags: flags)
        let backend: any Backend
        switch configuration.device {
        case "cuda": backend = try CUDABackend(ordinal: 0, precision: .bf16)
        default: backend = CPUBackend(threads: configuration.threads)
        }
        let run = try await TrainingRun(configuration: configuration, backend: backend) { line in
            print(line)
            _ = fflush(nil)
        }
        let summary = try await run.run()
        print("kite train: \(summary.rollouts) rollouts, \(summary.optimizerSteps) optimizer steps" + (summary.lastCheckpoint.map { ", last checkpoint \($0)" } ?? ""))
    }
}

struct DataCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Make data sets.",
        subcommands: [MakeData.self]
    )
}

struct MakeData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make",
        abstract: "Write a synthetic verifiable task as slime-style jsonl ({\"prompt\": ..., \"label\": ...}).",
        discussion: "Train on it with --input-key prompt --label-key label --rm-type <task>."
    )

    @Argument(help: "arithmetic, countdown or sort")
    var task: String

    @Option(help: "Number of problems.")
    var n: Int = 1000

    @Option(help: "Output jsonl file.")
    var out: String

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    func validate() throws {
        guard SyntheticTask(rawValue: task) != nil else {
            throw ValidationError("unknown task '\(task)'; known: \(SyntheticTask.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard n > 0 else { throw ValidationError("--n must be positive") }
    }

    func run() async throws {
        guard let kind = SyntheticTask(rawValue: task) else { return }
        try SyntheticData.write(task: kind, count: n, seed: seed, path: out)
        print("wrote \(n) \(task) problems to \(out)")
    }
}
