import Foundation
import KiteJSON
import Testing

@testable import KiteRL

/// Samples and rollout dumps round-trip through JSON with slime's `Sample.to_dict` key names.
struct SampleTests {
    static func example() -> Sample {
        Sample(
            index: 17, groupIndex: 4, rolloutId: 17,
            prompt: [["role": "system", "content": "Be brief."], ["role": "user", "content": "2+2?"]],
            tokens: [101, 102, 103, 7, 8, 9, 10], response: "<think>easy</think> \\boxed{4}", responseLength: 4,
            label: "4", reward: ["score": 1.0, "acc": true, "pred": "4"], lossMask: [1, 1, 0, 1],
            rolloutLogProbs: [-0.5, -1.25, 0, -0.0625], weightVersions: ["3"], status: .truncated,
            metadata: JSONObject([("rm_type", "dapo"), ("source", "dapo-math-17k")]),
            extra: JSONObject([("session_id", "abc"), ("spec_info", ["spec_accept_token_num": 0])]))
    }

    @Test func sampleRoundTripsThroughJSON() throws {
        let sample = Self.example()
        let text = sample.json.serialized()
        let back = try Sample(json: try JSONValue(parsing: text), position: 0)
        #expect(back == sample)
        #expect(Array(back.promptTokens) == [101, 102, 103] && Array(back.responseTokens) == [7, 8, 9, 10])
        #expect(try back.rewardValue(key: "score") == 1)
        // slime's key names.
        let object = try #require(sample.json.objectValue)
        for key in ["group_index", "index", "rollout_id", "prompt", "tokens", "response", "response_length", "label", "reward", "loss_mask", "rollout_log_probs", "status", "metadata", "weight_versions", "remove_sample", "session_id"] {
            #expect(object[key] != nil, "key \(key)")
        }
        #expect(object["status"] == "truncated")
    }

    @Test func rolloutBatchRoundTripsThroughAFile() throws {
        var second = Sample(index: 18, groupIndex: 4, prompt: "plain text prompt", tokens: [1, 2], response: "", responseLength: 0, reward: 0, status: .aborted)
        second.removeSample = true
        let batch = RolloutBatch(rolloutId: 3, samples: [Self.example(), second])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kite-rl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = RolloutBatch.debugPath(template: directory.path + "/rollout_{rollout_id}.json", rolloutId: 3)
        #expect(path.hasSuffix("rollout_3.json"))
        #expect(RolloutBatch.debugPath(template: "d/{rollout_id}.json", rolloutId: 3, evaluation: true) == "d/eval_3.json")
        try batch.serialized().write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try RolloutBatch(parsing: try String(contentsOfFile: path, encoding: .utf8), source: path)
        #expect(loaded == batch)
        #expect(loaded.samples[1].effectiveLossMask == [])
        #expect(loaded.samples[0].effectiveLossMask == [1, 1, 0, 1])
    }

    @Test func slimeStyleDictsWithUnsetFieldsLoad() throws {
        // The shape of slime's to_dict with None fields and keys Kite does not know.
        let text = #"{"group_index": null, "index": 5, "rollout_id": null, "prompt": "q", "tokens": [1, 2, 3], "multimodal_inputs": null, "response": "a", "response_length": 2, "label": null, "reward": 0.5, "loss_mask": null, "weight_versions": [], "rollout_log_probs": null, "status": "completed", "metadata": {}, "non_generation_time": 0.0}"#
        let sample = try Sample(json: try JSONValue(parsing: text), position: 0)
        #expect(sample.effectiveLossMask == [1, 1] && sample.status == .completed && sample.rolloutId == nil)
        #expect(sample.extra["non_generation_time"] == 0.0 && sample.extra["multimodal_inputs"] == .null)
        #expect(try sample.rewardValue(key: nil) == 0.5)
    }

    @Test func malformedSamplesAreRejectedWithTheField() throws {
        let cases: [(String, String)] = [
            (#"{"index": 1, "tokens": [1, 2], "response_length": 3}"#, "response_length"),
            (#"{"index": 1, "tokens": [1, 2], "response_length": 2, "loss_mask": [1]}"#, "loss_mask"),
            (#"{"index": 1, "tokens": [1, 2], "response_length": 1, "rollout_log_probs": [-1, -2]}"#, "rollout_log_probs"),
            (#"{"index": 1, "tokens": [1, "x"], "response_length": 1}"#, "tokens"),
            (#"{"index": 1, "status": "done"}"#, "status"),
            (#"{"index": 1, "tokens": [1], "response_length": 1, "loss_mask": [2]}"#, "loss_mask"),
        ]
        for (text, field) in cases {
            do {
                _ = try Sample(json: try JSONValue(parsing: text), position: 0)
                Issue.record("accepted \(text)")
            } catch let error as RLError {
                guard case .invalidSample(let sample, let f, _) = error else { Issue.record("\(error)"); continue }
                #expect(f == field && sample == "#1", "\(error)")
            }
        }
        #expect(throws: RLError.self) { try RolloutBatch(parsing: "{\"samples\": []}", source: "x.json") }
        #expect(throws: RLError.self) { try RolloutBatch(parsing: "{not json", source: "x.json") }
    }

    @Test func rewardValuesFollowTheRewardKey() throws {
        let dict = Sample(index: 2, reward: ["score": -1.0, "acc": false])
        #expect(try dict.rewardValue(key: "score") == -1)
        #expect(throws: RLError.self) { try dict.rewardValue(key: nil) }
        #expect(throws: RLError.self) { try dict.rewardValue(key: "missing") }
        #expect(try Sample(reward: 1).rewardValue(key: nil) == 1)
        #expect(throws: RLError.self) { try Sample(reward: 1).rewardValue(key: "score") }
        #expect(throws: RLError.self) { try Sample().rewardValue(key: nil) }
    }

    @Test func rolloutIdsAndMaskSumsFollowSlime() throws {
        // Unset ids take the smallest unused id, in order.
        #expect(assignRolloutIds([nil, 0, nil, 2, nil]) == [1, 0, 3, 2, 4])
        #expect(try rolloutMaskSums(rolloutIds: [7, 7, 8], lossMasks: [[1, 1, 0], [1], [0, 0]]) == [3, 3, 0])
    }
}
