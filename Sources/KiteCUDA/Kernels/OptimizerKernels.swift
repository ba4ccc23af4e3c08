/// Multi-tensor AdamW: one launch updates every parameter. The host uploads a table of tensors and a list
/// of (tensor, chunk) pairs, one per block, so a 150M-element embedding and a 128-element norm weight both
/// spread evenly over the grid. Each block also refreshes the bf16 compute copy of its parameter when one
/// exists, so the weights that GEMMs read never go stale and never need a separate cast pass.
enum OptimizerKernels {
    /// Bytes of one `AdamTensor` entry: six 8-byte fields.
    static let tensorEntryBytes = 48

    static let source = #"""
struct AdamTensor { u64 param, grad, m, v, shadow; i64 n; };

extern "C" __global__ void kite_adamw(const AdamTensor* tensors, const int2* chunks, i64 chunkSize,
                                      float b1, float b2, float eps, float decay, float stepSize,
                                      float bc2sqrt, float gscale) {
    int2 c = chunks[blockIdx.x];
    AdamTensor t = tensors[c.x];
    float* p = (float*)t.param;
    const float* g = (const float*)t.grad;
    float* m = (float*)t.m;
    float* v = (float*)t.v;
    unsigned short* shadow = (unsigned short*)t.shadow;
    i64 start = (i64)c.y * chunkSize;
    i64 end = start + chunkSize < t.n ? start + chunkSize : t.n;
    // Four elements per access when every array allows it (chunk starts are multiples of 4).
    const bool vec = ((t.param | t.grad | t.m | t.v) & 15) == 0 && (t.shadow & 7) == 0 && (chunkSize & 3) == 0;
    if (vec) {
        const i64 end4 = end / 4;
        for (i64 q = start / 4 + threadIdx.x; q < end4; q += blockDim.x) {
            float4 gq = ((const float4*)g)[q], mq = ((float4*)m)[q], vq = ((float4*)v)[q], pq = ((float4*)p)[q];
            float gi[4] = {gq.x, gq.y, gq.z, gq.w}, mi[4] = {mq.x, mq.y, mq.z, mq.w};
            float vi[4] = {vq.x, vq.y, vq.z, vq.w}, pi[4] = {pq.x, pq.y, pq.z, pq.w};
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const float gk = gi[k] * gscale;
                mi[k] = b1 * mi[k] + (1.0f - b1) * gk;
                vi[k] = b2 * vi[k] + (1.0f - b2) * gk * gk;
                pi[k] = pi[k] * decay - stepSize * mi[k] / (sqrtf(vi[k]) / bc2sqrt + eps);
            }
            ((float4*)m)[q] = make_float4(mi[0], mi[1], mi[2], mi[3]);
            ((float4*)v)[q] = make_float4(vi[0], vi[1], vi[2], vi[3]);
            ((float4*)p)[q] = make_float4(pi[0], pi[1], pi[2], pi[3]);
            if (shadow) {
                uint2 packed;
                packed.x = (unsigned)f32_to_bf16(pi[0]) | ((unsigned)f32_to_bf16(pi[1]) << 16);
                packed.y = (unsigned)f32_to_bf16(pi[2]) | ((unsigned)f32_to_bf16(pi[3]) << 16);
                ((uint2*)shadow)[q] = packed;
            }
        }
        start = end4 * 4;
    }
    for (i64 i = start + threadIdx.x; i < end; i += blockDim.x) {
        float gi = g[i] * gscale;
        float mi = b1 * m[i] + (1.0f - b1) * gi;
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2sqrt + eps;
        float pi = p[i] * decay - stepSize * mi / denom;
        p[i] = pi;
        if (shadow) shadow[i] = f32_to_bf16(pi);
    }
}
"""#
}
