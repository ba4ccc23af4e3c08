import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

extension TrainingRun {
    /// Saves weights, optimizer and the loop's state after `rolloutID`; returns the checkpoint directory.
    func saveCheckpoint(root: String, rolloutID: Int) throws -> String {
        var state: JSONObject = [
            "next_rollout_id": .int(rolloutID + 1),
            "weight_version": .int(weightVersion),
            "known_versions": .array(knownVersions.sorted().map { .string($0) }),
        ]
        if let dataset { state["data_position"] = dataset.position.json }
        if let manager { state["rollout_manager"] = manager.state }
        if let prefetched {
            state["prefetched_rollout"] = [
                "rollout_id": .int(prefetched.rolloutID),
                "groups": .array(prefetched.result.groups.map { .array($0.map(\.json)) }),
                "metrics": .object(JSONObject(prefetched.result.metrics.map { ($0.name, JSONValue.double($0.value)) })),
            ]
        }
        return try TrainingCheckpoint.save(
            root: root, rolloutID: rolloutID, model: model, optimizer: configuration.saveOptimizer ? trainer.optimizer : nil,
            state: state, modelFiles: try tokenizerFiles())
    }

    /// Continues from a checkpoint: weights, optimizer moments and step, data position, counters.
    func restore(_ directory: String) throws {
        try TrainingCheckpoint.restore(directory, into: model, optimizer: configuration.saveOptimizer ? trainer.optimizer : nil)
        let state = try TrainingCheckpoint.readState(directory)
        let source = directory + "/state.json"
        guard let next = state["next_rollout_id"]?.intValue, let version = state["weight_version"]?.intValue else {
            throw RLError.invalidSample(sample: source, field: "next_rollout_id", message: "missing")
        }
        startRollout = next
        weightVersion = version
        knownVersions = Set((state["known_versions"]?.arrayValue ?? []).compactMap(\.stringValue))
        if let position = state["data_position"], let dataset { dataset.restore(try DataPosition(json: position, source: source)) }
        if let saved = state["rollout_manager"], let manager { try manager.restore(state: saved, source: source) }
        if let pending = state["prefetched_rollout"], let rolloutID = pending["rollout_id"]?.intValue {
            var groups: [[Sample]] = []
            for group in pending["groups"]?.arrayValue ?? [] {
                var samples: [Sample] = []
                for (i, sample) in (group.arrayValue ?? []).enumerated() { samples.append(try Sample(json: sample, position: i)) }
                groups.append(samples)
            }
            let metrics = (pending["metrics"]?.objectValue ?? JSONObject()).map { ($0.key, $0.value.doubleValue ?? 0) }
            prefetched = (rolloutID, RolloutResult(groups: groups, metrics: metrics))
        }
    }
}
