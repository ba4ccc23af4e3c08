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
    /// The kernel name's variant prefix. Served: `"p4_"`, the next step's 4 loads issued before this step's
    /// arithmetic, so a warp always has reads in flight (2.87 TB/s at B = 256 against 2.66 for loads then
    /// arithmetic, same call on the H100, where a read-only stream reaches 3.06; 2 or 8 loads a step measured
    /// slower: NOTES.md run 8). `KITE_DECODE_VARIANT=plain` runs loads then arithmetic (the comparison baseline).
    public static var variant: String {
        switch environment("KITE_DECODE_VARIANT") {
        case "plain": ""
        case "s3": "s3_"
        case "s4": "s4_"
        case "rows": "rows_"
        default: "p4_"
        }
    }
    /// `s3` / `s4`: the cache read through shared memory by `cp.async`, 3 stages of 32 keys or 4 of 16.
    /// `rows`: a warp per KV head, a block per (split, sequence, 8 KV heads), so blocks read whole cache rows.
    /// Every value `KITE_DECODE_VARIANT` takes (`kite bench decode` times each). Compiled for 5 or 6 resident
    /// blocks instead of 4, the pipelined loop spilled and read at 1.98 / 1.61 TB/s against 2.84 (NOTES.md run 9).
    public static let variants = ["p4", "plain", "s3", "s4", "rows"]

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
#pragma unroll
    for (int g = 0; g < G; ++g) {
        uint4 w = *(const uint4*)(Q + ((i64)b * Hq + kvh * G + g) * D + part * 8);
        unpack8(w, q[g]);
#pragma unroll
        for (int i = 0; i < 8; ++i) { q[g][i] *= scale_log2; acc[g][i] = 0.0f; }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
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
        float s[G][U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const bool ok = kw + sub + u * KPB < end;
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

/// The same split-K decode with the cache read through shared memory: tiles of T keys (their K and V rows)
/// are copied by `cp.async`, S stages deep, so a block keeps S - 1 tiles (32 KB at D = 128) in flight
/// without holding them in registers; lanes then read their 16-byte pieces from shared memory, and the
/// arithmetic is the register loop's (U = T / keys-per-block-step keys per softmax update). Keys past the
/// split's end are zero-filled copies with scores of -inf. The final merge reuses the stage buffers' space.
template <int D, int G, int T, int S>
KD void paged_decode_staged(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ Kc,
                            const unsigned short* __restrict__ Vc, const int* __restrict__ table, int maxBlocks,
                            const int* __restrict__ ctx, int blockSize, int Hkv, int splitKeys, int splits,
                            float scale_log2, float* __restrict__ po, float* __restrict__ pml, void* __restrict__ out, int odt) {
    constexpr int LK = D / 8, KPW = 32 / LK, NW = 4, KPB = NW * KPW, NS = NW * KPW, U = T / KPB;
    constexpr int CHUNKS = T * LK, PER_THREAD = CHUNKS / (NW * 32);
    constexpr int STAGE = 2 * T * D;  // bf16 elements of one stage: K rows then V rows
    static_assert(U * KPB == T && PER_THREAD * NW * 32 == CHUNKS, "tile shape");
    constexpr int STAGE_BYTES = 2 * S * STAGE, MERGE_BYTES = 4 * NS * G * (D + 2);
    __shared__ __align__(16) unsigned char space[STAGE_BYTES > MERGE_BYTES ? STAGE_BYTES : MERGE_BYTES];
    unsigned short* stages = (unsigned short*)space;
    const int split = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, sub = lane / LK, part = lane % LK;
    const int n = ctx[b];
    const int start = split * splitKeys;
    if (start >= n) return;
    const int end = min(n, start + splitKeys);
    const int Hq = Hkv * G;
    const int* tb = table + (i64)b * maxBlocks;
    const i64 slotStride = (i64)Hkv * D;
    const i64 headOffset = (i64)kvh * D;
    const int tiles = (end - start + T - 1) / T;

    // Thread t copies chunks t, t + 128, ... of the tile's K rows and the same chunks of its V rows.
    auto issue = [&](int tile) {
        unsigned short* stage = stages + (tile % S) * STAGE;
#pragma unroll
        for (int j = 0; j < PER_THREAD; ++j) {
            const int c = threadIdx.x + j * NW * 32, key = c / LK, piece = c % LK;
            const int k = start + tile * T + key;
            const bool ok = k < end;
            const i64 slot = ok ? (i64)tb[k / blockSize] * blockSize + k % blockSize : 0;
            const i64 at = slot * slotStride + headOffset + piece * 8;
            cp_async16(smem_addr(stage + key * D + piece * 8), Kc + at, ok ? 16 : 0);
            cp_async16(smem_addr(stage + T * D + key * D + piece * 8), Vc + at, ok ? 16 : 0);
        }
    };
#pragma unroll
    for (int t = 0; t < S - 1; ++t) {
        if (t < tiles) issue(t);
        cp_commit();
    }

    float q[G][8], acc[G][8], m[G], l[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
        uint4 w = *(const uint4*)(Q + ((i64)b * Hq + kvh * G + g) * D + part * 8);
        unpack8(w, q[g]);
#pragma unroll
        for (int i = 0; i < 8; ++i) { q[g][i] *= scale_log2; acc[g][i] = 0.0f; }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }

    for (int tile = 0; tile < tiles; ++tile) {
        asm volatile("cp.async.wait_group %0;" :: "n"(S - 2) : "memory");
        __syncthreads();
        // Every thread is past the previous tile, so its stage takes the tile S - 1 ahead.
        if (tile + S - 1 < tiles) issue(tile + S - 1);
        cp_commit();
        const unsigned short* stage = stages + (tile % S) * STAGE;
        float s[G][U];
        uint4 vr[U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int key = u * KPB + warp * KPW + sub;
            const bool ok = start + tile * T + key < end;
            float kf[8];
            unpack8(*(const uint4*)(stage + key * D + part * 8), kf);
            vr[u] = *(const uint4*)(stage + T * D + key * D + part * 8);
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

    asm volatile("cp.async.wait_group 0;" ::: "memory");
    __syncthreads();
    float* sm = (float*)space;
    float* sl = sm + NS * G;
    float* sacc = sl + NS * G;
    const int stream = warp * KPW + sub;
#pragma unroll
    for (int g = 0; g < G; ++g) {
        if (part == 0) { sm[stream * G + g] = m[g]; sl[stream * G + g] = l[g]; }
#pragma unroll
        for (int i = 0; i < 8; ++i) sacc[(stream * G + g) * D + part * 8 + i] = acc[g][i];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < G * D; idx += blockDim.x) {
        const int g = idx / D, d = idx % D;
        float M = NEG_INF;
#pragma unroll
        for (int s2 = 0; s2 < NS; ++s2) M = fmaxf(M, sm[s2 * G + g]);
        float L = 0.0f, A = 0.0f;
#pragma unroll
        for (int s2 = 0; s2 < NS; ++s2) {
            if (sl[s2 * G + g] > 0.0f) {
                const float f = exp2f(sm[s2 * G + g] - M);
                L += sl[s2 * G + g] * f;
                A += sacc[(s2 * G + g) * D + d] * f;
            }
        }
        const i64 bh = (i64)b * Hq + kvh * G + g;
        if (splits == 1) {
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
#pragma unroll
    for (int g = 0; g < G; ++g) {
        uint4 w = *(const uint4*)(Q + ((i64)b * Hq + kvh * G + g) * D + part * 8);
        unpack8(w, q[g]);
#pragma unroll
        for (int i = 0; i < 8; ++i) { q[g][i] *= scale_log2; acc[g][i] = 0.0f; }
        m[g] = NEG_INF;
        l[g] = 0.0f;
    }
    const int* tb = table + (i64)b * maxBlocks;
    const i64 slotStride = (i64)Hkv * D;
    const i64 headOffset = (i64)kvh * D + part * 8;

    uint4 kr[U], vr[U];
    load_step<U>(kr, vr, start + sub, KPW, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
    for (int kw = start; kw < end; kw += KPW * U) {
        uint4 nk[U], nv[U];
        load_step<U>(nk, nv, kw + KPW * U + sub, KPW, end, tb, blockSize, Kc, Vc, slotStride, headOffset);
        float s[G][U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const bool ok = kw + sub + u * KPW < end;
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
extern "C" __global__ void __launch_bounds__(128) kite_paged_decode_s3_d##D##_g##G( \
    const unsigned short* Q, const unsigned short* Kc, const unsigned short* Vc, const int* table, int maxBlocks, \
    const int* ctx, int blockSize, int Hkv, int splitKeys, int splits, float scale_log2, float* po, float* pml, void* out, int odt) { \
    paged_decode_staged<D, G, 32, 3>(Q, Kc, Vc, table, maxBlocks, ctx, blockSize, Hkv, splitKeys, splits, scale_log2, po, pml, out, odt); } \
extern "C" __global__ void __launch_bounds__(128) kite_paged_decode_s4_d##D##_g##G( \
    const unsigned short* Q, const unsigned short* Kc, const unsigned short* Vc, const int* table, int maxBlocks, \
    const int* ctx, int blockSize, int Hkv, int splitKeys, int splits, float scale_log2, float* po, float* pml, void* out, int odt) { \
    paged_decode_staged<D, G, 16, 4>(Q, Kc, Vc, table, maxBlocks, ctx, blockSize, Hkv, splitKeys, splits, scale_log2, po, pml, out, odt); } \
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
