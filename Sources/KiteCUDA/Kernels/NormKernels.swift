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
"""#
}
