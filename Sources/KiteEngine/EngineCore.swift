import KiteModels
import KiteTensor

/// The engine's state and its step: which sequences run, their cache blocks, the forward, sampling and
/// stopping. Used from the engine's own thread only (`InferenceEngine` serialises everything onto it).
final class EngineCore {
    let model: any CausalLanguageModel
    let tokenizer: (any EngineTokenizer)?
    /// The tokens that end a sequence (the tokenizer's, else the model config's), looked up once rather than per token.
    private lazy var endOfSequenceTokenIDs: [Int32] = tokenizer?.endOfSequenceTokenIDs ?? model.config.eosTokenIDs.map(Int32.init)
    let options: EngineOptions
    let contextLength: Int
    let pool: BlockPool
    let prefixCache: PrefixCache?
    private(set) var keyCaches: [Tensor] = []
    private(set) var valueCaches: [Tensor] = []
    private(set) var memoryReleased = false
    var waiting: [SequenceState] = []
    var running: [SequenceState] = []
    var requests: [String: RequestState] = [:]
    var weightVersion = "0"
    private var arrivals: UInt64 = 0
    private var counters = (steps: 0, generated: 0, prefilled: 0, cachedPrompt: 0, preemptions: 0)
    private var decodeCounters = (steps: 0, tokens: 0, seconds: 0.0, replays: 0, captures: 0)
    private var captureFailures: [String] = []
    /// When the last decode step finished (its sampled tokens read back), and the host time between that and
    /// the next decode step's launch, summed: time the device waits on the host (scheduling, metadata).
    private var lastDecodeEnd: Double?
    private var decodeHostSeconds = 0.0
    private var decodeHostPhases = DecodeHostPhases()
    /// The scheduling time of the step under way (counted as a decode step's once the step turns out to be one).
    private var scheduleSeconds = 0.0
    private var expertLoad = ExpertLoad()
    /// The key/value cache's element type.
    let cacheDType: DType
    /// Decode steps from device metadata and sampling on the device (`EngineOptions.deviceDecode`).
    let deviceDecode: Bool
    /// Device buffers (and captured graphs) of decode steps, by padded batch size and block-table width.
    private var decodePlans: [DecodePlan.Key: DecodePlan] = [:]
    /// The overlap schedule (`EngineOptions.disableOverlapSchedule`): on the device decode path, a decode
    /// step's successor is queued before the host reads its tokens.
    let overlapSchedule: Bool
    /// The decode step whose tokens are sampled on the device but not yet accepted.
    private var inFlight: InFlightDecode?
    /// Whether a decode step's tokens are still to be read (the overlap schedule).
    var hasStepInFlight: Bool { inFlight != nil }
    /// When the last overlapped decode step's tokens were accepted.
    private var lastOverlappedEnd: Double?
    /// Rows computed for sequences that had finished by the time their tokens were read (the overlap
    /// schedule's cost: a sequence that stops on a token the host has not read yet runs one row more).
    private var discardedRows = 0
    /// With `enableReturnRoutedExperts` on a sparse model: the experts of the token in each cache slot,
    /// `[slots, sparse layers, topK]`, written by the forward that fills the slot (SGLang keeps them the same
    /// way, so a prefix served from the cache, a fork's shared blocks and a recomputed sequence all find theirs).
    private var slotExperts: [Int32]?
    private let sparseLayers: [Int]
    private let expertsPerToken: Int

    init(model: any CausalLanguageModel, tokenizer: (any EngineTokenizer)?, options: EngineOptions) throws {
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        let config = model.config
        contextLength = min(options.contextLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
        guard options.blockSize > 0, options.chunkedPrefillSize > 0, options.maxRunningRequests > 0 else {
            throw EngineError.invalidRequest(field: "engine options", detail: "block size, chunked prefill size and max running requests must be positive")
        }
        cacheDType = options.keyValueCacheDType ?? model.backend.keyValueCacheDType
        deviceDecode = options.deviceDecode ?? (model.backend.device != .cpu)
        overlapSchedule = deviceDecode && !options.disableOverlapSchedule
        let bytesPerToken = model.cacheLayout.bytesPerToken(cacheDType)
        var budget = options.memoryBudgetBytes
        if let fraction = options.memFractionStatic {
            guard fraction > 0, fraction <= 1 else {
                throw EngineError.invalidRequest(field: "mem_fraction_static", detail: "must be in (0, 1], got \(fraction)")
            }
            if let memory = try model.backend.deviceMemory() {
                budget = Int(Double(memory.total) * fraction) - (memory.total - memory.free)
                guard budget > 0 else {
                    throw EngineError.invalidRequest(field: "mem_fraction_static", detail: "\(fraction) of \(memory.total) bytes leaves nothing for the cache: \(memory.total - memory.free) bytes are already in use")
                }
            }
        }
        let totalTokens = options.maxTotalTokens ?? max(options.blockSize, budget / max(bytesPerToken, 1))
        let blockCount = totalTokens / options.blockSize
        guard blockCount >= 1 else {
            throw EngineError.invalidRequest(field: "max_total_tokens", detail: "\(totalTokens) tokens is less than one block of \(options.blockSize)")
        }
        pool = BlockPool(blockCount: blockCount, blockSize: options.blockSize)
        prefixCache = options.disableRadixCache ? nil : PrefixCache(pool: pool)
        sparseLayers = config.sparseLayerIndices
        expertsPerToken = config.routedExpertsPerToken
        if options.enableReturnRoutedExperts && !sparseLayers.isEmpty {
            slotExperts = [Int32](repeating: 0, count: blockCount * options.blockSize * sparseLayers.count * expertsPerToken)
        }
        try allocateCaches()
    }

    var slotCount: Int { pool.blockCount * pool.blockSize }

    /// One block past the pool's: padded rows of a decode graph write and read it, never a sequence.
    var paddingBlock: Int32 { Int32(pool.blockCount) }

    /// One key and one value tensor per layer, shaped as the model's cache layout says; when key rows double
    /// as values (latent attention), the value tensors are the key tensors.
    private func allocateCaches() throws {
        let layout = model.cacheLayout
        let rows = slotCount + (deviceDecode ? pool.blockSize : 0)
        keyCaches = try (0..<layout.layerCount).map { _ in try model.backend.zeros([rows, layout.keyHeads, layout.keyWidth], dtype: cacheDType) }
        if let values = layout.values {
            valueCaches = try (0..<layout.layerCount).map { _ in try model.backend.zeros([rows, values.heads, values.width], dtype: cacheDType) }
        } else {
            valueCaches = keyCaches
        }
    }

    // MARK: Admission

    /// Checks a request against the model and the cache before it is queued. Reads only what never changes
    /// after init, so any thread may call it.
    func validateStatically(_ request: GenerationRequest) throws(EngineError) {
        let vocabulary = model.config.vocabularySize
        try request.sampling.validate(vocabularySize: vocabulary)
        guard !request.promptTokens.isEmpty else { throw .invalidRequest(field: "input_ids", detail: "the prompt is empty") }
        for (position, id) in request.promptTokens.enumerated() where id < 0 || Int(id) >= vocabulary {
            throw .invalidRequest(field: "input_ids", detail: "token id \(id) at position \(position) is outside the vocabulary (0..<\(vocabulary))")
        }
        guard request.promptTokens.count < contextLength else {
            throw .invalidRequest(field: "input_ids", detail: "the prompt has \(request.promptTokens.count) tokens; the context length is \(contextLength)")
        }
        let longest = min(request.promptTokens.count + request.sampling.maxNewTokens, contextLength)
        guard longest <= slotCount else {
            throw .invalidRequest(field: "max_new_tokens", detail: "a sample may need \(longest) tokens of cache but the cache holds \(slotCount) (--max-total-tokens)")
        }
        guard request.topLogprobs >= 0 && request.topLogprobs <= vocabulary else {
            throw .invalidRequest(field: "top_logprobs_num", detail: "must be in 0...\(vocabulary), got \(request.topLogprobs)")
        }
        if !request.sampling.stop.isEmpty && tokenizer == nil { throw .tokenizerRequired("stop strings") }
        if request.returnRoutedExperts && !options.enableReturnRoutedExperts {
            throw .invalidRequest(field: "return_routed_experts", detail: "the engine records no routed experts; start it with --enable-return-routed-experts")
        }
    }

    /// All checks, including against the requests now running (engine thread only).
    func validate(_ request: GenerationRequest) throws(EngineError) {
        try validateStatically(request)
        guard requests[request.id] == nil else { throw .invalidRequest(field: "rid", detail: "a request with id '\(request.id)' is already running") }
    }

    var queuedSequenceCount: Int { waiting.count + running.count }

    func admit(_ state: RequestState) {
        let request = state.request
        requests[request.id] = state
        let baseSeed = request.sampling.seed ?? UInt64.random(in: 0...UInt64.max)
        for index in 0..<request.sampling.n {
            arrivals += 1
            // Each sample draws from its own stream: seed + index, mixed through SplitMix64.
            let sequence = SequenceState(
                request: state, sampleIndex: index, generator: SeededGenerator(seed: baseSeed &+ UInt64(index)),
                arrival: arrivals, awaitingFork: index > 0)
            if let tokenizer { sequence.decoder = tokenizer.makeIncrementalDecoder(skipSpecialTokens: request.sampling.skipSpecialTokens) }
            state.samples.append(sequence)
        }
        if request.sampling.maxNewTokens == 0 {
            for sequence in state.samples { finish(sequence, .length(0)) }
            return
        }
        waiting.append(state.samples[0])
    }

    // MARK: Step

    struct Chunk {
        let sequence: SequenceState
        let start: Int
        let count: Int
    }

    /// A decode step whose sampling is queued on the device and whose tokens the host has not read.
    private struct InFlightDecode {
        /// Its rows, one decode token each, in row order.
        let chunks: [Chunk]
        let samples: any DeferredSamples
        /// When its launch began.
        let start: Double
    }

    /// Runs one forward over a batch of decode tokens and prompt chunks. Returns false when idle.
    ///
    /// With a decode step in flight (the overlap schedule), its successor over the same sequences is queued
    /// first, reading its input tokens on the device, and only then are the in-flight step's tokens read and
    /// accepted; so the device runs the next step while the host accepts, streams and schedules. When the
    /// batch must change (new sequences can start, a block needs a preemption), the in-flight step's tokens
    /// are accepted first and the step is scheduled as usual.
    func step() throws -> Bool {
        guard !memoryReleased else { return false }
        let scheduleStart = MonotonicClock.seconds()
        if let flight = inFlight {
            inFlight = nil
            guard let next = continuation(of: flight) else {
                try complete(flight)
                return true
            }
            scheduleSeconds = MonotonicClock.seconds() - scheduleStart
            try runContinuation(next, after: flight)
            counters.steps += 1
            return true
        }
        var chunks: [Chunk] = []
        var prefillBudget = options.chunkedPrefillSize
        var scheduled = Set<ObjectIdentifier>()

        // Running sequences first, oldest first: a decode token each, or the next chunk of their prefill.
        running.sort { $0.arrival < $1.arrival }
        var index = 0
        while index < running.count {
            let sequence = running[index]
            let count = sequence.pending == 1 ? 1 : min(sequence.pending, prefillBudget)
            if count == 0 {
                index += 1
                continue
            }
            if ensureBlocks(sequence, upTo: sequence.computed + count, protecting: scheduled) {
                if count > 1 || sequence.computed < sequence.promptLength { prefillBudget -= count }
                chunks.append(Chunk(sequence: sequence, start: sequence.computed, count: count))
                scheduled.insert(ObjectIdentifier(sequence))
                index += 1
            } else if !running.contains(where: { $0 === sequence }) {
                // It was preempted to make room for older sequences; `running` shrank under us.
                continue
            } else {
                index += 1
            }
        }

        // Then waiting sequences in arrival order, while there is room.
        while let sequence = waiting.first, prefillBudget > 0,
            running.count + sequence.request.request.sampling.n <= options.maxRunningRequests || running.isEmpty
        {
            if sequence.computed == 0, sequence.blockTable.isEmpty, let prefixCache {
                // Reuse cached full blocks; at least one token must still run to produce logits.
                let blocks = prefixCache.match(sequence.tokens, maximumBlocks: (sequence.tokens.count - 1) / pool.blockSize)
                sequence.blockTable = blocks
                sequence.computed = blocks.count * pool.blockSize
            }
            let count = min(sequence.pending, prefillBudget)
            guard ensureBlocks(sequence, upTo: sequence.computed + count, protecting: scheduled, mayPreempt: false) else {
                // All or nothing: a sequence left waiting holds no blocks, or it could starve the others.
                releaseBlocks(sequence)
                sequence.computed = 0
                break
            }
            let cached = min(sequence.computed, sequence.promptLength)
            sequence.cachedTokenCount += cached
            counters.cachedPrompt += cached
            waiting.removeFirst()
            running.append(sequence)
            prefillBudget -= count
            chunks.append(Chunk(sequence: sequence, start: sequence.computed, count: count))
            scheduled.insert(ObjectIdentifier(sequence))
        }
        if chunks.isEmpty, running.isEmpty, let head = waiting.first {
            // Nothing runs and the head cannot start although every block is free or evictable: it can never
            // fit (admission checks prevent this), so end it rather than stall every request behind it.
            finish(head, .abort("the request needs more cache blocks than the engine has (\(pool.blockCount) blocks of \(pool.blockSize))"))
            return true
        }
        guard !chunks.isEmpty else { return false }
        scheduleSeconds = MonotonicClock.seconds() - scheduleStart
        try run(chunks)
        counters.steps += 1
        return true
    }

    /// Makes `sequence`'s block table cover `tokens` tokens, evicting cached prefixes and then preempting the
    /// most recently admitted running sequences not in `protecting` when the pool is short.
    func ensureBlocks(_ sequence: SequenceState, upTo tokens: Int, protecting: Set<ObjectIdentifier>, mayPreempt: Bool = true) -> Bool {
        let needed = (tokens + pool.blockSize - 1) / pool.blockSize
        while sequence.blockTable.count < needed {
            if let block = pool.allocate() {
                sequence.blockTable.append(block)
                continue
            }
            if let prefixCache, prefixCache.evict(needed - sequence.blockTable.count) > 0 { continue }
            guard mayPreempt else { return false }
            // Preempt the newest running sequence that is not already in this batch (possibly this one).
            guard let victim = running.filter({ !protecting.contains(ObjectIdentifier($0)) }).max(by: { $0.arrival < $1.arrival }) else {
                return false
            }
            preempt(victim)
            if victim === sequence { return false }
        }
        return true
    }

    /// Frees a sequence's blocks and queues it to recompute its tokens later (never fails the request).
    func preempt(_ sequence: SequenceState) {
        releaseBlocks(sequence)
        sequence.computed = 0
        running.removeAll { $0 === sequence }
        let position = waiting.firstIndex { $0.arrival > sequence.arrival } ?? waiting.count
        waiting.insert(sequence, at: position)
        counters.preemptions += 1
    }

    func releaseBlocks(_ sequence: SequenceState) {
        for block in sequence.blockTable { pool.release(block) }
        sequence.blockTable = []
    }

    /// The forward over the chunks, then sampling for every sequence that reached the end of its tokens.
    private func run(_ chunks: [Chunk]) throws {
        let size = pool.blockSize
        // Recording routed experts reads each sparse layer's choice back per step: the host-metadata path.
        let decodeOnly = deviceDecode && slotExperts == nil && chunks.allSatisfy { $0.count == 1 }
        let stepStart = MonotonicClock.seconds()
        let hidden: Tensor
        if decodeOnly {
            hidden = try decodeForward(chunks)
        } else {
            var tokens: [Int32] = [], positions: [Int32] = [], slots: [Int32] = []
            for chunk in chunks {
                for position in chunk.start..<(chunk.start + chunk.count) {
                    tokens.append(chunk.sequence.tokens[position])
                    positions.append(Int32(position))
                    slots.append(chunk.sequence.blockTable[position / size] * Int32(size) + Int32(position % size))
                }
            }
            let cache = PagedBatchCache(
                keyCaches: keyCaches, valueCaches: valueCaches, slots: slots, blockTables: chunks.map(\.sequence.blockTable),
                blockSize: size, contextLengths: chunks.map { $0.start + $0.count }, queries: PackedSequences(lengths: chunks.map(\.count)))
            let routing = slotExperts == nil ? nil : ExpertRouting.recording()
            hidden = try model.forwardHidden(tokens: tokens, positions: positions, cache: cache, routing: routing)
            if let routing { try storeRoutedExperts(try routing.recorded(), slots: slots) }
        }
        expertLoad.merge(model.takeExpertLoad())
        var deferred = false
        defer {
            if decodeOnly && !deferred {
                let end = MonotonicClock.seconds()
                decodeCounters.steps += 1
                decodeCounters.tokens += chunks.count
                decodeCounters.seconds += end - stepStart
                decodeHostPhases.schedule += scheduleSeconds
                lastDecodeEnd = end
            } else {
                lastDecodeEnd = nil
            }
        }

        var logitRows: [Int32] = []
        var sampled: [SequenceState] = []
        var row = 0
        for chunk in chunks {
            let sequence = chunk.sequence
            let wasPrompt = sequence.computed < sequence.promptLength
            sequence.computed += chunk.count
            if sequence.computed < sequence.promptLength || wasPrompt { counters.prefilled += min(chunk.count, max(0, sequence.promptLength - chunk.start)) }
            row += chunk.count
            if sequence.computed == sequence.tokens.count {
                logitRows.append(Int32(row - 1))
                sampled.append(sequence)
            }
            if wasPrompt && sequence.computed >= sequence.promptLength {
                prefixCache?.insert(sequence.tokens, blocks: Array(sequence.blockTable.prefix(sequence.computed / size)))
            }
        }
        guard !logitRows.isEmpty else { return }
        if decodeOnly && overlapSchedule && sampled.count == chunks.count && !sampled.contains(where: needsHostSampling) {
            decodeHostPhases.schedule += scheduleSeconds
            inFlight = InFlightDecode(chunks: chunks, samples: try sampleDeferred(hidden: hidden, sequences: sampled), start: stepStart)
            deferred = true
            return
        }
        if deviceDecode && !sampled.contains(where: { $0.request.request.topLogprobs > 0 }) {
            try sampleOnDevice(hidden: hidden, logitRows: logitRows, sampled: sampled)
            return
        }
        let downloaded = try model.backend.download(try model.logits(hidden: try model.backend.gatherRows(hidden, rows: logitRows)))
        let logits = downloaded.dtype == .f32 ? downloaded : downloaded.converted(to: .f32)
        let vocabulary = model.config.vocabularySize
        let values = logits.floats
        for (i, sequence) in sampled.enumerated() {
            let rowPointer = UnsafePointer(values.baseAddress! + i * vocabulary)
            if sequence.generatedCount == 0 && sequence.sampleIndex == 0 {
                try forkFollowers(of: sequence, logits: rowPointer)
            }
            sampleNext(sequence, logits: rowPointer)
        }
    }

    /// When a group's first sample has computed the prompt, the other samples take its full prompt blocks
    /// (shared), copy its last partial block, and sample their first tokens from the same logits.
    private func forkFollowers(of leader: SequenceState, logits: UnsafePointer<Float>) throws {
        let followers = leader.request.samples.filter { $0.awaitingFork && !$0.isFinished }
        guard !followers.isEmpty else { return }
        let size = pool.blockSize
        let fullBlocks = leader.promptLength / size
        let hasPartial = leader.promptLength % size != 0
        for follower in followers {
            if try fork(follower, from: leader, fullBlocks: fullBlocks, hasPartial: hasPartial, size: size) {
                sampleNext(follower, logits: logits)
            }
        }
    }

    /// Gives `follower` the leader's prompt blocks (a copy of the last, partial one) and makes it run; false
    /// when there is no block for the copy, and the follower waits to prefill on its own.
    private func fork(_ follower: SequenceState, from leader: SequenceState, fullBlocks: Int, hasPartial: Bool, size: Int) throws -> Bool {
        follower.awaitingFork = false
        var table = Array(leader.blockTable.prefix(fullBlocks))
        table.forEach { pool.retain($0) }
        if hasPartial {
            guard let copy = allocateForFork(protecting: leader) else {
                // No room to fork: this sample prefills on its own later.
                table.forEach { pool.release($0) }
                waiting.append(follower)
                return false
            }
            let source = leader.blockTable[fullBlocks]
            let sources = (0..<Int32(size)).map { source * Int32(size) + $0 }
            let destinations = (0..<Int32(size)).map { copy * Int32(size) + $0 }
            for layer in 0..<keyCaches.count {
                try model.backend.copyRows(keyCaches[layer], from: sources, to: destinations)
                if model.cacheLayout.values != nil { try model.backend.copyRows(valueCaches[layer], from: sources, to: destinations) }
            }
            copyRoutedExperts(from: sources, to: destinations)
            table.append(copy)
        }
        follower.blockTable = table
        follower.computed = leader.promptLength
        follower.cachedTokenCount = leader.promptLength
        running.append(follower)
        return true
    }

    private func allocateForFork(protecting leader: SequenceState) -> Int32? {
        if let block = pool.allocate() { return block }
        if let prefixCache, prefixCache.evict(1) > 0 { return pool.allocate() }
        return nil
    }

    // MARK: Sampling and stopping

    private func sampleNext(_ sequence: SequenceState, logits: UnsafePointer<Float>) {
        let request = sequence.request.request
        let choice = Sampler.sample(
            logits: logits, vocabularySize: model.config.vocabularySize, parameters: request.sampling,
            generator: &sequence.generator, topLogprobs: request.topLogprobs)
        accept(sequence, choice: choice)
    }

    /// Appends a sampled token to a sequence, streams it and checks the stop conditions.
    private func accept(_ sequence: SequenceState, choice: Sampler.Choice) {
        let request = sequence.request.request
        sequence.tokens.append(choice.token)
        sequence.outputLogprobs.append(choice.logprob)
        if request.topLogprobs > 0 { sequence.topLogprobs.append(choice.alternatives) }
        counters.generated += 1
        var delta = ""
        if var decoder = sequence.decoder {
            delta = (try? decoder.push(choice.token)) ?? ""
            sequence.decoder = decoder
        }
        let previousLength = sequence.textCount
        sequence.text += delta
        sequence.textCount += delta.count
        let sampling = request.sampling
        var reason: FinishReason?
        if !sampling.ignoreEOS && endOfSequenceTokenIDs.contains(choice.token) {
            reason = .stopToken(choice.token)
        } else if sampling.stopTokenIDs.contains(choice.token) {
            reason = .stopToken(choice.token)
        } else if let (stop, cut) = matchStopString(sequence.text, count: sequence.textCount, newFrom: previousLength, stops: sampling.stop) {
            sequence.text = String(sequence.text.prefix(cut))
            sequence.textCount = cut
            delta = cut > previousLength ? String(sequence.text.dropFirst(previousLength)) : ""
            reason = .stopString(stop)
        } else if sequence.generatedCount >= sampling.maxNewTokens || sequence.tokens.count >= contextLength {
            reason = .length(sequence.generatedCount)
        }
        if request.stream {
            sequence.request.continuation.yield(.tokens(sampleIndex: sequence.sampleIndex, tokens: [choice.token], logprobs: [choice.logprob], text: delta))
        }
        if let reason { finish(sequence, reason) }
    }

    /// The first stop string that now occurs in `text` at or after where the new text could complete one;
    /// returns it and the character offset where the kept text ends.
    private func matchStopString(_ text: String, count: Int, newFrom previousLength: Int, stops: [String]) -> (String, Int)? {
        guard !stops.isEmpty else { return nil }
        let longest = stops.map(\.count).max() ?? 0
        let windowStart = max(0, previousLength - longest + 1)
        // Walk back from the end only as far as a stop string could reach into the old text.
        let window = String(text.suffix(count - windowStart))
        var best: (String, Int)?
        for stop in stops {
            if let range = window.firstRange(of: stop) {
                let offset = windowStart + window.distance(from: window.startIndex, to: range.lowerBound)
                if offset < best?.1 ?? Int.max { best = (stop, offset) }
            }
        }
        return best
    }

    func finish(_ sequence: SequenceState, _ reason: FinishReason) {
        guard !sequence.isFinished else { return }
        sequence.finishReason = reason
        // Text held back for an incomplete character is flushed, unless a stop string already cut the text.
        if case .stopString = reason {
        } else if var decoder = sequence.decoder {
            let rest = decoder.finish()
            sequence.text += rest
            sequence.textCount += rest.count
            sequence.decoder = decoder
        }
        let routed = sequence.request.request.returnRoutedExperts ? routedExperts(of: sequence) : nil
        // Keep what this sequence computed for later requests, then let its blocks go.
        if let prefixCache, !sequence.blockTable.isEmpty {
            prefixCache.insert(Array(sequence.tokens.prefix(sequence.computed)), blocks: Array(sequence.blockTable.prefix(sequence.computed / pool.blockSize)))
        }
        releaseBlocks(sequence)
        running.removeAll { $0 === sequence }
        waiting.removeAll { $0 === sequence }
        let state = sequence.request
        state.continuation.yield(.finished(GenerationResult(
            requestID: state.request.id, sampleIndex: sequence.sampleIndex, outputTokens: sequence.outputTokens,
            outputLogprobs: sequence.outputLogprobs, topLogprobs: sequence.topLogprobs, text: sequence.text,
            finishReason: reason, promptTokenCount: sequence.promptLength, cachedTokenCount: min(sequence.cachedTokenCount, sequence.promptLength),
            weightVersion: weightVersion, routedExperts: routed)))
        state.unfinished -= 1
        if state.unfinished == 0 {
            state.continuation.finish()
            requests[state.request.id] = nil
        }
    }

    // MARK: Routed experts

    /// Writes row `i` of a forward's record (its `i`-th token) to that token's cache slot.
    private func storeRoutedExperts(_ record: RoutedExperts, slots: [Int32]) throws {
        let width = sparseLayers.count * expertsPerToken
        guard record.tokenCount == slots.count, record.layerCount * record.topK == width else {
            throw EngineError.internalFailure("routed experts: a record of \(record.tokenCount) tokens x \(record.layerCount) layers for \(slots.count) slots")
        }
        guard var table = slotExperts else { return }
        slotExperts = nil
        for (row, slot) in slots.enumerated() {
            for i in 0..<width { table[Int(slot) * width + i] = record.values[row * width + i] }
        }
        slotExperts = table
    }

    /// A block copied for a fork takes its slots' experts along.
    private func copyRoutedExperts(from sources: [Int32], to destinations: [Int32]) {
        guard var table = slotExperts else { return }
        slotExperts = nil
        let width = sparseLayers.count * expertsPerToken
        for (source, destination) in zip(sources, destinations) {
            for i in 0..<width { table[Int(destination) * width + i] = table[Int(source) * width + i] }
        }
        slotExperts = table
    }

    /// The experts of a sequence's computed tokens but the last (which is sampled, never computed), over every
    /// hidden layer as SGLang returns them; nil for dense models.
    private func routedExperts(of sequence: SequenceState) -> RoutedExperts? {
        guard let slotExperts else { return nil }
        let width = sparseLayers.count * expertsPerToken
        let rows = min(sequence.computed, sequence.tokens.count - 1)
        let size = pool.blockSize
        var values: [Int32] = []
        values.reserveCapacity(max(rows, 0) * width)
        for position in 0..<max(rows, 0) {
            let slot = Int(sequence.blockTable[position / size]) * size + position % size
            values += slotExperts[(slot * width)..<((slot + 1) * width)]
        }
        // The shape holds by construction; a nil here would reach the trainer as a sample without routing.
        return try? RoutedExperts(tokenCount: max(rows, 0), layerCount: sparseLayers.count, topK: expertsPerToken, values: values)
            .spreading(to: model.config.layerCount, at: sparseLayers)
    }

    // MARK: Control

    func abort(requestID: String, message: String = "aborted") -> Bool {
        guard let state = requests[requestID] else { return false }
        for sequence in state.samples where !sequence.isFinished { finish(sequence, .abort(message)) }
        dropInFlightIfDone()
        return true
    }

    func abortAll(message: String = "aborted") {
        for id in Array(requests.keys) { _ = abort(requestID: id, message: message) }
    }

    /// Drops the prefix cache; refused (false) while requests are running, as SGLang does.
    func flushCache() -> Bool {
        settleInFlight()
        guard running.isEmpty && waiting.isEmpty else { return false }
        prefixCache?.clear()
        return true
    }

    /// Frees the key/value cache memory (the trainer needs it); running requests are preempted and resume
    /// when memory comes back.
    func releaseMemory() {
        guard !memoryReleased else { return }
        settleInFlight()
        for sequence in running { preempt(sequence) }
        prefixCache?.clear()
        decodePlans = [:]
        keyCaches = []
        valueCaches = []
        memoryReleased = true
    }

    func resumeMemory() throws {
        guard memoryReleased else { return }
        try allocateCaches()
        memoryReleased = false
    }

    /// New weights: cached keys and values were computed with the old ones, so every cached prefix is dropped
    /// and running sequences recompute theirs.
    func weightsChanged(version: String) {
        settleInFlight()
        for sequence in running { preempt(sequence) }
        prefixCache?.clear()
        // Graphs read the weights' addresses: they survive only when the matrices are written in place in the
        // dtype the products read (no converted copy that a write replaces).
        if model.parameters.entries.contains(where: { $0.1.rank >= 2 && $0.1.dtype != cacheDType }) {
            for plan in decodePlans.values { plan.graph = nil }
        }
        weightVersion = version
    }

    var statistics: EngineStatistics {
        EngineStatistics(
            runningSequences: running.count, waitingSequences: waiting.count, totalBlocks: pool.blockCount, freeBlocks: pool.freeCount,
            cachedBlocks: prefixCache?.cachedBlockCount ?? 0, peakUsedBlocks: pool.peakUsedCount, blockSize: pool.blockSize, memoryReleased: memoryReleased,
            weightVersion: weightVersion, steps: counters.steps, generatedTokens: counters.generated,
            prefilledTokens: counters.prefilled, cachedPromptTokens: counters.cachedPrompt, preemptions: counters.preemptions,
            cacheBytesPerToken: model.cacheLayout.bytesPerToken(cacheDType),
            weightBytes: (model.parameters.entries + model.buffers.entries).reduce(0) { $0 + $1.tensor.byteCount }, expertLoad: expertLoad,
            decodeSteps: decodeCounters.steps, decodeTokens: decodeCounters.tokens, decodeSeconds: decodeCounters.seconds,
            decodeHostSeconds: decodeHostSeconds, overlapDiscardedRows: discardedRows, decodeHostPhases: decodeHostPhases,
            graphReplays: decodeCounters.replays, graphCaptures: decodeCounters.captures,
            graphCaptureFailures: captureFailures,
            cacheDType: cacheDType, cacheTokens: slotCount)
    }

    // MARK: Overlap schedule

    /// Sequences whose next token the overlap schedule cannot sample on the device ahead of the host: top
    /// log-probs are computed on the host, and a group's first token forks its other samples.
    private func needsHostSampling(_ sequence: SequenceState) -> Bool {
        sequence.request.request.topLogprobs > 0
            || (sequence.generatedCount == 0 && sequence.sampleIndex == 0 && sequence.request.samples.contains { $0.awaitingFork && !$0.isFinished })
    }

    /// The decode step after `flight` over the same sequences, one position on, or nil when the batch must
    /// change first: a sequence may start (the head of `waiting` fits under `maxRunningRequests`), a running
    /// sequence is not in the step, or a row needs a block that only a preemption would free. A sequence
    /// whose in-flight token ends it by length gets no row.
    private func continuation(of flight: InFlightDecode) -> [Chunk]? {
        if let head = waiting.first, running.count + head.request.request.sampling.n <= options.maxRunningRequests { return nil }
        let live = flight.chunks.filter { !$0.sequence.isFinished }
        guard live.count == running.count else { return nil }
        let next = live.compactMap { chunk -> Chunk? in
            let sequence = chunk.sequence
            // After the in-flight token, the sequence holds one more generated token and one more token.
            if sequence.generatedCount + 1 >= sequence.request.request.sampling.maxNewTokens || sequence.tokens.count + 1 >= contextLength { return nil }
            return Chunk(sequence: sequence, start: chunk.start + 1, count: 1)
        }
        guard !next.isEmpty else { return nil }
        let protected = Set(next.map { ObjectIdentifier($0.sequence) })
        for chunk in next where !ensureBlocks(chunk.sequence, upTo: chunk.start + 1, protecting: protected, mayPreempt: false) { return nil }
        return next
    }

    /// Queues `next` (its input tokens copied on the device from `flight`'s samples, its sampling deferred),
    /// then accepts `flight`'s tokens while the device runs `next`.
    private func runContinuation(_ next: [Chunk], after flight: InFlightDecode) throws {
        let start = MonotonicClock.seconds()
        var rowInFlight: [ObjectIdentifier: Int] = [:]
        for (row, chunk) in flight.chunks.enumerated() { rowInFlight[ObjectIdentifier(chunk.sequence)] = row }
        // Runs of rows whose in-flight rows are consecutive: one device copy each (all of them when no row
        // was dropped).
        var runs: [DeviceTokenRun] = []
        for (row, chunk) in next.enumerated() {
            guard let source = rowInFlight[ObjectIdentifier(chunk.sequence)] else {
                throw EngineError.internalFailure("overlap schedule: a sequence of the next step is not in the step in flight")
            }
            if let last = runs.last, last.source + last.count == source, last.row + last.count == row {
                runs[runs.count - 1].count += 1
            } else {
                runs.append(DeviceTokenRun(source: source, row: row, count: 1))
            }
        }
        let hidden = try decodeForward(next, deviceTokens: (flight.samples.tokens, runs))
        for chunk in next { chunk.sequence.computed += 1 }
        decodeHostPhases.schedule += scheduleSeconds
        inFlight = InFlightDecode(chunks: next, samples: try sampleDeferred(hidden: hidden, sequences: next.map(\.sequence)), start: start)
        try complete(flight)
    }

    /// Reads `flight`'s tokens and accepts them; rows of sequences that finished meanwhile (a stop on the
    /// previous token, an abort) are dropped.
    private func complete(_ flight: InFlightDecode) throws {
        let waitStart = MonotonicClock.seconds()
        let results = try flight.samples.results()
        let acceptStart = MonotonicClock.seconds()
        decodeHostPhases.sampleWait += acceptStart - waitStart
        guard results.count == flight.chunks.count else {
            throw EngineError.internalFailure("overlap schedule: \(results.count) sampled tokens for \(flight.chunks.count) rows")
        }
        var accepted = 0
        for (chunk, result) in zip(flight.chunks, results) {
            guard !chunk.sequence.isFinished else {
                discardedRows += 1
                continue
            }
            accept(chunk.sequence, choice: Sampler.Choice(token: result.token, logprob: result.logprob, alternatives: []))
            accepted += 1
        }
        let end = MonotonicClock.seconds()
        decodeHostPhases.accept += end - acceptStart
        // Overlapped steps share wall time: each counts from the previous one's end (or its own launch).
        decodeCounters.steps += 1
        decodeCounters.tokens += accepted
        decodeCounters.seconds += end - max(flight.start, lastOverlappedEnd ?? flight.start)
        lastOverlappedEnd = end
        lastDecodeEnd = nil
        dropInFlightIfDone()
    }

    /// Forgets the step in flight once every one of its sequences has finished: its tokens would all be
    /// discarded, and the engine should look idle as soon as its last request is answered.
    private func dropInFlightIfDone() {
        guard let flight = inFlight, flight.chunks.allSatisfy({ $0.sequence.isFinished }) else { return }
        inFlight = nil
        discardedRows += flight.chunks.count
    }

    /// Accepts the tokens of the step in flight, if any (before the cache, weights or batch change under it);
    /// a failure fails what was running, as a failing step does.
    func settleInFlight() {
        guard let flight = inFlight else { return }
        inFlight = nil
        do {
            try complete(flight)
        } catch {
            abortAll(message: "internal error: \(error)")
        }
    }

    /// Queues sampling of the decode rows of `hidden` (row `i` for `sequences[i]`), tokens left on the device.
    private func sampleDeferred(hidden: Tensor, sequences: [SequenceState]) throws -> any DeferredSamples {
        let setupStart = MonotonicClock.seconds()
        let parameters = sequences.map(samplingRow)
        let rows = hidden.shape[0] == sequences.count ? hidden : hidden.rows(0..<sequences.count)
        let callStart = MonotonicClock.seconds()
        decodeHostPhases.sampleSetup += callStart - setupStart
        defer { decodeHostPhases.launch += MonotonicClock.seconds() - callStart }
        return try model.sampleTokensDeferred(hidden: rows, rows: parameters)
    }

    // MARK: Device decode steps

    /// Rows `row ..< row + count` of a decode step read their input tokens from rows `source ..< source + count`
    /// of the previous step's samples on the device.
    struct DeviceTokenRun {
        var source: Int
        var row: Int
        var count: Int
    }

    /// A decode step's forward from one device buffer of metadata; batches up to `cudaGraphMaxBatchSize` are
    /// padded to a power of two and, after their first eager step, replayed from a captured graph.
    /// `deviceTokens`: the input tokens the host does not have yet (the overlap schedule), as runs of the
    /// previous step's sampled tokens, copied on the device after the metadata.
    private func decodeForward(_ chunks: [Chunk], deviceTokens: (tokens: Tensor, runs: [DeviceTokenRun])? = nil) throws -> Tensor {
        let prepareStart = MonotonicClock.seconds()
        let size = pool.blockSize
        let batch = chunks.count
        let longest = chunks.map { $0.start + 1 }.max() ?? 1
        let maxWidth = (max(contextLength, longest) + size - 1) / size
        let needed = (longest + size - 1) / size
        let graphs = !options.disableCUDAGraph && batch <= options.cudaGraphMaxBatchSize
        let bucket = graphs ? DecodePlan.roundedUp(batch) : batch
        let width = graphs ? min(DecodePlan.roundedUp(max(needed, 4)), max(maxWidth, needed)) : needed
        let key = DecodePlan.Key(batch: bucket, width: width)
        let plan: DecodePlan
        if let existing = decodePlans[key] {
            plan = existing
        } else {
            plan = try DecodePlan(key: key, backend: model.backend)
            decodePlans[key] = plan
        }
        var values = [Int32](repeating: 0, count: plan.inputs.count)
        let padding = paddingBlock * Int32(size)
        for row in 0..<bucket {
            let tableStart = 4 * bucket + row * width
            guard row < batch else {
                values[2 * bucket + row] = padding
                values[3 * bucket + row] = 1
                for i in 0..<width { values[tableStart + i] = paddingBlock }
                continue
            }
            let chunk = chunks[row], sequence = chunk.sequence
            values[row] = chunk.start < sequence.tokens.count ? sequence.tokens[chunk.start] : 0
            values[bucket + row] = Int32(chunk.start)
            values[2 * bucket + row] = sequence.blockTable[chunk.start / size] * Int32(size) + Int32(chunk.start % size)
            values[3 * bucket + row] = Int32(chunk.start + 1)
            for i in 0..<width { values[tableStart + i] = i < sequence.blockTable.count ? sequence.blockTable[i] : paddingBlock }
        }
        try model.backend.copy(Tensor(int32: values), into: plan.inputs)
        if let (tokens, runs) = deviceTokens {
            for run in runs {
                try model.backend.copy(tokens.rows(run.source..<(run.source + run.count)), into: plan.tokens.rows(run.row..<(run.row + run.count)))
            }
        }
        let launchStart = MonotonicClock.seconds()
        decodeHostPhases.prepare += launchStart - prepareStart
        if let lastDecodeEnd, deviceTokens == nil { decodeHostSeconds += launchStart - lastDecodeEnd }
        if let graph = plan.graph, let output = plan.output {
            try graph.launch()
            decodeHostPhases.launch += MonotonicClock.seconds() - launchStart
            decodeCounters.replays += 1
            return output
        }
        let output = try decodeHidden(plan, blockSize: size)
        if graphs && !plan.captureFailed {
            do {
                var captured: Tensor?
                if let graph = try model.backend.captureGraph({ captured = try decodeHidden(plan, blockSize: size) }) {
                    plan.graph = graph
                    plan.output = captured
                    decodeCounters.captures += 1
                } else {
                    plan.captureFailed = true
                }
            } catch {
                // Graphs are an optimisation: a capture that fails leaves this plan eager (and says why).
                plan.captureFailed = true
                captureFailures.append("batch \(plan.key.batch), table width \(plan.key.width): \(error)")
            }
        }
        return output
    }

    private func decodeHidden(_ plan: DecodePlan, blockSize: Int) throws -> Tensor {
        let batch = plan.key.batch
        guard options.enableTwoBatchOverlap, !options.disableCUDAGraph, batch >= max(options.twoBatchOverlapMinimumBatch, 2), batch % 2 == 0 else {
            return try decodeHidden(plan, rows: 0..<batch, blockSize: blockSize)
        }
        // Two half batches, each its own forward, overlapped; their hidden states are then copied into one
        // tensor in row order (the eager step runs the same halves one after the other, so the captured
        // graph computes what it did).
        var halves: [Tensor] = []
        try model.backend.overlapped(
            { halves.append(try decodeHidden(plan, rows: 0..<(batch / 2), blockSize: blockSize)) },
            { halves.append(try decodeHidden(plan, rows: (batch / 2)..<batch, blockSize: blockSize)) })
        guard halves.count == 2 else { throw EngineError.internalFailure("two-batch overlap produced \(halves.count) halves") }
        var shape = halves[0].shape
        shape[0] = batch
        let output = try model.backend.zeros(shape, dtype: halves[0].dtype)
        try model.backend.copy(halves[0], into: output.rows(0..<(batch / 2)))
        try model.backend.copy(halves[1], into: output.rows((batch / 2)..<batch))
        return output
    }

    private func decodeHidden(_ plan: DecodePlan, rows: Range<Int>, blockSize: Int) throws -> Tensor {
        let cache = PagedBatchCache(
            keyCaches: keyCaches, valueCaches: valueCaches, blockSize: blockSize,
            metadata: .device(slots: plan.slots.rows(rows), blockTable: plan.blockTable.rows(rows), contextLengths: plan.contextLengths.rows(rows),
                              maxContextLength: plan.key.width * blockSize))
        return try model.forwardHidden(tokenIDs: plan.tokens.rows(rows), positions: plan.positions.rows(rows), positionLimit: contextLength, cache: cache)
    }

    /// Samples every finished row on the device (`Backend.sampleTokens`): forks first (block work only), then
    /// one sampling call for all rows, then the tokens are accepted in the order the host path accepts them.
    private func sampleOnDevice(hidden: Tensor, logitRows: [Int32], sampled: [SequenceState]) throws {
        let setupStart = MonotonicClock.seconds()
        var rows: [Int32] = [], parameters: [TokenSampling] = []
        var order: [(sequence: SequenceState, followers: [SequenceState])] = []
        let size = pool.blockSize
        for (index, sequence) in sampled.enumerated() {
            var followers: [SequenceState] = []
            if sequence.generatedCount == 0 && sequence.sampleIndex == 0 {
                let waiting = sequence.request.samples.filter { $0.awaitingFork && !$0.isFinished }
                let fullBlocks = sequence.promptLength / size, hasPartial = sequence.promptLength % size != 0
                for follower in waiting {
                    if try fork(follower, from: sequence, fullBlocks: fullBlocks, hasPartial: hasPartial, size: size) {
                        followers.append(follower)
                    }
                }
            }
            for member in followers + [sequence] {
                rows.append(logitRows[index])
                parameters.append(samplingRow(member))
            }
            order.append((sequence, followers))
        }
        let waitStart = MonotonicClock.seconds()
        decodeHostPhases.sampleSetup += waitStart - setupStart
        let results = try model.sampleTokens(hidden: try model.backend.gatherRows(hidden, rows: rows), rows: parameters)
        let acceptStart = MonotonicClock.seconds()
        decodeHostPhases.sampleWait += acceptStart - waitStart
        defer { decodeHostPhases.accept += MonotonicClock.seconds() - acceptStart }
        var next = 0
        for (sequence, followers) in order {
            for member in followers + [sequence] {
                accept(member, choice: Sampler.Choice(token: results[next].token, logprob: results[next].logprob, alternatives: []))
                next += 1
            }
        }
    }

    /// The sequence's sampling parameters for `sampleTokens`, drawing its uniform from its own generator
    /// exactly when the host sampler would.
    private func samplingRow(_ sequence: SequenceState) -> TokenSampling {
        let sampling = sequence.request.request.sampling
        let greedy = sampling.temperature == 0
        return TokenSampling(
            temperature: Float(sampling.temperature), topK: sampling.topK > 0 ? sampling.topK : 0, topP: sampling.topP,
            minP: sampling.minP, uniform: greedy ? 0 : sequence.generator.nextUnitDouble())
    }
}
