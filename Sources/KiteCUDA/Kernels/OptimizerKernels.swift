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
