import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// `kite train` end to end on a tiny model with a real tokenizer and chat template (scripts/reference/tiny_chat_model.py).
@Suite(.serialized)
struct TrainCommandTests {
    static let model = KiteCommand.fixtures.appendingPathComponent("models/tiny_chat").path
    /// Rewards the fraction of digits in a response: graded, so a random tiny model still gets a learning signal.
    static let rewardScript = KiteCommand.fixtures.appendingPathComponent("rewards/digit_reward.py").path

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kite-train-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// The seed recipe's flags, scaled down to the tiny model.
    static func arguments(data: String, run: String, rollouts: Int = 3) -> [String] {
        [
            "train", "--hf-checkpoint", model, "--prompt-data", data, "--input-key", "prompt", "--label-key", "label",
            "--apply-chat-template", "--rollout-shuffle", "--custom-rm-cmd", "python3 " + Self.rewardScript, "--rm-timeout", "20",
            "--num-rollout", "\(rollouts)",
            "--rollout-batch-size", "4", "--n-samples-per-prompt", "4", "--rollout-max-response-len", "6", "--rollout-temperature", "0.8",
            "--over-sampling-batch-size", "8", "--num-steps-per-rollout", "2", "--advantage-estimator", "grpo",
            "--use-kl-loss", "--kl-loss-coef", "0.001", "--kl-loss-type", "low_var_kl", "--entropy-coef", "0.00",
            "--eps-clip", "0.2", "--eps-clip-high", "0.28", "--optimizer", "adam", "--lr", "1e-3", "--lr-decay-style", "constant",
            "--weight-decay", "0.1", "--adam-beta1", "0.9", "--adam-beta2", "0.98", "--use-dynamic-batch-size", "--max-tokens-per-gpu", "512",
            "--save", run, "--save-interval", "1", "--tensorboard-dir", run + "/tb", "--threads", "2",
        ]
    }

    static func makeData(_ directory: String) throws -> String {
        let path = directory + "/arith.jsonl"
        let output = try KiteCommand.run(["data", "make", "arithmetic", "--n", "64", "--out", path, "--seed", "3"])
        #expect(output.status == 0, "\(output.standardError)")
        return path
    }

    @Test func trainingLogsEveryMetricAndSavesCheckpoints() throws {
        let directory = try Self.temporaryDirectory()
        let data = try Self.makeData(directory)
        let run = directory + "/run"
        let output = try KiteCommand.run(Self.arguments(data: data, run: run) + [
            "--eval-interval", "2", "--eval-prompt-data", "arith", data, "--n-samples-per-eval-prompt", "2",
            "--tensor-model-parallel-size", "8", "--sglang-enable-ep-moe",
        ])
        #expect(output.status == 0, "\(output.standardError)\n\(output.standardOutput)")
        #expect(output.standardOutput.contains("note: --tensor-model-parallel-size has no effect in Kite"))
        #expect(output.standardOutput.contains("note: --sglang-enable-ep-moe has no effect in Kite"))
        let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try JSONValue(parsing: String($0)) }
        let names = Set(records.flatMap { $0.objectValue?.keys ?? [] })
        for required in [
            "rollout/reward_mean", "rollout/reward_std", "rollout/pass_rate", "rollout/response_length_mean", "rollout/response_length_max",
            "rollout/truncated_ratio", "rollout/filter_drop_ratio", "rollout/tokens_per_second", "train/pg_loss", "train/kl_loss",
            "train/entropy", "train/pg_clipfrac", "train/grad_norm", "train/lr", "train/tokens_per_second", "train/step_seconds",
            "train/train_rollout_logprob_abs_diff", "perf/train_seconds", "eval/arith/pass@1", "eval/arith/pass@2",
        ] {
            #expect(names.contains(required), "metrics.jsonl lacks \(required)")
        }
        // Colocated on the CPU, the engine's log-probs are the trainer's, bit for bit.
        for record in records where record["kind"] == "train" {
            #expect(record["train/train_rollout_logprob_abs_diff"]?.doubleValue == 0)
        }
        #expect(records.filter { $0["kind"] == "train" }.count == 6, "2 steps per rollout")
        #expect(records.contains { ($0["train/grad_norm"]?.doubleValue ?? 0) > 0 }, "the rewards gave a learning signal")
        let events = try FileManager.default.contentsOfDirectory(atPath: run + "/tb")
        #expect(events.contains { $0.hasPrefix("events.out.tfevents.") })
        let checkpoint = run + "/rollout_0000002"
        #expect(FileManager.default.fileExists(atPath: checkpoint + "/optimizer/optimizer.safetensors"))
        #expect(FileManager.default.fileExists(atPath: checkpoint + "/model/tokenizer.json"))
        let trained = try Transformer.load(directory: checkpoint + "/model", backend: CPUBackend(threads: 1))
        let initial = try Transformer.load(directory: Self.model, backend: CPUBackend(threads: 1))
        #expect(try trained.parameters.require("model.norm.weight").toFloats() != initial.parameters.require("model.norm.weight").toFloats(), "training changed the weights")
    }

    /// Kill -9 in the middle of training, resume with --load: the final weights equal an uninterrupted run's bit
    /// for bit, and every rollout saw the same samples (no prompt skipped or repeated).
    @Test func killedRunResumesBitIdentically() throws {
        let directory = try Self.temporaryDirectory()
        let data = try Self.makeData(directory)
        let straight = directory + "/straight", resumed = directory + "/resumed"
        let rollouts = 5
        let debug = { (run: String) in ["--save-debug-rollout-data", run + "/samples_{rollout_id}.json"] }
        let uninterrupted = try KiteCommand.run(Self.arguments(data: data, run: straight, rollouts: rollouts) + debug(straight))
        #expect(uninterrupted.status == 0, "\(uninterrupted.standardError)")

        let process = Process()
        process.executableURL = KiteCommand.binary
        process.arguments = Self.arguments(data: data, run: resumed, rollouts: rollouts) + debug(resumed)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait for the second checkpoint, then kill without warning while later rollouts are in flight.
        let tracker = resumed + "/latest_checkpointed_iteration.txt"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: tracker, encoding: .utf8), let saved = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), saved >= 1 { break }
            usleep(2_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the run was killed before it finished")

        let continued = try KiteCommand.run(Self.arguments(data: data, run: resumed, rollouts: rollouts) + debug(resumed) + ["--load", resumed])
        #expect(continued.status == 0, "\(continued.standardError)")
        #expect(continued.standardOutput.contains("resumed from"))
        let last = "/rollout_000000\(rollouts - 1)"
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + last + "/model/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: resumed + last + "/model/model.safetensors"))
        #expect(a == b, "weights after resume differ from the uninterrupted run")
        let initial = try Data(contentsOf: URL(fileURLWithPath: Self.model + "/model.safetensors"))
        #expect(a.count > 0 && a != initial)
        let optimizerA = try Data(contentsOf: URL(fileURLWithPath: straight + last + "/optimizer/optimizer.safetensors"))
        let optimizerB = try Data(contentsOf: URL(fileURLWithPath: resumed + last + "/optimizer/optimizer.safetensors"))
        #expect(optimizerA == optimizerB)
        for rollout in 0..<rollouts {
            let samplesA = try String(contentsOfFile: straight + "/samples_\(rollout).json", encoding: .utf8)
            let samplesB = try String(contentsOfFile: resumed + "/samples_\(rollout).json", encoding: .utf8)
            #expect(samplesA == samplesB, "rollout \(rollout) saw different samples")
        }
    }

    @Test func unknownFlagsSuggestTheNearestName() throws {
        let output = try KiteCommand.run(["train", "--hf-checkpoint", Self.model, "--rollout-batchsize", "4"])
        #expect(output.status != 0)
        #expect(output.standardError.contains("--rollout-batchsize") && output.standardError.contains("did you mean --rollout-batch-size?"), "\(output.standardError)")
        let missing = try KiteCommand.run(["train", "--hf-checkpoint", Self.model, "--num-rollout", "1"])
        #expect(missing.standardError.contains("--prompt-data"), "\(missing.standardError)")
    }
}
