/// Tensor-core building blocks shared by the flash-attention and deterministic GEMM modules: shared-memory
/// addresses, `cp.async` copies, `ldmatrix`, bf16 `mma.sync` m16n8k16 with fp32 accumulation, the
/// swizzled tile layout and a tile loader.
enum TensorCoreHelpers {
    static let source = #"""
KD unsigned smem_addr(const void* p) {
    unsigned a;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}
KD void cp_async16(unsigned dst, const void* src, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(bytes) : "memory");
}
KD void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
KD void cp_wait1() { asm volatile("cp.async.wait_group 1;" ::: "memory"); }
KD void ldsm4(unsigned addr, unsigned* r) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
KD void ldsm4t(unsigned addr, unsigned* r) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr) : "memory");
}
KD void st_shared_u32(unsigned addr, unsigned v) { asm volatile("st.shared.u32 [%0], %1;" :: "r"(addr), "r"(v) : "memory"); }
KD void mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
KD unsigned pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/// Byte offset of 16-byte chunk `chunk` of row `row` in a swizzled tile of CPR chunks per row.
template <int CPR> KD unsigned swz(int row, int chunk) {
    return (unsigned)(row * CPR * 16 + ((chunk ^ (row & 7)) * 16));
}

/// Rows [0, R) of a [rows, HD] bf16 tile (global row stride ld elements) into swizzled shared memory;
/// rows at or past `valid` are zero-filled (cp.async with a source size of 0 reads nothing).
template <int R, int HD, int NT>
KD void load_tile(unsigned sbase, const unsigned short* g, i64 ld, int valid) {
    constexpr int CPR = HD / 8;
#pragma unroll
    for (int i = threadIdx.x; i < R * CPR; i += NT) {
        int row = i / CPR, chunk = i % CPR;
        bool ok = row < valid;
        const unsigned short* src = g + (ok ? (i64)row * ld : 0) + chunk * 8;
        cp_async16(sbase + swz<CPR>(row, chunk), src, ok ? 16 : 0);
    }
}
"""#
}
