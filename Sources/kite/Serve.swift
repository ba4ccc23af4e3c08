import ArgumentParser
import KiteEngine
import KiteServer
import KiteTensor
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Engine flags with SGLang's names.
struct EngineFlags: ParsableArguments {
    @Option(name: [.customLong("model"), .customLong("model-path")], help: "A Hugging Face model directory (config.json + safetensors) or a .gguf file.")
    var model: String

    @Option(help: "Longest prompt + output (default: the model's max_position_embeddings).")
    var contextLength: Int?

    @Option(help: "Key/value cache slots for all sequences together (default: from --kv-cache-bytes).")
    var maxTotalTokens: Int?

    @Option(help: "Host memory for the key/value cache when --max-total-tokens is not given.")
    var kvCacheBytes: Int = 1 << 30

    @Option(help: "Sequences in the running batch at most.")
    var maxRunningRequests: Int = 256

    @Option(help: "Samples queued or running at most; more are refused with 503.")
    var maxQueuedRequests: Int = 4096

    @Option(help: "Prompt tokens computed per step at most.")
    var chunkedPrefillSize: Int = 2048

    @Option(name: .customLong("page-size"), help: "Tokens per cache block.")
    var pageSize: Int = 16

    @Flag(help: "No prefix reuse across requests.")
    var disableRadixCache = false

    @Option(help: "CPU threads for the model (default: KITE_NUM_THREADS or all cores).")
    var threads: Int?

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(help: "On a GPU: the share of its memory for weights and the key/value cache together (default: --kv-cache-bytes sizes the cache).")
    var memFractionStatic: Double?

    @Flag(help: "On a GPU: run decode steps eagerly instead of replaying CUDA graphs.")
    var disableCudaGraph = false

    @Flag(help: "On a GPU: decode steps of 128 and more sequences run as two half batches whose forwards overlap (measured no faster for dense models on one H100: BENCHMARKS.md).")
    var enableTwoBatchOverlap = false

    @Flag(help: "On a GPU: wait for each decode step's tokens before queueing the next (by default the next step over the same requests is queued first and reads its tokens on the device).")
    var disableOverlapSchedule = false

    @Flag(help: "On a GPU: batch-invariant kernels, so a request's log-probs do not depend on its batch (and equal a trainer's forward bit for bit; about 0.3x the decode throughput).")
    var enableDeterministicInference = false

    @Option(help: "Tokenizer: a .gguf file or a directory with tokenizer.json (default: the model's own).")
    var tokenizerPath: String?

    @Flag(help: "Load no tokenizer: token ids in and out only.")
    var skipTokenizerInit = false

    @Flag(help: "Record the experts every token is routed to, so /generate may ask for them with return_routed_experts (MoE models; decode steps then run eagerly).")
    var enableReturnRoutedExperts = false

    var engineOptions: EngineOptions {
        var options = EngineOptions()
        options.contextLength = contextLength
        options.maxTotalTokens = maxTotalTokens
        options.memoryBudgetBytes = kvCacheBytes
        options.maxRunningRequests = maxRunningRequests
        options.maxQueuedRequests = maxQueuedRequests
        options.chunkedPrefillSize = chunkedPrefillSize
        options.blockSize = pageSize
        options.disableRadixCache = disableRadixCache
        options.enableReturnRoutedExperts = enableReturnRoutedExperts
        options.memFractionStatic = memFractionStatic
        options.disableCUDAGraph = disableCudaGraph
        options.enableTwoBatchOverlap = enableTwoBatchOverlap
        options.disableOverlapSchedule = disableOverlapSchedule
        return options
    }

    func validate() throws {
        let gpu = try deviceOptions.parsedDevice() != .cpu
        if let memFractionStatic, !(memFractionStatic > 0 && memFractionStatic < 1) {
            throw ValidationError("--mem-fraction-static must be between 0 and 1, got \(memFractionStatic)")
        }
        if !gpu && (memFractionStatic != nil || disableCudaGraph || enableDeterministicInference || enableTwoBatchOverlap || disableOverlapSchedule) {
            throw ValidationError("--mem-fraction-static, --disable-cuda-graph, --enable-two-batch-overlap, --disable-overlap-schedule and --enable-deterministic-inference need --device cuda")
        }
        if enableTwoBatchOverlap && disableCudaGraph {
            throw ValidationError("--enable-two-batch-overlap overlaps the halves of graph-captured decode steps: it cannot be used with --disable-cuda-graph")
        }
        if gpu && threads != nil { throw ValidationError("--threads sets CPU threads; it does not apply with --device \(deviceOptions.device)") }
    }

    func makeEngine() throws -> InferenceEngine {
        let backend: any Backend = try deviceOptions.parsedDevice() == .cpu
            ? threads.map { CPUBackend(threads: $0) } ?? CPUBackend()
            : try deviceOptions.makeBackend(deterministic: enableDeterministicInference)
        let transformer = try ModelLoading.loadForServing(path: model, backend: backend)
        let tokenizer = skipTokenizerInit ? nil : try ModelLoading.tokenizer(path: tokenizerPath ?? model)
        return try InferenceEngine(model: transformer, tokenizer: tokenizer, options: engineOptions)
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: SGLang's native API (/generate, ...) and OpenAI's (/v1/...).",
        discussion: "SIGTERM or SIGINT refuses new requests, lets running ones finish for --shutdown-timeout seconds, then aborts the rest.")

    @OptionGroup var engine: EngineFlags

    @Option(help: "Interface to bind. Loopback by default; 0.0.0.0 exposes the server to the network.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port = 30000

    @Option(help: "Require 'Authorization: Bearer KEY' on every route.")
    var apiKey: String?

    @Option(help: "The model name of the OpenAI API (default: the model directory's name).")
    var servedModelName: String?

    @Option(help: "Seconds that running requests may take to finish after SIGTERM.")
    var shutdownTimeout: Double = 10

    @Option(help: "Larger request bodies are refused with 413.")
    var maxBodyBytes: Int = 32 << 20

    @Flag(help: "Streamed chunks carry only the new output, not all of it.")
    var incrementalStreamingOutput = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard shutdownTimeout >= 0 else { throw ValidationError("--shutdown-timeout must be >= 0") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        guard apiKey.map({ !$0.isEmpty }) ?? true else { throw ValidationError("--api-key must not be empty") }
    }

    func run() async throws {
        let engine = try self.engine.makeEngine()
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey
        configuration.modelPath = self.engine.model
        configuration.tokenizerPath = engine.tokenizer == nil ? nil : (self.engine.tokenizerPath ?? self.engine.model)
        configuration.servedModelName = servedModelName
        configuration.shutdownTimeout = shutdownTimeout
        configuration.maxRequestBodyBytes = maxBodyBytes
        configuration.incrementalStreamingOutput = incrementalStreamingOutput
        let renderer = try (engine.tokenizer as? TokenizerAdapter).flatMap { try TemplateChatRenderer(tokenizer: $0.tokenizer) }
        let frontend = EngineFrontend(engine: engine, chatRenderer: renderer, configuration: configuration)
        var logger = Logger(label: "kite.serve")
        logger.logLevel = .info
        let host = self.host
        try await KiteServer.run(frontend: frontend, logger: logger) { port in
            announce("kite serve: listening on http://\(host):\(port)")
        }
    }
}

struct RouterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router",
        abstract: "Balance requests over several 'kite serve' workers: fewest outstanding requests, prefix affinity, health checks, retries.")

    @Option(parsing: .upToNextOption, help: "The workers' base URLs (more can be added with POST /workers).")
    var workerURLs: [String] = []

    @Option(help: "Interface to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port = 30000

    @Option(help: "Require 'Authorization: Bearer KEY' from the router's clients.")
    var apiKey: String?

    @Option(help: "Key sent to the workers (default: --api-key).")
    var workerAPIKey: String?

    @Option(help: "Seconds between health checks.")
    var healthCheckInterval: Double = 5

    @Option(help: "Other workers tried when a request's worker is down.")
    var maxRetries = 3

    func run() async throws {
        var options = WorkerPool.Options()
        options.healthCheckInterval = healthCheckInterval
        options.maxRetries = maxRetries
        options.workerAPIKey = workerAPIKey ?? apiKey
        let client = SGLangClient.makeHTTPClient(retryConnectionEstablishment: false)
        let pool = WorkerPool(urls: workerURLs, options: options, httpClient: client)
        var configuration = KiteRouter.Configuration()
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey
        let host = self.host
        do {
            try await KiteRouter.run(pool: pool, configuration: configuration) { port in
                announce("kite router: listening on http://\(host):\(port) with \(pool.workers.count) workers")
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

/// A line on standard output, flushed at once (tests and scripts wait for it).
func announce(_ line: String) {
    print(line)
    fflush(nil)
}
