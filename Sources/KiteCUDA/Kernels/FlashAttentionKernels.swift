/// Tensor-core flash attention for bf16 packed sequences with head size 64 or 128 (training and prefill).
///
/// Forward: a block of 8 warps owns 128 query rows of one head (16 rows per warp). Key and value tiles of
/// 64 rows stream through shared memory twice buffered (`cp.async`), scores come from `mma.sync` m16n8k16
/// with fp32 accumulation, the softmax is online in registers, and the probabilities feed the P·V product
/// straight from the accumulator registers (the accumulator layout of S is the operand layout of P).
///
/// Backward, in two kernels that share no output (so neither needs atomics and both are deterministic):
/// - dK/dV: a block of 4 warps owns 64 key rows of one KV head (16 per warp) and walks every query tile of
///   every query head of its group that can see them, recomputing P and dS and accumulating dK and dV in
///   registers.
/// - dQ: query-major like the forward (8 warps, 128 rows); it recomputes P and dP per key tile and feeds dS
///   straight from registers into dS K.
/// Recomputing S and dP in both costs 40% more tensor-core work than one kernel that adds dQ with fp32
/// atomics, and measured 1.6x faster on the H100 (2.2 ms against 3.7 ms, 8 x 2048 tokens, 16 heads):
/// the atomics, not the arithmetic, bounded that version. The two kernels run on two streams.
///
/// Shared-memory tiles are rows of 16-byte chunks whose chunk index is XORed with (row mod 8), so the
/// eight row addresses of an `ldmatrix` land in eight different bank groups.
enum FlashAttentionKernels {
    /// Query rows per forward block, and threads per forward block.
    static let forwardRows = 128
    static let forwardThreads = 256
    /// Key rows per dK/dV block (16 per warp) and query rows per backward step.
    static let backwardKeys = 64
    static let backwardQueries = 64
    /// Head sizes with a tensor-core kernel.
    static let headDims = [64, 128]

    static func forwardSharedBytes(headDim: Int) -> Int { (forwardRows + 4 * 64) * headDim * 2 }
    /// The dK/dV kernel's shared memory: K and V tiles of `keys` rows, two buffers each of Q and dO, LSE and D.
    static func keyValueGradientSharedBytes(headDim: Int, keys: Int) -> Int {
        (2 * keys + 4 * backwardQueries) * headDim * 2 + 4 * backwardQueries * 4
    }
    /// The dQ kernel's shared memory: Q and dO for 128 rows, two buffers each of K and V.
    static func queryGradientSharedBytes(headDim: Int) -> Int { (2 * forwardRows + 4 * 64) * headDim * 2 }
    static func backwardSharedBytes(headDim: Int) -> Int {
        (2 * backwardKeys + 4 * backwardQueries) * headDim * 2 + backwardKeys * backwardQueries * 2 + 4 * backwardQueries * 4
    }

    static let source = #"""
template <int HD>
KD void flash_fwd(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ K,
                  const unsigned short* __restrict__ V, unsigned short* __restrict__ O, float* __restrict__ LSE,
                  const int* __restrict__ cuq, const int* __restrict__ cuk, const int2* __restrict__ tiles,
                  int Hq, int Hkv, float scale_log2, int causal) {
    constexpr int BM = 128, BN = 64, NT = 256, CPR = HD / 8;
    constexpr unsigned TILE_K = BN * HD * 2;
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned sQ = smem_addr(smem);
    const unsigned sK0 = sQ + BM * HD * 2;
    const unsigned sV0 = sK0 + 2 * TILE_K;

    const int tileIndex = blockIdx.x / Hq, head = blockIdx.x % Hq;
    const int2 tinfo = tiles[tileIndex];
    const int seq = tinfo.x, q0 = tinfo.y;
    const int qb = cuq[seq], nq = cuq[seq + 1] - qb, kb = cuk[seq], nk = cuk[seq + 1] - kb;
    const int kvh = head / (Hq / Hkv);
    const i64 ldq = (i64)Hq * HD, ldk = (i64)Hkv * HD;
    const unsigned short* Qp = Q + (i64)(qb + q0) * ldq + head * HD;
    const unsigned short* Kp = K + (i64)kb * ldk + kvh * HD;
    const unsigned short* Vp = V + (i64)kb * ldk + kvh * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int mi = lane >> 3, rr = lane & 7;
    const int qvalid = min(BM, nq - q0);
    const int kend = causal ? min(nk, nk - nq + q0 + BM) : nk;
    const int ntiles = kend > 0 ? (kend + BN - 1) / BN : 0;

    load_tile<BM, HD, NT>(sQ, Qp, ldq, qvalid);
    cp_commit();
    if (ntiles > 0) {
        load_tile<BN, HD, NT>(sK0, Kp, ldk, min(BN, nk));
        load_tile<BN, HD, NT>(sV0, Vp, ldk, min(BN, nk));
    }
    cp_commit();
    cp_wait1();
    __syncthreads();

    unsigned qf[HD / 16][4];
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) ldsm4(sQ + swz<CPR>(warp * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), qf[ks]);

    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) { o[i][0] = 0.0f; o[i][1] = 0.0f; o[i][2] = 0.0f; o[i][3] = 0.0f; }
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;
    const int row0 = q0 + warp * 16 + g;
    const int lim0 = causal ? nk - nq + row0 : nk - 1;
    const int lim1 = causal ? lim0 + 8 : nk - 1;
    const int blockLimit = causal ? nk - nq + q0 : nk - 1;

    for (int j = 0; j < ntiles; ++j) {
        const int buf = j & 1;
        if (j + 1 < ntiles) {
            const int next = (j + 1) * BN;
            load_tile<BN, HD, NT>(sK0 + (buf ^ 1) * TILE_K, Kp + (i64)next * ldk, ldk, min(BN, nk - next));
            load_tile<BN, HD, NT>(sV0 + (buf ^ 1) * TILE_K, Vp + (i64)next * ldk, ldk, min(BN, nk - next));
        }
        cp_commit();
        cp_wait1();
        __syncthreads();
        const unsigned sK = sK0 + buf * TILE_K, sV = sV0 + buf * TILE_K;

        float s[BN / 8][4];
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) { s[i][0] = 0.0f; s[i][1] = 0.0f; s[i][2] = 0.0f; s[i][3] = 0.0f; }
#pragma unroll
        for (int ks = 0; ks < HD / 16; ++ks) {
#pragma unroll
            for (int nb2 = 0; nb2 < BN / 16; ++nb2) {
                unsigned b[4];
                ldsm4(sK + swz<CPR>(nb2 * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), b);
                mma16816(s[2 * nb2], qf[ks], b[0], b[1]);
                mma16816(s[2 * nb2 + 1], qf[ks], b[2], b[3]);
            }
        }

        const int kbase = j * BN;
        const bool needMask = kbase + BN - 1 > blockLimit || kbase + BN > nk;
        float mx0 = m0, mx1 = m1;
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                float x = s[nb][c] * scale_log2;
                if (needMask) {
                    int kidx = kbase + nb * 8 + tig * 2 + (c & 1);
                    int lim = c < 2 ? lim0 : lim1;
                    if (kidx > lim || kidx >= nk) x = NEG_INF;
                }
                s[nb][c] = x;
            }
            mx0 = fmaxf(mx0, fmaxf(s[nb][0], s[nb][1]));
            mx1 = fmaxf(mx1, fmaxf(s[nb][2], s[nb][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float ms0 = mx0 == NEG_INF ? 0.0f : mx0, ms1 = mx1 == NEG_INF ? 0.0f : mx1;
        const float a0 = exp2f(m0 - ms0), a1 = exp2f(m1 - ms1);
        m0 = mx0;
        m1 = mx1;
        l0 *= a0;
        l1 *= a1;
#pragma unroll
        for (int i = 0; i < HD / 8; ++i) { o[i][0] *= a0; o[i][1] *= a0; o[i][2] *= a1; o[i][3] *= a1; }
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
            s[nb][0] = exp2f(s[nb][0] - ms0);
            s[nb][1] = exp2f(s[nb][1] - ms0);
            s[nb][2] = exp2f(s[nb][2] - ms1);
            s[nb][3] = exp2f(s[nb][3] - ms1);
            l0 += s[nb][0] + s[nb][1];
            l1 += s[nb][2] + s[nb][3];
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int nd2 = 0; nd2 < HD / 16; ++nd2) {
                unsigned b[4];
                ldsm4t(sV + swz<CPR>(kk * 16 + (mi & 1) * 8 + rr, nd2 * 2 + (mi >> 1)), b);
                mma16816(o[2 * nd2], a, b[0], b[1]);
                mma16816(o[2 * nd2 + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    if (row0 < nq) {
        unsigned short* op = O + (i64)(qb + row0) * ldq + head * HD;
#pragma unroll
        for (int nd = 0; nd < HD / 8; ++nd) *(unsigned*)(op + nd * 8 + tig * 2) = pack_bf16(o[nd][0] * inv0, o[nd][1] * inv0);
        if (tig == 0) LSE[(i64)(qb + row0) * Hq + head] = l0 > 0.0f ? (m0 + log2f(l0)) * LN2 : NEG_INF;
    }
    if (row0 + 8 < nq) {
        unsigned short* op = O + (i64)(qb + row0 + 8) * ldq + head * HD;
#pragma unroll
        for (int nd = 0; nd < HD / 8; ++nd) *(unsigned*)(op + nd * 8 + tig * 2) = pack_bf16(o[nd][2] * inv1, o[nd][3] * inv1);
        if (tig == 0) LSE[(i64)(qb + row0 + 8) * Hq + head] = l1 > 0.0f ? (m1 + log2f(l1)) * LN2 : NEG_INF;
    }
}

/// dK and dV only: a block of BN / 16 warps owns BN key rows; no dQ, so no atomics and no transposed dS.
template <int HD, int BN>
KD void flash_bwd_dkv(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ K,
                      const unsigned short* __restrict__ V, const unsigned short* __restrict__ dO,
                      const float* __restrict__ LSE, const float* __restrict__ Dsum,
                      unsigned short* __restrict__ dK, unsigned short* __restrict__ dV,
                      const int* __restrict__ cuq, const int* __restrict__ cuk, const int2* __restrict__ ktiles,
                      int Hq, int Hkv, float scale, float scale_log2, int causal) {
    constexpr int BM = 64, NT = BN * 2, CPR = HD / 8;
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned base = smem_addr(smem);
    const unsigned sK = base, sV = sK + BN * HD * 2, sQ0 = sV + BN * HD * 2;
    const unsigned sdO0 = sQ0 + 2 * BM * HD * 2;
    float* sLse = (float*)(smem + (sdO0 - base) + 2 * BM * HD * 2);
    float* sDs = sLse + 2 * BM;

    const int tileIndex = blockIdx.x / Hkv, kvh = blockIdx.x % Hkv;
    const int2 tinfo = ktiles[tileIndex];
    const int seq = tinfo.x, k0 = tinfo.y;
    const int qb = cuq[seq], nq = cuq[seq + 1] - qb, kb = cuk[seq], nk = cuk[seq + 1] - kb;
    const int group = Hq / Hkv;
    const i64 ldk = (i64)Hkv * HD, ldq = (i64)Hq * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int mi = lane >> 3, rr = lane & 7;

    load_tile<BN, HD, NT>(sK, K + (i64)(kb + k0) * ldk + kvh * HD, ldk, min(BN, nk - k0));
    load_tile<BN, HD, NT>(sV, V + (i64)(kb + k0) * ldk + kvh * HD, ldk, min(BN, nk - k0));
    const int qfirst = causal ? max(0, k0 - (nk - nq)) : 0;
    const int qt0 = qfirst / BM;
    const int nqt = (nq + BM - 1) / BM - qt0;
    const int total = nqt > 0 ? group * nqt : 0;

    auto issue = [&](int it, int buf) {
        const int h = kvh * group + it / nqt;
        const int qs = (qt0 + it % nqt) * BM;
        const int qv = min(BM, nq - qs);
        load_tile<BM, HD, NT>(sQ0 + buf * BM * HD * 2, Q + (i64)(qb + qs) * ldq + h * HD, ldq, qv);
        load_tile<BM, HD, NT>(sdO0 + buf * BM * HD * 2, dO + (i64)(qb + qs) * ldq + h * HD, ldq, qv);
        for (int i = threadIdx.x; i < BM; i += NT) {
            const bool ok = qs + i < nq;
            const i64 idx = (i64)(qb + qs + i) * Hq + h;
            sLse[buf * BM + i] = ok ? LSE[idx] * LOG2E : 0.0f;
            sDs[buf * BM + i] = ok ? Dsum[idx] : 0.0f;
        }
    };
    if (total > 0) issue(0, 0);
    cp_commit();

    float dk[HD / 8][4], dv[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
        dk[i][0] = 0.0f; dk[i][1] = 0.0f; dk[i][2] = 0.0f; dk[i][3] = 0.0f;
        dv[i][0] = 0.0f; dv[i][1] = 0.0f; dv[i][2] = 0.0f; dv[i][3] = 0.0f;
    }
    const int kidx0 = k0 + warp * 16 + g, kidx1 = kidx0 + 8;
    const int shift = nk - nq;

    for (int it = 0; it < total; ++it) {
        const int buf = it & 1;
        if (it + 1 < total) issue(it + 1, buf ^ 1);
        cp_commit();
        cp_wait1();
        __syncthreads();
        const int qs = (qt0 + it % nqt) * BM;
        const unsigned sQ = sQ0 + buf * BM * HD * 2, sdO = sdO0 + buf * BM * HD * 2;
        const float* lse = sLse + buf * BM;
        const float* dsum = sDs + buf * BM;
        // Only this warp's 16 keys decide whether its tile needs masking.
        const int wk = k0 + warp * 16;
        const bool needMask = !(qs + BM <= nq && wk + 16 <= nk && (!causal || wk + 15 <= shift + qs));

        float st[BM / 8][4];
#pragma unroll
        for (int i = 0; i < BM / 8; ++i) { st[i][0] = 0.0f; st[i][1] = 0.0f; st[i][2] = 0.0f; st[i][3] = 0.0f; }
#pragma unroll
        for (int ks = 0; ks < HD / 16; ++ks) {
            unsigned a[4];
            ldsm4(sK + swz<CPR>(warp * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), a);
#pragma unroll
            for (int nb2 = 0; nb2 < BM / 16; ++nb2) {
                unsigned b[4];
                ldsm4(sQ + swz<CPR>(nb2 * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), b);
                mma16816(st[2 * nb2], a, b[0], b[1]);
                mma16816(st[2 * nb2 + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int nb = 0; nb < BM / 8; ++nb) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int col = nb * 8 + tig * 2 + (c & 1);
                float p = exp2f(st[nb][c] * scale_log2 - lse[col]);
                if (needMask) {
                    const int qi = qs + col, kidx = c < 2 ? kidx0 : kidx1;
                    if (!(qi < nq && kidx < nk && (!causal || kidx <= shift + qi))) p = 0.0f;
                }
                st[nb][c] = p;
            }
        }
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(st[2 * kk][0], st[2 * kk][1]);
            a[1] = pack_bf16(st[2 * kk][2], st[2 * kk][3]);
            a[2] = pack_bf16(st[2 * kk + 1][0], st[2 * kk + 1][1]);
            a[3] = pack_bf16(st[2 * kk + 1][2], st[2 * kk + 1][3]);
#pragma unroll
            for (int nd2 = 0; nd2 < HD / 16; ++nd2) {
                unsigned b[4];
                ldsm4t(sdO + swz<CPR>(kk * 16 + (mi & 1) * 8 + rr, nd2 * 2 + (mi >> 1)), b);
                mma16816(dv[2 * nd2], a, b[0], b[1]);
                mma16816(dv[2 * nd2 + 1], a, b[2], b[3]);
            }
        }
        float dpt[BM / 8][4];
#pragma unroll
        for (int i = 0; i < BM / 8; ++i) { dpt[i][0] = 0.0f; dpt[i][1] = 0.0f; dpt[i][2] = 0.0f; dpt[i][3] = 0.0f; }
#pragma unroll
        for (int ks = 0; ks < HD / 16; ++ks) {
            unsigned a[4];
            ldsm4(sV + swz<CPR>(warp * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), a);
#pragma unroll
            for (int nb2 = 0; nb2 < BM / 16; ++nb2) {
                unsigned b[4];
                ldsm4(sdO + swz<CPR>(nb2 * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), b);
                mma16816(dpt[2 * nb2], a, b[0], b[1]);
                mma16816(dpt[2 * nb2 + 1], a, b[2], b[3]);
            }
        }
#pragma unroll
        for (int kk = 0; kk < BM / 16; ++kk) {
            unsigned a[4];
            const int c0 = kk * 16 + tig * 2, c1 = c0 + 8;
            a[0] = pack_bf16(st[2 * kk][0] * (dpt[2 * kk][0] - dsum[c0]), st[2 * kk][1] * (dpt[2 * kk][1] - dsum[c0 + 1]));
            a[1] = pack_bf16(st[2 * kk][2] * (dpt[2 * kk][2] - dsum[c0]), st[2 * kk][3] * (dpt[2 * kk][3] - dsum[c0 + 1]));
            a[2] = pack_bf16(st[2 * kk + 1][0] * (dpt[2 * kk + 1][0] - dsum[c1]), st[2 * kk + 1][1] * (dpt[2 * kk + 1][1] - dsum[c1 + 1]));
            a[3] = pack_bf16(st[2 * kk + 1][2] * (dpt[2 * kk + 1][2] - dsum[c1]), st[2 * kk + 1][3] * (dpt[2 * kk + 1][3] - dsum[c1 + 1]));
#pragma unroll
            for (int nd2 = 0; nd2 < HD / 16; ++nd2) {
                unsigned b[4];
                ldsm4t(sQ + swz<CPR>(kk * 16 + (mi & 1) * 8 + rr, nd2 * 2 + (mi >> 1)), b);
                mma16816(dk[2 * nd2], a, b[0], b[1]);
                mma16816(dk[2 * nd2 + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int nd = 0; nd < HD / 8; ++nd) {
        const int dim = nd * 8 + tig * 2;
        if (kidx0 < nk) {
            const i64 at = ((i64)(kb + kidx0) * Hkv + kvh) * HD + dim;
            *(unsigned*)(dK + at) = pack_bf16(dk[nd][0] * scale, dk[nd][1] * scale);
            *(unsigned*)(dV + at) = pack_bf16(dv[nd][0], dv[nd][1]);
        }
        if (kidx1 < nk) {
            const i64 at = ((i64)(kb + kidx1) * Hkv + kvh) * HD + dim;
            *(unsigned*)(dK + at) = pack_bf16(dk[nd][2] * scale, dk[nd][3] * scale);
            *(unsigned*)(dV + at) = pack_bf16(dv[nd][2], dv[nd][3]);
        }
    }
}

/// dQ only, query-major like the forward: a block of 8 warps owns 128 query rows of one head and walks the
/// key tiles they see, recomputing P and dP; dS feeds dS K straight from registers. No atomics, so dQ is
/// deterministic and written once, in bf16, already scaled.
template <int HD>
KD void flash_bwd_dq(const unsigned short* __restrict__ Q, const unsigned short* __restrict__ K,
                     const unsigned short* __restrict__ V, const unsigned short* __restrict__ dO,
                     const float* __restrict__ LSE, const float* __restrict__ Dsum, unsigned short* __restrict__ dQ,
                     const int* __restrict__ cuq, const int* __restrict__ cuk, const int2* __restrict__ tiles,
                     int Hq, int Hkv, float scale, float scale_log2, int causal) {
    constexpr int BM = 128, BN = 64, NT = 256, CPR = HD / 8;
    constexpr unsigned TILE_K = BN * HD * 2;
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned sQ = smem_addr(smem);
    const unsigned sdO = sQ + BM * HD * 2;
    const unsigned sK0 = sdO + BM * HD * 2;
    const unsigned sV0 = sK0 + 2 * TILE_K;

    const int tileIndex = blockIdx.x / Hq, head = blockIdx.x % Hq;
    const int2 tinfo = tiles[tileIndex];
    const int seq = tinfo.x, q0 = tinfo.y;
    const int qb = cuq[seq], nq = cuq[seq + 1] - qb, kb = cuk[seq], nk = cuk[seq + 1] - kb;
    const int kvh = head / (Hq / Hkv);
    const i64 ldq = (i64)Hq * HD, ldk = (i64)Hkv * HD;
    const unsigned short* Kp = K + (i64)kb * ldk + kvh * HD;
    const unsigned short* Vp = V + (i64)kb * ldk + kvh * HD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int mi = lane >> 3, rr = lane & 7;
    const int qvalid = min(BM, nq - q0);
    const int kend = causal ? min(nk, nk - nq + q0 + BM) : nk;
    const int ntiles = kend > 0 ? (kend + BN - 1) / BN : 0;

    load_tile<BM, HD, NT>(sQ, Q + (i64)(qb + q0) * ldq + head * HD, ldq, qvalid);
    load_tile<BM, HD, NT>(sdO, dO + (i64)(qb + q0) * ldq + head * HD, ldq, qvalid);
    cp_commit();
    if (ntiles > 0) {
        load_tile<BN, HD, NT>(sK0, Kp, ldk, min(BN, nk));
        load_tile<BN, HD, NT>(sV0, Vp, ldk, min(BN, nk));
    }
    cp_commit();
    cp_wait1();
    __syncthreads();

    unsigned qf[HD / 16][4];
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) ldsm4(sQ + swz<CPR>(warp * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), qf[ks]);
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
    const float lse0 = row0 < nq ? LSE[(i64)(qb + row0) * Hq + head] * LOG2E : 0.0f;
    const float lse1 = row1 < nq ? LSE[(i64)(qb + row1) * Hq + head] * LOG2E : 0.0f;
    const float d0 = row0 < nq ? Dsum[(i64)(qb + row0) * Hq + head] : 0.0f;
    const float d1 = row1 < nq ? Dsum[(i64)(qb + row1) * Hq + head] : 0.0f;
    const int lim0 = causal ? nk - nq + row0 : nk - 1;
    const int lim1 = causal ? lim0 + 8 : nk - 1;
    const int blockLimit = causal ? nk - nq + q0 : nk - 1;

    float dq[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) { dq[i][0] = 0.0f; dq[i][1] = 0.0f; dq[i][2] = 0.0f; dq[i][3] = 0.0f; }

    for (int j = 0; j < ntiles; ++j) {
        const int buf = j & 1;
        if (j + 1 < ntiles) {
            const int next = (j + 1) * BN;
            load_tile<BN, HD, NT>(sK0 + (buf ^ 1) * TILE_K, Kp + (i64)next * ldk, ldk, min(BN, nk - next));
            load_tile<BN, HD, NT>(sV0 + (buf ^ 1) * TILE_K, Vp + (i64)next * ldk, ldk, min(BN, nk - next));
        }
        cp_commit();
        cp_wait1();
        __syncthreads();
        const unsigned sK = sK0 + buf * TILE_K, sV = sV0 + buf * TILE_K;

        float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
        for (int i = 0; i < BN / 8; ++i) {
            s[i][0] = 0.0f; s[i][1] = 0.0f; s[i][2] = 0.0f; s[i][3] = 0.0f;
            dp[i][0] = 0.0f; dp[i][1] = 0.0f; dp[i][2] = 0.0f; dp[i][3] = 0.0f;
        }
#pragma unroll
        for (int ks = 0; ks < HD / 16; ++ks) {
            unsigned a[4];
            ldsm4(sdO + swz<CPR>(warp * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), a);
#pragma unroll
            for (int nb2 = 0; nb2 < BN / 16; ++nb2) {
                unsigned b[4], c[4];
                ldsm4(sK + swz<CPR>(nb2 * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), b);
                mma16816(s[2 * nb2], qf[ks], b[0], b[1]);
                mma16816(s[2 * nb2 + 1], qf[ks], b[2], b[3]);
                ldsm4(sV + swz<CPR>(nb2 * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), c);
                mma16816(dp[2 * nb2], a, c[0], c[1]);
                mma16816(dp[2 * nb2 + 1], a, c[2], c[3]);
            }
        }
        const int kbase = j * BN;
        const bool needMask = kbase + BN - 1 > blockLimit || kbase + BN > nk;
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                float p = exp2f(s[nb][c] * scale_log2 - (c < 2 ? lse0 : lse1));
                if (needMask) {
                    const int kidx = kbase + nb * 8 + tig * 2 + (c & 1);
                    if (kidx > (c < 2 ? lim0 : lim1) || kidx >= nk) p = 0.0f;
                }
                s[nb][c] = p * (dp[nb][c] - (c < 2 ? d0 : d1));
            }
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
            unsigned a[4];
            a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int nd2 = 0; nd2 < HD / 16; ++nd2) {
                unsigned b[4];
                ldsm4t(sK + swz<CPR>(kk * 16 + (mi & 1) * 8 + rr, nd2 * 2 + (mi >> 1)), b);
                mma16816(dq[2 * nd2], a, b[0], b[1]);
                mma16816(dq[2 * nd2 + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();
    }

    if (row0 < nq) {
        unsigned short* out = dQ + (i64)(qb + row0) * ldq + head * HD;
#pragma unroll
        for (int nd = 0; nd < HD / 8; ++nd) *(unsigned*)(out + nd * 8 + tig * 2) = pack_bf16(dq[nd][0] * scale, dq[nd][1] * scale);
    }
    if (row1 < nq) {
        unsigned short* out = dQ + (i64)(qb + row1) * ldq + head * HD;
#pragma unroll
        for (int nd = 0; nd < HD / 8; ++nd) *(unsigned*)(out + nd * 8 + tig * 2) = pack_bf16(dq[nd][2] * scale, dq[nd][3] * scale);
    }
}

#define FLASH_SPLIT_INSTANCES(HD, BN, MINB)                                                                          \
extern "C" __global__ void __launch_bounds__(BN * 2, MINB) kite_flash_bwd_dkv_d##HD##_k##BN(                        \
    const unsigned short* Q, const unsigned short* K, const unsigned short* V, const unsigned short* dO,              \
    const float* LSE, const float* Dsum, unsigned short* dK, unsigned short* dV,                                     \
    const int* cuq, const int* cuk, const int2* ktiles, int Hq, int Hkv, float scale, float scale_log2, int causal) { \
    flash_bwd_dkv<HD, BN>(Q, K, V, dO, LSE, Dsum, dK, dV, cuq, cuk, ktiles, Hq, Hkv, scale, scale_log2, causal);     \
}

#define FLASH_DQ_INSTANCE(HD)                                                                                        \
extern "C" __global__ void __launch_bounds__(256, 1) kite_flash_bwd_dq_d##HD(                                       \
    const unsigned short* Q, const unsigned short* K, const unsigned short* V, const unsigned short* dO,              \
    const float* LSE, const float* Dsum, unsigned short* dQ, const int* cuq, const int* cuk, const int2* tiles,      \
    int Hq, int Hkv, float scale, float scale_log2, int causal) {                                                    \
    flash_bwd_dq<HD>(Q, K, V, dO, LSE, Dsum, dQ, cuq, cuk, tiles, Hq, Hkv, scale, scale_log2, causal);               \
}

FLASH_SPLIT_INSTANCES(64, 64, 2)
FLASH_SPLIT_INSTANCES(128, 64, 2)
FLASH_DQ_INSTANCE(64)
FLASH_DQ_INSTANCE(128)

#define FLASH_INSTANCES(HD)                                                                                          \
extern "C" __global__ void __launch_bounds__(256, 1) kite_flash_fwd_d##HD(                                          \
    const unsigned short* Q, const unsigned short* K, const unsigned short* V, unsigned short* O, float* LSE,        \
    const int* cuq, const int* cuk, const int2* tiles, int Hq, int Hkv, float scale_log2, int causal) {              \
    flash_fwd<HD>(Q, K, V, O, LSE, cuq, cuk, tiles, Hq, Hkv, scale_log2, causal);                                   \
}

FLASH_INSTANCES(64)
FLASH_INSTANCES(128)
"""#
}
