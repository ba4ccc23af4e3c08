/// fp8 block quantisation with one fp32 scale per `blockSize x blockSize` tile (DeepSeek-V3's weight
/// format: `weight_scale_inv`), and its inverse; the per-row activation quantisation and scale layouts that
/// cuBLASLt's block-scaled fp8 product takes (`CUDABackend.blockScaledMatmul`).
enum QuantizeKernels {
    static let source = #"""
/// One block per tile: scale = amax / fmax (1 for an all-zero tile), values = fp8(x / scale).
extern "C" __global__ void kite_block_quantize(const void* x, int xdt, i64 rows, i64 cols, int bs,
                                               unsigned char* out, int odt, float fmax, float* scales, i64 scaleCols) {
    __shared__ float scratch[32];
    i64 r0 = (i64)blockIdx.y * bs, c0 = (i64)blockIdx.x * bs;
    i64 tile = (i64)bs * bs;
    float amax = 0.0f;
    for (i64 i = threadIdx.x; i < tile; i += blockDim.x) {
        i64 r = r0 + i / bs, c = c0 + i % bs;
        if (r < rows && c < cols) {
            float v = fabsf(load_any(x, xdt, r * cols + c));
            if (v > amax) amax = v;
        }
    }
    amax = block_max(amax, scratch);
    float scale = amax > 0.0f ? amax / fmax : 1.0f;
    if (threadIdx.x == 0) scales[(i64)blockIdx.y * scaleCols + blockIdx.x] = scale;
    for (i64 i = threadIdx.x; i < tile; i += blockDim.x) {
        i64 r = r0 + i / bs, c = c0 + i % bs;
        if (r < rows && c < cols) {
            float v = load_any(x, xdt, r * cols + c) / scale;
            out[r * cols + c] = odt == DT_E4M3 ? f32_to_e4m3(v) : f32_to_e5m2(v);
        }
    }
}

extern "C" __global__ void kite_block_dequantize(const unsigned char* values, int vdt, const float* scales,
                                                 i64 rows, i64 cols, int bs, i64 scaleCols, void* out, int odt) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < rows * cols; i += (i64)gridDim.x * blockDim.x) {
        i64 r = i / cols, c = i % cols;
        float v = vdt == DT_E4M3 ? e4m3_to_f32(values[i]) : e5m2_to_f32(values[i]);
        store_any(out, odt, i, v * scales[(r / bs) * scaleCols + c / bs]);
    }
}

/// Activations of a block-scaled product: one warp per (row, 128-column block) of `x` `[rows, cols]`, each lane
/// four consecutive columns, the block's amax by warp shuffles; the same arithmetic as `kite_block_quantize` on
/// a one-row tile (scale = amax / fmax, 1 for zeros; values = e4m3(x / scale)). Rows `rows ..< paddedRows` are
/// zeros with scale 1 (cuBLASLt wants a multiple of 4 rows). Scales are stored column block by column block,
/// each holding `paddedRows` consecutive rows (cuBLASLt's layout for the 1 x 128 scales of the operand whose
/// rows are the output's rows).
extern "C" __global__ void kite_quantize_activation_rows(const void* x, int xdt, i64 rows, i64 cols, i64 paddedRows,
                                                        unsigned char* out, float fmax, float* scales) {
    const i64 blocks = (cols + 127) / 128;
    const i64 task = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (task >= paddedRows * blocks) return;
    const i64 r = task / blocks, cb = task % blocks, c = cb * 128 + (threadIdx.x & 31) * 4;
    float v[4];
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        v[i] = r < rows && c + i < cols ? load_any(x, xdt, r * cols + c + i) : 0.0f;
        if (fabsf(v[i]) > amax) amax = fabsf(v[i]);
    }
    amax = warp_max(amax);
    const float scale = amax > 0.0f ? amax / fmax : 1.0f;
    if ((threadIdx.x & 31) == 0) scales[cb * paddedRows + r] = scale;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if (c + i < cols) out[r * cols + c + i] = f32_to_e4m3(v[i] / scale);
    }
}

/// A `[rows, cols]` fp32 matrix copied into `[rows, paddedCols]` (padding 1): weight tile scales whose row
/// length cuBLASLt needs to be a multiple of 4 (16 bytes).
extern "C" __global__ void kite_pad_scale_columns(const float* in, i64 rows, i64 cols, float* out, i64 paddedCols) {
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < rows * paddedCols; i += (i64)gridDim.x * blockDim.x) {
        i64 r = i / paddedCols, c = i % paddedCols;
        out[i] = c < cols ? in[r * cols + c] : 1.0f;
    }
}
"""#
}
