/// The coarse operations model code is written in. Every backend implements all of them; the CPU backend
/// is the reference (fp32 math, deterministic) that other backends are tested against.
///
/// Conventions shared by every operation:
/// - Tensors are contiguous and row-major. Packed token batches have the token dimension first: `[T, ...]`.
/// - Linear weights use Hugging Face's layout `[out, in]`, so a projection is `matmul(x, w, transposeB: true)`.
/// - Operations allocate and return their outputs. Parameter gradients are *accumulated* into tensors the
///   caller passes (`weightGradient`, `tableGradient`), so gradient accumulation over micro-batches is free.
/// - Backward functions take what their forward returned (for example `inverseRMS`, `logSumExp`) instead
///   of recomputing it.
public protocol Backend: AnyObject, Sendable {
    var device: Device { get }

    // MARK: Memory

    /// A zero-filled tensor on this backend's device.
    func zeros(_ shape: [Int], dtype: DType) throws -> Tensor
    /// A copy of a host tensor on this backend's device (the CPU backend may return it as is).
    func upload(_ host: Tensor) throws -> Tensor
    /// A host copy of a tensor of this backend (the CPU backend may return it as is).
    func download(_ tensor: Tensor) throws -> Tensor
    /// Copies `source` into `destination` (same shape; converted, round-to-nearest-even, when the dtypes
    /// differ, which is how a colocated engine with bf16 weights takes the trainer's fp32 master weights).
    func copy(_ source: Tensor, into destination: Tensor) throws
    /// A converted copy (round-to-nearest-even for narrowing conversions).
    func cast(_ x: Tensor, to dtype: DType) throws -> Tensor

    // MARK: Linear algebra

    /// `op(a) * op(b)`; rank-2 operands, or rank-3 with a shared leading batch dimension.
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor
    /// `c = alpha * op(a) * op(b) + beta * c` in place.
    func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool, into c: Tensor, alpha: Float, beta: Float) throws

    // MARK: Elementwise and reductions

    /// `a + b` (same shape).
    func add(_ a: Tensor, _ b: Tensor) throws -> Tensor
    /// `target += scale * x` in place.
    func accumulate(_ x: Tensor, into target: Tensor, scale: Float) throws
    /// `x *= factor` in place.
    func scale(_ x: Tensor, by factor: Float) throws
    /// Sum of squares of all elements, accumulated in fp64 (gradient norms).
    func sumOfSquares(_ x: Tensor) throws -> Double
    /// Sets every element to `value`.
    func fill(_ x: Tensor, with value: Float) throws
    /// Adds `bias` `[N]` to every row of `x` `[..., N]` in place.
    func addBias(_ x: Tensor, bias: Tensor) throws
    /// Adds the column sums of `x` `[..., N]` into `target` `[N]` (the gradient of a bias).
    func accumulateColumnSums(_ x: Tensor, into target: Tensor) throws

    // MARK: Normalisation

    /// Row-wise RMSNorm over the last dimension: `y = x / sqrt(mean(x^2) + eps) * weight`.
    /// Returns the output and the per-row `1 / rms` that backward needs.
    func rmsNorm(_ x: Tensor, weight: Tensor, epsilon: Float) throws -> (output: Tensor, inverseRMS: Tensor)
    /// Gradient with respect to the input; adds the weight's gradient into `weightGradient` when given.
    func rmsNormBackward(_ dOutput: Tensor, input: Tensor, weight: Tensor, inverseRMS: Tensor, weightGradient: Tensor?) throws -> Tensor

    // MARK: Rotary position embedding

    /// Rotates `x` `[T, heads, D]` by per-row angles: `cos`/`sin` are `[T, D/2]`, already scaled
    /// (YaRN's attention factor included). Halves are paired as in Hugging Face's `rotate_half`:
    /// element `i` with element `i + D/2`. `inverse` rotates by the negative angle, which is the backward.
    func rope(_ x: Tensor, cos: Tensor, sin: Tensor, inverse: Bool) throws -> Tensor

    // MARK: Attention

    /// Softmax attention over packed sequences. `query` `[Tq, Hq, D]`, `key` `[Tk, Hkv, D]`, `value`
    /// `[Tk, Hkv, Dv]` with `Hq` a multiple of `Hkv` (grouped-query attention). Returns the output
    /// `[Tq, Hq, Dv]` and the log-sum-exp of the scaled scores `[Tq, Hq]` for the backward.
    func attention(query: Tensor, key: Tensor, value: Tensor, layout: AttentionLayout, scale: Float) throws -> (output: Tensor, logSumExp: Tensor)
    func attentionBackward(
        dOutput: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor, logSumExp: Tensor,
        layout: AttentionLayout, scale: Float
    ) throws -> (dQuery: Tensor, dKey: Tensor, dValue: Tensor)

    // MARK: Paged key/value cache

    /// Writes each row of `key` `[T, kvHeads, D]` and `value` `[T, kvHeads, Dv]` into slot `slots[t]` of the
    /// caches `[slotCount, kvHeads, D]` / `[slotCount, kvHeads, Dv]` (slot = block * blockSize + offset).
    func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slots: [Int32]) throws
    /// Attention of packed queries over keys and values held in cache blocks. Sequence `s` has the query rows
    /// of `queries.range(s)` and a context of `contextLengths[s]` tokens (its new tokens included, already
    /// stored), whose slots are `blockTables[s][i / blockSize] * blockSize + i % blockSize`. Causal, aligned
    /// at the end of the context, like `attention`.
    func pagedAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTables: [[Int32]], blockSize: Int,
        contextLengths: [Int], queries: PackedSequences, scale: Float
    ) throws -> Tensor
    /// Copies whole cache rows: row `destinations[i]` becomes row `sources[i]` (copy-on-write of blocks).
    func copyRows(_ tensor: Tensor, from sources: [Int32], to destinations: [Int32]) throws
    /// Rows `rows` of `x` `[N, ...]`, stacked.
    func gatherRows(_ x: Tensor, rows: [Int32]) throws -> Tensor

    // MARK: Column slices

    /// Splits the last dimension of `x` `[..., C]` into consecutive parts of `widths` (summing to `C`); part `i`
    /// has `x`'s leading shape and last dimension `widths[i]`. With `summingGroups`, the rows of part `i` (every
    /// dimension but the last, flattened) are summed over runs of `summingGroups[i]` consecutive rows, and a
    /// part with a group above 1 is `[rows / group, widths[i]]`: the backward of a part that
    /// `concatenateColumns` broadcast.
    func splitColumns(_ x: Tensor, widths: [Int], summingGroups: [Int]?) throws -> [Tensor]
    /// Joins parts along the last dimension. Each part is `[rows_i, width_i]` with its leading dimensions
    /// flattened; the result has the leading shape of the first part with the most rows `R`, and a part with
    /// `R / g` rows is broadcast, each of its rows serving `g` consecutive result rows (one key shared by
    /// every head).
    func concatenateColumns(_ parts: [Tensor]) throws -> Tensor
    /// `x` `[..., C]` to `[..., columns.count]` with `y[..., j] = x[..., columns[j]]` (how RoPE's interleaved
    /// pairs are brought next to each other, and back).
    func gatherColumns(_ x: Tensor, columns: [Int]) throws -> Tensor
    /// `[A, B, ...]` to `[B, A, ...]`: swaps the two leading dimensions (tokens-major to heads-major and back,
    /// around per-head products). Its own backward.
    func swapLeadingDimensions(_ x: Tensor) throws -> Tensor

    // MARK: Mixture of experts

    /// For each row of router `logits` `[T, E]`, the `parameters.topK` chosen experts (i32 `[T, k]`, in
    /// descending order of their selection score) and their gate weights (f32 `[T, k]`), as described by
    /// `RoutingParameters`. `correctionBias` `[E]` shifts the scores used for the choice only.
    func route(logits: Tensor, correctionBias: Tensor?, parameters: RoutingParameters) throws -> (weights: Tensor, experts: Tensor)
    /// d(loss)/d(logits) `[T, E]` given d(loss)/d(weights) `[T, k]`; the choice itself is not differentiated.
    func routeBackward(dWeights: Tensor, logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor
    /// The gate weights of given experts (i32 `[T, k]`, however they were chosen) from router `logits` `[T, E]`:
    /// each expert's score (softmax over the row, or its sigmoid), renormalised over the row's `k` experts and
    /// scaled as `parameters` say. No correction bias (it only steers the choice). Given `route`'s own experts
    /// this is `route`'s weights to the bit; routing replay fixes the experts and takes the weights from here.
    /// Every index must lie in `0 ..< E` and no row may name an expert twice (checked, with an error naming the
    /// position).
    func routeWeights(logits: Tensor, experts: Tensor, parameters: RoutingParameters) throws -> Tensor
    /// Groups the rows of `x` `[T, D]` by expert: returns `[T * k, D]` holding token `t`'s row once for each of
    /// its `k` experts (`experts` i32 `[T, k]`), sorted by expert and by token within an expert, and the plan
    /// that `combine` and the grouped products use.
    func dispatch(_ x: Tensor, experts: Tensor, expertCount: Int) throws -> (rows: Tensor, plan: ExpertDispatch)
    /// `y[t] = sum_j weights[t, j] * rows[position(t, j)]` `[T, D]`, from dispatched rows `[T * k, D]`; nil
    /// weights count 1 each, which makes `combine` the backward of `dispatch`.
    func combine(_ rows: Tensor, weights: Tensor?, plan: ExpertDispatch) throws -> Tensor
    /// Gradients of `combine` with weights: `dRows[position(t, j)] = weights[t, j] * dOutput[t]` and
    /// `dWeights[t, j] = dOutput[t] . rows[position(t, j)]`.
    func combineBackward(dOutput: Tensor, rows: Tensor, weights: Tensor, plan: ExpertDispatch) throws -> (dRows: Tensor, dWeights: Tensor)
    /// Grouped product: consecutive row groups of `x` `[N, K]` (sizes `groupSizes`, summing to `N`) times
    /// their own weight, `x_g * weights[g]^T` (weights `[M, K]`, the Hugging Face layout) or, with
    /// `transposeWeights` false, `x_g * weights[g]` (weights `[K, M]`). Weights of empty groups are not read.
    func groupedMatmul(_ x: Tensor, weights: [Tensor], groupSizes: [Int], transposeWeights: Bool) throws -> Tensor
    /// Adds `dOutput_g^T * input_g` into `weightGradients[g]` for every non-empty group: the weight gradient of
    /// `groupedMatmul(input, ..., transposeWeights: true)`.
    func groupedMatmulWeightGradient(dOutput: Tensor, input: Tensor, groupSizes: [Int], weightGradients: [Tensor]) throws

    // MARK: Decode steps from device-side metadata (no host round trip; capturable as a device graph)

    /// The dtype the engine's key/value cache should use on this backend (f32 on the CPU, the activation
    /// dtype on accelerators).
    var keyValueCacheDType: DType { get }
    /// Free and total bytes of device memory, or nil where that has no meaning (the CPU).
    func deviceMemory() throws -> (free: Int, total: Int)?
    /// `gatherRows` with the row indices in an i32 tensor `[R]` (on this backend's device). Accelerators do
    /// not check the indices (that would need a host round trip): the caller guarantees `0 ..< N`.
    func gatherRows(_ x: Tensor, indices: Tensor) throws -> Tensor
    /// `storeKeyValues` with the slots in an i32 tensor `[T]` on this backend's device; unchecked on
    /// accelerators, like `gatherRows(_:indices:)`.
    func storeKeyValues(key: Tensor, value: Tensor, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws
    /// Decode attention: one query row per sequence (`query` `[B, Hq, D]`), reading keys and values in
    /// place from the cache blocks. `blockTable` is i32 `[B, maxBlocks]` (row `b` lists sequence `b`'s
    /// blocks), `contextLengths` i32 `[B]` (each at least 1, the new token included and already stored).
    /// `maxContextLength` bounds every context length (it sizes the launch, so a captured graph stays valid
    /// for any lengths up to it). The result equals `pagedAttention` with one query per sequence.
    func pagedDecodeAttention(
        query: Tensor, keyCache: Tensor, valueCache: Tensor, blockTable: Tensor, contextLengths: Tensor,
        blockSize: Int, maxContextLength: Int, scale: Float
    ) throws -> Tensor

    // MARK: Sampling

    /// One token per row of `hidden` `[R, D]` from the logits `hidden · weight^T` (`weight` `[V, D]`),
    /// under `rows[r]` (see `TokenSampling` for the exact definition), with its log-prob under
    /// `log_softmax(logits / T)` before truncation (T = 1 for greedy rows). Never holds more than a chunk of
    /// rows of fp32 logits; returns the results on the host.
    func sampleTokens(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> [SampledToken]

    /// `sampleTokens` without waiting for it: the sampled tokens stay on the device for work queued after
    /// this call to read (the next decode step's input), and `DeferredSamples.results()` reads them back
    /// later, waiting for the sampling only, not for the work queued after it. The default samples at once.
    func sampleTokensDeferred(hidden: Tensor, weight: Tensor, rows: [TokenSampling]) throws -> any DeferredSamples

    // MARK: Graphs

    /// Records the device work `body` issues, without running it, as a graph that replays it; nil where the
    /// backend has no graphs (the caller then runs `body` itself). Tensors `body` allocates stay valid as
    /// long as the graph lives; `body` must not read results back to the host.
    func captureGraph(_ body: () throws -> Void) throws -> (any DeviceGraph)?

    /// Runs two pieces of work that share no results (neither reads what the other writes), letting the
    /// device run them at the same time where it can: during a CUDA graph capture the second is captured on
    /// a second stream. The default runs them in order.
    func overlapped(_ first: () throws -> Void, _ second: () throws -> Void) throws

    // MARK: Feed-forward

    /// `silu(gate) * up`.
    func swiglu(gate: Tensor, up: Tensor) throws -> Tensor
    func swigluBackward(dOutput: Tensor, gate: Tensor, up: Tensor) throws -> (dGate: Tensor, dUp: Tensor)

    // MARK: Embedding

    /// Rows of `table` `[V, D]` for `ids` (i32 `[T]`); an id outside `0..<V` throws.
    func embedding(ids: Tensor, table: Tensor) throws -> Tensor
    /// Adds `dOutput` rows into `tableGradient` at `ids`.
    func embeddingBackward(dOutput: Tensor, ids: Tensor, tableGradient: Tensor) throws

    // MARK: Output head

    /// For each row `t` of `hidden` `[T, D]`: the distribution `p = softmax(hidden[t] * weight^T / temperature)`
    /// over the vocabulary (`weight` `[V, D]`), the log-probability of `targets[t]` and the entropy of `p`.
    /// A negative target marks a row with no target: its log-prob is 0, its entropy is still computed.
    /// Never holds more than a chunk of rows of `[T, V]` logits at a time.
    func logprobsAndEntropy(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float) throws -> (logprobs: Tensor, entropy: Tensor)
    /// Gradient with respect to `hidden` given gradients of the loss with respect to each row's log-prob and
    /// entropy; adds the gradient with respect to `weight` into `weightGradient` when given.
    func logprobsAndEntropyBackward(
        dLogprobs: Tensor, dEntropy: Tensor, hidden: Tensor, weight: Tensor, targets: Tensor, temperature: Float,
        weightGradient: Tensor?
    ) throws -> Tensor

    // MARK: Optimizer

    /// One AdamW update of fp32 `parameter` in place, with its moments, from `gradient`.
    func adamw(parameter: Tensor, gradient: Tensor, firstMoment: Tensor, secondMoment: Tensor, step: AdamWStep) throws
    /// The same update of many parameters at once (one kernel launch on accelerators). The four lists are
    /// parallel: element `i` of each belongs to parameter `i`.
    func adamw(parameters: [Tensor], gradients: [Tensor], firstMoments: [Tensor], secondMoments: [Tensor], step: AdamWStep) throws

    // MARK: Quantisation

    /// fp8 block quantisation of a rank-2 tensor `[M, N]`, as DeepSeek-V3 stores weights: one fp32 scale
    /// per `blockSize x blockSize` tile, `scale = amax(|tile|) / max(dtype)` (1 for an all-zero tile), and
    /// `values = dtype(x / scale)` (round-to-nearest-even, saturating for e4m3). `dtype` is `fp8e4m3` or
    /// `fp8e5m2`; `scales` is `[ceil(M / blockSize), ceil(N / blockSize)]`.
    func blockQuantize(_ x: Tensor, blockSize: Int, to dtype: DType) throws -> (values: Tensor, scales: Tensor)
    /// `values * scale` of each element's tile, as `dtype`.
    func blockDequantize(values: Tensor, scales: Tensor, blockSize: Int, to dtype: DType) throws -> Tensor
    /// `x · W^T` `[M, N]` for block-quantised weights `W = blockDequantize(values, scales, blockSize)`
    /// (`values` fp8 `[N, K]`, the Hugging Face layout): what an engine serving an fp8 checkpoint runs.
    /// The default dequantises and multiplies exactly; a GPU may instead quantise `x` per row in blocks of
    /// `blockSize` columns and run an fp8 product with both scales (DeepSeek-V3's inference recipe).
    func blockScaledMatmul(_ x: Tensor, values: Tensor, scales: Tensor, blockSize: Int) throws -> Tensor
    /// `groupedMatmul(x, weights, groupSizes, transposeWeights: true)` for block-quantised expert weights
    /// (`values[g]` fp8 `[N, K]` with `scales[g]`); weights of empty groups are not read.
    func groupedBlockScaledMatmul(_ x: Tensor, values: [Tensor], scales: [Tensor], groupSizes: [Int], blockSize: Int) throws -> Tensor

    // MARK: Fused inference steps (defaults in FusedInference.swift compose the operations above)

    /// `target += x` in place, then the RMSNorm of the new `target` (as `rmsNorm`'s output): the residual
    /// add that ends a block and the norm that starts the next one, in one pass where the backend can.
    func addRMSNorm(_ x: Tensor, into target: Tensor, weight: Tensor, epsilon: Float) throws -> Tensor
    /// `swiglu` of rows `[..., 2 * I]` holding the gate in their first `I` columns and up in the last `I`:
    /// the output of one product over the gate and up weights stacked. Returns `[..., I]`.
    func swiglu(packed: Tensor) throws -> Tensor
    /// Attention inputs of a cached forward from one product's q/k/v rows (see `PackedAttentionProjections`):
    /// queries and keys normalised per head (when the norms are given) and rotated, keys and values stored at
    /// `slotIndices` (i32 `[T]` on this backend's device, unchecked on accelerators, like
    /// `storeKeyValues(key:value:keyCache:valueCache:slotIndices:)`); returns the rotated queries `[T, Hq, D]`.
    func rotateAndCache(_ projections: PackedAttentionProjections, keyCache: Tensor, valueCache: Tensor, slotIndices: Tensor) throws -> Tensor
}

extension Backend {
    /// Updates each parameter in turn; backends with a fused multi-tensor kernel override this.
    public func adamw(parameters: [Tensor], gradients: [Tensor], firstMoments: [Tensor], secondMoments: [Tensor], step: AdamWStep) throws {
        guard gradients.count == parameters.count, firstMoments.count == parameters.count, secondMoments.count == parameters.count else {
            throw KiteTensorError.invalidArgument(operation: "adamw", detail: "\(parameters.count) parameters, \(gradients.count) gradients, \(firstMoments.count) and \(secondMoments.count) moments")
        }
        for index in parameters.indices {
            try adamw(parameter: parameters[index], gradient: gradients[index], firstMoment: firstMoments[index], secondMoment: secondMoments[index], step: step)
        }
    }
}

/// The scalars of one AdamW step (decoupled weight decay, bias-corrected moments), as in PyTorch's AdamW.
public struct AdamWStep: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    /// 1 for the first step.
    public var step: Int
    /// Multiplies the gradient before the update (gradient clipping folds in here).
    public var gradientScale: Float

    public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0, step: Int, gradientScale: Float = 1) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.step = step
        self.gradientScale = gradientScale
    }
}
