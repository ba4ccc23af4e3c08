import KiteTokenizers
import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

extension TrainingRun {
    /// slime's loop: for each rollout id, evaluate when due, generate (or load), train, sync weights, save.
    public func run() async throws -> RunSummary {
        let options = configuration
        var lastCheckpoint: String?
        for rolloutID in startRollout..<options.numRollout {
            let rolloutStart = MonotonicClock.seconds()
            if shouldEvaluate(rolloutID) { try await evaluate(rolloutID: rolloutID) }
            let groups = try await rolloutGroups(rolloutID)
            if let template = options.saveDebugRolloutData {
                let path = RolloutBatch.debugPath(template: template, rolloutId: rolloutID)
                try FileText.writeAtomically(path, text: RolloutBatch(rolloutId: rolloutID, samples: groups.flatMap { $0 }).serialized())
            }
            try checkVersions(groups, rolloutID: rolloutID)
            if options.debugRolloutOnly { continue }

            // While the rollout of the next id overlaps training (--async), the engine keeps its cache.
            var overlap: Task<RolloutResult, any Error>?
            if options.asynchronous, rolloutID + 1 < options.numRollout, let manager {
                overlap = Task { try await manager.generate(rolloutID: rolloutID + 1) }
            } else if let engine, options.rolloutEngineURLs.isEmpty {
                await engine.releaseMemory()
            }
            let trainStart = MonotonicClock.seconds()
            let steps = try optimization.train(groups: groups, samplesPerPrompt: options.rollout.samplesPerPrompt)
            let trainSeconds = MonotonicClock.seconds() - trainStart
            for report in steps { record(report, rolloutID: rolloutID, seconds: trainSeconds / Double(max(steps.count, 1))) }
            if let overlap { prefetched = (rolloutID + 1, try await overlap.value) }
            if let engine, overlap == nil, options.rolloutEngineURLs.isEmpty { try await engine.resumeMemory() }
            let syncStart = MonotonicClock.seconds()
            weightVersion += 1
            try await rolloutEngine?.updateWeights(from: model, version: String(weightVersion))
            knownVersions.insert(String(weightVersion))
            let syncSeconds = MonotonicClock.seconds() - syncStart
            logger.record(kind: "timing", rolloutID: rolloutID, step: trainer.stepCount, metrics: [
                ("perf/train_seconds", trainSeconds), ("perf/sync_seconds", syncSeconds),
                ("perf/rollout_total_seconds", MonotonicClock.seconds() - rolloutStart),
            ])

            let last = rolloutID == options.numRollout - 1
            if let root = options.save, last || (options.saveInterval.map { (rolloutID + 1) % $0 == 0 } ?? false) {
                lastCheckpoint = try saveCheckpoint(root: root, rolloutID: rolloutID)
                logger.say("saved \(lastCheckpoint ?? root)")
            }
            if let template = options.saveHF, last || (options.saveInterval.map { (rolloutID + 1) % $0 == 0 } ?? false) {
                let path = template.replacingAll("{rollout_id}", with: String(rolloutID))
                try TrainingCheckpoint.exportHuggingFace(model: model, to: path, extraFiles: try tokenizerFiles())
            }
        }
        if let interval = options.evaluation.interval, options.numRollout % interval == 0, !evaluationSets.isEmpty {
            try await evaluate(rolloutID: options.numRollout)
        }
        return RunSummary(rollouts: options.numRollout - startRollout, optimizerSteps: trainer.stepCount, lastCheckpoint: lastCheckpoint)
    }

    func shouldEvaluate(_ rolloutID: Int) -> Bool {
        guard let interval = configuration.evaluation.interval, !evaluationSets.isEmpty else { return false }
        if rolloutID == 0 { return !configuration.evaluation.skipBeforeTrain }
        return rolloutID % interval == 0
    }

    /// This rollout's groups: prefetched (`--async`), loaded (`--load-debug-rollout-data`) or generated.
    func rolloutGroups(_ rolloutID: Int) async throws -> [[Sample]] {
        if let path = configuration.loadDebugRolloutData {
            let file = RolloutBatch.debugPath(template: path, rolloutId: rolloutID)
            let batch = try RolloutBatch(parsing: try FileText.read(file), source: file)
            var groups: [[Sample]] = []
            var positions: [Int: Int] = [:]
            for sample in batch.samples {
                let key = sample.groupIndex ?? -(groups.count + 1)
                if let position = positions[key] {
                    groups[position].append(sample)
                } else {
                    positions[key] = groups.count
                    groups.append([sample])
                }
            }
            logger.say("rollout \(rolloutID): \(batch.samples.count) samples loaded from \(file)")
            return groups
        }
        guard let manager else { throw RLError.invalidOption(name: "--debug-train-only", message: "no rollout engine in train-only mode") }
        let result: RolloutResult
        if let prefetched, prefetched.rolloutID == rolloutID {
            result = prefetched.result
            self.prefetched = nil
        } else {
            result = try await manager.generate(rolloutID: rolloutID)
        }
        logger.record(kind: "rollout", rolloutID: rolloutID, step: trainer.stepCount, metrics: result.metrics)
        let value = { (name: String) in result.metrics.first { $0.name == name }?.value ?? 0 }
        logger.say("rollout \(rolloutID): reward \(NumberFormatting.fixed(value("rollout/reward_mean"), 3)), pass \(NumberFormatting.fixed(value("rollout/pass_rate"), 3)), length \(NumberFormatting.fixed(value("rollout/response_length_mean"), 1)), truncated \(NumberFormatting.fixed(value("rollout/truncated_ratio"), 2)), dropped \(NumberFormatting.fixed(value("rollout/filter_drop_ratio"), 2)), \(NumberFormatting.fixed(value("rollout/tokens_per_second"), 0)) tok/s, \(NumberFormatting.fixed(value("rollout/seconds"), 2)) s")
        return result.groups
    }

    /// The trainer refuses samples from weights it never synced (a stale or foreign engine).
    func checkVersions(_ groups: [[Sample]], rolloutID: Int) throws {
        for sample in groups.flatMap({ $0 }) where configuration.loadDebugRolloutData == nil {
            for version in sample.weightVersions where !knownVersions.contains(version) {
                throw RLError.invalidSample(sample: "rollout \(rolloutID) \(sample.name)", field: "weight_versions",
                                            message: "generated with weight version '\(version)', which this trainer never synced (known: \(knownVersions.sorted().joined(separator: ", ")))")
            }
        }
    }

    func record(_ report: PolicyStepMetrics, rolloutID: Int, seconds: Double) {
        var metrics: [(name: String, value: Double)] = report.loss.entries.map { ("train/" + $0.name, $0.value) }
        metrics += [
            ("train/grad_norm", report.step.gradientNorm), ("train/lr", report.step.learningRate),
            ("train/entropy", report.entropyMean), ("train/tokens", Double(report.step.tokens)),
            ("train/tokens_per_second", seconds > 0 ? Double(report.step.tokens) / seconds : 0), ("train/step_seconds", seconds),
        ]
        metrics += report.step.expertLoad.metrics(prefix: "train")
        logger.record(kind: "train", rolloutID: rolloutID, step: report.step.step, metrics: metrics)
        let value = { (name: String) in metrics.first { $0.name == name }?.value ?? 0 }
        logger.say("step \(report.step.step) (rollout \(rolloutID)): loss \(NumberFormatting.fixed(value("train/loss"), 4)), pg \(NumberFormatting.fixed(value("train/pg_loss"), 4)), clipfrac \(NumberFormatting.fixed(value("train/pg_clipfrac"), 3)), kl \(NumberFormatting.fixed(value("train/ppo_kl"), 5)), entropy \(NumberFormatting.fixed(report.entropyMean, 3)), grad \(NumberFormatting.fixed(report.step.gradientNorm, 3)), lr \(report.step.learningRate), \(NumberFormatting.fixed(value("train/tokens_per_second"), 0)) tok/s\(report.loss.trainRolloutLogprobAbsDiff.map { ", train/rollout logprob diff \(NumberFormatting.fixed($0, 5))" } ?? "")")
    }

    /// Tokenizer files copied next to saved weights, so the saved directory is a complete model.
    /// The tokenizer and chat template files saved beside exported weights: the checkpoint's own, or for a GGUF
    /// checkpoint its tokenizer written as Hugging Face files.
    func tokenizerFiles() throws -> [(name: String, contents: [UInt8])] {
        if configuration.hfCheckpoint.hasSuffix(".gguf") { return try HuggingFaceTokenizerExport.files(ggufPath: configuration.hfCheckpoint) }
        return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json"].compactMap { name in
            (try? FileText.readBytes(configuration.hfCheckpoint + "/" + name)).map { (name, $0) }
        }
    }
}

extension String {
    func replacingAll(_ target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
