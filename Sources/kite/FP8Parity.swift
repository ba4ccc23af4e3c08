import ArgumentParser
import KiteCUDA
import KiteJSON
import KiteModels
import KiteTensor

/// A DeepSeek-V3 checkpoint with block-scaled fp8 weights (`Tests/Fixtures/fp8/quantized`, written by
/// `kite convert --bf16-to-fp8`) kept in fp8 on the GPU, as an engine serving it holds it, against the log-probs
/// transformers computes when it dequantises the same checkpoint itself (fp32, `reference.json`).
///
/// - Dequantising every product (`fp8Products` off): the model is the reference's function, so the bounds of
///   the other fixture models hold (1e-4 fp32, 1e-2 bf16 normwise).
/// - fp8 products (bf16 mode): every projection input is also rounded to e4m3 (3 mantissa bits: at most 2^-4
///   relative, about 2.5% root mean square), so each projection's output moves by about that much; bound 5e-2,
///   twice that, on the log-probs. The row says how many tokens the rounding routed to other experts than the
///   dequantised run (not a failure: the fixture's smallest routing margin is 0.019).
/// - The engine serving the fp8 model against the trainer's forward of the same fp8 model on the GPU: both run
///   fp8 products, but on inputs that differ by bf16 rounding (the engine's absorbed latent attention, the
///   trainer's expanded one), and e4m3 rounds those differences up to a whole e4m3 step now and then. Each
///   side is within 5e-2 of the exact function (the row above), so they are within 1e-1 of each other. (This
///   is the train/rollout mismatch of fp8 rollouts that slime's `--use-tis` corrects for.)
struct FP8ModelParity {
    let cuda: CUDABackend
    /// The folder holding `quantized/` and `reference.json`.
    let fixture: String

    func run() async -> [ParityResult] {
        let precision = cuda.precision.rawValue
        let bf16 = cuda.precision == .bf16
        var results: [ParityResult] = []
        let directory = fixture + "/quantized"
        let options = ModelLoadOptions(keepQuantizedWeights: true, log: { _ in })
        do {
            let text = try readText(fixture + "/reference.json")
            let json = try JSONValue(parsing: text, source: fixture + "/reference.json")
            let sequences = (json["sequences"]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.doubleValue).map { Int32($0) } }
            let expected = (json["logprobs"]?.arrayValue ?? []).map { ($0.arrayValue ?? []).compactMap(\.doubleValue).map(Float.init) }
            guard !sequences.isEmpty, sequences.count == expected.count else {
                throw ValidationError("\(fixture)/reference.json: expected 'sequences' and 'logprobs' of the same length")
            }
            let model = try Transformer.load(directory: directory, backend: cuda, options: options)
            guard model.holdsQuantizedWeights else { throw ValidationError("\(directory) loaded without fp8 weights") }
            let packing = PackedSequences(lengths: sequences.map(\.count))
            func logprobs() throws -> (values: [Float], load: ExpertLoad) {
                _ = model.takeExpertLoad()
                let all = try cuda.download(try model.forward(tokens: sequences.flatMap { $0 }, sequences: packing, keepActivations: false).logprobs).toFloats()
                let kept = sequences.indices.flatMap { s in all[packing.range(s).lowerBound..<(packing.range(s).upperBound - 1)] }
                return (kept, model.takeExpertLoad())
            }
            let reference = expected.flatMap { $0 }
            let saved = cuda.fp8Products
            defer { cuda.fp8Products = saved }
            cuda.fp8Products = false
            let dequantised = try logprobs()
            results.append(ParityResult.compare("fp8 deepseek_v3 dequantised products log-probs vs transformers", precision: precision,
                                                cuda: dequantised.values, cpu: reference, tolerance: bf16 ? 1e-2 : 1e-4))
            if bf16 {
                cuda.fp8Products = true
                let before = cuda.blockScaledCounts.withLock { $0 }
                let fp8 = try logprobs()
                let after = cuda.blockScaledCounts.withLock { $0 }
                var moved = 0
                for (layer, counts) in dequantised.load.tokensPerExpert {
                    let other = fp8.load.tokensPerExpert[layer] ?? Array(repeating: 0, count: counts.count)
                    moved += zip(counts, other).reduce(0) { $0 + abs($1.0 - $1.1) } / 2
                }
                var row = ParityResult.compare(
                    "fp8 deepseek_v3 fp8 products (\(after.fp8 - before.fp8) fp8, \(after.dequantised - before.dequantised) dequantised; \(moved) tokens routed elsewhere) log-probs vs transformers",
                    precision: precision, cuda: fp8.values, cpu: reference, tolerance: 5e-2)
                if after.fp8 == before.fp8 { row.failure = "no product ran in fp8" }
                results.append(row)
            }
        } catch {
            results.append(.failed("fp8 deepseek_v3 log-probs", precision: precision, error))
        }
        results.append(await EngineParity(cuda: cuda).againstTrainer(name: "fp8 deepseek_v3", newTokens: 8, promptLengths: [3, 17, 40], bf16Tolerance: 1e-1) {
            try Transformer.load(directory: directory, backend: cuda, options: options)
        })
        return results
    }
}
