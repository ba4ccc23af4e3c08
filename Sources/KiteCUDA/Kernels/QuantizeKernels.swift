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

/// Activations of a block-scaled product: one block per (row, column block) of `x` `[rows, cols]`, the same
/// arithmetic as `kite_block_quantize` on a one-row tile. Rows `rows ..< paddedRows` are zeros with scale 1 (cuBLASLt
/// wants a multiple of 4 rows). Scales are stored column block by column block, each holding `paddedRows`
/// consecutive rows (cuBLASLt's layout for 1 x 128 scales of the operand whose rows are the output's rows).
extern "C" __global__ void kite_quantize_activation_rows(const void* x, int xdt, i64 rows, i64 cols, i64 paddedRows, int bs,
                                                        unsigned char* out, float fmax, float* scales) {
    __shared__ float scratch[32];
    i64 r = blockIdx.y, c0 = (i64)blockIdx.x * bs;
    float amax = 0.0f;
    if (r < rows) {
        for (i64 c = c0 + threadIdx.x; c < c0 + bs && c < cols; c += blockDim.x) {
            float v = fabsf(load_any(x, xdt, r * cols + c));
            if (v > amax) amax = v;
        }
    }
    amax = block_max(amax, scratch);
    float scale = amax > 0.0f ? amax / fmax : 1.0f;
    if (threadIdx.x == 0) scales[(i64)blockIdx.x * paddedRows + r] = scale;
    for (i64 c = c0 + threadIdx.x; c < c0 + bs && c < cols; c += blockDim.x) {
        out[r * cols + c] = r < rows ? f32_to_e4m3(load_any(x, xdt, r * cols + c) / scale) : (unsigned char)0;
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
