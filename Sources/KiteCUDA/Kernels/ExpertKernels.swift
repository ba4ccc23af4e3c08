/// Mixture-of-experts routing, combine and its backward, and the column reshuffles of multi-head latent
/// attention (split, join, gather, leading-dimension swap).
///
/// Every kernel mirrors the CPU reference operation by operation, in the same order where the order changes
/// the rounding (gate renormalisation, combine's sum over a token's experts, split's sums of broadcast
/// rows): only the softmax denominator of routing and combine-backward's dot products are summed in another
/// order. Operands carry runtime dtype codes like the elementwise kernels; arithmetic is fp32.
enum ExpertKernels {
    static let source = #"""
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
#define NO_INDEX 0x7fffffff

// MARK: Column slices

/// Part `out` [outRows, width] of x [rows, cols] from column `offset`; with group > 1 each output row is the
/// sum of `group` consecutive input rows, added in row order from +0 as the CPU does.
extern "C" __global__ void kite_split_columns(const void* x, int xdt, void* out, int odt, i64 outRows, int cols, int offset, int width, int group) {
    GRID_STRIDE(idx, outRows * width) {
        i64 r = idx / width;
        int c = (int)(idx % width);
        float s;
        if (group == 1) {
            s = load_any(x, xdt, r * cols + offset + c);
        } else {
            s = 0.0f;
            for (int g = 0; g < group; ++g) s += load_any(x, xdt, (r * group + g) * cols + offset + c);
        }
        store_any(out, odt, idx, s);
    }
}

/// Columns offset ..< offset + width of out [rows, total] from part [rows / repeats, width].
extern "C" __global__ void kite_concat_columns(const void* part, int pdt, void* out, int odt, i64 rows, int total, int offset, int width, int repeats) {
    GRID_STRIDE(idx, rows * width) {
        i64 r = idx / width;
        int c = (int)(idx % width);
        store_any(out, odt, r * total + offset + c, load_any(part, pdt, (r / repeats) * width + c));
    }
}

/// out[r, j] = x[r, columns[j]] (columns checked on the host).
extern "C" __global__ void kite_gather_columns(const void* x, int xdt, const int* columns, void* out, int odt, i64 rows, int width, int count) {
    GRID_STRIDE(idx, rows * count) {
        i64 r = idx / count;
        int j = (int)(idx % count);
        store_any(out, odt, idx, load_any(x, xdt, r * width + columns[j]));
    }
}

/// out [b, a, inner] from x [a, b, inner].
extern "C" __global__ void kite_swap_leading(const void* x, int xdt, void* out, int odt, i64 a, i64 b, i64 inner) {
    GRID_STRIDE(idx, a * b * inner) {
        i64 e = idx % inner, rest = idx / inner;
        i64 i = rest % a, j = rest / a;
        store_any(out, odt, idx, load_any(x, xdt, (i * b + j) * inner + e));
    }
}

// MARK: Routing (one block per token)

/// Whether candidate (av, ai) beats (bv, bi): the larger value, ties to the lower index (the CPU's `top`).
KD bool route_better(float av, int ai, float bv, int bi) { return av > bv || (av == bv && ai < bi); }

/// The block's best (value, index); every thread gets it. sv and si hold 32 entries.
KD void block_argmax(float& v, int& i, float* sv, int* si) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (route_better(ov, oi, v, i)) { v = ov; i = oi; }
    }
    __syncthreads();
    if (lane == 0) { sv[warp] = v; si[warp] = i; }
    __syncthreads();
    if (lane < warps) { v = sv[lane]; i = si[lane]; } else { v = NEG_INF; i = NO_INDEX; }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (route_better(ov, oi, v, i)) { v = ov; i = oi; }
    }
}

/// scores[e] for the block's row of logits: softmax over the row (scoring 0) or each logit's sigmoid (1).
KD void route_scores(const void* logits, int ldt, i64 base, int E, int scoring, float* scores, float* scratch) {
    if (scoring == 1) {
        for (int e = threadIdx.x; e < E; e += blockDim.x) scores[e] = 1.0f / (1.0f + expf(-load_any(logits, ldt, base + e)));
        __syncthreads();
        return;
    }
    float m = NEG_INF;
    for (int e = threadIdx.x; e < E; e += blockDim.x) m = fmaxf(m, load_any(logits, ldt, base + e));
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        float v = expf(load_any(logits, ldt, base + e) - m);
        scores[e] = v;
        s += v;
    }
    s = block_sum(s, scratch);
    for (int e = threadIdx.x; e < E; e += blockDim.x) scores[e] = scores[e] / s;
    __syncthreads();
}

/// RoutingParameters' procedure for token blockIdx.x: scores, group-limited choice on the biased scores,
/// top-k, gate weights from the unbiased scores. Dynamic shared memory: (2E + 2 groups) floats + k ints.
extern "C" __global__ void kite_route(const void* logits, int ldt, const float* bias, int E, int k, int scoring,
                                      int groups, int topGroups, int groupScore, int normalize, float eps, float scale,
                                      float* weights, int* experts) {
    extern __shared__ float smem[];
    float* scores = smem;
    float* choice = smem + E;
    float* gscore = choice + E;
    float* gkept = gscore + groups;
    int* chosen = (int*)(gkept + groups);
    __shared__ float sv[32];
    __shared__ int si[32];
    i64 t = blockIdx.x;
    route_scores(logits, ldt, t * E, E, scoring, scores, sv);
    for (int e = threadIdx.x; e < E; e += blockDim.x) choice[e] = scores[e] + (bias ? bias[e] : 0.0f);
    __syncthreads();
    if (groups > 1) {
        int size = E / groups;
        for (int g = threadIdx.x; g < groups; g += blockDim.x) {
            const float* members = choice + g * size;
            int first = 0;
            for (int m = 1; m < size; ++m) if (members[m] > members[first]) first = m;
            float score = members[first];
            if (groupScore == 1) {
                int second = first == 0 ? 1 : 0;
                for (int m = 0; m < size; ++m) if (m != first && members[m] > members[second]) second = m;
                score = members[first] + members[second];
            }
            gscore[g] = score;
            gkept[g] = 0.0f;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int r = 0; r < topGroups; ++r) {
                int best = -1;
                for (int g = 0; g < groups; ++g) if (gkept[g] == 0.0f && (best < 0 || gscore[g] > gscore[best])) best = g;
                gkept[best] = 1.0f;
            }
        }
        __syncthreads();
        for (int e = threadIdx.x; e < E; e += blockDim.x) if (gkept[e / size] == 0.0f) choice[e] = NEG_INF;
        __syncthreads();
    }
    for (int j = 0; j < k; ++j) {
        float v = NEG_INF;
        int i = NO_INDEX;
        for (int e = threadIdx.x; e < E; e += blockDim.x) {
            bool taken = false;
            for (int c = 0; c < j; ++c) taken |= chosen[c] == e;
            if (!taken && route_better(choice[e], e, v, i)) { v = choice[e]; i = e; }
        }
        block_argmax(v, i, sv, si);
        if (threadIdx.x == 0) chosen[j] = i;
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float denominator = 0.0f;
        if (normalize) {
            for (int j = 0; j < k; ++j) denominator += scores[chosen[j]];
            denominator += eps;
        }
        for (int j = 0; j < k; ++j) {
            float gate = scores[chosen[j]];
            if (normalize) gate = gate / denominator;
            weights[t * k + j] = gate * scale;
            experts[t * k + j] = chosen[j];
        }
    }
}

/// The gate weights of given experts for token blockIdx.x: kite_route's arithmetic after its choice, so
/// route's own experts give route's weights to the bit. An index outside 0 ..< E, or one its row already
/// named, records its position in err (atomicMin) and the row's weights are 0. Dynamic shared memory: E floats.
extern "C" __global__ void kite_route_weights(const void* logits, int ldt, const int* experts, int E, int k, int scoring,
                                              int normalize, float eps, float scale, float* weights, int* err) {
    extern __shared__ float smem[];
    float* scores = smem;
    __shared__ float scratch[32];
    i64 t = blockIdx.x;
    route_scores(logits, ldt, t * E, E, scoring, scores, scratch);
    if (threadIdx.x != 0) return;
    const int* row = experts + t * k;
    bool bad = false;
    for (int j = 0; j < k; ++j) {
        bool wrong = row[j] < 0 || row[j] >= E;
        for (int c = 0; c < j && !wrong; ++c) wrong = row[c] == row[j];
        if (wrong) { atomicMin(err, (int)(t * k + j)); bad = true; }
    }
    float denominator = 0.0f;
    if (normalize && !bad) {
        for (int j = 0; j < k; ++j) denominator += scores[row[j]];
        denominator += eps;
    }
    for (int j = 0; j < k; ++j) {
        float gate = bad ? 0.0f : scores[row[j]];
        if (normalize && !bad) gate = gate / denominator;
        weights[t * k + j] = gate * scale;
    }
}

/// d(loss)/d(logits) of token blockIdx.x from d(loss)/d(weights), through the renormalisation and the
/// softmax or sigmoid; the choice is not differentiated. An expert index outside 0 ..< E records its
/// position in err (atomicMin) and contributes nothing. Dynamic shared memory: E + k floats + k ints.
extern "C" __global__ void kite_route_bwd(const float* dWeights, const void* logits, int ldt, const int* experts, int E, int k, int scoring,
                                          int normalize, float eps, float scale, void* dLogits, int odt, int* err) {
    extern __shared__ float smem[];
    float* scores = smem;
    float* dScores = smem + E;
    int* chosen = (int*)(dScores + k);
    __shared__ float scratch[32];
    __shared__ float dot;
    i64 t = blockIdx.x;
    route_scores(logits, ldt, t * E, E, scoring, scores, scratch);
    if (threadIdx.x == 0) {
        for (int j = 0; j < k; ++j) {
            int e = experts[t * k + j];
            if (e < 0 || e >= E) { atomicMin(err, (int)(t * k + j)); e = -1; }
            chosen[j] = e;
            dScores[j] = dWeights[t * k + j] * scale;
        }
        if (normalize) {
            float denominator = 0.0f, weighted = 0.0f;
            for (int j = 0; j < k; ++j) denominator += chosen[j] >= 0 ? scores[chosen[j]] : 0.0f;
            denominator += eps;
            for (int j = 0; j < k; ++j) weighted += dScores[j] * (chosen[j] >= 0 ? scores[chosen[j]] : 0.0f);
            for (int j = 0; j < k; ++j) dScores[j] = dScores[j] / denominator - weighted / (denominator * denominator);
        }
        float d = 0.0f;
        for (int j = 0; j < k; ++j) if (chosen[j] >= 0) d += dScores[j] * scores[chosen[j]];
        dot = d;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        float s = scores[e];
        float v = scoring == 0 ? -s * dot : 0.0f;
        for (int j = 0; j < k; ++j) {
            if (chosen[j] != e) continue;
            v += scoring == 0 ? s * dScores[j] : dScores[j] * s * (1.0f - s);
        }
        store_any(dLogits, odt, t * (i64)E + e, v);
    }
}

// MARK: Combine

/// y[t] = sum over j of weights[t, j] * rows[positions[t * k + j]], in j order (weights null: 1 each).
extern "C" __global__ void kite_combine(const void* rows, int rdt, const float* weights, const int* positions, void* out, int odt,
                                        i64 T, int k, int D) {
    GRID_STRIDE(idx, T * D) {
        i64 t = idx / D;
        int i = (int)(idx % D);
        float acc = 0.0f;
        for (int j = 0; j < k; ++j) {
            i64 p = positions[t * k + j];
            float w = weights ? weights[t * k + j] : 1.0f;
            acc += w * load_any(rows, rdt, p * D + i);
        }
        store_any(out, odt, idx, acc);
    }
}

/// One warp per (token, choice) pair: dRows[p] = w * dy[t] and dWeights[pair] = dy[t] . rows[p].
extern "C" __global__ void kite_combine_bwd(const void* dy, int dydt, const void* rows, int rdt, const float* weights, const int* positions,
                                            void* dRows, int odt, float* dWeights, i64 pairs, int k, int D) {
    i64 pair = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (pair >= pairs) return;
    i64 t = pair / k, p = positions[pair];
    float w = weights[pair], dot = 0.0f;
    for (int i = lane; i < D; i += 32) {
        float g = load_any(dy, dydt, t * D + i);
        dot += g * load_any(rows, rdt, p * D + i);
        store_any(dRows, odt, p * D + i, w * g);
    }
    dot = warp_sum(dot);
    if (lane == 0) dWeights[pair] = dot;
}
"""#
}
