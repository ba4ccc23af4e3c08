import ArgumentParser
import KiteTensor

/// `kite bench moe`: the mixture-of-experts feed-forward as Kite computes it (route, dispatch by expert, one
/// grouped product per projection, combine) against a loop over experts (transformers' eager way: for each
/// expert, gather its tokens, three products, weigh and add back), on the CPU backend, same routing, same run.
struct BenchMoE: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moe",
        abstract: "Throughput of Kite's grouped expert path vs a loop over experts, forward, on the CPU."
    )

    @Option(help: "Threads of the CPU backend.")
    var threads: Int = 2

    @Option(help: "Seconds to spend measuring each case, per implementation.")
    var seconds: Double = 3

    @Option(help: "Hidden size.")
    var hidden: Int = 1024

    @Option(help: "Width of each expert's MLP (moe_intermediate_size).")
    var width: Int = 384

    @Option(help: "Routed experts.")
    var experts: Int = 64

    @Option(name: .customLong("top-k"), help: "Experts per token.")
    var topK: Int = 8

    @Option(name: .customLong("tokens"), help: "Tokens per forward (repeatable): a prefill- and a decode-sized batch by default.")
    var tokenCounts: [Int] = [512, 16]

    func validate() throws {
        guard threads >= 1, seconds > 0, hidden > 0, width > 0, experts >= topK, topK >= 1, tokenCounts.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("threads, seconds, sizes and token counts must be positive, and experts >= top-k")
        }
    }

    func run() async throws {
        let backend = CPUBackend(threads: threads)
        var generator = SeededGenerator(seed: 11)
        func random(_ shape: [Int], _ scale: Double) -> Tensor {
            Tensor((0..<shape.reduce(1, *)).map { _ in Float((generator.nextUnitDouble() * 2 - 1) * scale) }, shape: shape)
        }
        let router = random([experts, hidden], 0.5)
        let gates = (0..<experts).map { _ in random([width, hidden], 0.05) }
        let ups = (0..<experts).map { _ in random([width, hidden], 0.05) }
        let downs = (0..<experts).map { _ in random([hidden, width], 0.05) }
        let routing = RoutingParameters(scoring: .softmax, topK: topK, normalize: true)
        print("hidden \(hidden), expert width \(width), \(experts) experts, top-\(topK), \(threads) threads; forward, medians of alternating calls")
        print("tokens   grouped tok/s   loop tok/s   grouped/loop   max |difference|")
        for tokens in tokenCounts {
            let x = random([tokens, hidden], 1)
            // Alternate the two so that both see the same load on a shared machine; medians of each.
            var grouped = try groupedForward(backend, x, router, gates, ups, downs, routing)
            var looped = try loopForward(backend, x, router, gates, ups, downs, routing)
            var groupedTimes: [Double] = [], loopTimes: [Double] = []
            let start = Stopwatch.now()
            while Stopwatch.now() - start < 2 * seconds || groupedTimes.count < 5 {
                var t0 = Stopwatch.now()
                grouped = try groupedForward(backend, x, router, gates, ups, downs, routing)
                groupedTimes.append(Stopwatch.now() - t0)
                t0 = Stopwatch.now()
                looped = try loopForward(backend, x, router, gates, ups, downs, routing)
                loopTimes.append(Stopwatch.now() - t0)
            }
            let groupedTime = groupedTimes.sorted()[groupedTimes.count / 2], loopTime = loopTimes.sorted()[loopTimes.count / 2]
            let difference = zip(grouped.toFloats(), looped.toFloats()).map { abs($0 - $1) }.max() ?? 0
            let label = "\(tokens)".padding(9)
            print("\(label)\(format(Double(tokens) / groupedTime).padding(16))\(format(Double(tokens) / loopTime).padding(13))\(format(loopTime / groupedTime).padding(15))\(difference)")
        }
    }

    /// Kite's path, as `MixtureOfExperts` runs it.
    func groupedForward(_ backend: CPUBackend, _ x: Tensor, _ router: Tensor, _ gates: [Tensor], _ ups: [Tensor], _ downs: [Tensor], _ routing: RoutingParameters) throws -> Tensor {
        let logits = try backend.matmul(x, router, transposeA: false, transposeB: true)
        let (weights, chosen) = try backend.route(logits: logits, correctionBias: nil, parameters: routing)
        let (rows, plan) = try backend.dispatch(x, experts: chosen, expertCount: gates.count)
        let sizes = plan.tokensPerExpert
        let gate = try backend.groupedMatmul(rows, weights: gates, groupSizes: sizes, transposeWeights: true)
        let up = try backend.groupedMatmul(rows, weights: ups, groupSizes: sizes, transposeWeights: true)
        let activated = try backend.swiglu(gate: gate, up: up)
        let outputs = try backend.groupedMatmul(activated, weights: downs, groupSizes: sizes, transposeWeights: true)
        return try backend.combine(outputs, weights: weights, plan: plan)
    }

    /// The baseline: one expert at a time over the tokens that chose it.
    func loopForward(_ backend: CPUBackend, _ x: Tensor, _ router: Tensor, _ gates: [Tensor], _ ups: [Tensor], _ downs: [Tensor], _ routing: RoutingParameters) throws -> Tensor {
        let logits = try backend.matmul(x, router, transposeA: false, transposeB: true)
        let (weights, chosen) = try backend.route(logits: logits, correctionBias: nil, parameters: routing)
        let (tokens, hidden, k) = (x.shape[0], x.shape[1], routing.topK)
        let choices = chosen.toInt32s(), gateWeights = weights.toFloats()
        let output = Tensor(zeros: [tokens, hidden])
        let out = output.floats
        for expert in 0..<gates.count {
            var rows: [Int32] = [], scales: [Float] = []
            for t in 0..<tokens {
                for j in 0..<k where choices[t * k + j] == Int32(expert) {
                    rows.append(Int32(t))
                    scales.append(gateWeights[t * k + j])
                }
            }
            guard !rows.isEmpty else { continue }
            let input = try backend.gatherRows(x, rows: rows)
            let gate = try backend.matmul(input, gates[expert], transposeA: false, transposeB: true)
            let up = try backend.matmul(input, ups[expert], transposeA: false, transposeB: true)
            let product = try backend.matmul(try backend.swiglu(gate: gate, up: up), downs[expert], transposeA: false, transposeB: true)
            let result = product.floats
            for (i, row) in rows.enumerated() {
                for c in 0..<hidden { out[Int(row) * hidden + c] += scales[i] * result[i * hidden + c] }
            }
        }
        return output
    }
}
