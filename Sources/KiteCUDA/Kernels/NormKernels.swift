/// RMSNorm forward and input-gradient: one warp per row, so short rows (per-head q/k norms, 128 wide) and
/// long rows (the hidden size) both keep every lane busy. The weight gradient is a column sum
/// (`kite_colsum_partial` with `rowScale = 1/rms`), deterministic and free of atomics.
enum NormKernels {
    static let source = #"""
/// y = w * (x * r), r = 1 / sqrt(mean(x^2) + eps), per row of width D; rinv[row] = r.
extern "C" __global__ void kite_rmsnorm(const void* x, int xdt, const float* w, void* y, int ydt, float* rinv,
                                        i64 rows, int D, float eps, int vec) {
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    i64 base = row * D;
    float ss = 0.0f;
    if (vec) {
        i64 q0 = base / 4;
        for (int q = lane; q < D / 4; q += 32) {
            float4 v = load4_any(x, xdt, q0 + q);
            ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int i = lane; i < D; i += 32) { float v = load_any(x, xdt, base + i); ss += v * v; }
    }
    ss = warp_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)D + eps);
    if (lane == 0) rinv[row] = r;
    if (vec) {
        i64 q0 = base / 4;
        for (int q = lane; q < D / 4; q += 32) {
            float4 v = load4_any(x, xdt, q0 + q);
            float4 g = ((const float4*)w)[q];
            store4_any(y, ydt, q0 + q, make_float4(g.x * (v.x * r), g.y * (v.y * r), g.z * (v.z * r), g.w * (v.w * r)));
        }
    } else {
        for (int i = lane; i < D; i += 32) store_any(y, ydt, base + i, w[i] * (load_any(x, xdt, base + i) * r));
    }
}

/// dx = r * dy * w - x * r^3 * <dy * w, x> / D.
extern "C" __global__ void kite_rmsnorm_bwd(const void* dy, int dydt, const void* x, int xdt, const float* w,
                                            const float* rinv, void* dx, int dxdt, i64 rows, int D, int vec) {
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    i64 base = row * D;
    float dot = 0.0f;
    if (vec) {
        i64 q0 = base / 4;
        for (int q = lane; q < D / 4; q += 32) {
            float4 d = load4_any(dy, dydt, q0 + q), v = load4_any(x, xdt, q0 + q);
            float4 g = ((const float4*)w)[q];
            dot += d.x * g.x * v.x + d.y * g.y * v.y + d.z * g.z * v.z + d.w * g.w * v.w;
        }
    } else {
        for (int i = lane; i < D; i += 32) dot += load_any(dy, dydt, base + i) * w[i] * load_any(x, xdt, base + i);
    }
    dot = warp_sum(dot);
    float r = rinv[row];
    float coef = r * r * r * dot / (float)D;
    if (vec) {
        i64 q0 = base / 4;
        for (int q = lane; q < D / 4; q += 32) {
            float4 d = load4_any(dy, dydt, q0 + q), v = load4_any(x, xdt, q0 + q);
            float4 g = ((const float4*)w)[q];
            store4_any(dx, dxdt, q0 + q, make_float4(r * d.x * g.x - coef * v.x, r * d.y * g.y - coef * v.y,
                                                     r * d.z * g.z - coef * v.z, r * d.w * g.w - coef * v.w));
        }
    } else {
        for (int i = lane; i < D; i += 32) {
            store_any(dx, dxdt, base + i, r * load_any(dy, dydt, base + i) * w[i] - coef * load_any(x, xdt, base + i));
        }
    }
}

#define NORM_MAXQ 8
/// Backward with the weight gradient fused in, for rows of at most 1024 elements that allow 4-wide accesses:
/// each warp walks rows (warp w of W takes rows w, w + W, ...), keeps its row of dy and x in registers, writes
/// dx, and adds dy * x * r into per-lane column sums; the block's warps then add their sums into
/// partial[block, D]. A fixed grid keeps the order of every sum, so the result is deterministic.
extern "C" __global__ void kite_rmsnorm_bwd_fused(const void* dy, int dydt, const void* x, int xdt, const float* w,
                                                  const float* rinv, void* dx, int dxdt, i64 rows, int D, float* partial) {
    __shared__ float red[8][1024];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int quads = D / 4;
    float4 acc[NORM_MAXQ];
#pragma unroll
    for (int c = 0; c < NORM_MAXQ; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const i64 totalWarps = (i64)gridDim.x * 8;
    for (i64 row = (i64)blockIdx.x * 8 + warp; row < rows; row += totalWarps) {
        const i64 q0 = row * D / 4;
        float4 d[NORM_MAXQ], v[NORM_MAXQ];
        float dot = 0.0f;
#pragma unroll
        for (int c = 0; c < NORM_MAXQ; ++c) {
            const int q = lane + 32 * c;
            if (q < quads) {
                d[c] = load4_any(dy, dydt, q0 + q);
                v[c] = load4_any(x, xdt, q0 + q);
                const float4 g = ((const float4*)w)[q];
                dot += d[c].x * g.x * v[c].x + d[c].y * g.y * v[c].y + d[c].z * g.z * v[c].z + d[c].w * g.w * v[c].w;
            }
        }
        dot = warp_sum(dot);
        const float r = rinv[row];
        const float coef = r * r * r * dot / (float)D;
#pragma unroll
        for (int c = 0; c < NORM_MAXQ; ++c) {
            const int q = lane + 32 * c;
            if (q < quads) {
                const float4 g = ((const float4*)w)[q];
                store4_any(dx, dxdt, q0 + q, make_float4(r * d[c].x * g.x - coef * v[c].x, r * d[c].y * g.y - coef * v[c].y,
                                                         r * d[c].z * g.z - coef * v[c].z, r * d[c].w * g.w - coef * v[c].w));
                acc[c].x += d[c].x * v[c].x * r; acc[c].y += d[c].y * v[c].y * r;
                acc[c].z += d[c].z * v[c].z * r; acc[c].w += d[c].w * v[c].w * r;
            }
        }
    }
#pragma unroll
    for (int c = 0; c < NORM_MAXQ; ++c) {
        const int q = lane + 32 * c;
        if (q < quads) {
            red[warp][4 * q] = acc[c].x; red[warp][4 * q + 1] = acc[c].y;
            red[warp][4 * q + 2] = acc[c].z; red[warp][4 * q + 3] = acc[c].w;
        }
    }
    __syncthreads();
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < 8; ++k) s += red[k][j];
        partial[(i64)blockIdx.x * D + j] = s;
    }
}
"""#
}
