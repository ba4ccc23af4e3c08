/// The softmax half of the fused output head. cuBLASLt writes one chunk of fp32 logits; these kernels turn
/// each row into its log-sum-exp, entropy and target log-prob (forward) or into d(loss)/d(logits) (backward),
/// one block per row, reading the row once for the statistics.
///
/// Statistics are kept online as (m, s, w): the running maximum m of z = logit / T, s = sum e^(z - m) and
/// w = sum e^(z - m) (z - m). Raising the maximum to m' rescales both: s' = a s and w' = a (w + (m - m') s)
/// with a = e^(m - m'). Then log-sum-exp = m + log s and the entropy is log s - w / s.
enum HeadKernels {
    static let source = #"""
struct SoftmaxState { float m, s, w; };

KD void state_push(SoftmaxState& st, float z) {
    if (z > st.m) {
        if (st.s > 0.0f) {
            float a = expf(st.m - z);
            st.w = a * (st.w + (st.m - z) * st.s);
            st.s *= a;
        }
        st.m = z;
    }
    float d = z - st.m;
    float e = expf(d);
    st.s += e;
    st.w += e * d;
}

KD void state_merge(SoftmaxState& a, SoftmaxState b) {
    if (b.s <= 0.0f) return;
    if (a.s <= 0.0f) { a = b; return; }
    float m = fmaxf(a.m, b.m);
    float ea = expf(a.m - m), eb = expf(b.m - m);
    a.w = ea * (a.w + (a.m - m) * a.s) + eb * (b.w + (b.m - m) * b.s);
    a.s = ea * a.s + eb * b.s;
    a.m = m;
}

KD void argmax_push(float v, int j, float& bv, int& bi) {
    if (v > bv) { bv = v; bi = j; }
}

/// The statistics of one row of z = logits / T over the whole block (every thread gets them). Thread i
/// pushes elements i, i + blockDim, ... in that order (4-wide pieces with `vec`), four pieces' loads issued
/// together so that a thread keeps reads in flight; the order of pushes, and so every bit, is that of a
/// plain loop. With ARGMAX, each thread also keeps the first index of its largest raw logit (bv, bi), for
/// the caller to reduce.
template <bool ARGMAX>
KD SoftmaxState row_state_scan(const float* z, int V, float T, int vec, float& bv, int& bi) {
    __shared__ float sm[32], ss[32], sw[32];
    SoftmaxState st; st.m = NEG_INF; st.s = 0.0f; st.w = 0.0f;
    bv = NEG_INF; bi = 0x7fffffff;
    if (vec) {
        const float4* z4 = (const float4*)z;
        const int n4 = V / 4, B = blockDim.x;
        int q = threadIdx.x;
        for (; q + 3 * B < n4; q += 4 * B) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) v[u] = z4[q + u * B];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
                state_push(st, v[u].x / T); state_push(st, v[u].y / T); state_push(st, v[u].z / T); state_push(st, v[u].w / T);
                if (ARGMAX) {
                    const int j = 4 * (q + u * B);
                    argmax_push(v[u].x, j, bv, bi); argmax_push(v[u].y, j + 1, bv, bi);
                    argmax_push(v[u].z, j + 2, bv, bi); argmax_push(v[u].w, j + 3, bv, bi);
                }
            }
        }
        for (; q < n4; q += B) {
            float4 v = z4[q];
            state_push(st, v.x / T); state_push(st, v.y / T); state_push(st, v.z / T); state_push(st, v.w / T);
            if (ARGMAX) {
                argmax_push(v.x, 4 * q, bv, bi); argmax_push(v.y, 4 * q + 1, bv, bi);
                argmax_push(v.z, 4 * q + 2, bv, bi); argmax_push(v.w, 4 * q + 3, bv, bi);
            }
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            const float v = z[j];
            state_push(st, v / T);
            if (ARGMAX) argmax_push(v, j, bv, bi);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        SoftmaxState other;
        other.m = __shfl_xor_sync(0xffffffffu, st.m, o);
        other.s = __shfl_xor_sync(0xffffffffu, st.s, o);
        other.w = __shfl_xor_sync(0xffffffffu, st.w, o);
        state_merge(st, other);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (lane == 0) { sm[warp] = st.m; ss[warp] = st.s; sw[warp] = st.w; }
    __syncthreads();
    if (lane < warps) { st.m = sm[lane]; st.s = ss[lane]; st.w = sw[lane]; }
    else { st.m = NEG_INF; st.s = 0.0f; st.w = 0.0f; }
    for (int o = 16; o > 0; o >>= 1) {
        SoftmaxState other;
        other.m = __shfl_xor_sync(0xffffffffu, st.m, o);
        other.s = __shfl_xor_sync(0xffffffffu, st.s, o);
        other.w = __shfl_xor_sync(0xffffffffu, st.w, o);
        state_merge(st, other);
    }
    return st;
}

KD SoftmaxState row_state(const float* z, int V, float T, int vec) {
    float bv;
    int bi;
    return row_state_scan<false>(z, V, T, vec, bv, bi);
}

/// Per row: logprob of its target (0 for target -1) and entropy. err gets the smallest bad row.
extern "C" __global__ void kite_softmax_stats(const float* logits, i64 ld, int V, const int* targets, float T,
                                              float* logprobs, float* entropy, int* err, int vec) {
    i64 row = blockIdx.x;
    const float* z = logits + row * ld;
    SoftmaxState st = row_state(z, V, T, vec);
    if (threadIdx.x == 0) {
        float logS = logf(st.s);
        float lse = st.m + logS;
        int t = targets[row];
        if (t >= V) { atomicMin(err, (int)row); t = -1; }
        logprobs[row] = t >= 0 ? z[t] / T - lse : 0.0f;
        entropy[row] = logS - st.w / st.s;
    }
}

/// dlogits[row, j] = (-dl p_j - de p_j (log p_j + H)) / T, plus dl / T at the target.
extern "C" __global__ void kite_softmax_grad(const float* logits, i64 ld, int V, const int* targets, float T,
                                             const float* dlogprobs, const float* dentropy,
                                             void* dlogits, int ddt, i64 ldd, int* err, int vec) {
    i64 row = blockIdx.x;
    const float* z = logits + row * ld;
    SoftmaxState st = row_state(z, V, T, vec);
    float logS = logf(st.s);
    float lse = st.m + logS;
    float H = logS - st.w / st.s;
    int t = targets[row];
    if (t >= V) { if (threadIdx.x == 0) atomicMin(err, (int)row); t = -1; }
    float dl = t >= 0 ? dlogprobs[row] : 0.0f, de = dentropy[row];
    i64 out = row * ldd;
    if (vec) {
        const float4* z4 = (const float4*)z;
        for (int q = threadIdx.x; q < V / 4; q += blockDim.x) {
            float4 v = z4[q], g;
            float lp, p;
            lp = v.x / T - lse; p = expf(lp); g.x = (-dl * p - de * p * (lp + H)) / T;
            lp = v.y / T - lse; p = expf(lp); g.y = (-dl * p - de * p * (lp + H)) / T;
            lp = v.z / T - lse; p = expf(lp); g.z = (-dl * p - de * p * (lp + H)) / T;
            lp = v.w / T - lse; p = expf(lp); g.w = (-dl * p - de * p * (lp + H)) / T;
            int j0 = q * 4;
            if (t >= j0 && t < j0 + 4) {
                if (t == j0) g.x += dl / T; else if (t == j0 + 1) g.y += dl / T; else if (t == j0 + 2) g.z += dl / T; else g.w += dl / T;
            }
            store4_any(dlogits, ddt, out / 4 + q, g);
        }
    } else {
        for (int j = threadIdx.x; j < V; j += blockDim.x) {
            float lp = z[j] / T - lse;
            float p = expf(lp);
            float g = (-dl * p - de * p * (lp + H)) / T;
            if (j == t) g += dl / T;
            store_any(dlogits, ddt, out + j, g);
        }
    }
}
"""#
}
