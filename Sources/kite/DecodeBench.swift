import ArgumentParser
import KiteCUDA
import KiteEngine
import KiteJSON
import KiteModels
import KiteTensor
#if canImport(Glibc)
import Glibc
#endif

struct BenchDecode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Engine generation throughput on the GPU (paged bf16 cache, device sampling, graphs) next to the HBM roofline.",
        discussion: """
            A model of the given shape (Qwen3-0.6B by default) with random bf16 weights; for each batch size B, B \
            requests of --prompt random tokens each generate --new tokens greedily (EOS ignored), all submitted at \
            once, as HF generate's benchmark does. Reports output tokens/s over the whole run (prefill included), the \
            decode steps alone, and the roofline: B tokens per (bytes of weights + bytes of cache read per step) / \
            bandwidth, the cache read averaged over the run; bandwidth measured by a device-to-device copy here, \
            or --bandwidth.
            """
    )

    @Option(help: "Transformer layers.") var layers = 28
    @Option(help: "Vocabulary size.") var vocabulary = 151_936
    @Option(help: "Hidden size.") var hidden = 1024
    @Option(help: "MLP size.") var intermediate = 3072
    @Option(help: "Query heads.") var heads = 16
    @Option(name: .customLong("kv-heads"), help: "Key/value heads.") var kvHeads = 8
    @Option(name: .customLong("head-dim"), help: "Head size.") var headDim = 128
    @Option(help: "Batch sizes, comma separated.") var batches = "1,64,256"
    @Option(help: "Prompt tokens per request.") var prompt = 512
    @Option(name: .customLong("new"), help: "New tokens per request.") var newTokens = 512
    @Option(name: .customLong("mem-fraction-static"), help: "Share of GPU memory for weights and cache.") var memFractionStatic = 0.85
    @Option(help: "CUDA graphs for decode steps: on, off or both (one engine each).") var graphs = "both"
    @Option(name: .customLong("two-batch-overlap"), help: "With graphs: decode steps of 128 and more rows as two overlapped halves: on, off or both.")
    var twoBatchOverlap = "off"
    @Option(name: .customLong("overlap-schedule"), help: "Queue each decode step before the last one's tokens are read (EngineOptions.disableOverlapSchedule): on, off, both (on, off), or a comma-separated order such as off,on,off,on (one engine each, for A/B/A/B runs).")
    var overlapSchedule = "on"

    @Flag(help: "Batch-invariant kernels (--deterministic).") var deterministic = false
    @Option(help: "Bandwidth for the roofline in TB/s; default: measured here.") var bandwidth: Double?
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Flag(help: "After the graphs-off runs, profile 32 decode steps per batch size (16-token prompts): GPU time per step by operation.")
    var profile = false

    /// The overlap-schedule setting of each engine, in run order; nil for a bad value.
    var scheduleModes: [Bool]? {
        if overlapSchedule == "both" { return [true, false] }
        let modes = overlapSchedule.split(separator: ",").map { $0.trimmingPrefix(" ") }
        guard !modes.isEmpty, modes.allSatisfy({ $0 == "on" || $0 == "off" }) else { return nil }
        return modes.map { $0 == "on" }
    }

    var batchSizes: [Int] { batches.split(separator: ",").compactMap { Int($0.trimmingPrefix(" ")) } }

    func validate() throws {
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 > 0 }) else { throw ValidationError("--batches: expected positive sizes like 1,64,256") }
        guard ["on", "off", "both"].contains(graphs) else { throw ValidationError("--graphs must be on, off or both") }
        guard ["on", "off", "both"].contains(twoBatchOverlap) else { throw ValidationError("--two-batch-overlap must be on, off or both") }
        guard scheduleModes != nil else { throw ValidationError("--overlap-schedule must be on, off, both or a list like off,on,off,on") }
        guard prompt > 0, newTokens > 0, layers > 0 else { throw ValidationError("sizes must be positive") }
    }

    func run() async throws {
        let backend = try CUDABackend(precision: .bf16, deterministic: deterministic)
        print(backend.summary())
        let measured = try copyBandwidth(backend)
        let bytesPerSecond = bandwidth.map { $0 * 1e12 } ?? measured
        print("device-to-device copy: \(format(measured / 1e12)) TB/s (read + write); roofline at \(format(bytesPerSecond / 1e12)) TB/s")
        print("read-only stream (XOR of 4 GB): \(format(try readBandwidth(backend) / 1e12)) TB/s")
        let config = try qwen3SmallConfig(layers: layers, vocabulary: vocabulary, hidden: hidden, intermediate: intermediate, heads: heads, kvHeads: kvHeads, headDim: headDim)
        // KITE_FUSED_INFERENCE=0: separate q/k/v and gate/up weights and the separate kernels (the version before fusion).
        let model = try randomModel(config, backend: backend).clone(matrixDType: .bf16, stackProjections: backend.fusesInference)
        print("fused inference kernels and stacked projections: \(backend.fusesInference ? "on" : "off (KITE_FUSED_INFERENCE=0)")")
        try backend.synchronize()
        let weightBytes = model.parameters.entries.reduce(0) { $0 + $1.1.byteCount }
        let cachePerToken = layers * kvHeads * headDim * 2 * 2
        print("\(model.parameters.elementCount) parameters, \(format(Double(weightBytes) / 1e9)) GB of weights; cache \(cachePerToken) bytes per token")

        // The decode attention kernel alone, one layer, at the run's average context.
        var attentionRows: [JSONValue] = []
        let averageContext = prompt + (newTokens + 1) / 2
        // Every kernel variant at every batch size in the same run (the served one first, then the others).
        let configured = getenv("KITE_DECODE_VARIANT").map { String(cString: $0) }
        for batch in batchSizes {
            let served = DecodeAttentionKernels.servedVariant(pairs: batch * kvHeads, multiprocessors: backend.context.multiprocessorCount)
            for variant in [served] + DecodeAttentionKernels.variants.filter({ $0 != served }) {
                setenv("KITE_DECODE_VARIANT", variant, 1)
                defer {
                    if let configured { setenv("KITE_DECODE_VARIANT", configured, 1) } else { unsetenv("KITE_DECODE_VARIANT") }
                }
                let (milliseconds, bytes) = try attentionTime(backend, batch: batch, context: averageContext)
                print("decode attention (\(variant)\(variant == served ? ", served" : "")), batch \(batch), context \(averageContext): \(format(milliseconds * 1000)) us per layer, \(format(Double(bytes) / milliseconds / 1e9)) TB/s of cache read")
                attentionRows.append(["batch": .int(batch), "context": .int(averageContext), "variant": .string(variant), "us": .double(milliseconds * 1000),
                                      "tb_per_s": .double(Double(bytes) / milliseconds / 1e9)])
            }
        }

        var rows: [JSONValue] = []
        let overlapModes = twoBatchOverlap == "both" ? [false, true] : [twoBatchOverlap == "on"]
        let scheduleModes = self.scheduleModes ?? [true]
        let modes = (graphs == "both" ? [true, false] : [graphs == "on"]).flatMap { graphs in
            graphs ? overlapModes.map { (graphs: true, overlap: $0) } : [(graphs: false, overlap: false)]
        }.flatMap { mode in scheduleModes.map { (graphs: mode.graphs, overlap: mode.overlap, schedule: $0) } }
        for (useGraphs, overlap, overlappedSchedule) in modes {
            var options = EngineOptions()
            options.enableTwoBatchOverlap = overlap
            options.disableOverlapSchedule = !overlappedSchedule
            options.memFractionStatic = memFractionStatic
            options.maxRunningRequests = batchSizes.max() ?? 1
            options.chunkedPrefillSize = 16_384
            options.disableRadixCache = true
            options.contextLength = prompt + newTokens + 1
            options.disableCUDAGraph = !useGraphs
            let engine = try InferenceEngine(model: model, options: options)
            defer { engine.shutdown() }
            let capacity = await engine.statistics()
            print("graphs \(useGraphs ? "on" : "off")\(useGraphs ? ", two-batch overlap \(overlap ? "on" : "off")" : ""), overlap schedule \(overlappedSchedule ? "on" : "off"): cache of \(capacity.cacheTokens) tokens (\(capacity.cacheDType))")
            print("batch   tokens/s   decode tokens/s   roofline tokens/s   vs roofline (all, decode)   graph replays   host ms/step")
            for batch in batchSizes {
                _ = try await generate(engine, batch: batch, newTokens: 3, seed: 7)
                let before = await engine.statistics()
                let start = Stopwatch.now()
                try await generate(engine, batch: batch, newTokens: newTokens, seed: 11)
                let seconds = Stopwatch.now() - start
                let after = await engine.statistics()
                let throughput = Double(batch * newTokens) / seconds
                let decodeTokens = after.decodeTokens - before.decodeTokens
                let decodeRate = Double(decodeTokens) / max(after.decodeSeconds - before.decodeSeconds, 1e-9)
                let steps = Double(max(after.decodeSteps - before.decodeSteps, 1))
                let hostMilliseconds = 1000 * (after.decodeHostSeconds - before.decodeHostSeconds) / steps
                let phases = after.decodeHostPhases.millisecondsPerStep(since: before.decodeHostPhases, steps: after.decodeSteps - before.decodeSteps)
                let averageContext = Double(prompt) + Double(newTokens + 1) / 2
                let bytesPerStep = Double(weightBytes) + Double(batch) * averageContext * Double(cachePerToken)
                let roofline = Double(batch) * bytesPerSecond / bytesPerStep
                print("\(String(batch).padding(7)) \(format(throughput).padding(10)) \(format(decodeRate).padding(17)) \(format(roofline).padding(19)) \(format(100 * throughput / roofline))%, \(format(100 * decodeRate / roofline))%".padding(86) + " \(String(after.graphReplays - before.graphReplays).padding(15)) \(format(hostMilliseconds))")
                print("        host ms per decode step: " + phases.map { "\($0.name) \(format($0.milliseconds))" }.joined(separator: ", "))
                rows.append(["batch": .int(batch), "graphs": .bool(useGraphs), "two_batch_overlap": .bool(overlap), "overlap_schedule": .bool(overlappedSchedule), "deterministic": .bool(deterministic), "tokens_per_s": .double(throughput),
                             "decode_tokens_per_s": .double(decodeRate), "roofline_tokens_per_s": .double(roofline), "seconds": .double(seconds),
                             "decode_steps": .int(after.decodeSteps - before.decodeSteps), "graph_replays": .int(after.graphReplays - before.graphReplays),
                             "graph_captures": .int(after.graphCaptures), "host_ms_per_decode_step": .double(hostMilliseconds),
                             "host_ms_per_decode_step_by_phase": .object(JSONObject(phases.map { ($0.name, JSONValue.double($0.milliseconds)) }))])
            }
            for failure in await engine.statistics().graphCaptureFailures { print("graph capture failed (steps ran eagerly): \(failure)") }
            if profile && !useGraphs {
                for batch in batchSizes {
                    backend.profiler.start()
                    let before = await engine.statistics()
                    try await generate(engine, batch: batch, newTokens: 33, seed: 13, promptLength: 16)
                    let steps = max((await engine.statistics()).decodeSteps - before.decodeSteps, 1)
                    let report = try backend.profiler.stop()
                    print("profile, batch \(batch), \(steps) decode steps (+1 prefill step), GPU ms per decode step by operation:")
                    for operation in report.operations.sorted(by: { $0.milliseconds > $1.milliseconds }) {
                        print("  \(operation.name.padding(44)) \(format(operation.milliseconds / Double(steps)).padding(8)) ms  \(format(Double(operation.calls) / Double(steps))) calls")
                    }
                }
            }
            // The next engine sizes its cache from free memory: hand this one's back first.
            await engine.releaseMemory()
        }
        if let json {
            let object: JSONObject = ["device": .string(backend.summary()), "copy_tb_per_s": .double(measured / 1e12), "roofline_tb_per_s": .double(bytesPerSecond / 1e12),
                                      "parameters": .int(model.parameters.elementCount), "weight_bytes": .int(weightBytes), "prompt": .int(prompt), "new": .int(newTokens),
                                      "runs": .array(rows), "attention": .array(attentionRows)]
            try writeText(JSONValue.object(object).serialized(.python), to: json)
        }
    }

    /// Median time of one layer's decode attention over `batch` sequences of `context` cached tokens in
    /// scattered blocks of 16, and the cache bytes it must read.
    func attentionTime(_ backend: CUDABackend, batch: Int, context: Int) throws -> (milliseconds: Double, bytes: Int) {
        let blockSize = 16, width = (context + 15) / 16
        let slots = batch * width * blockSize
        let keys = try backend.zeros([slots, kvHeads, headDim], dtype: .bf16), values = try backend.zeros([slots, kvHeads, headDim], dtype: .bf16)
        try backend.fillNormal(keys, seed: 5, standardDeviation: 1)
        try backend.fillNormal(values, seed: 6, standardDeviation: 1)
        let query = try backend.zeros([batch, heads, headDim], dtype: .bf16)
        try backend.fillNormal(query, seed: 7, standardDeviation: 1)
        var generator = SeededGenerator(seed: 8)
        var blocks = (0..<Int32(batch * width)).map { $0 }
        blocks.shuffle(using: &generator)
        let table = try backend.upload(Tensor(int32: blocks, shape: [batch, width]))
        let lengths = try backend.upload(Tensor(int32: [Int32](repeating: Int32(context), count: batch)))
        let scale = 1 / Float(headDim).squareRoot()
        let start = try backend.context.makeEvent(), end = try backend.context.makeEvent()
        var times: [Double] = []
        for _ in 0..<23 {
            try start.record(on: backend.context.stream)
            _ = try backend.pagedDecodeAttention(query: query, keyCache: keys, valueCache: values, blockTable: table, contextLengths: lengths,
                                                 blockSize: blockSize, maxContextLength: width * blockSize, scale: scale)
            try end.record(on: backend.context.stream)
            try end.synchronize()
            times.append(try end.milliseconds(since: start))
        }
        return (times.dropFirst(3).sorted()[10], batch * context * kvHeads * headDim * 2 * 2)
    }

    /// Runs `batch` greedy requests of random prompts to completion.
    @discardableResult
    func generate(_ engine: InferenceEngine, batch: Int, newTokens: Int, seed: UInt64, promptLength: Int? = nil) async throws -> Int {
        let prompt = promptLength ?? self.prompt
        var generator = SeededGenerator(seed: seed)
        var sampling = SamplingParameters()
        sampling.temperature = 0
        sampling.maxNewTokens = newTokens
        sampling.ignoreEOS = true
        let requests = (0..<batch).map { index in
            GenerationRequest(id: "decode-\(seed)-\(index)", promptTokens: (0..<prompt).map { _ in Int32(generator.next() % UInt64(vocabulary)) }, sampling: sampling)
        }
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for request in requests { group.addTask { try await engine.generate(request).reduce(0) { $0 + $1.outputTokens.count } } }
            var total = 0
            for try await count in group { total += count }
            return total
        }
    }
}

/// Random weights filled on the GPU (normal(0, 0.02) matrices, unit norms), fp32 masters.
func randomModel(_ config: ModelConfig, backend: CUDABackend) throws -> Transformer {
    let parameters = ParameterSet()
    for (index, (name, shape)) in Transformer.parameterShapes(config).enumerated() {
        let tensor = try backend.zeros(shape, dtype: .f32)
        if name.hasSuffix("norm.weight") { try backend.fill(tensor, with: 1) } else {
            try backend.fillNormal(tensor, seed: UInt64(index + 1), standardDeviation: 0.02)
        }
        parameters.insert(name, tensor)
    }
    return try Transformer(config: config, parameters: parameters, backend: backend)
}

/// Bytes read plus written per second by a 1 GiB device-to-device copy, median of 10.
/// Bytes per second of a kernel that only reads (`wordXorPartials` over 4 GB): how fast this GPU reads,
/// the ceiling of decode attention, which reads the cache and writes almost nothing.
func readBandwidth(_ backend: CUDABackend) throws -> Double {
    let source = try backend.zeros([1 << 30], dtype: .f32)
    try backend.fillNormal(source, seed: 4, standardDeviation: 1)
    let start = try backend.context.makeEvent(), end = try backend.context.makeEvent()
    var times: [Double] = []
    for _ in 0..<12 {
        try start.record(on: backend.context.stream)
        _ = try backend.wordXorPartials(source)
        try end.record(on: backend.context.stream)
        try end.synchronize()
        times.append(try end.milliseconds(since: start))
    }
    return Double(source.byteCount) / (times.dropFirst(2).sorted()[5] / 1000)
}

func copyBandwidth(_ backend: CUDABackend) throws -> Double {
    let count = 1 << 28
    let source = try backend.zeros([count], dtype: .f32), destination = try backend.zeros([count], dtype: .f32)
    try backend.fillNormal(source, seed: 3, standardDeviation: 1)
    let start = try backend.context.makeEvent(), end = try backend.context.makeEvent()
    var times: [Double] = []
    for _ in 0..<12 {
        try start.record(on: backend.context.stream)
        try backend.copy(source, into: destination)
        try end.record(on: backend.context.stream)
        try end.synchronize()
        times.append(try end.milliseconds(since: start))
    }
    let median = times.dropFirst(2).sorted()[5]
    return 2 * Double(count * 4) / (median / 1000)
}
