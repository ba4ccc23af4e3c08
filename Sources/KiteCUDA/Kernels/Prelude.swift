/// Device helpers shared by every kernel module: dtype codes, bit-exact conversions and warp reductions.
///
/// The sources include no header, so they compile with nothing but NVRTC's built-ins (no CUDA toolkit
/// install, no `-I`). Conversions to the narrow formats are written out in integer arithmetic so that they
/// round exactly as `FloatConversion` does on the CPU: the same bits on both backends, NaN and overflow
/// included. The dtype codes match `CUDADTypeCode`.
enum KernelPrelude {
    static let source = #"""
#define KD __device__ __forceinline__
typedef long long i64;
typedef unsigned long long u64;
#define DT_F32 0
#define DT_BF16 1
#define DT_F16 2
#define DT_E4M3 3
#define DT_E5M2 4
#define NEG_INF (-__int_as_float(0x7f800000))
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

KD float bf16_to_f32(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
KD unsigned short f32_to_bf16(float f) {
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}
KD float f16_to_f32(unsigned short h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
KD unsigned short f32_to_f16(float f) { unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

KD unsigned char f32_to_e4m3(float v) {
    unsigned bits = __float_as_uint(v);
    unsigned char sign = (unsigned char)((bits >> 24) & 0x80u);
    unsigned mag = bits & 0x7fffffffu;
    if (mag > 0x7f800000u) return sign | 0x7f;
    if (mag >= 0x43e00000u) return sign | 0x7e;
    if (mag < 0x3c800000u) {
        float shifted = __uint_as_float(mag) + 16384.0f;
        return sign | (unsigned char)(__float_as_uint(shifted) - 0x46800000u);
    }
    unsigned odd = (mag >> 20) & 1u;
    unsigned rounded = mag + ((unsigned)(7 - 127) << 23) + 0x7ffffu + odd;
    return sign | (unsigned char)(rounded >> 20);
}
KD float e4m3_to_f32(unsigned char b) {
    unsigned sign = ((unsigned)b & 0x80u) << 24;
    unsigned e = (b >> 3) & 0xfu, m = b & 7u;
    if (e == 15u && m == 7u) return __uint_as_float(sign | 0x7fc00000u);
    float r = e == 0u ? (float)m * 0.001953125f : __uint_as_float(((e + 120u) << 23) | (m << 20));
    return __uint_as_float(__float_as_uint(r) | sign);
}
KD unsigned char f32_to_e5m2(float v) {
    unsigned bits = __float_as_uint(v);
    unsigned char sign = (unsigned char)((bits >> 24) & 0x80u);
    unsigned mag = bits & 0x7fffffffu;
    if (mag > 0x7f800000u) return sign | 0x7f;
    if (mag >= 0x47800000u) return sign | 0x7c;
    if (mag < 0x38800000u) {
        float shifted = __uint_as_float(mag) + 128.0f;
        return sign | (unsigned char)(__float_as_uint(shifted) - 0x43000000u);
    }
    unsigned odd = (mag >> 21) & 1u;
    unsigned rounded = mag + ((unsigned)(15 - 127) << 23) + 0xfffffu + odd;
    return sign | (unsigned char)(rounded >> 21);
}
KD float e5m2_to_f32(unsigned char b) {
    unsigned sign = ((unsigned)b & 0x80u) << 24;
    unsigned e = (b >> 2) & 0x1fu, m = b & 3u;
    if (e == 31u) return __uint_as_float(sign | (m == 0u ? 0x7f800000u : 0x7fc00000u));
    float r = e == 0u ? (float)m * 0.0000152587890625f : __uint_as_float(((e + 112u) << 23) | (m << 21));
    return __uint_as_float(__float_as_uint(r) | sign);
}

/// Element i of a tensor of dtype code dt, as fp32.
KD float load_any(const void* p, int dt, i64 i) {
    switch (dt) {
    case DT_F32: return ((const float*)p)[i];
    case DT_BF16: return bf16_to_f32(((const unsigned short*)p)[i]);
    case DT_F16: return f16_to_f32(((const unsigned short*)p)[i]);
    case DT_E4M3: return e4m3_to_f32(((const unsigned char*)p)[i]);
    default: return e5m2_to_f32(((const unsigned char*)p)[i]);
    }
}
KD void store_any(void* p, int dt, i64 i, float v) {
    switch (dt) {
    case DT_F32: ((float*)p)[i] = v; break;
    case DT_BF16: ((unsigned short*)p)[i] = f32_to_bf16(v); break;
    case DT_F16: ((unsigned short*)p)[i] = f32_to_f16(v); break;
    case DT_E4M3: ((unsigned char*)p)[i] = f32_to_e4m3(v); break;
    default: ((unsigned char*)p)[i] = f32_to_e5m2(v); break;
    }
}

/// Four consecutive elements starting at 4*q; the caller guarantees alignment (16 bytes for fp32,
/// 8 for 16-bit types, 4 for fp8).
KD float4 load4_any(const void* p, int dt, i64 q) {
    float4 r;
    if (dt == DT_F32) return ((const float4*)p)[q];
    if (dt == DT_BF16 || dt == DT_F16) {
        uint2 w = ((const uint2*)p)[q];
        if (dt == DT_BF16) {
            r.x = __uint_as_float(w.x << 16); r.y = __uint_as_float(w.x & 0xffff0000u);
            r.z = __uint_as_float(w.y << 16); r.w = __uint_as_float(w.y & 0xffff0000u);
        } else {
            r.x = f16_to_f32((unsigned short)(w.x & 0xffffu)); r.y = f16_to_f32((unsigned short)(w.x >> 16));
            r.z = f16_to_f32((unsigned short)(w.y & 0xffffu)); r.w = f16_to_f32((unsigned short)(w.y >> 16));
        }
        return r;
    }
    unsigned w = ((const unsigned*)p)[q];
    if (dt == DT_E4M3) {
        r.x = e4m3_to_f32(w & 0xff); r.y = e4m3_to_f32((w >> 8) & 0xff);
        r.z = e4m3_to_f32((w >> 16) & 0xff); r.w = e4m3_to_f32(w >> 24);
    } else {
        r.x = e5m2_to_f32(w & 0xff); r.y = e5m2_to_f32((w >> 8) & 0xff);
        r.z = e5m2_to_f32((w >> 16) & 0xff); r.w = e5m2_to_f32(w >> 24);
    }
    return r;
}
KD void store4_any(void* p, int dt, i64 q, float4 v) {
    if (dt == DT_F32) { ((float4*)p)[q] = v; return; }
    if (dt == DT_BF16 || dt == DT_F16) {
        uint2 w;
        if (dt == DT_BF16) {
            w.x = (unsigned)f32_to_bf16(v.x) | ((unsigned)f32_to_bf16(v.y) << 16);
            w.y = (unsigned)f32_to_bf16(v.z) | ((unsigned)f32_to_bf16(v.w) << 16);
        } else {
            w.x = (unsigned)f32_to_f16(v.x) | ((unsigned)f32_to_f16(v.y) << 16);
            w.y = (unsigned)f32_to_f16(v.z) | ((unsigned)f32_to_f16(v.w) << 16);
        }
        ((uint2*)p)[q] = w;
        return;
    }
    unsigned w;
    if (dt == DT_E4M3) {
        w = (unsigned)f32_to_e4m3(v.x) | ((unsigned)f32_to_e4m3(v.y) << 8) | ((unsigned)f32_to_e4m3(v.z) << 16) | ((unsigned)f32_to_e4m3(v.w) << 24);
    } else {
        w = (unsigned)f32_to_e5m2(v.x) | ((unsigned)f32_to_e5m2(v.y) << 8) | ((unsigned)f32_to_e5m2(v.z) << 16) | ((unsigned)f32_to_e5m2(v.w) << 24);
    }
    ((unsigned*)p)[q] = w;
}

KD float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
KD float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
KD double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/// Sum over a block of at most 1024 threads (every thread gets the result); scratch holds 32 floats.
KD float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}
KD float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : NEG_INF;
    return warp_max(v);
}

/// A value as the dtype of code dt holds it (the rounding a store and a load would do).
KD float round_as(int dt, float v) {
    switch (dt) {
    case DT_F32: return v;
    case DT_BF16: return bf16_to_f32(f32_to_bf16(v));
    case DT_F16: return f16_to_f32(f32_to_f16(v));
    case DT_E4M3: return e4m3_to_f32(f32_to_e4m3(v));
    default: return e5m2_to_f32(f32_to_e5m2(v));
    }
}

/// RMSNorm and RoPE arithmetic, shared by the separate kernels and the fused inference kernels. Every
/// rounding is explicit (no contraction left to the compiler), so a fused kernel that calls these in the
/// same order produces the separate kernels' bits: what keeps deterministic mode's engine equal to its trainer.
/// ss + x^2 + y^2 + z^2 + w^2 over four elements of a row, in that order.
KD float add_squares4(float ss, float4 v) {
    return __fadd_rn(ss, __fmaf_rn(v.w, v.w, __fmaf_rn(v.z, v.z, __fmaf_rn(v.y, v.y, __fmul_rn(v.x, v.x)))));
}
/// 1 / sqrt(ss / D + eps).
KD float rms_inverse(float ss, int D, float eps) {
    return __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(ss, (float)D), eps)));
}
/// The normalised element w * (x * r).
KD float rms_scale(float w, float x, float r) { return __fmul_rn(w, __fmul_rn(x, r)); }
/// The pair (a, b) = (x[i], x[i + D/2]) rotated by cos c and sin s: (a c - b s, b c + a s).
KD float2 rope_rotate(float a, float b, float c, float s) {
    return make_float2(__fmaf_rn(a, c, -__fmul_rn(b, s)), __fmaf_rn(b, c, __fmul_rn(a, s)));
}
"""#
}
