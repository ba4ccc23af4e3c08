/// Token sampling on the device, as `TokenSampling` defines it, one block of 512 threads per row of fp32
/// logits. Compiled into the head module so it shares `row_state` with `kite_softmax_stats`: with the same
/// block size and the same logits the log-sum-exp, and so the reported log-prob, is the trainer's to the bit.
///
/// Truncation finds thresholds on an order-preserving integer key of each logit, one bit at a time from the
/// top (32 passes of a block count or a block sum of probabilities): the k-th largest logit for top-k, then
/// the smallest logit whose mass from the top reaches `topP` of the top-k mass. The token is then found by an
/// inverse CDF in vocabulary order: each thread sums the candidates of its contiguous slice, a block scan
/// places the target in one slice, and that thread walks it. Every sum runs in a fixed order, in fp64.
enum SamplingKernels {
    static let threads = 512

    static let source = #"""
KD unsigned order_key(float z) {
    unsigned u = __float_as_uint(z);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

KD double block_sum_d(double v, double* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0;
    return warp_sum_d(v);
}

/// prm[row * 5 ...] = temperature, top_k, top_p, min_p, uniform (fp64). out[row] = token; ((float*)out)[rows + row] = log-prob.
extern "C" __global__ void kite_sample_rows(const float* logits, i64 ld, int V, const double* prm, int vec, int* out, int rows) {
    __shared__ double sd[32];
    __shared__ double incl[1024];
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ int found;
    const int row = blockIdx.x;
    const float* z = logits + (i64)row * ld;
    const double* p = prm + (i64)row * 5;
    const float T0 = (float)p[0];
    const bool greedy = T0 == 0.0f;
    const float T = greedy ? 1.0f : T0;
    // The statistics and, in the same pass, each thread's first index of its largest logit.
    float bv;
    int bi;
    SoftmaxState st = row_state_scan<true>(z, V, T, vec, bv, bi);
    const float lse = st.m + logf(st.s);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    // The first index of the largest logit over the block.
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    __syncthreads();
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    bv = lane < warps ? sv[lane] : NEG_INF;
    bi = lane < warps ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (bi >= V) bi = 0;
    int token = bi;

    if (!greedy) {
        const int topK = (int)p[1];
        const double topP = p[2], minP = p[3], u = p[4];
        unsigned lo = 0u;
        if (topK > 0 && topK < V) {
            unsigned t = 0u;
            for (int bit = 31; bit >= 0; --bit) {
                const unsigned c = t | (1u << bit);
                double count = 0.0;
                for (int j = threadIdx.x; j < V; j += blockDim.x) count += order_key(z[j]) >= c ? 1.0 : 0.0;
                count = block_sum_d(count, sd);
                if (count >= (double)topK) t = c;
            }
            lo = t;
        }
        if (topP < 1.0) {
            double mass = 0.0;
            for (int j = threadIdx.x; j < V; j += blockDim.x) {
                const float v = z[j];
                if (order_key(v) >= lo) mass += (double)expf(v / T - lse);
            }
            mass = block_sum_d(mass, sd);
            const double target = topP * mass;
            unsigned t = 0u;
            for (int bit = 31; bit >= 0; --bit) {
                const unsigned c = t | (1u << bit);
                const unsigned bound = c > lo ? c : lo;
                double m2 = 0.0;
                for (int j = threadIdx.x; j < V; j += blockDim.x) {
                    const float v = z[j];
                    if (order_key(v) >= bound) m2 += (double)expf(v / T - lse);
                }
                m2 = block_sum_d(m2, sd);
                if (m2 >= target) t = c;
            }
            if (t > lo) lo = t;
        }
        const double floor = minP > 0.0 ? minP * (double)expf(bv / T - lse) : 0.0;

        // Inverse CDF in vocabulary order over contiguous slices.
        const int per = (V + blockDim.x - 1) / blockDim.x;
        const int j0 = min(V, threadIdx.x * per), j1 = min(V, j0 + per);
        double local = 0.0;
        for (int j = j0; j < j1; ++j) {
            const float v = z[j];
            const double pj = (double)expf(v / T - lse);
            if (order_key(v) >= lo && pj >= floor) local += pj;
        }
        double scan = local;
        for (int o = 1; o < 32; o <<= 1) {
            const double other = __shfl_up_sync(0xffffffffu, scan, o);
            if (lane >= o) scan += other;
        }
        __syncthreads();
        if (lane == 31) sd[warp] = scan;
        if (threadIdx.x == 0) found = 0x7fffffff;
        __syncthreads();
        double before = 0.0;
        for (int w = 0; w < warp; ++w) before += sd[w];
        scan += before;
        incl[threadIdx.x] = scan;
        __syncthreads();
        const double total = incl[blockDim.x - 1];
        const double target = u * total;
        const double excl = threadIdx.x > 0 ? incl[threadIdx.x - 1] : 0.0;
        if (local > 0.0 && excl <= target && target < scan) {
            double cumulative = excl;
            int last = -1, pick = -1;
            for (int j = j0; j < j1; ++j) {
                const float v = z[j];
                const double pj = (double)expf(v / T - lse);
                if (order_key(v) >= lo && pj >= floor) {
                    last = j;
                    cumulative += pj;
                    if (cumulative > target) { pick = j; break; }
                }
            }
            atomicMin(&found, pick >= 0 ? pick : last);
        }
        __syncthreads();
        if (found != 0x7fffffff) token = found;
    }
    if (threadIdx.x == 0) {
        out[row] = token;
        ((float*)out)[rows + row] = z[token] / T - lse;
    }
}
"""#
}
