import ArgumentParser
import KiteCUDA
import KiteJSON
import KiteModels
import KiteTensor
import KiteTrain

struct BenchTrainStep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-step",
        abstract: "One training step of a Qwen3-0.6B-shaped model with random weights on the GPU: forward, backward, AdamW.",
        discussion: """
            Packed batch of --batch sequences of --sequence tokens; loss = mean negative log-prob of each next token \
            (what transformers' causal-LM loss computes); fp32 master weights and AdamW moments, bf16 activations. \
            Reports tokens/s, MFU (6 N tokens + causal attention FLOPs, as scripts/reference/gpu/train_step.py counts \
            them, against 989 TFLOP/s), peak memory, and the GPU time per op family of one profiled step.
            """
    )

    @Option(help: "Sequences per step.") var batch: Int = 8
    @Option(help: "Tokens per sequence.") var sequence: Int = 2048
    @Option(help: "Transformer layers (28 for Qwen3-0.6B).") var layers: Int = 28
    @Option(help: "Untimed steps after the first.") var warmup: Int = 2
    @Option(help: "Timed steps.") var steps: Int = 5
    @Option(help: "Memory strategy: caching or driver.") var allocator: String = "caching"
    @Option(help: "GPU precision: bf16 or fp32.") var precision: String = "bf16"
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func validate() throws {
        guard batch > 0, sequence > 1, layers > 0, warmup >= 0, steps > 0 else { throw ValidationError("sizes and step counts must be positive") }
        guard DeviceMemoryPool.Strategy(rawValue: allocator) != nil else { throw ValidationError("--allocator must be caching or driver") }
        guard CUDABackend.Precision(rawValue: precision) != nil else { throw ValidationError("--precision must be bf16 or fp32") }
    }

    func run() async throws {
        let backend = try CUDABackend(precision: CUDABackend.Precision(rawValue: precision) ?? .bf16,
                                      allocator: DeviceMemoryPool.Strategy(rawValue: allocator))
        print(backend.summary())
        let config = try qwen3SmallConfig(layers: layers)
        let parameters = ParameterSet()
        for (index, (name, shape)) in Transformer.parameterShapes(config).enumerated() {
            let tensor = try backend.zeros(shape, dtype: .f32)
            if name.hasSuffix("norm.weight") { try backend.fill(tensor, with: 1) } else {
                try backend.fillNormal(tensor, seed: UInt64(index + 1), standardDeviation: 0.02)
            }
            parameters.insert(name, tensor)
        }
        let model = try Transformer(config: config, parameters: parameters, backend: backend)
        let parameterCount = model.parameters.elementCount
        let gradients = try model.parameters.zerosLike(backend: backend)
        let optimizer = try AdamW(parameters: model.parameters, config: AdamWConfig(weightDecay: 0.01), backend: backend)

        var generator = SeededGenerator(seed: 1)
        let tokens = (0..<(batch * sequence)).map { _ in Int32(generator.nextUnitDouble() * Double(config.vocabularySize)) }
        let packing = PackedSequences(lengths: Array(repeating: sequence, count: batch))
        let targets = Transformer.nextTokenTargets(tokens: tokens, sequences: packing)
        let predicted = targets.filter { $0 >= 0 }.count
        let dLogprobs = try backend.upload(Tensor(targets.map { $0 >= 0 ? -1 / Float(predicted) : 0 }, shape: [tokens.count]))
        let dEntropy = try backend.zeros([tokens.count], dtype: .f32)

        func step() throws {
            try GradientClipping.zero(gradients, backend: backend)
            let result = try model.forward(tokens: tokens, sequences: packing, targets: targets)
            guard let tape = result.tape else { throw ValidationError("forward kept no activations") }
            try model.backward(tape, dLogprobs: dLogprobs, dEntropy: dEntropy, gradients: gradients)
            try optimizer.step(parameters: model.parameters, gradients: gradients, learningRate: 1e-5)
        }

        var start = Stopwatch.now()
        try step()
        try backend.synchronize()
        let firstStep = Stopwatch.now() - start
        for _ in 0..<warmup { try step() }
        try backend.synchronize()
        start = Stopwatch.now()
        for _ in 0..<steps { try step() }
        try backend.synchronize()
        let seconds = (Stopwatch.now() - start) / Double(steps)
        let memory = backend.memory.report()

        backend.profiler.start()
        try step()
        let report = try backend.profiler.stop()
        let families = report.families
        let profiled = families.values.reduce(0, +)

        let tokenCount = Double(batch * sequence)
        let flops = 6 * Double(parameterCount) * tokenCount
            + 12 * Double(config.layerCount * config.hiddenSize) * tokenCount * Double(sequence) / 2
        let tokensPerSecond = tokenCount / seconds
        print("parameters \(parameterCount), \(batch) x \(sequence) tokens, \(layers) layers, \(precision)")
        print("first step \(format(firstStep)) s (kernel compilation included)")
        print("step \(format(seconds * 1000)) ms, \(format(tokensPerSecond)) tokens/s, \(format(flops / seconds / 1e12)) TFLOP/s, MFU \(format(100 * flops / seconds / 989e12))%")
        print("memory: \(memory)")
        print("GPU time of one profiled step by op family (\(format(profiled)) ms in backend calls):")
        for family in OpFamily.allCases {
            let ms = families[family] ?? 0
            print("  \(family.rawValue.padding(10)) \(format(ms).padding(9)) ms  \(format(100 * ms / max(seconds * 1000, 1e-9)))% of the step")
        }
        print("by operation:")
        for operation in report.operations {
            print("  \(operation.name.padding(28)) \(operation.family.rawValue.padding(10)) \(format(operation.milliseconds).padding(9)) ms  \(operation.calls) calls")
        }
        if let json {
            var object: JSONObject = [
                "parameters": .int(parameterCount), "batch": .int(batch), "sequence": .int(sequence), "layers": .int(layers),
                "precision": .string(precision), "allocator": .string(allocator),
                "first_step_s": .double(firstStep), "step_s": .double(seconds), "tokens_per_s": .double(tokensPerSecond),
                "tflops": .double(flops / seconds / 1e12), "mfu_vs_989": .double(flops / seconds / 989e12),
                "peak_mem_gb": .double(Double(memory.peakInUse) / 1e9), "peak_reserved_gb": .double(Double(memory.peakReserved) / 1e9),
                "device": .string(backend.summary()),
            ]
            for family in OpFamily.allCases { object[family.rawValue + "_ms"] = .double(families[family] ?? 0) }
            try writeText(JSONValue.object(object).serialized(.python), to: json)
        }
    }
}

struct BenchAttention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "Causal attention forward + backward on the GPU (bf16, packed sequences), median of timed repeats.",
        discussion: "FLOPs are counted as PyTorch's SDPA benchmark counts them: 4 B H T^2 D / 2 forward, 2.5x that backward."
    )

    @Option var batch: Int = 8
    @Option var sequence: Int = 2048
    @Option var heads: Int = 16
    @Option(name: .customLong("kv-heads")) var kvHeads: Int = 16
    @Option(name: .customLong("head-dim")) var headDim: Int = 128
    @Option var repeats: Int = 20
    @Option(help: "Write the results as JSON to this file.") var json: String?

    func run() async throws {
        let backend = try CUDABackend(precision: .bf16)
        let rows = batch * sequence
        let layout = AttentionLayout(selfAttention: PackedSequences(lengths: Array(repeating: sequence, count: batch)))
        func randomTensor(_ shape: [Int], seed: UInt64) throws -> Tensor {
            let tensor = try backend.zeros(shape, dtype: .bf16)
            try backend.fillNormal(tensor, seed: seed, standardDeviation: 1)
            return tensor
        }
        let q = try randomTensor([rows, heads, headDim], seed: 1), k = try randomTensor([rows, kvHeads, headDim], seed: 2)
        let v = try randomTensor([rows, kvHeads, headDim], seed: 3), dOut = try randomTensor([rows, heads, headDim], seed: 4)
        let scale = 1 / Float(headDim).squareRoot()
        let start = try backend.context.makeEvent(), middle = try backend.context.makeEvent(), end = try backend.context.makeEvent()
        var forward: [Double] = [], backward: [Double] = []
        for iteration in 0..<(repeats + 3) {
            try start.record(on: backend.context.stream)
            let (o, lse) = try backend.attention(query: q, key: k, value: v, layout: layout, scale: scale)
            try middle.record(on: backend.context.stream)
            _ = try backend.attentionBackward(dOutput: dOut, query: q, key: k, value: v, output: o, logSumExp: lse, layout: layout, scale: scale)
            try end.record(on: backend.context.stream)
            try end.synchronize()
            if iteration >= 3 {
                forward.append(try middle.milliseconds(since: start))
                backward.append(try end.milliseconds(since: middle))
            }
        }
        let (fwd, bwd) = (median(forward), median(backward))
        let forwardFlops = 4 * Double(batch * heads * sequence * sequence * headDim) / 2
        print("attention \(batch) x \(sequence), \(heads)/\(kvHeads) heads, d \(headDim), causal, bf16")
        print("forward \(format(fwd)) ms (\(format(forwardFlops / fwd / 1e9)) TFLOP/s), backward \(format(bwd)) ms (\(format(2.5 * forwardFlops / bwd / 1e9)) TFLOP/s), forward + backward \(format(fwd + bwd)) ms (\(format(3.5 * forwardFlops / (fwd + bwd) / 1e9)) TFLOP/s)")
        if let json {
            let object: JSONObject = ["forward_ms": .double(fwd), "backward_ms": .double(bwd), "total_ms": .double(fwd + bwd),
                                      "tflops": .double(3.5 * forwardFlops / (fwd + bwd) / 1e9)]
            try writeText(JSONValue.object(object).serialized(.python), to: json)
        }
    }

    func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
