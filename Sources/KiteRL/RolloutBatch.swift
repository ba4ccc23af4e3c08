import KiteJSON

/// The samples of one rollout, in `Sample.index` order, as `--save-debug-rollout-data` writes them
/// and `--load-debug-rollout-data` reads them back. The JSON layout is slime's debug dump
/// (`{"rollout_id": N, "samples": [Sample.to_dict(), ...]}`, `slime/observability/rollout_data_utils.py`)
/// written as JSON instead of a pickle.
public struct RolloutBatch: Sendable, Equatable {
    public var rolloutId: Int
    public var samples: [Sample]

    public init(rolloutId: Int, samples: [Sample]) {
        self.rolloutId = rolloutId
        self.samples = samples
    }

    public var json: JSONValue {
        .object(JSONObject([("rollout_id", .int(rolloutId)), ("samples", .array(samples.map(\.json)))]))
    }

    /// The JSON text of the dump.
    public func serialized() -> String { json.serialized(.compact) }

    public init(json: JSONValue) throws(RLError) {
        guard let object = json.objectValue else {
            throw .invalidSample(sample: "rollout dump", field: "", message: "expected an object, found \(json.typeName)")
        }
        guard let id = object["rollout_id"]?.intValue else {
            throw .invalidSample(sample: "rollout dump", field: "rollout_id", message: "missing or not an integer")
        }
        guard let array = object["samples"]?.arrayValue else {
            throw .invalidSample(sample: "rollout dump", field: "samples", message: "missing or not an array")
        }
        var samples: [Sample] = []
        samples.reserveCapacity(array.count)
        for (position, element) in array.enumerated() {
            samples.append(try Sample(json: element, position: position))
        }
        self.init(rolloutId: id, samples: samples)
    }

    /// Parses a dump; `source` (a path) names the file in errors.
    public init(parsing text: String, source: String) throws(RLError) {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: text, source: source)
        } catch {
            throw .invalidSample(sample: source, field: "", message: error.description)
        }
        try self.init(json: value)
    }

    /// The path `--save-debug-rollout-data` names for a rollout: `{rollout_id}` replaced by the id,
    /// prefixed `eval_` for evaluation rollouts, as slime's `save_debug_rollout_data` does.
    public static func debugPath(template: String, rolloutId: Int, evaluation: Bool = false) -> String {
        template.replacing("{rollout_id}", with: (evaluation ? "eval_" : "") + String(rolloutId))
    }
}

// MARK: - Training view

/// Gives every sample without a rollout id the smallest unused non-negative id, in order,
/// as slime's `_convert_samples_to_train_data` does.
public func assignRolloutIds(_ ids: [Int?]) -> [Int] {
    var used = Set(ids.compactMap { $0 })
    var next = 0
    return ids.map { id in
        if let id { return id }
        while used.contains(next) { next += 1 }
        used.insert(next)
        return next
    }
}

/// For every sample, the total loss-mask count over all samples sharing its rollout id
/// (slime's `rollout_mask_sums`): the per-sample loss denominator, so that a rollout split into
/// several training samples is averaged once, whichever micro-batches its samples land in.
public func rolloutMaskSums(rolloutIds: [Int], lossMasks: [[Int]]) throws(RLError) -> [Int] {
    guard rolloutIds.count == lossMasks.count else {
        throw .shapeMismatch(what: "rollout_mask_sums: loss masks", expected: rolloutIds.count, found: lossMasks.count)
    }
    var totals: [Int: Int] = [:]
    for (id, mask) in zip(rolloutIds, lossMasks) { totals[id, default: 0] += mask.reduce(0, +) }
    return rolloutIds.map { totals[$0] ?? 0 }
}
