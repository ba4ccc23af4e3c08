/// Memory-bound kernels: casts, elementwise arithmetic, SwiGLU, RoPE, embedding gather/scatter, bias and
/// column sums, sums of squares and random fills.
///
/// Operands carry a runtime dtype code, so one kernel serves every storage format; the branch on the code
/// is uniform across the grid and costs nothing next to the memory traffic. Kernels with a `vec` flag move
/// four elements per access when the host has checked that every operand is aligned for it.
enum ElementwiseKernels {
    static let source = #"""
#define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

extern "C" __global__ void kite_cast(const void* src, int sdt, void* dst, int ddt, i64 n, int vec, float scale) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 v = load4_any(src, sdt, q);
        if (scale != 1.0f) { v.x *= scale; v.y *= scale; v.z *= scale; v.w *= scale; }
        store4_any(dst, ddt, q, v);
    }
    GRID_STRIDE(t, n - n4 * 4) {
        i64 i = n4 * 4 + t;
        float v = load_any(src, sdt, i);
        store_any(dst, ddt, i, scale != 1.0f ? v * scale : v);
    }
}

extern "C" __global__ void kite_add(const void* a, int adt, const void* b, int bdt, void* out, int odt, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 x = load4_any(a, adt, q), y = load4_any(b, bdt, q);
        store4_any(out, odt, q, make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w));
    }
    GRID_STRIDE(t, n - n4 * 4) {
        i64 i = n4 * 4 + t;
        store_any(out, odt, i, load_any(a, adt, i) + load_any(b, bdt, i));
    }
}

/// target += alpha * x
extern "C" __global__ void kite_axpy(const void* x, int xdt, void* target, int tdt, float alpha, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 a = load4_any(x, xdt, q), t = load4_any(target, tdt, q);
        if (alpha == 1.0f) { t.x += a.x; t.y += a.y; t.z += a.z; t.w += a.w; }
        else { t.x += alpha * a.x; t.y += alpha * a.y; t.z += alpha * a.z; t.w += alpha * a.w; }
        store4_any(target, tdt, q, t);
    }
    GRID_STRIDE(u, n - n4 * 4) {
        i64 i = n4 * 4 + u;
        float a = load_any(x, xdt, i);
        store_any(target, tdt, i, load_any(target, tdt, i) + (alpha == 1.0f ? a : alpha * a));
    }
}

extern "C" __global__ void kite_scale(void* x, int dt, float factor, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 v = load4_any(x, dt, q);
        store4_any(x, dt, q, make_float4(v.x * factor, v.y * factor, v.z * factor, v.w * factor));
    }
    GRID_STRIDE(t, n - n4 * 4) { i64 i = n4 * 4 + t; store_any(x, dt, i, load_any(x, dt, i) * factor); }
}

/// XOR of all 32-bit words of `groups` 16-byte groups, one partial per block: a read of the whole buffer with
/// four independent 16-byte loads in flight per thread and one word written per block (a read-bandwidth probe).
extern "C" __global__ void kite_xor_words(const uint4* __restrict__ data, i64 groups, unsigned* partials) {
    unsigned acc = 0u;
    const i64 stride = (i64)gridDim.x * blockDim.x;
    i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * stride < groups; i += 4 * stride) {
        const uint4 a = data[i], b = data[i + stride], c = data[i + 2 * stride], d = data[i + 3 * stride];
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < groups; i += stride) { const uint4 a = data[i]; acc ^= a.x ^ a.y ^ a.z ^ a.w; }
    for (int o = 16; o > 0; o >>= 1) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
    __shared__ unsigned warps[32];
    if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned r = 0u;
        for (int w = 0; w < (int)((blockDim.x + 31) >> 5); ++w) r ^= warps[w];
        partials[blockIdx.x] = r;
    }
}

extern "C" __global__ void kite_fill(void* x, int dt, float value, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) store4_any(x, dt, q, make_float4(value, value, value, value));
    GRID_STRIDE(t, n - n4 * 4) store_any(x, dt, n4 * 4 + t, value);
}

/// silu(g) * u with every rounding explicit, so kite_swiglu and kite_swiglu_packed agree to the bit.
KD float swiglu_of(float g, float u) { return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u); }

extern "C" __global__ void kite_swiglu(const void* gate, const void* up, int idt, void* out, int odt, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 g = load4_any(gate, idt, q), u = load4_any(up, idt, q);
        store4_any(out, odt, q, make_float4(swiglu_of(g.x, u.x), swiglu_of(g.y, u.y), swiglu_of(g.z, u.z), swiglu_of(g.w, u.w)));
    }
    GRID_STRIDE(t, n - n4 * 4) {
        i64 i = n4 * 4 + t;
        store_any(out, odt, i, swiglu_of(load_any(gate, idt, i), load_any(up, idt, i)));
    }
}

/// silu(gate) * up of rows gu [rows, 2 I] that hold the gate in their first I columns and up in the last I
/// (one product over stacked gate and up weights) into out [rows, I]; kite_swiglu's arithmetic. With `vec`
/// (I a multiple of 4, aligned rows) four elements per access.
extern "C" __global__ void kite_swiglu_packed(const void* gu, int idt, void* out, int odt, i64 rows, int I, int vec) {
    if (vec) {
        const int quads = I / 4;
        GRID_STRIDE(idx, rows * quads) {
            const i64 r = idx / quads, q = idx - r * quads;
            const float4 g = load4_any(gu, idt, r * 2 * quads + q), u = load4_any(gu, idt, r * 2 * quads + quads + q);
            store4_any(out, odt, idx, make_float4(swiglu_of(g.x, u.x), swiglu_of(g.y, u.y), swiglu_of(g.z, u.z), swiglu_of(g.w, u.w)));
        }
        return;
    }
    GRID_STRIDE(idx, rows * I) {
        const i64 r = idx / I, j = idx - r * I;
        store_any(out, odt, idx, swiglu_of(load_any(gu, idt, r * 2 * I + j), load_any(gu, idt, r * 2 * I + I + j)));
    }
}

KD void swiglu_grad(float dy, float g, float u, float& dg, float& du) {
    float s = 1.0f / (1.0f + expf(-g));
    du = dy * (g * s);
    dg = dy * u * (s + g * s * (1.0f - s));
}

extern "C" __global__ void kite_swiglu_bwd(const void* dy, int dydt, const void* gate, const void* up, int idt,
                                           void* dgate, void* dup, int odt, i64 n, int vec) {
    i64 n4 = vec ? n / 4 : 0;
    GRID_STRIDE(q, n4) {
        float4 d = load4_any(dy, dydt, q), g = load4_any(gate, idt, q), u = load4_any(up, idt, q);
        float4 dg, du;
        swiglu_grad(d.x, g.x, u.x, dg.x, du.x);
        swiglu_grad(d.y, g.y, u.y, dg.y, du.y);
        swiglu_grad(d.z, g.z, u.z, dg.z, du.z);
        swiglu_grad(d.w, g.w, u.w, dg.w, du.w);
        store4_any(dgate, odt, q, dg);
        store4_any(dup, odt, q, du);
    }
    GRID_STRIDE(t, n - n4 * 4) {
        i64 i = n4 * 4 + t;
        float dg, du;
        swiglu_grad(load_any(dy, dydt, i), load_any(gate, idt, i), load_any(up, idt, i), dg, du);
        store_any(dgate, odt, i, dg);
        store_any(dup, odt, i, du);
    }
}

/// x [T, H, D] rotated by cos/sin [T, D/2] (fp32), halves paired as rotate_half does; sign -1 is the inverse.
/// With `vec` (D/2 a multiple of 4, aligned rows) each thread rotates four pairs with 4-wide accesses.
extern "C" __global__ void kite_rope(const void* x, int xdt, const float* cosp, const float* sinp, void* out, int odt,
                                     i64 T, int H, int D, float sign, int vec) {
    const int half = D / 2;
    if (vec) {
        const int quads = half / 4;
        GRID_STRIDE(idx, T * H * quads) {
            const i64 th = idx / quads;
            const int i = (int)(idx - th * quads) * 4;
            const i64 t = th / H;
            const float4 c = *(const float4*)(cosp + t * half + i);
            float4 s = *(const float4*)(sinp + t * half + i);
            s.x *= sign; s.y *= sign; s.z *= sign; s.w *= sign;
            const i64 q1 = (th * D + i) / 4, q2 = (th * D + half + i) / 4;
            const float4 a = load4_any(x, xdt, q1), b = load4_any(x, xdt, q2);
            const float2 r0 = rope_rotate(a.x, b.x, c.x, s.x), r1 = rope_rotate(a.y, b.y, c.y, s.y);
            const float2 r2 = rope_rotate(a.z, b.z, c.z, s.z), r3 = rope_rotate(a.w, b.w, c.w, s.w);
            store4_any(out, odt, q1, make_float4(r0.x, r1.x, r2.x, r3.x));
            store4_any(out, odt, q2, make_float4(r0.y, r1.y, r2.y, r3.y));
        }
        return;
    }
    GRID_STRIDE(idx, T * H * half) {
        i64 th = idx / half;
        int i = (int)(idx - th * half);
        i64 t = th / H;
        float c = cosp[t * half + i], s = sign * sinp[t * half + i];
        i64 base = th * D;
        const float2 r = rope_rotate(load_any(x, xdt, base + i), load_any(x, xdt, base + half + i), c, s);
        store_any(out, odt, base + i, r.x);
        store_any(out, odt, base + half + i, r.y);
    }
}

/// Rows of table [V, D] gathered by ids [T]; a bad id writes zeros and records the smallest bad position in err.
extern "C" __global__ void kite_embedding(const int* ids, const void* table, int tdt, void* out, int odt, i64 T, int D, int V, int* err) {
    GRID_STRIDE(idx, T * D) {
        i64 row = idx / D;
        int c = (int)(idx - row * D);
        int id = ids[row];
        if (id < 0 || id >= V) {
            if (c == 0) atomicMin(err, (int)row);
            store_any(out, odt, idx, 0.0f);
        } else {
            store_any(out, odt, idx, load_any(table, tdt, (i64)id * D + c));
        }
    }
}

/// grad[ids[t], :] += dy[t, :] (fp32 gradient; atomics, so rows sharing an id add in any order).
extern "C" __global__ void kite_embedding_bwd(const int* ids, const void* dy, int dydt, float* grad, i64 T, int D, int V, int* err) {
    GRID_STRIDE(idx, T * D) {
        i64 row = idx / D;
        int c = (int)(idx - row * D);
        int id = ids[row];
        if (id < 0 || id >= V) {
            if (c == 0) atomicMin(err, (int)row);
        } else {
            atomicAdd(grad + (i64)id * D + c, load_any(dy, dydt, idx));
        }
    }
}

/// Row dst[dstRows[i]] = row src[srcRows[i]] for i < n (a null index list means row i), rows of rowBytes
/// bytes moved in `word`-byte pieces (16, 4 or 1, as the host found the rows aligned).
extern "C" __global__ void kite_move_rows(const unsigned char* src, unsigned char* dst, const int* srcRows, const int* dstRows,
                                          i64 n, i64 rowBytes, int word) {
    const i64 perRow = rowBytes / word;
    GRID_STRIDE(idx, n * perRow) {
        const i64 i = idx / perRow, w = idx - i * perRow;
        const i64 from = (srcRows ? (i64)srcRows[i] : i) * rowBytes + w * word;
        const i64 to = (dstRows ? (i64)dstRows[i] : i) * rowBytes + w * word;
        if (word == 16) *(uint4*)(dst + to) = *(const uint4*)(src + from);
        else if (word == 4) *(unsigned*)(dst + to) = *(const unsigned*)(src + from);
        else dst[to] = src[from];
    }
}

extern "C" __global__ void kite_add_bias(void* x, int xdt, const void* bias, int bdt, i64 rows, int cols) {
    GRID_STRIDE(idx, rows * cols) {
        int c = (int)(idx % cols);
        store_any(x, xdt, idx, load_any(x, xdt, idx) + load_any(bias, bdt, c));
    }
}

/// partial[split, c] = sum over the split's rows r of a[r, c] * b[r, c] * rowScale[r] (b and rowScale optional).
/// Block (32, 8): 32 columns, 8 row phases; a fixed split keeps the sum order, and so the result, deterministic.
extern "C" __global__ void kite_colsum_partial(const void* a, int adt, const void* b, int bdt, const float* rowScale,
                                               i64 rows, int cols, i64 rowsPerSplit, float* partial) {
    __shared__ float red[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    i64 start = (i64)blockIdx.y * rowsPerSplit;
    i64 end = start + rowsPerSplit < rows ? start + rowsPerSplit : rows;
    float acc = 0.0f;
    if (c < cols) {
        for (i64 r = start + threadIdx.y; r < end; r += 8) {
            float v = load_any(a, adt, r * cols + c);
            if (b) v *= load_any(b, bdt, r * cols + c);
            if (rowScale) v *= rowScale[r];
            acc += v;
        }
    }
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int k = 0; k < 8; ++k) s += red[k][threadIdx.x];
        partial[(i64)blockIdx.y * cols + c] = s;
    }
}

/// target[c] += sum over splits of partial[split, c], for many splits: block (32, 8) sums 32 columns with 8
/// split phases, then adds the phases in a fixed order.
extern "C" __global__ void kite_colsum_reduce(const float* partial, int splits, int cols, void* target, int tdt) {
    __shared__ float red[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < cols) for (int k = threadIdx.y; k < splits; k += 8) acc += partial[(i64)k * cols + c];
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        float s = 0.0f;
        for (int k = 0; k < 8; ++k) s += red[k][threadIdx.x];
        store_any(target, tdt, c, load_any(target, tdt, c) + s);
    }
}

/// partial[block] = sum of x^2 over a fixed grid-stride share, in fp64.
extern "C" __global__ void kite_sumsq_partial(const void* x, int dt, i64 n, double* partial) {
    __shared__ double red[32];
    double acc = 0.0;
    GRID_STRIDE(i, n) { double v = (double)load_any(x, dt, i); acc += v * v; }
    acc = warp_sum_d(acc);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) red[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0;
        acc = warp_sum_d(acc);
        if (lane == 0) partial[blockIdx.x] = acc;
    }
}

/// out[0] = sum of values[0 ..< n] by one block, in a fixed order.
extern "C" __global__ void kite_sum_doubles(const double* values, int n, double* out) {
    __shared__ double red[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += values[i];
    acc = warp_sum_d(acc);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) red[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < (int)(blockDim.x >> 5) ? red[lane] : 0.0;
        acc = warp_sum_d(acc);
        if (lane == 0) out[0] = acc;
    }
}

KD u64 mix64(u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/// x[i] = mean + std * N(0, 1), from a counter-based hash of (seed, i): the same values for any launch shape.
extern "C" __global__ void kite_fill_normal(void* x, int dt, i64 n, u64 seed, float mean, float stddev) {
    GRID_STRIDE(i, n) {
        u64 h1 = mix64(seed * 0x9E3779B97F4A7C15ull + 2ull * (u64)i + 1ull);
        u64 h2 = mix64(h1 ^ 0xD1B54A32D192ED03ull);
        float u1 = ((float)(h1 >> 40) + 0.5f) * (1.0f / 16777216.0f);
        float u2 = (float)(h2 >> 40) * (1.0f / 16777216.0f);
        float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
        store_any(x, dt, i, mean + stddev * z);
    }
}
"""#
}
