/// The batch-invariant matrix product of deterministic mode: `C[M, N] = A[M, K] · B[N, K]^T` (a row of
/// activations times a weight in Hugging Face's `[out, in]` layout), bf16 operands, fp32 accumulation, fp32
/// or bf16 output.
///
/// A block of WN warps owns 16 MT rows and 32 WN columns; each warp owns 32 of the columns and every row
/// of the block. K advances in tiles of 64 (four m16n8k16 steps) in order, with no split: every element of
/// C is the same chain of `mma.sync` instructions over the same K order whatever M, the block shape or the
/// row's place in its tile. So a row's result does not depend on the batch it arrived in, which is what
/// makes the engine's decode steps and the trainer's packed forward agree to the bit. Tiles stream through
/// shared memory double-buffered with `cp.async`; rows past M or N and chunks past K read as zeros.
enum DeterministicGEMMKernels {
    /// (MT, WN) pairs with a kernel, named `kite_det_gemm_m<MT>_w<WN>`.
    static let shapes = [(1, 1), (1, 4), (2, 4), (4, 4)]

    /// Dynamic shared memory of one block: two buffers of the A and B tiles.
    static func sharedBytes(mt: Int, wn: Int) -> Int { 2 * (16 * mt + 32 * wn) * 64 * 2 }

    static let source = #"""
template <int MT, int WN>
KD void det_gemm(const unsigned short* __restrict__ A, i64 lda, const unsigned short* __restrict__ B, i64 ldb,
                 void* __restrict__ C, int cdt, i64 ldc, int M, int N, int K) {
    constexpr int BM = 16 * MT, BN = 32 * WN, BK = 64, NT = 32 * WN, CPR = 8;
    constexpr unsigned TA = BM * BK * 2, TB = BN * BK * 2;
    extern __shared__ __align__(128) unsigned char smem[];
    const unsigned sA0 = smem_addr(smem), sB0 = sA0 + 2 * TA;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tig = lane & 3;
    const int mi = lane >> 3, rr = lane & 7;
    const int ktiles = (K + BK - 1) / BK;

    auto load = [&](int kt, int buf) {
        const int k0 = kt * BK;
#pragma unroll
        for (int i = threadIdx.x; i < BM * CPR; i += NT) {
            const int row = i / CPR, chunk = i % CPR;
            const bool ok = m0 + row < M && k0 + chunk * 8 < K;
            const unsigned short* src = A + (ok ? (i64)(m0 + row) * lda + k0 + chunk * 8 : 0);
            cp_async16(sA0 + buf * TA + swz<CPR>(row, chunk), src, ok ? 16 : 0);
        }
#pragma unroll
        for (int i = threadIdx.x; i < BN * CPR; i += NT) {
            const int row = i / CPR, chunk = i % CPR;
            const bool ok = n0 + row < N && k0 + chunk * 8 < K;
            const unsigned short* src = B + (ok ? (i64)(n0 + row) * ldb + k0 + chunk * 8 : 0);
            cp_async16(sB0 + buf * TB + swz<CPR>(row, chunk), src, ok ? 16 : 0);
        }
    };

    float acc[MT][4][4];
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) { acc[i][j][0] = 0.0f; acc[i][j][1] = 0.0f; acc[i][j][2] = 0.0f; acc[i][j][3] = 0.0f; }

    load(0, 0);
    cp_commit();
    for (int kt = 0; kt < ktiles; ++kt) {
        const int buf = kt & 1;
        if (kt + 1 < ktiles) load(kt + 1, buf ^ 1);
        cp_commit();
        cp_wait1();
        __syncthreads();
        const unsigned sA = sA0 + buf * TA, sB = sB0 + buf * TB;
#pragma unroll
        for (int ks = 0; ks < BK / 16; ++ks) {
            unsigned b[2][4];
#pragma unroll
            for (int j = 0; j < 2; ++j) ldsm4(sB + swz<CPR>(warp * 32 + j * 16 + (mi >> 1) * 8 + rr, ks * 2 + (mi & 1)), b[j]);
#pragma unroll
            for (int i = 0; i < MT; ++i) {
                unsigned a[4];
                ldsm4(sA + swz<CPR>(i * 16 + (mi & 1) * 8 + rr, ks * 2 + (mi >> 1)), a);
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    mma16816(acc[i][2 * j], a, b[j][0], b[j][1]);
                    mma16816(acc[i][2 * j + 1], a, b[j][2], b[j][3]);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < MT; ++i) {
#pragma unroll
        for (int nb = 0; nb < 4; ++nb) {
            const int col = n0 + warp * 32 + nb * 8 + tig * 2;
#pragma unroll
            for (int half = 0; half < 2; ++half) {
                const int row = m0 + i * 16 + g + half * 8;
                if (row >= M) continue;
                const i64 at = (i64)row * ldc + col;
                if (col < N) store_any(C, cdt, at, acc[i][nb][half * 2]);
                if (col + 1 < N) store_any(C, cdt, at + 1, acc[i][nb][half * 2 + 1]);
            }
        }
    }
}

#define KITE_DET_GEMM(MT, WN) \
extern "C" __global__ void __launch_bounds__(32 * WN) kite_det_gemm_m##MT##_w##WN( \
    const unsigned short* A, i64 lda, const unsigned short* B, i64 ldb, void* C, int cdt, i64 ldc, int M, int N, int K) { \
    det_gemm<MT, WN>(A, lda, B, ldb, C, cdt, ldc, M, N, K); }
KITE_DET_GEMM(1, 1)
KITE_DET_GEMM(1, 4)
KITE_DET_GEMM(2, 4)
KITE_DET_GEMM(4, 4)
"""#
}
