import ArgumentParser
import KiteCUDA
import KiteModels
import KiteRL
import KiteServer
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
        let log: @Sendable (String) -> Void = { line in
            print(line)
            _ = fflush(nil)
        }
        var rolloutEngine: HTTPRolloutEngine?
        if !configuration.rolloutEngineURLs.isEmpty && !configuration.debugTrainOnly {
            let directory = absolutePath(configuration.weightSyncDirectory ?? (configuration.save ?? "kite-runs") + "/weight-sync")
            // R3 reshapes the engines' flat routed_experts with the model's layers and experts per token.
            var shape: (layers: Int, topK: Int)?
            if configuration.rollout.returnRoutedExperts {
                let config = try ModelConfig.load(checkpoint: configuration.hfCheckpoint)
                if config.hasExperts { shape = (config.layerCount, config.routedExpertsPerToken) }
            }
            let engine = try HTTPRolloutEngine(urls: configuration.rolloutEngineURLs, weightDirectory: directory, routedExpertsShape: shape, log: log)
            try await engine.waitUntilHealthy(timeout: 60)
            log("disaggregated rollout on \(configuration.rolloutEngineURLs.joined(separator: ", ")); weight syncs through \(directory)")
            rolloutEngine = engine
        }
        let remoteReward = try configuration.rmType == "remote_rm" ? configuration.rmURL.map { try RemoteReward(url: $0) } : nil
        let run = try await TrainingRun(configuration: configuration, backend: backend, rolloutEngine: rolloutEngine, remoteReward: remoteReward, log: log)
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

/// `path` from the working directory when relative: engines in other processes resolve it on their own.
func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getcwd(&buffer, buffer.count) != nil else { return path }
    let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return directory + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
}
