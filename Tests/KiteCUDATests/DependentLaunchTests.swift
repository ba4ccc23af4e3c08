import Testing
@testable import KiteCUDA

/// Which kernels launch as programmatic dependents is read from their source: those whose body begins with
/// `kite_dependent_entry();`. A kernel that touched memory before that wait could race its predecessor, so
/// only the first statement counts.
struct DependentLaunchTests {
    /// Every concrete name a kernel module is asked for, and whether it launches as a dependent.
    func isDependent(_ name: String, in module: KernelModule) -> Bool {
        DependentLaunch.dependentKernelNames(in: module.source).contains { DependentLaunch.matches(name, $0) }
    }

    @Test func theDecodeStepKernelsAreDependentsAndTheOthersAreNot() {
        for name in ["kite_add_rmsnorm_bf16_r8", "kite_add_rmsnorm_bf16_r16", "kite_add_rmsnorm", "kite_rmsnorm",
                     "kite_rotate_and_cache_d128", "kite_rotate_and_cache"] {
            #expect(isDependent(name, in: .norm), "\(name)")
        }
        for name in ["kite_paged_decode_rows_d128_g2", "kite_paged_decode_p4_d64_g8", "kite_paged_decode_d128_g1",
                     "kite_paged_decode_combine", "kite_store_kv"] {
            #expect(isDependent(name, in: .decode), "\(name)")
        }
        for name in ["kite_swiglu_packed", "kite_swiglu", "kite_embedding", "kite_move_rows", "kite_add", "kite_cast"] {
            #expect(isDependent(name, in: .elementwise), "\(name)")
        }
        #expect(isDependent("kite_sample_rows", in: .head))
        // Kernels without the entry, and names that only begin like a dependent's.
        #expect(!isDependent("kite_rmsnorm_bwd", in: .norm))
        #expect(!isDependent("kite_rmsnorm_bwd_fused_d128", in: .norm))
        #expect(!isDependent("kite_add_rmsnorm_bf16_r", in: .norm))
        #expect(!isDependent("kite_paged_decode_rows_d128_g2_extra", in: .decode))
        #expect(!isDependent("kite_decode_gather", in: .decode))
        #expect(!isDependent("kite_fill", in: .elementwise))
        #expect(!isDependent("kite_softmax_stats", in: .head))
    }

    @Test func onlyAnEntryAsTheFirstStatementCounts() {
        let source = """
            extern "C" __global__ void first(int* x) {
                kite_dependent_entry();
                x[0] = 1;
            }
            extern "C" __global__ void late(int* x) { x[0] = 1; kite_dependent_entry(); }
            extern "C" __global__ void __launch_bounds__(64) bounded(int* x) { kite_dependent_entry(); x[0] = 2; }
            #define MAKE(P) \\
            extern "C" __global__ void made_r##P(int* x) { \\
                kite_dependent_entry(); \\
                x[0] = P; }
            MAKE(8)
            """
        let names = DependentLaunch.dependentKernelNames(in: source)
        #expect(names == [[.literal("first")], [.literal("bounded")], [.literal("made_r"), .parameter]])
        #expect(DependentLaunch.matches("made_r8", names[2]))
        #expect(DependentLaunch.matches("made_r128", names[2]))
        #expect(!DependentLaunch.matches("made_r", names[2]))
        #expect(!DependentLaunch.matches("late", [.literal("first")]))
    }

    /// Every call of the entry in the kernel sources is a kernel's first statement, so none is placed where
    /// it would be ignored (the kernel would keep an ordinary launch).
    @Test func everyEntryInTheSourcesIsRecognised() {
        for module in KernelModule.allCases {
            let calls = module.body.split(separator: DependentLaunch.entryStatement, omittingEmptySubsequences: false).count - 1
            let recognised = DependentLaunch.dependentKernelNames(in: module.body).count
            // A macro defines its kernels once in the text however often it is expanded.
            #expect(calls == recognised, "\(module): \(calls) entries, \(recognised) recognised")
        }
    }
}
