/// Attention over packed sequences on CUDA cores, for any head size up to 256 (the forward up to 576) and any storage dtype: the
/// path for fp32 parity runs and for head sizes the tensor-core kernels do not cover. One warp owns one
/// (row, head) and walks the keys that row may see with an online softmax; backward splits into a dQ pass
/// (warp per query row) and a dK/dV pass (warp per key row, over every query head of its group), so no
/// two warps write the same output and the result is deterministic.
///
/// Masking is causal and aligned at the end, as in `AttentionLayout`: query i of a sequence with nq queries
/// and nk keys sees keys 0 ... nk - nq + i.
enum AttentionKernels {
    /// Head sizes the kernels take: `kite_attn_fwd_simt` and the backward kernels (8 numbers per lane),
    /// `kite_attn_fwd_simt_wide` (18 per lane; the forward alone, what the engine's paged attention runs).
    static let headLimit = 256
    static let wideHeadLimit = 576

    static let source = #"""
#define MAXD 8
#define MAXD_WIDE 18

/// The sequence holding packed row r: the largest s with cu[s] <= r (skips empty sequences).
KD int find_seq(const int* cu, int nseq, int r) {
    int lo = 0, hi = nseq - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (cu[mid] <= r) lo = mid; else hi = mid - 1;
    }
    return lo;
}

template <int N = MAXD>
KD void load_row(const void* p, int dt, i64 base, int D, int lane, float* reg) {
#pragma unroll
    for (int c = 0; c < N; ++c) {
        int d = lane + 32 * c;
        reg[c] = d < D ? load_any(p, dt, base + d) : 0.0f;
    }
}

template <int N = MAXD>
KD float dot_row(const void* p, int dt, i64 base, int D, int lane, const float* reg) {
    float acc = 0.0f;
#pragma unroll
    for (int c = 0; c < N; ++c) {
        int d = lane + 32 * c;
        if (d < D) acc += reg[c] * load_any(p, dt, base + d);
    }
    return warp_sum(acc);
}

template <int N>
KD void attn_fwd_simt(const void* q, const void* k, const void* v, int dt, void* o, int odt,
                      float* lse, const int* cuq, const int* cuk, int nseq, int Tq,
                      int Hq, int Hkv, int D, int Dv, float scale, int causal) {
    i64 gw = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (gw >= (i64)Tq * Hq) return;
    int r = (int)(gw / Hq), h = (int)(gw % Hq);
    int s = find_seq(cuq, nseq, r);
    int qi = r - cuq[s], nq = cuq[s + 1] - cuq[s], kb = cuk[s], nk = cuk[s + 1] - kb;
    int visible = causal ? nk - nq + qi + 1 : nk;
    if (visible > nk) visible = nk;
    int kvh = h / (Hq / Hkv);
    float qreg[N], acc[N];
    load_row<N>(q, dt, ((i64)r * Hq + h) * D, D, lane, qreg);
#pragma unroll
    for (int c = 0; c < N; ++c) acc[c] = 0.0f;
    float m = NEG_INF, l = 0.0f;
    for (int j = 0; j < visible; ++j) {
        i64 krow = (i64)(kb + j) * Hkv + kvh;
        float sc = dot_row<N>(k, dt, krow * D, D, lane, qreg) * scale;
        float mn = fmaxf(m, sc);
        float a = l > 0.0f ? expf(m - mn) : 0.0f;
        float e = expf(sc - mn);
        l = l * a + e;
#pragma unroll
        for (int c = 0; c < N; ++c) {
            int d = lane + 32 * c;
            acc[c] = acc[c] * a + (d < Dv ? e * load_any(v, dt, krow * Dv + d) : 0.0f);
        }
        m = mn;
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int c = 0; c < N; ++c) {
        int d = lane + 32 * c;
        if (d < Dv) store_any(o, odt, ((i64)r * Hq + h) * Dv + d, acc[c] * inv);
    }
    if (lane == 0) lse[(i64)r * Hq + h] = l > 0.0f ? m + logf(l) : NEG_INF;
}

extern "C" __global__ void kite_attn_fwd_simt(const void* q, const void* k, const void* v, int dt, void* o, int odt,
                                              float* lse, const int* cuq, const int* cuk, int nseq, int Tq,
                                              int Hq, int Hkv, int D, int Dv, float scale, int causal) {
    attn_fwd_simt<MAXD>(q, k, v, dt, o, odt, lse, cuq, cuk, nseq, Tq, Hq, Hkv, D, Dv, scale, causal);
}

/// The same for head sizes up to 576 (latent attention's 512 + 64 key rows read as keys and values): 18
/// numbers per lane in registers instead of 8, a kernel of its own so the common sizes keep their registers.
extern "C" __global__ void kite_attn_fwd_simt_wide(const void* q, const void* k, const void* v, int dt, void* o, int odt,
                                                   float* lse, const int* cuq, const int* cuk, int nseq, int Tq,
                                                   int Hq, int Hkv, int D, int Dv, float scale, int causal) {
    attn_fwd_simt<MAXD_WIDE>(q, k, v, dt, o, odt, lse, cuq, cuk, nseq, Tq, Hq, Hkv, D, Dv, scale, causal);
}

/// Dsum[row, head] = <dO, O> over the value dimension.
extern "C" __global__ void kite_attn_rowdot(const void* dout, int ddt, const void* out, int odt, float* dsum, i64 rowsHeads, int Dv) {
    i64 gw = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (gw >= rowsHeads) return;
    float acc = 0.0f;
    for (int d = lane; d < Dv; d += 32) acc += load_any(dout, ddt, gw * Dv + d) * load_any(out, odt, gw * Dv + d);
    acc = warp_sum(acc);
    if (lane == 0) dsum[gw] = acc;
}

extern "C" __global__ void kite_attn_bwd_dq_simt(const void* q, const void* k, const void* v, const void* dout, int dt,
                                                 const float* lse, const float* dsum, void* dq, int odt,
                                                 const int* cuq, const int* cuk, int nseq, int Tq,
                                                 int Hq, int Hkv, int D, int Dv, float scale, int causal) {
    i64 gw = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (gw >= (i64)Tq * Hq) return;
    int r = (int)(gw / Hq), h = (int)(gw % Hq);
    int s = find_seq(cuq, nseq, r);
    int qi = r - cuq[s], nq = cuq[s + 1] - cuq[s], kb = cuk[s], nk = cuk[s + 1] - kb;
    int visible = causal ? nk - nq + qi + 1 : nk;
    if (visible > nk) visible = nk;
    int kvh = h / (Hq / Hkv);
    float qreg[MAXD], doreg[MAXD], acc[MAXD];
    load_row(q, dt, gw * D, D, lane, qreg);
    load_row(dout, dt, gw * Dv, Dv, lane, doreg);
#pragma unroll
    for (int c = 0; c < MAXD; ++c) acc[c] = 0.0f;
    float L = lse[gw], Di = dsum[gw];
    for (int j = 0; j < visible; ++j) {
        i64 krow = (i64)(kb + j) * Hkv + kvh;
        float p = expf(dot_row(k, dt, krow * D, D, lane, qreg) * scale - L);
        float dp = dot_row(v, dt, krow * Dv, Dv, lane, doreg);
        float ds = p * (dp - Di);
#pragma unroll
        for (int c = 0; c < MAXD; ++c) {
            int d = lane + 32 * c;
            if (d < D) acc[c] += ds * load_any(k, dt, krow * D + d);
        }
    }
#pragma unroll
    for (int c = 0; c < MAXD; ++c) {
        int d = lane + 32 * c;
        if (d < D) store_any(dq, odt, gw * D + d, acc[c] * scale);
    }
}

extern "C" __global__ void kite_attn_bwd_dkv_simt(const void* q, const void* k, const void* v, const void* dout, int dt,
                                                  const float* lse, const float* dsum, void* dk, void* dv, int odt,
                                                  const int* cuq, const int* cuk, int nseq, int Tk,
                                                  int Hq, int Hkv, int D, int Dv, float scale, int causal) {
    i64 gw = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (gw >= (i64)Tk * Hkv) return;
    int kr = (int)(gw / Hkv), kvh = (int)(gw % Hkv);
    int s = find_seq(cuk, nseq, kr);
    int kj = kr - cuk[s], nk = cuk[s + 1] - cuk[s], qb = cuq[s], nq = cuq[s + 1] - qb;
    int first = causal ? kj - (nk - nq) : 0;
    if (first < 0) first = 0;
    int group = Hq / Hkv;
    float kreg[MAXD], vreg[MAXD], dka[MAXD], dva[MAXD];
    load_row(k, dt, gw * D, D, lane, kreg);
    load_row(v, dt, gw * Dv, Dv, lane, vreg);
#pragma unroll
    for (int c = 0; c < MAXD; ++c) { dka[c] = 0.0f; dva[c] = 0.0f; }
    for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int qi = first; qi < nq; ++qi) {
            i64 qrow = (i64)(qb + qi) * Hq + h;
            float p = expf(dot_row(q, dt, qrow * D, D, lane, kreg) * scale - lse[qrow]);
            float dp = dot_row(dout, dt, qrow * Dv, Dv, lane, vreg);
            float ds = p * (dp - dsum[qrow]);
#pragma unroll
            for (int c = 0; c < MAXD; ++c) {
                int d = lane + 32 * c;
                if (d < Dv) dva[c] += p * load_any(dout, dt, qrow * Dv + d);
                if (d < D) dka[c] += ds * load_any(q, dt, qrow * D + d);
            }
        }
    }
#pragma unroll
    for (int c = 0; c < MAXD; ++c) {
        int d = lane + 32 * c;
        if (d < D) store_any(dk, odt, gw * D + d, dka[c] * scale);
        if (d < Dv) store_any(dv, odt, gw * Dv + d, dva[c]);
    }
}
"""#
}
