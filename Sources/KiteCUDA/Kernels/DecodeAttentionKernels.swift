/// Decode attention that reads the paged cache in place: one query row per sequence, keys and values
/// fetched block by block through the block table, never gathered.
///
/// Split-K ("flash decoding"): a block of 4 warps owns one sequence, one KV head (and the G query heads of
/// its group, which share every key and value load) and one range of `splitKeys` keys. A key row of D bf16
/// is read by D / 8 lanes, 16 bytes each, so a warp takes 32 / (D / 8) keys per step, and four steps' loads
/// are issued before the first is used. Each lane group keeps its own online softmax (running max, sum and
/// output slice, in the log2 domain, rescaled once per four keys); the block merges its groups in shared memory and writes one partial
/// (output, max, sum) per split, and `kite_paged_decode_combine` merges the splits in a fixed order.
///
/// Not batch-invariant (the split count follows the batch size); deterministic mode uses the gather path,
/// which runs the training kernel.
public enum DecodeAttentionKernels {
    /// Head sizes and group sizes with a kernel `kite_paged_decode_d<D>_g<G>`.
    static let headDims = [64, 128]
    static let groupSizes = [1, 2, 4, 8]
    static let threads = 128
    /// Keys one block covers per step of its loop (4 warps, 4 loads each).
    static func keysPerStep(headDim: Int) -> Int { 4 * (32 / (headDim / 8)) * 4 }
    /// The kernel variant `KITE_DECODE_VARIANT` names, nil (unset) to choose by shape (`servedVariant`):
    /// - `p4`: a block of 4 warps per (split, sequence, KV head); the next step's 4 loads issued before this
    ///   step's arithmetic, so a warp always has reads in flight (2.87 TB/s at B = 256 against 2.66 for loads
    ///   then arithmetic; 2 or 8 loads a step measured slower: NOTES.md run 8).
    /// - `plain`: the same block, loads then arithmetic (the comparison baseline).
    /// - `rows`: a warp per KV head and a block per (split, sequence, up to 8 KV heads), the p4 loop in each
    ///   warp, so a block reads whole cache rows: 2.91 against 2.89 TB/s at B = 256 and 2.40 against 2.31 at
    ///   B = 64 in one call, slower at B = 1 (25 against 18 us a layer), where 4 warps share a head's keys.
    /// Measured and not kept (NOTES.md run 9): `p4` compiled for 5 or 6 resident blocks (spills; 1.98 and 1.61
    /// TB/s), and the cache read through shared memory by `cp.async` in 3 stages of 32 keys (2.85) or 4 of 16 (2.70).
    public static var configuredVariant: String? {
        guard let name = environment("KITE_DECODE_VARIANT"), variants.contains(name) else { return nil }
        return name
    }
    /// Every value `KITE_DECODE_VARIANT` takes (`kite bench decode` times each).
    public static let variants = ["p4", "plain", "rows"]

    /// The variant run for `blocks` (sequence, KV head) pairs on `multiprocessors`: `rows` once there are
    /// two warps' worth of pairs per multiprocessor, else `p4` (where a head's keys need several warps).
    public static func servedVariant(pairs: Int, multiprocessors: Int) -> String {
        configuredVariant ?? (pairs >= 2 * multiprocessors ? "rows" : "p4")
    }

    /// The kernel name's prefix for a variant.
    static func prefix(_ variant: String) -> String { variant == "plain" ? "" : "\(variant)_" }

    static let source = #"""
KD void unpack8(uint4 w, float* f) {
    f[0] = __uint_as_float(w.x << 16); f[1] = __uint_as_float(w.x & 0xffff0000u);
    f[2] = __uint_as_float(w.y << 16); f[3] = __uint_as_float(w.y & 0xffff0000u);
    f[4] = __uint_as_float(w.z << 16); f[5] = __uint_as_float(w.z & 0xffff0000u);
    f[6] = __uint_as_float(w.w << 16); f[7] = __uint_as_float(w.w & 0xffff0000u);
}

/// Key and value words of this lane's U keys of a step (zeros past `end`).
template <int U>
KD void load_step(uint4 (&kr)[U], uint4 (&vr)[U], int first, int KPB, int end, const int* __restrict__ tb, int blockSize,
                  const unsigned short* __restrict__ Kc, const unsigned short* __restrict__ Vc, i64 slotStride, i64 headOffset) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
        const int k = first + u * KPB;
        if (k < end) {
            const i64 slot = (i64)tb[k / blockSize] * blockSize + k % blockSize;
            kr[u] = *(const uint4*)(Kc + slot * slotStride + headOffset);
            vr[u] = *(const uint4*)(Vc + slot * slotStride + headOffset);
        } else {
            kr[u] = make_uint4(0u, 0u, 0u, 0u);
            vr[u] = make_uint4(0u, 0u, 0u, 0u);
        }
    }
}

/// A lane group's start on the G query heads of a KV head: its 8 elements of each query (at `q0`, heads D
/// apart) scaled into the log2 domain, an empty output, running maximum -inf and sum 0.
template <int D, int G>
KD void start_heads(const unsigned short* q0, float scale_log2, float (&q)[G][8], float (&acc)[G][8], float (&m)[G], float (&l)[G]) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
        unpack8(*(const uint4*)(q0 + g * D), q[g]);
#pragma unroll
        for (int i = 0; i < 8; ++i) { q[g][i] *= scale_log2; acc[g][i] = 0.0f; }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
}

/// One lane group's online-softmax step over U keys (key u at index first + u * stride, -inf past `end`):
/// the U scores first (each a dot product over the group's D / 8 lanes), then per head one rescale of the
/// running output for all U keys, in the log2 domain.
template <int D, int G, int U>
KD void softmax_update(const float (&q)[G][8], const uint4 (&kr)[U], const uint4 (&vr)[U], int first, int stride, int end,
                       float (&acc)[G][8], float (&m)[G], float (&l)[G]) {
    constexpr int LK = D / 8;
    float s[G][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
        const bool ok = first + u * stride < end;
        float kf[8];
        unpack8(kr[u], kf);
#pragma unroll
        for (int g = 0; g < G; ++g) {
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) d += q[g][i] * kf[i];
#pragma unroll
            for (int o = LK / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
            s[g][u] = ok ? d : NEG_INF;
        }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
        float mx = m[g];
#pragma unroll
        for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[g][u]);
        if (mx == NEG_INF) continue;
        const float a = exp2f(m[g] - mx);
        float p[U], sum = 0.0f;
#pragma unroll
        for (int u = 0; u < U; ++u) { p[u] = exp2f(s[g][u] - mx); sum += p[u]; }
        l[g] = l[g] * a + sum;
#pragma unroll
        for (int i = 0; i < 8; ++i) acc[g][i] *= a;
#pragma unroll
        for (int u = 0; u < U; ++u) {
            float vf[8];
            unpack8(vr[u], vf);
#pragma unroll
            for (int i = 0; i < 8; ++i) acc[g][i] += p[u] * vf[i];
        }
        m[g] = mx;
    }
}

/// `PIPE`: the next step's loads are issued before this step's arithmetic (two steps of registers), so a
/// warp always has reads in flight; without it a warp's reads stop while it computes.
template <int D, int G, int U, bool PIPE>
KD void paged_decode(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ Kc,
                     const unsigned short* __restrict__ Vc, const int* __restrict__ table, int maxBlocks,
                     const int* __restrict__ ctx, int blockSize, int Hkv, int splitKeys, int splits,
                     float scale_log2, float* __restrict__ po, float* __restrict__ pml, void* __restrict__ out, int odt) {
    constexpr int LK = D / 8, KPW = 32 / LK, NW = 4, KPB = NW * KPW, NS = NW * KPW;
    __shared__ float sm[NS][G], sl[NS][G], sacc[NS][G][D];
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LK, part = lane % LK;
    const int n = ctx[b];
    const int start = split * splitKeys;
    if (start >= n) return;
    const int end = min(n, start + splitKeys);
    const int Hq = Hkv * G;

    float q[G][8], acc[G][8], m[G], l[G];
    start_heads<D, G>(Q + ((i64)b * Hq + kvh * G) * D + part * 8, scale_log2, q, acc, m, l);
    const int* tb = table + (i64)b * maxBlocks;
    const i64 slotStride = (i64)Hkv * D;
    const i64 headOffset = (i64)kvh * D + part * 8;

    uint4 kr[U], vr[U];
    if (PIPE) load_step<U>(kr, vr, start + warp * KPW + sub, KPB, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
    // The loop bound is the same for every lane of a warp, so the shuffles below never diverge.
    for (int kw = start + warp * KPW; kw < end; kw += KPB * U) {
        uint4 nk[U], nv[U];
        if (PIPE) {
            load_step<U>(nk, nv, kw + KPB * U + sub, KPB, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
        } else {
            load_step<U>(kr, vr, kw + sub, KPB, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
        }
        // Scores of the U keys first, then one softmax update per head for all of them: the running output
        // is rescaled once per U keys instead of once per key.
        softmax_update<D, G, U>(q, kr, vr, kw + sub, KPB, end, acc, m, l);
        if (PIPE) {
#pragma unroll
            for (int u = 0; u < U; ++u) { kr[u] = nk[u]; vr[u] = nv[u]; }
        }
    }

    const int stream = warp * KPW + sub;
#pragma unroll
    for (int g = 0; g < G; ++g) {
        if (part == 0) { sm[stream][g] = m[g]; sl[stream][g] = l[g]; }
#pragma unroll
        for (int i = 0; i < 8; ++i) sacc[stream][g][part * 8 + i] = acc[g][i];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
        const int g = idx / D, d = idx % D;
        float M = NEG_INF;
#pragma unroll
        for (int s2 = 0; s2 < NS; ++s2) M = fmaxf(M, sm[s2][g]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int s2 = 0; s2 < NS; ++s2) {
            if (sl[s2][g] > 0.0f) {
                const float f = exp2f(sm[s2][g] - M);
                L += sl[s2][g] * f;
                A += sacc[s2][g][d] * f;
            }
        }
        const i64 bh = (i64)b * Hq + kvh * G + g;
        if (splits == 1) {
            // One split: this block has the whole context, so it writes the output itself (no combine).
            store_any(out, odt, bh * D + d, L > 0.0f ? A / L : 0.0f);
            continue;
        }
        po[(bh * splits + split) * D + d] = A;
        if (d == 0) { pml[(bh * splits + split) * 2] = M; pml[(bh * splits + split) * 2 + 1] = L; }
    }
}

/// Decode attention with one warp per KV head and a block per (split, sequence, group of up to 8 KV heads):
/// the block's warps read the same cache slots' rows for neighbouring heads at the same time, so the cache
/// ([slots, Hkv, D]) is read in whole contiguous rows (2 KB at 8 heads of 128) rather than in 256-byte pieces
/// that different blocks reach at different times. Each warp runs the pipelined loop of `paged_decode` over
/// the split's keys; its lane groups' softmax states merge by shuffles, so no shared memory and no barrier.
template <int D, int G, int U>
KD void paged_decode_rows(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ Kc,
                          const unsigned short* __restrict__ Vc, const int* __restrict__ table, int maxBlocks,
                          const int* __restrict__ ctx, int blockSize, int Hkv, int splitKeys, int splits,
                          float scale_log2, float* __restrict__ po, float* __restrict__ pml, void* __restrict__ out, int odt) {
    constexpr int LK = D / 8, KPW = 32 / LK;
    const int split = blockIdx.x, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LK, part = lane % LK;
    const int kvh = blockIdx.y * (blockDim.x >> 5) + warp;
    const int n = ctx[b];
    const int start = split * splitKeys;
    if (start >= n || kvh >= Hkv) return;
    const int end = min(n, start + splitKeys);
    const int Hq = Hkv * G;

    float q[G][8], acc[G][8], m[G], l[G];
    start_heads<D, G>(Q + ((i64)b * Hq + kvh * G) * D + part * 8, scale_log2, q, acc, m, l);
    const int* tb = table + (i64)b * maxBlocks;
    const i64 slotStride = (i64)Hkv * D;
    const i64 headOffset = (i64)kvh * D + part * 8;

    uint4 kr[U], vr[U];
    load_step<U>(kr, vr, start + sub, KPW, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
    for (int kw = start; kw < end; kw += KPW * U) {
        uint4 nk[U], nv[U];
        load_step<U>(nk, nv, kw + KPW * U + sub, KPW, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
        softmax_update<D, G, U>(q, kr, vr, kw + sub, KPW, end, acc, m, l);
#pragma unroll
        for (int u = 0; u < U; ++u) { kr[u] = nk[u]; vr[u] = nv[u]; }
    }

    // Merge the warp's KPW lane groups (lanes part, part + LK, ...): pairwise by shuffles.
#pragma unroll
    for (int g = 0; g < G; ++g) {
#pragma unroll
        for (int o = LK; o < 32; o <<= 1) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[g], o), lo = __shfl_xor_sync(0xffffffffu, l[g], o);
            const float M = fmaxf(m[g], mo);
            const float f = l[g] > 0.0f ? exp2f(m[g] - M) : 0.0f, fo = lo > 0.0f ? exp2f(mo - M) : 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const float other = __shfl_xor_sync(0xffffffffu, acc[g][i], o);
                acc[g][i] = acc[g][i] * f + other * fo;
            }
            l[g] = l[g] * f + lo * fo;
            m[g] = M;
        }
        if (sub == 0) {
            const i64 bh = (i64)b * Hq + kvh * G + g;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const int d = part * 8 + i;
                if (splits == 1) {
                    store_any(out, odt, bh * D + d, l[g] > 0.0f ? acc[g][i] / l[g] : 0.0f);
                } else {
                    po[(bh * splits + split) * D + d] = acc[g][i];
                }
            }
            if (splits > 1 && part == 0) { pml[(bh * splits + split) * 2] = m[g]; pml[(bh * splits + split) * 2 + 1] = l[g]; }
        }
    }
}

#define KITE_PAGED_DECODE(D, G) \
extern "C" __global__ void __launch_bounds__(128) kite_paged_decode_d##D##_g##G( \
    const unsigned short* Q, const unsigned short* Kc, const unsigned short* Vc, const int* table, int maxBlocks, \
    const int* ctx, int blockSize, int Hkv, int splitKeys, int splits, float scale_log2, float* po, float* pml, void* out, int odt) { \
    paged_decode<D, G, 4, false>(Q, Kc, Vc, table, maxBlocks, ctx, blockSize, Hkv, splitKeys, splits, scale_log2, po, pml, out, odt); } \
extern "C" __global__ void __launch_bounds__(128) kite_paged_decode_p4_d##D##_g##G( \
    const unsigned short* Q, const unsigned short* Kc, const unsigned short* Vc, const int* table, int maxBlocks, \
    const int* ctx, int blockSize, int Hkv, int splitKeys, int splits, float scale_log2, float* po, float* pml, void* out, int odt) { \
    paged_decode<D, G, 4, true>(Q, Kc, Vc, table, maxBlocks, ctx, blockSize, Hkv, splitKeys, splits, scale_log2, po, pml, out, odt); } \
extern "C" __global__ void __launch_bounds__(256) kite_paged_decode_rows_d##D##_g##G( \
    const unsigned short* Q, const unsigned short* Kc, const unsigned short* Vc, const int* table, int maxBlocks, \
    const int* ctx, int blockSize, int Hkv, int splitKeys, int splits, float scale_log2, float* po, float* pml, void* out, int odt) { \
    paged_decode_rows<D, G, 4>(Q, Kc, Vc, table, maxBlocks, ctx, blockSize, Hkv, splitKeys, splits, scale_log2, po, pml, out, odt); }
KITE_PAGED_DECODE(64, 1)
KITE_PAGED_DECODE(64, 2)
KITE_PAGED_DECODE(64, 4)
KITE_PAGED_DECODE(64, 8)
KITE_PAGED_DECODE(128, 1)
KITE_PAGED_DECODE(128, 2)
KITE_PAGED_DECODE(128, 4)
KITE_PAGED_DECODE(128, 8)

/// out[b, h] = the splits' partial outputs merged: sum_s A_s 2^(m_s - M) / sum_s l_s 2^(m_s - M), splits in
/// order. One block of D threads per (sequence, query head).
extern "C" __global__ void kite_paged_decode_combine(const float* po, const float* pml, const int* ctx, int splitKeys, int splits,
                                                     int Hq, int D, void* out, int odt) {
    const i64 bh = blockIdx.x;
    const int b = (int)(bh / Hq), d = threadIdx.x;
    const int used = min(splits, (ctx[b] + splitKeys - 1) / splitKeys);
    float M = NEG_INF;
    for (int s = 0; s < used; ++s) M = fmaxf(M, pml[(bh * splits + s) * 2]);
    float L = 0.0f, A = 0.0f;
    for (int s = 0; s < used; ++s) {
        const float l = pml[(bh * splits + s) * 2 + 1];
        if (l > 0.0f) {
            const float f = exp2f(pml[(bh * splits + s) * 2] - M);
            L += l * f;
            if (d < D) A += po[(bh * splits + s) * D + d] * f;
        }
    }
    if (d < D) store_any(out, odt, bh * D + d, L > 0.0f ? A / L : 0.0f);
}

/// Rows i of key and value (rowBytes each, 16-byte words) into rows slots[i] of the two caches, one launch.
extern "C" __global__ void kite_store_kv(const unsigned char* key, const unsigned char* value, unsigned char* keyCache,
                                         unsigned char* valueCache, const int* slots, i64 rows, i64 rowBytes) {
    const i64 words = rowBytes / 16;
    for (i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x; idx < rows * words; idx += (i64)gridDim.x * blockDim.x) {
        const i64 i = idx / words, w = idx - i * words;
        const i64 to = (i64)slots[i] * rowBytes + w * 16, from = i * rowBytes + w * 16;
        *(uint4*)(keyCache + to) = *(const uint4*)(key + from);
        *(uint4*)(valueCache + to) = *(const uint4*)(value + from);
    }
}

/// The gather of deterministic decode: rows 0 ..< ctx[s] of sequence s's blocks, packed at keyOffsets[s]
/// (exclusive prefix sums of ctx, written by thread 0 of block 0 first in a separate launch).
extern "C" __global__ void kite_decode_key_offsets(const int* ctx, int batch, int* offsets) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        int total = 0;
        for (int s = 0; s < batch; ++s) { offsets[s] = total; total += ctx[s]; }
        offsets[batch] = total;
    }
}

/// One warp per (sequence, position < maxContext) moves the key and value rows (rowBytes each, 16-byte words).
extern "C" __global__ void kite_decode_gather(const unsigned char* kc, const unsigned char* vc, const int* table, int maxBlocks,
                                              const int* ctx, const int* offsets, int blockSize, int maxContext, i64 rowBytes,
                                              unsigned char* keys, unsigned char* values, int batch) {
    const i64 w = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (w >= (i64)batch * maxContext) return;
    const int s = (int)(w / maxContext), i = (int)(w % maxContext);
    if (i >= ctx[s]) return;
    const i64 slot = (i64)table[(i64)s * maxBlocks + i / blockSize] * blockSize + i % blockSize;
    const i64 to = (i64)(offsets[s] + i) * rowBytes;
    for (i64 q = lane; q < rowBytes / 16; q += 32) {
        ((uint4*)(keys + to))[q] = ((const uint4*)(kc + slot * rowBytes))[q];
        ((uint4*)(values + to))[q] = ((const uint4*)(vc + slot * rowBytes))[q];
    }
}
"""#
}
