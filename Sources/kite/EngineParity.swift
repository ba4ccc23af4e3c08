import KiteCUDA
import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor

/// The engine on the GPU against the trainer's forward on the same GPU: a random Qwen3-shaped model (head
/// size 128) samples continuations of prompts of several lengths (n = 2 each, so groups fork), and the
/// trainer's packed forward scores every sampled token. In deterministic mode the two log-probs must be the
/// same bits; otherwise they agree to bf16 rounding. Graph replay and eager decode must give the same tokens.
struct EngineParity {
    let cuda: CUDABackend

    func run() async -> [ParityResult] {
        let precision = cuda.deterministic ? "bf16 det" : cuda.precision.rawValue
        do {
            let config = try qwen3SmallConfig(layers: 2, vocabulary: 1024, hidden: 256, intermediate: 512, heads: 4, kvHeads: 2, headDim: 128)
            let trainer = try Transformer.randomlyInitialized(config: config, seed: 11, backend: cuda, standardDeviation: 0.05)
            let engineModel = try trainer.clone(matrixDType: cuda.computeDType)
            var generator = SeededGenerator(seed: 12)
            let prompts = [5, 30, 64, 100, 17, 250].map { length in (0..<length).map { _ in Int32(generator.next() % 1024) } }
            var runs: [[GenerationResult]] = []
            // Graph steps, eager steps, and graph steps as two overlapped half batches (from 4 rows up).
            for (graphs, overlap) in [(true, false), (false, false), (true, true)] {
                var options = EngineOptions()
                options.maxTotalTokens = 16_384
                options.disableCUDAGraph = !graphs
                options.enableTwoBatchOverlap = overlap
                options.twoBatchOverlapMinimumBatch = 4
                let engine = try InferenceEngine(model: engineModel, options: options)
                defer { engine.shutdown() }
                var sampling = SamplingParameters()
                sampling.temperature = 1
                sampling.maxNewTokens = 40
                sampling.ignoreEOS = true
                sampling.n = 2
                sampling.seed = 99
                let requests = prompts.enumerated().map { GenerationRequest(id: "parity-\(graphs)-\(overlap)-\($0.offset)", promptTokens: $0.element, sampling: sampling) }
                let results = try await withThrowingTaskGroup(of: (Int, [GenerationResult]).self) { group in
                    for (index, request) in requests.enumerated() { group.addTask { (index, try await engine.generate(request)) } }
                    var collected = [[GenerationResult]](repeating: [], count: requests.count)
                    for try await (index, result) in group { collected[index] = result }
                    return collected
                }
                runs.append(results.flatMap { $0 })
            }
            var results: [ParityResult] = []
            // Graph steps pad the batch and the block table, eager ones do not; outside deterministic mode the
            // padding changes the decode kernel's split and the products' algorithms, so a sample drawn at T = 1
            // may part ways at a near tie, and everything after differs. So: deterministic mode must give the
            // same tokens; otherwise the two runs' log-probs must agree (bf16 rounding) wherever their tokens
            // still agree, and the tokens must agree over at least half of all positions (a broken replay
            // parts ways at once).
            let differingSamples = zip(runs[0], runs[1]).filter { $0.outputTokens != $1.outputTokens }.count
            if cuda.deterministic {
                results.append(ParityResult(name: "engine tokens: graph steps = eager steps (share of samples differing)", precision: precision,
                                            maxAbsoluteError: Double(differingSamples), relativeError: Double(differingSamples) / Double(max(runs[0].count, 1)),
                                            tolerance: 0, failure: nil))
            } else {
                results += agreement("graph steps", "\(differingSamples)/\(runs[0].count) samples part", runs[0], eager: runs[1], precision: precision)
            }
            // Two-batch overlap: the halves' forwards are the same operations on fewer rows, so the replayed
            // graph must give the eager steps' log-probs wherever the tokens agree (in deterministic mode,
            // everywhere and to the bit).
            results += agreement("two-batch-overlap graph steps", nil, runs[2], eager: runs[1], precision: precision)
            // The trainer's forward over prompt + response, packed.
            let samples = runs[0]
            let sequences = samples.map { prompts[Int($0.requestID.split(separator: "-").last.map(String.init) ?? "0") ?? 0] + $0.outputTokens }
            let packing = PackedSequences(lengths: sequences.map(\.count))
            let scored = try cuda.download(try trainer.forward(tokens: sequences.flatMap { $0 }, sequences: packing, temperature: 1, keepActivations: false).logprobs).toFloats()
            var engine: [Float] = [], reference: [Float] = []
            for (s, sample) in samples.enumerated() {
                let first = packing.range(s).lowerBound + sequences[s].count - sample.outputTokens.count - 1
                engine += sample.outputLogprobs
                reference += scored[first..<(first + sample.outputTokens.count)]
            }
            let differing = zip(engine, reference).filter { $0.bitPattern != $1.bitPattern }.count
            if cuda.deterministic {
                results.append(ParityResult(name: "engine log-probs = trainer's (bits; share differing)", precision: precision,
                                            maxAbsoluteError: zip(engine, reference).map { Double(abs($0 - $1)) }.max() ?? 0,
                                            relativeError: Double(differing) / Double(max(engine.count, 1)), tolerance: 0, failure: nil))
            } else {
                results.append(ParityResult.compare("engine log-probs vs trainer's (\(differing)/\(engine.count) differ)", precision: precision,
                                                    cuda: engine, cpu: reference, tolerance: 1e-2))
            }
            return results
        } catch {
            return [.failed("engine vs trainer", precision: precision, error)]
        }
    }
}

extension EngineParity {
    /// Where two runs' samples agree token for token (each pair up to where it parts), their log-probs must
    /// agree within bf16 rounding, and the agreeing positions must be at least half of all (deterministic
    /// mode: all of them, to the bit).
    func agreement(_ name: String, _ detail: String?, _ runs: [GenerationResult], eager: [GenerationResult], precision: String) -> [ParityResult] {
        var logprobs: [Float] = [], eagerLogprobs: [Float] = []
        var total = 0
        for (sample, reference) in zip(runs, eager) {
            let common = zip(sample.outputTokens, reference.outputTokens).prefix { $0 == $1 }.count
            logprobs += sample.outputLogprobs.prefix(common)
            eagerLogprobs += reference.outputLogprobs.prefix(common)
            total += sample.outputTokens.count
        }
        return [
            ParityResult(name: "engine tokens: \(name) = eager steps (share of positions after a parting\(detail.map { "; \($0)" } ?? ""))",
                         precision: precision, maxAbsoluteError: Double(total - logprobs.count),
                         relativeError: 1 - Double(logprobs.count) / Double(max(total, 1)), tolerance: cuda.deterministic ? 0 : 0.5, failure: nil),
            ParityResult.compare("engine log-probs: \(name) vs eager steps, before parting", precision: precision,
                                 cuda: logprobs, cpu: eagerLogprobs, tolerance: cuda.deterministic ? 0 : 1e-2),
        ]
    }
}

extension EngineParity {
    /// The engine on mixture-of-experts and latent-attention fixtures (Qwen3-MoE; DeepSeek-V3 with a query
    /// bottleneck and interleaved RoPE): prompts of several lengths, scored by the trainer's packed forward
    /// on the same GPU. One new token per prompt checks prefill alone (latent attention absorbed over the
    /// paged cache, experts dispatched from the prefill batch); eight check decode steps too. Tolerance as the
    /// dense check's: bf16 rounding (both compute the same function through different products), unless a
    /// router near a tie sends a token elsewhere.
    func sparseFixtures(directory fixtures: String) async -> [ParityResult] {
        var results: [ParityResult] = []
        for name in ["qwen3_moe", "deepseek_v3"] {
            for newTokens in [1, 8] {
                results.append(await againstTrainer(name: name, newTokens: newTokens, promptLengths: [3, 17, 40]) {
                    try Transformer.load(directory: "\(fixtures)/\(name)", backend: cuda)
                })
            }
        }
        return results
    }

    /// The engine on a random DeepSeek-V3 with the real latent sizes (kv_lora_rank 512, qk_rope_head_dim 64,
    /// qk_nope_head_dim 128, v_head_dim 128; a query bottleneck of 64, 4 heads, a dense layer and a sparse
    /// one of 8 experts, vocabulary 512): its paged cache holds 576-number rows, so prefill chunks and decode
    /// steps run the wide attention kernel, against the trainer's expanded forward (head sizes 192 / 128).
    /// Prefill in chunks of 32 tokens, so the longer prompts' later chunks attend over cached context.
    func latentFullSize() async -> [ParityResult] {
        var results: [ParityResult] = []
        for newTokens in [1, 8] {
            results.append(await againstTrainer(name: "deepseek_v3 latent 512 + 64", newTokens: newTokens, promptLengths: [3, 17, 40, 100], chunk: 32) {
                let object: JSONObject = [
                    "model_type": "deepseek_v3", "vocab_size": 512, "hidden_size": 256, "intermediate_size": 256, "moe_intermediate_size": 64,
                    "num_hidden_layers": 2, "first_k_dense_replace": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
                    "q_lora_rank": 64, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128, "head_dim": 64,
                    "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2,
                    "norm_topk_prob": true, "routed_scaling_factor": 2.5, "rope_interleave": true, "rope_theta": 10000,
                    "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "tie_word_embeddings": false, "attention_bias": false, "hidden_act": "silu",
                ]
                let config = try ModelConfig(json: object, source: "deepseek_v3 (latent 512 + 64, 2 layers)")
                return try Transformer.randomlyInitialized(config: config, seed: 31, backend: cuda, standardDeviation: 0.05)
            })
        }
        return results
    }

    /// Prompts of `promptLengths` served by the engine (`newTokens` sampled each: 1 is prefill alone, more
    /// adds decode steps), the sampled tokens' log-probs against the trainer's packed forward.
    /// `bf16Tolerance` replaces the bf16 bound (1e-2) where the model's own arithmetic is coarser (fp8 products).
    func againstTrainer(
        name: String, newTokens: Int, promptLengths: [Int], chunk: Int? = nil, bf16Tolerance: Double = 1e-2, model: () throws -> Transformer
    ) async -> ParityResult {
        let precision = cuda.precision.rawValue
        let label = "engine \(name) \(newTokens == 1 ? "prefill" : "prefill + \(newTokens - 1) decode steps")"
        do {
            let trainer = try model()
            let engineModel = try trainer.clone(matrixDType: cuda.computeDType)
            let vocabulary = trainer.config.vocabularySize
            var generator = SeededGenerator(seed: 21)
            let prompts = promptLengths.map { length in (0..<length).map { _ in Int32(generator.next() % UInt64(vocabulary)) } }
            var options = EngineOptions()
            options.maxTotalTokens = 4096
            if let chunk { options.chunkedPrefillSize = chunk }
            let engine = try InferenceEngine(model: engineModel, options: options)
            defer { engine.shutdown() }
            var sampling = SamplingParameters()
            sampling.temperature = 1
            sampling.maxNewTokens = newTokens
            sampling.ignoreEOS = true
            sampling.seed = 5
            var samples: [GenerationResult] = []
            for (index, prompt) in prompts.enumerated() {
                samples += try await engine.generate(GenerationRequest(id: "\(name)-\(newTokens)-\(index)", promptTokens: prompt, sampling: sampling))
            }
            let sequences = zip(prompts, samples).map { $0 + $1.outputTokens }
            let packing = PackedSequences(lengths: sequences.map(\.count))
            let scored = try cuda.download(try trainer.forward(tokens: sequences.flatMap { $0 }, sequences: packing, temperature: 1, keepActivations: false).logprobs).toFloats()
            var engineLogprobs: [Float] = [], reference: [Float] = []
            for (s, sample) in samples.enumerated() {
                let first = packing.range(s).lowerBound + prompts[s].count - 1
                engineLogprobs += sample.outputLogprobs
                reference += scored[first..<(first + sample.outputTokens.count)]
            }
            return ParityResult.compare("\(label) log-probs vs trainer's", precision: precision, cuda: engineLogprobs, cpu: reference,
                                        tolerance: cuda.precision == .bf16 ? bf16Tolerance : 1e-4)
        } catch {
            return .failed(label, precision: precision, error)
        }
    }
}
