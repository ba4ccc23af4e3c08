import KiteModels
import KiteTensor

/// Capacity and scheduling knobs, named after SGLang's server flags.
public struct EngineOptions: Sendable, Equatable {
    /// Tokens per cache block.
    public var blockSize = 16
    /// `--max-total-tokens`: cache slots for all sequences together; nil sizes the cache from `memoryBudgetBytes`.
    public var maxTotalTokens: Int?
    /// Host memory for the key/value cache when `maxTotalTokens` is nil.
    public var memoryBudgetBytes = 1 << 30
    /// `--chunked-prefill-size`: prompt tokens per step at most (decode tokens are not counted).
    public var chunkedPrefillSize = 2048
    /// `--max-running-requests`: sequences in the running batch at most.
    public var maxRunningRequests = 256
    /// Requests waiting beyond this are refused (HTTP 503) rather than queued without bound.
    public var maxQueuedRequests = 4096
    /// `--disable-radix-cache`: no prefix reuse across requests (samples of one request still share).
    public var disableRadixCache = false
    /// `--context-length`: longest sequence (prompt + output); nil uses the model's `max_position_embeddings`.
    public var contextLength: Int?
    /// `--mem-fraction-static`: on a GPU, the share of device memory for the weights and the key/value cache
    /// together; the cache gets `total * fraction - (total - free)`, what is left of that share after
    /// everything already allocated. Used when `maxTotalTokens` is nil, instead of `memoryBudgetBytes`.
    public var memFractionStatic: Double?
    /// `--kv-cache-dtype`: nil (auto) takes the backend's choice: bf16 on a bf16 GPU, f32 on the CPU.
    public var keyValueCacheDType: DType?
    /// `--disable-cuda-graph`: decode steps launch their kernels one by one instead of replaying a graph.
    public var disableCUDAGraph = false
    /// `--cuda-graph-max-bs`: decode batches up to this many sequences replay a captured graph (padded to a
    /// power of two); larger ones run eagerly.
    public var cudaGraphMaxBatchSize = 256
    /// `--enable-two-batch-overlap`: graph-captured decode steps of at least `twoBatchOverlapMinimumBatch`
    /// rows run as two half batches whose forwards overlap on the device (`Backend.overlapped`), so one half's
    /// latency-bound products and norms run beside the other's memory-bound attention. Each half reads the
    /// weights once, so small batches, whose steps are mostly weight reads, keep one batch.
    public var enableTwoBatchOverlap = false
    /// The smallest padded decode batch that two-batch overlap splits.
    public var twoBatchOverlapMinimumBatch = 128
    /// Decode steps read their metadata from one device buffer per step and sample on the device
    /// (`Backend.sampleTokens`); nil means on accelerators only. On the CPU this runs the backend's reference
    /// implementations, which tests use to check the path; the host `Sampler` is the CPU default.
    public var deviceDecode: Bool?
    /// `--disable-overlap-schedule`: on the device decode path, each decode step waits for its tokens before
    /// the next is scheduled. By default (SGLang's overlap schedule) the next decode step over the same
    /// sequences is queued first, reading its input tokens on the device, so the device does not wait while
    /// the host accepts tokens and prepares the next step's metadata. Outputs are the same either way; a
    /// sequence that stops on a token (EOS, stop string) runs one discarded row more
    /// (`EngineStatistics.overlapDiscardedRows`).
    public var disableOverlapSchedule = false
    /// `--enable-return-routed-experts`: record the experts every computed token was routed to, per cache slot
    /// (as SGLang does), so requests may ask for them (`GenerationRequest.returnRoutedExperts`). Costs a host
    /// copy of each sparse layer's choice per step, and decode steps run eagerly on the host-metadata path.
    public var enableReturnRoutedExperts = false

    public init() {}
}

/// A snapshot of the engine's state, for tests, metrics and `/get_server_info`.
public struct EngineStatistics: Sendable, Equatable {
    public var runningSequences: Int
    public var waitingSequences: Int
    public var totalBlocks: Int
    public var freeBlocks: Int
    /// Blocks held by the prefix cache.
    public var cachedBlocks: Int
    /// The most blocks in use at once since start (or the last `resetPeakMemory`).
    public var peakUsedBlocks: Int
    public var blockSize: Int
    public var memoryReleased: Bool
    public var weightVersion: String
    /// Forward steps run since start.
    public var steps: Int
    public var generatedTokens: Int
    public var prefilledTokens: Int
    public var cachedPromptTokens: Int
    public var preemptions: Int
    /// Bytes of key/value cache one token takes over all layers (latent attention keeps far fewer).
    public var cacheBytesPerToken: Int = 0
    /// Bytes of the served weights and their buffers (fp8 weights take a quarter of fp32's).
    public var weightBytes: Int = 0
    /// Tokens routed to each expert since start, per sparse layer (empty for dense models).
    public var expertLoad: ExpertLoad = ExpertLoad()
    /// Steps whose every row was a decode token, their tokens and their wall time (forward and sampling;
    /// under the overlap schedule, from the previous decode step's end to this one's).
    public var decodeSteps: Int
    public var decodeTokens: Int
    public var decodeSeconds: Double
    /// Host time between consecutive decode steps during which the device waits: from one step's sampled
    /// tokens being read back to the next step's launch (scheduling, metadata staging). Steps the overlap
    /// schedule queues before the previous step's tokens are read add nothing.
    public var decodeHostSeconds: Double = 0
    /// Decode rows the overlap schedule computed for sequences that had already stopped (see
    /// `EngineOptions.disableOverlapSchedule`).
    public var overlapDiscardedRows = 0
    /// Host time of decode steps by phase, summed over the steps.
    public var decodeHostPhases = DecodeHostPhases()
    /// Decode steps that replayed a captured graph, and graphs captured.
    public var graphReplays: Int
    public var graphCaptures: Int
    /// Why decode-step captures failed (those steps run eagerly), one line per failed (batch, width) plan.
    public var graphCaptureFailures: [String] = []
    /// The key/value cache's dtype and size in tokens.
    public var cacheDType: DType
    public var cacheTokens: Int
}

/// Host time of decode steps by phase, in seconds summed over the steps: what the device may wait on.
public struct DecodeHostPhases: Sendable, Equatable {
    /// Choosing the step's sequences and their cache blocks (`step()` before the forward).
    public var schedule = 0.0
    /// Filling the step's metadata and copying it to the device.
    public var prepare = 0.0
    /// The graph-launch call.
    public var launch = 0.0
    /// Forks and each row's sampling parameters, before the sampling call.
    public var sampleSetup = 0.0
    /// The sampling call: its launches and the wait for the tokens (the device's forward and sampling, seen
    /// from the host).
    public var sampleWait = 0.0
    /// Accepting the tokens: stop checks, streaming, finishing sequences.
    public var accept = 0.0

    public init() {}

    /// Milliseconds per step of each phase between `before` and `self` over `steps` steps.
    public func millisecondsPerStep(since before: DecodeHostPhases, steps: Int) -> [(name: String, milliseconds: Double)] {
        let scale = 1000 / Double(max(steps, 1))
        return [("schedule", schedule - before.schedule), ("prepare", prepare - before.prepare), ("launch", launch - before.launch),
                ("sample setup", sampleSetup - before.sampleSetup), ("sample wait", sampleWait - before.sampleWait), ("accept", accept - before.accept)]
            .map { ($0.0, $0.1 * scale) }
    }
}
