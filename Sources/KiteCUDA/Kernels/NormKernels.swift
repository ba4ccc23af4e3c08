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

/// Backward with the weight gradient fused in, for row widths D of 128, 256, 512 or 1024 with 4-wide accesses.
/// Each lane holds eight 4-element pieces: one row of 1024, or eight rows of 128, so short rows (per-head q/k
/// norms) still keep eight loads in flight per lane. Warp w of W takes row groups w, w + W, ...; it writes dx and
/// adds dy * x * r into per-lane column sums, which the block's warps add into partial[block, D]. A fixed grid
/// keeps the order of every sum, so the result is deterministic.
template <int D>
KD void rmsnorm_bwd_fused(const void* dy, int dydt, const void* x, int xdt, const float* w, const float* rinv,
                          void* dx, int dxdt, i64 rows, float* partial) {
    constexpr int QPL = D / 128;      // 4-element pieces per lane per row
    constexpr int RPI = 8 / QPL;      // rows per warp iteration
    __shared__ float red[8][D];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int j = lane; j < D; j += 32) red[warp][j] = 0.0f;
    float4 acc[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    const i64 step = (i64)gridDim.x * 8 * RPI;
    for (i64 base = ((i64)blockIdx.x * 8 + warp) * RPI; base < rows; base += step) {
        float4 d[8], v[8];
        float part[8];
#pragma unroll
        for (int c = 0; c < 8; ++c) {
            const i64 row = base + c / QPL;
            const int q = lane + 32 * (c % QPL);
            part[c] = 0.0f;
            d[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            v[c] = d[c];
            if (row < rows) {
                d[c] = load4_any(dy, dydt, row * (D / 4) + q);
                v[c] = load4_any(x, xdt, row * (D / 4) + q);
                const float4 g = ((const float4*)w)[q];
                part[c] = d[c].x * g.x * v[c].x + d[c].y * g.y * v[c].y + d[c].z * g.z * v[c].z + d[c].w * g.w * v[c].w;
            }
        }
#pragma unroll
        for (int r = 0; r < RPI; ++r) {
            const i64 row = base + r;
            float dot = 0.0f;
#pragma unroll
            for (int k = 0; k < QPL; ++k) dot += part[r * QPL + k];
            dot = warp_sum(dot);
            if (row >= rows) continue;
            const float ri = rinv[row];
            const float coef = ri * ri * ri * dot / (float)D;
#pragma unroll
            for (int k = 0; k < QPL; ++k) {
                const int c = r * QPL + k;
                const int q = lane + 32 * k;
                const float4 g = ((const float4*)w)[q];
                store4_any(dx, dxdt, row * (D / 4) + q,
                           make_float4(ri * d[c].x * g.x - coef * v[c].x, ri * d[c].y * g.y - coef * v[c].y,
                                       ri * d[c].z * g.z - coef * v[c].z, ri * d[c].w * g.w - coef * v[c].w));
                acc[c].x += d[c].x * v[c].x * ri; acc[c].y += d[c].y * v[c].y * ri;
                acc[c].z += d[c].z * v[c].z * ri; acc[c].w += d[c].w * v[c].w * ri;
            }
        }
    }
    // Fold the slots that share a column (rows of the same iteration), in a fixed order.
    __syncwarp();
#pragma unroll
    for (int c = 0; c < 8; ++c) {
        const int q = lane + 32 * (c % QPL);
        red[warp][4 * q] += acc[c].x; red[warp][4 * q + 1] += acc[c].y;
        red[warp][4 * q + 2] += acc[c].z; red[warp][4 * q + 3] += acc[c].w;
        __syncwarp();
    }
    __syncthreads();
    for (int j = threadIdx.x; j < D; j += blockDim.x) {
        float s = 0.0f;
        for (int k = 0; k < 8; ++k) s += red[k][j];
        partial[(i64)blockIdx.x * D + j] = s;
    }
}

#define RMSNORM_BWD_FUSED(D)                                                                                          \
extern "C" __global__ void __launch_bounds__(256) kite_rmsnorm_bwd_fused_d##D(                                      \
    const void* dy, int dydt, const void* x, int xdt, const float* w, const float* rinv, void* dx, int dxdt,          \
    i64 rows, float* partial) {                                                                                      \
    rmsnorm_bwd_fused<D>(dy, dydt, x, xdt, w, rinv, dx, dxdt, rows, partial);                                        \
}
RMSNORM_BWD_FUSED(128)
RMSNORM_BWD_FUSED(256)
RMSNORM_BWD_FUSED(512)
RMSNORM_BWD_FUSED(1024)
"""#
}
