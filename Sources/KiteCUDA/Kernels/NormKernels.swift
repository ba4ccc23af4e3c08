/// RMSNorm forward and input-gradient: one warp per row, so short rows (per-head q/k norms, 128 wide) and
/// long rows (the hidden size) both keep every lane busy. The weight gradient is a column sum
/// (`kite_colsum_partial` with `rowScale = 1/rms`), deterministic and free of atomics.
enum NormKernels {
    /// The widest head `kite_rotate_and_cache` takes (its per-warp row buffer; `ROTATE_MAX_D` in the source).
    static let rotateMaxHeadDim = 256
    /// 4-element pieces per lane of the register-held `kite_add_rmsnorm_bf16_r<P>` kernels (rows of 128 P).
    static let addRMSNormRegisterPieces = [8, 16]

    static let source = #"""
/// 1 / rms of the row of D elements at element `base`, by the warp (lane l sums elements l, l + 32, ...; with
/// `vec`, the 4-element pieces l, l + 32, ...), every lane getting the result.
KD float row_inverse_rms(const void* x, int xdt, i64 base, int D, float eps, int vec) {
    const int lane = threadIdx.x & 31;
    float ss = 0.0f;
    if (vec) {
        for (int q = lane; q < D / 4; q += 32) ss = add_squares4(ss, load4_any(x, xdt, base / 4 + q));
    } else {
        for (int i = lane; i < D; i += 32) { float v = load_any(x, xdt, base + i); ss = __fmaf_rn(v, v, ss); }
    }
    return rms_inverse(warp_sum(ss), D, eps);
}

/// y = w * (x * r) over the row at element `base`, by the warp.
KD void normalize_row(const void* x, int xdt, const float* w, void* y, int ydt, i64 base, int D, float r, int vec) {
    const int lane = threadIdx.x & 31;
    if (vec) {
        for (int q = lane; q < D / 4; q += 32) {
            float4 v = load4_any(x, xdt, base / 4 + q);
            float4 g = ((const float4*)w)[q];
            store4_any(y, ydt, base / 4 + q, make_float4(rms_scale(g.x, v.x, r), rms_scale(g.y, v.y, r), rms_scale(g.z, v.z, r), rms_scale(g.w, v.w, r)));
        }
    } else {
        for (int i = lane; i < D; i += 32) store_any(y, ydt, base + i, rms_scale(w[i], load_any(x, xdt, base + i), r));
    }
}

/// y = w * (x * r), r = 1 / sqrt(mean(x^2) + eps), per row of width D; rinv[row] = r.
extern "C" __global__ void kite_rmsnorm(const void* x, int xdt, const float* w, void* y, int ydt, float* rinv,
                                        i64 rows, int D, float eps, int vec) {
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    i64 base = row * D;
    float r = row_inverse_rms(x, xdt, base, D, eps, vec);
    if (lane == 0) rinv[row] = r;
    normalize_row(x, xdt, w, y, ydt, base, D, r, vec);
}

/// target += x, then y = RMSNorm(target) with weight w, one warp per row: the residual add that ends a block
/// and the norm that starts the next. The sums are stored first and the norm reads them back as stored
/// (rounded to target's dtype), so the result is kite_axpy's followed by kite_rmsnorm's, bit for bit; `vec`
/// must be what kite_rmsnorm would use for target, w and y (it fixes the order of the sum of squares).
extern "C" __global__ void kite_add_rmsnorm(const void* x, int xdt, void* target, int tdt, const float* w, void* y, int ydt,
                                            i64 rows, int D, float eps, int vec) {
    i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    i64 base = row * D;
    if (vec) {
        for (int q = lane; q < D / 4; q += 32) {
            float4 t = load4_any(target, tdt, base / 4 + q), a = load4_any(x, xdt, base / 4 + q);
            store4_any(target, tdt, base / 4 + q, make_float4(t.x + a.x, t.y + a.y, t.z + a.z, t.w + a.w));
        }
    } else {
        for (int i = lane; i < D; i += 32) store_any(target, tdt, base + i, load_any(target, tdt, base + i) + load_any(x, xdt, base + i));
    }
    // Each lane reads back what it wrote itself (the same elements in both passes), so no barrier is needed.
    float r = row_inverse_rms(target, tdt, base, D, eps, vec);
    normalize_row(target, tdt, w, y, ydt, base, D, r, vec);
}

KD float4 bf16x4_to_f32(uint2 w) {
    return make_float4(__uint_as_float(w.x << 16), __uint_as_float(w.x & 0xffff0000u),
                       __uint_as_float(w.y << 16), __uint_as_float(w.y & 0xffff0000u));
}
KD uint2 f32x4_to_bf16(float4 v) {
    return make_uint2((unsigned)f32_to_bf16(v.x) | ((unsigned)f32_to_bf16(v.y) << 16),
                      (unsigned)f32_to_bf16(v.z) | ((unsigned)f32_to_bf16(v.w) << 16));
}

/// kite_add_rmsnorm for bf16 x, target and output with the row held in registers, for rows of at most 128 P
/// elements: every load of the row (x, target and the norm's weight) is issued before the first is used, and
/// the norm reads the rounded sums from registers instead of memory. kite_add_rmsnorm's order of sums, so
/// the same bits in one round trip to memory instead of three. One warp per row.
template <int P>
KD void add_rmsnorm_bf16(const uint2* __restrict__ x, uint2* target, const float4* __restrict__ w, uint2* __restrict__ y,
                         i64 rows, int D, float eps) {
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const int pieces = D / 4;
    const i64 q0 = row * pieces;
    uint2 tw[P], xw[P];
    float4 g[P];
#pragma unroll
    for (int k = 0; k < P; ++k) {
        const int q = lane + 32 * k;
        if (q < pieces) { tw[k] = target[q0 + q]; xw[k] = x[q0 + q]; g[k] = w[q]; }
    }
    float4 v[P];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < P; ++k) {
        const int q = lane + 32 * k;
        if (q < pieces) {
            const float4 t = bf16x4_to_f32(tw[k]), a = bf16x4_to_f32(xw[k]);
            const uint2 sum = f32x4_to_bf16(make_float4(t.x + a.x, t.y + a.y, t.z + a.z, t.w + a.w));
            target[q0 + q] = sum;
            v[k] = bf16x4_to_f32(sum);
            ss = add_squares4(ss, v[k]);
        }
    }
    const float r = rms_inverse(warp_sum(ss), D, eps);
#pragma unroll
    for (int k = 0; k < P; ++k) {
        const int q = lane + 32 * k;
        if (q < pieces) {
            y[q0 + q] = f32x4_to_bf16(make_float4(rms_scale(g[k].x, v[k].x, r), rms_scale(g[k].y, v[k].y, r),
                                                  rms_scale(g[k].z, v[k].z, r), rms_scale(g[k].w, v[k].w, r)));
        }
    }
}

#define KITE_ADD_RMSNORM_BF16(P)                                                                                      \
extern "C" __global__ void __launch_bounds__(64) kite_add_rmsnorm_bf16_r##P(                                         \
    const uint2* x, uint2* target, const float4* w, uint2* y, i64 rows, int D, float eps) {                           \
    add_rmsnorm_bf16<P>(x, target, w, y, rows, D, eps);                                                               \
}
KITE_ADD_RMSNORM_BF16(8)
KITE_ADD_RMSNORM_BF16(16)

/// Attention inputs of a cached forward from one product's rows qkv [T, (Hq + 2 Hkv) * D] (query heads, key
/// heads, value heads): one warp per (token, head). Query and key heads get the per-head RMSNorm (when qw /
/// kw are given; `vec` as kite_rmsnorm would use for these rows) rounded to the activation dtype `adt`, as
/// the separate norm stores it, then RoPE (cos / sin [T, D/2]) rounded likewise; queries go to q_out [T, Hq, D]
/// (dtype adt), keys and values to row slots[t] of the caches [slots, Hkv, D] (dtype cdt). D is even and at
/// most ROTATE_MAX_D; the block has 8 warps.
#define ROTATE_MAX_D 256
extern "C" __global__ void __launch_bounds__(256) kite_rotate_and_cache(
    const void* qkv, int adt, const float* qw, const float* kw, float eps, const float* cosp, const float* sinp,
    i64 T, int Hq, int Hkv, int D, int vec, void* q_out, void* kcache, void* vcache, int cdt, const int* slots) {
    __shared__ float rows[8][ROTATE_MAX_D];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int H = Hq + 2 * Hkv;
    const i64 item = (i64)blockIdx.x * 8 + warp;
    if (item >= T * H) return;
    const i64 t = item / H;
    const int h = (int)(item - t * H);
    const i64 base = item * D;
    const i64 slot = (i64)slots[t];
    if (h >= Hq + Hkv) {
        const i64 to = (slot * Hkv + (h - Hq - Hkv)) * D;
        for (int i = lane; i < D; i += 32) store_any(vcache, cdt, to + i, load_any(qkv, adt, base + i));
        return;
    }
    const float* w = h < Hq ? qw : kw;
    float* row = rows[warp];
    if (w) {
        const float r = row_inverse_rms(qkv, adt, base, D, eps, vec);
        for (int i = lane; i < D; i += 32) row[i] = round_as(adt, rms_scale(w[i], load_any(qkv, adt, base + i), r));
    } else {
        for (int i = lane; i < D; i += 32) row[i] = load_any(qkv, adt, base + i);
    }
    __syncwarp();
    const int half = D / 2;
    for (int i = lane; i < half; i += 32) {
        const float2 o = rope_rotate(row[i], row[i + half], cosp[t * half + i], sinp[t * half + i]);
        const float first = round_as(adt, o.x), second = round_as(adt, o.y);
        if (h < Hq) {
            const i64 to = (t * Hq + h) * D;
            store_any(q_out, adt, to + i, first);
            store_any(q_out, adt, to + half + i, second);
        } else {
            const i64 to = (slot * Hkv + (h - Hq)) * D;
            store_any(kcache, cdt, to + i, first);
            store_any(kcache, cdt, to + half + i, second);
        }
    }
}

/// kite_rotate_and_cache for D = 128 with 4-wide rows: lane l holds elements 4l ..< 4l + 4 of its (token,
/// head) row in registers (one 8-byte load of a bf16 row), the norm is kite_rmsnorm's 4-wide order (one piece
/// a lane), and RoPE's partner of element i < 64 (i + 64) sits in lane l ^ 16, fetched by a shuffle. Each
/// lane computes the pair rotation of its own elements with the same arguments as the general kernel, so the
/// same bits. Requires `vec` whenever a norm weight is given, and 16-byte aligned cos / sin.
extern "C" __global__ void __launch_bounds__(256) kite_rotate_and_cache_d128(
    const void* qkv, int adt, const float* qw, const float* kw, float eps, const float* cosp, const float* sinp,
    i64 T, int Hq, int Hkv, void* q_out, void* kcache, void* vcache, int cdt, const int* slots) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int H = Hq + 2 * Hkv;
    const i64 item = (i64)blockIdx.x * 8 + warp;
    if (item >= T * H) return;
    const i64 t = item / H;
    const int h = (int)(item - t * H);
    // Every load first (row, slot, cos / sin and the norm's weight), so that a warp waits for memory once.
    const float* w = h < Hq ? qw : kw;
    const bool value = h >= Hq + Hkv;
    const float4 v = load4_any(qkv, adt, item * 32 + lane);
    const i64 slot = h >= Hq ? (i64)slots[t] : 0;
    const float4 c = value ? v : ((const float4*)cosp)[t * 16 + (lane & 15)];
    const float4 s = value ? v : ((const float4*)sinp)[t * 16 + (lane & 15)];
    const float4 g = w && !value ? ((const float4*)w)[lane] : v;
    if (value) {
        store4_any(vcache, cdt, (slot * Hkv + (h - Hq - Hkv)) * 32 + lane, v);
        return;
    }
    float4 n = v;
    if (w) {
        const float r = rms_inverse(warp_sum(add_squares4(0.0f, v)), 128, eps);
        n = make_float4(round_as(adt, rms_scale(g.x, v.x, r)), round_as(adt, rms_scale(g.y, v.y, r)),
                        round_as(adt, rms_scale(g.z, v.z, r)), round_as(adt, rms_scale(g.w, v.w, r)));
    }
    const float4 p = make_float4(__shfl_xor_sync(0xffffffffu, n.x, 16), __shfl_xor_sync(0xffffffffu, n.y, 16),
                                 __shfl_xor_sync(0xffffffffu, n.z, 16), __shfl_xor_sync(0xffffffffu, n.w, 16));
    const bool first = lane < 16;
    // Lanes of the first half hold a (x[i]) and take o.x; lanes of the second half hold b (x[i + 64]) and take o.y.
    const float2 r0 = first ? rope_rotate(n.x, p.x, c.x, s.x) : rope_rotate(p.x, n.x, c.x, s.x);
    const float2 r1 = first ? rope_rotate(n.y, p.y, c.y, s.y) : rope_rotate(p.y, n.y, c.y, s.y);
    const float2 r2 = first ? rope_rotate(n.z, p.z, c.z, s.z) : rope_rotate(p.z, n.z, c.z, s.z);
    const float2 r3 = first ? rope_rotate(n.w, p.w, c.w, s.w) : rope_rotate(p.w, n.w, c.w, s.w);
    const float4 o = first ? make_float4(round_as(adt, r0.x), round_as(adt, r1.x), round_as(adt, r2.x), round_as(adt, r3.x))
                           : make_float4(round_as(adt, r0.y), round_as(adt, r1.y), round_as(adt, r2.y), round_as(adt, r3.y));
    if (h < Hq) {
        store4_any(q_out, adt, (t * Hq + h) * 32 + lane, o);
    } else {
        store4_any(kcache, cdt, (slot * Hkv + (h - Hq)) * 32 + lane, o);
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
