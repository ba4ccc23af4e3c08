import Foundation
import Testing
import KiteJSON
import KiteModels
import KiteTensor

/// `kite train --use-routing-replay` (R2) and `--use-rollout-routing-replay` (R3) end to end on a tiny
/// Qwen3-MoE model (random weights written here, the tiny chat model's tokenizer and template).
@Suite(.serialized)
struct RoutingReplayCommandTests {
    /// A Qwen3-MoE checkpoint the tiny chat tokenizer fits: 8 experts, top-2, layers 0 and 2 sparse.
    static func makeMoECheckpoint(_ directory: String) throws -> String {
        let path = directory + "/tiny_moe"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let json: JSONObject = [
            "model_type": "qwen3_moe", "vocab_size": 320, "hidden_size": 32, "intermediate_size": 48, "moe_intermediate_size": 16,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "rms_norm_eps": 1e-6,
            "max_position_embeddings": 256, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": true, "mlp_only_layers": [1],
            "decoder_sparse_step": 1, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 2, "rope_theta": 10000.0,
        ]
        let model = try Transformer.randomlyInitialized(config: try ModelConfig(json: json, source: "test"), seed: 5, backend: CPUBackend(threads: 1), standardDeviation: 0.1)
        try SafetensorsWriter.write(model.parameters.entries.map { ($0.0, $0.1) }, to: path + "/model.safetensors")
        try JSONValue.object(json).serialized(.compact).write(toFile: path + "/config.json", atomically: true, encoding: .utf8)
        for file in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"] {
            try FileManager.default.copyItem(atPath: TrainCommandTests.model + "/" + file, toPath: path + "/" + file)
        }
        return path
    }

    static func trainRecords(_ run: String) throws -> [JSONValue] {
        let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        return try lines.map { try JSONValue(parsing: String($0)) }.filter { $0["kind"] == "train" }
    }

    func arguments(checkpoint: String, data: String, run: String) -> [String] {
        var arguments = TrainCommandTests.arguments(data: data, run: run, rollouts: 2)
        arguments[arguments.firstIndex(of: "--hf-checkpoint")! + 1] = checkpoint
        return arguments + ["--save-debug-rollout-data", run + "/samples_{rollout_id}.json"]
    }

    /// R2 and R3 train the MoE model, report the train/rollout log-prob difference (0: colocated on the CPU the
    /// engine's and the trainer's log-probs agree bit for bit, replay or not), and with R3 every sample carries
    /// the engine's routing, one row per token but the last, over the 3 hidden layers (layer 1 dense: zeros).
    @Test(arguments: ["--use-routing-replay", "--use-rollout-routing-replay"])
    func routingReplayTrainsAMixtureOfExpertsModel(flag: String) throws {
        let directory = try TrainCommandTests.temporaryDirectory()
        let data = try TrainCommandTests.makeData(directory)
        let checkpoint = try Self.makeMoECheckpoint(directory)
        let run = directory + "/run"
        let output = try KiteCommand.run(arguments(checkpoint: checkpoint, data: data, run: run) + [flag])
        #expect(output.status == 0, "\(output.standardError)\n\(output.standardOutput)")
        #expect(output.standardOutput.contains("train/rollout logprob diff"), "\(output.standardOutput)")
        let records = try Self.trainRecords(run)
        #expect(records.count == 4, "2 steps per rollout")
        for record in records {
            #expect(record["train/train_rollout_logprob_abs_diff"]?.doubleValue == 0, "\(record)")
            #expect(record["train/expert_load_imbalance_max"] != nil)
        }
        #expect(records.contains { ($0["train/grad_norm"]?.doubleValue ?? 0) > 0 })
        let dump = try JSONValue(parsing: try String(contentsOfFile: run + "/samples_1.json", encoding: .utf8))
        let samples = try #require(dump["samples"]?.arrayValue)
        #expect(!samples.isEmpty)
        for sample in samples {
            let routed = sample["rollout_routed_experts"]
            guard flag == "--use-rollout-routing-replay" else {
                #expect(routed == nil)
                continue
            }
            let rows = try #require(routed?.arrayValue)
            #expect(rows.count == (sample["tokens"]?.arrayValue?.count ?? 0) - 1)
            for row in rows {
                let layers = try #require(row.arrayValue)
                #expect(layers.count == 3 && layers.allSatisfy { $0.arrayValue?.count == 2 })
                #expect(layers[1] == [0, 0])
                let chosen = (layers[0].arrayValue ?? []).compactMap(\.intValue)
                #expect(Set(chosen).count == 2 && chosen.allSatisfy { (0..<8).contains($0) })
            }
        }
    }

    /// R3 trains on dumped samples too (`--load-debug-rollout-data`), and a dump whose routing has the wrong
    /// number of rows stops training with an error naming the sample and the field.
    @Test func rolloutRoutingFromADumpIsCheckedAgainstTheTokens() throws {
        let directory = try TrainCommandTests.temporaryDirectory()
        let data = try TrainCommandTests.makeData(directory)
        let checkpoint = try Self.makeMoECheckpoint(directory)
        let run = directory + "/run"
        let generated = try KiteCommand.run(arguments(checkpoint: checkpoint, data: data, run: run) + ["--use-rollout-routing-replay", "--debug-rollout-only"])
        #expect(generated.status == 0, "\(generated.standardError)")

        let replayed = try KiteCommand.run([
            "train", "--hf-checkpoint", checkpoint, "--load-debug-rollout-data", run + "/samples_{rollout_id}.json", "--num-rollout", "1",
            "--rollout-batch-size", "4", "--n-samples-per-prompt", "4", "--use-rollout-routing-replay", "--lr", "1e-3", "--threads", "2",
            "--metrics-dir", directory + "/replayed",
        ])
        #expect(replayed.status == 0, "\(replayed.standardError)\n\(replayed.standardOutput)")
        #expect(try Self.trainRecords(directory + "/replayed").count == 1)

        // Drop the last row of the first sample's routing.
        var dump = try #require(try JSONValue(parsing: try String(contentsOfFile: run + "/samples_0.json", encoding: .utf8)).objectValue)
        var samples = try #require(dump["samples"]?.arrayValue)
        var first = try #require(samples[0].objectValue)
        let rows = try #require(first["rollout_routed_experts"]?.arrayValue)
        first["rollout_routed_experts"] = .array(Array(rows.dropLast()))
        samples[0] = .object(first)
        dump["samples"] = .array(samples)
        try JSONValue.object(dump).serialized(.compact).write(toFile: directory + "/bad_0.json", atomically: true, encoding: .utf8)
        let bad = try KiteCommand.run([
            "train", "--hf-checkpoint", checkpoint, "--load-debug-rollout-data", directory + "/bad_{rollout_id}.json", "--num-rollout", "1",
            "--rollout-batch-size", "4", "--n-samples-per-prompt", "4", "--use-rollout-routing-replay", "--threads", "2",
            "--metrics-dir", directory + "/bad",
        ])
        #expect(bad.status != 0)
        #expect(bad.standardError.contains("rollout_routed_experts") && bad.standardError.contains("expected len(tokens) - 1"), "\(bad.standardError)")
    }

    @Test func routingReplayOnADenseModelSaysItHasNoEffect() throws {
        let directory = try TrainCommandTests.temporaryDirectory()
        let data = try TrainCommandTests.makeData(directory)
        let run = directory + "/run"
        var arguments = TrainCommandTests.arguments(data: data, run: run, rollouts: 1)
        arguments += ["--use-routing-replay"]
        let output = try KiteCommand.run(arguments)
        #expect(output.status == 0, "\(output.standardError)")
        #expect(output.standardOutput.contains("note: --use-routing-replay has no effect"), "\(output.standardOutput)")
    }
}
