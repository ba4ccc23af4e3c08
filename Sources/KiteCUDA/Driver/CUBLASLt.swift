import Synchronization

/// cuBLASLt matrix products, loaded at run time.
///
/// Kite's tensors are row-major and cuBLASLt is column-major: a row-major `C[M, N] = op(A) op(B)` is the
/// column-major `C^T = op(B)^T op(A)^T`, so every call swaps the operands and reads each row-major matrix as
/// its column-major transpose. Descriptors and the heuristic's algorithm are built once per shape and kept.
final class CUBLASLt: @unchecked Sendable {
    let library: DynamicLibrary
    private let driver: CUDADriver
    private let handle: OpaquePointer
    private let workspace: CUDevicePointer
    /// The side stream's workspace, allocated on its first product.
    private let sideWorkspaceAddress = Mutex<CUDevicePointer?>(nil)
    let workspaceBytes: Int

    private let cublasLtGetStatusString: @convention(c) (Int32) -> UnsafePointer<CChar>?
    private let cublasLtMatmulDescCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, Int32) -> Int32
    private let cublasLtMatmulDescSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Int32
    private let cublasLtMatrixLayoutCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32, UInt64, UInt64, Int64) -> Int32
    private let cublasLtMatrixLayoutSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Int32
    private let cublasLtMatmulPreferenceCreate: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private let cublasLtMatmulPreferenceSetAttribute: @convention(c) (OpaquePointer?, Int32, UnsafeRawPointer, Int) -> Int32
    private let cublasLtMatmulPreferenceDestroy: @convention(c) (OpaquePointer?) -> Int32
    private let cublasLtMatmulAlgoGetHeuristic: @convention(c) (
        OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?, OpaquePointer?,
        Int32, UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>
    ) -> Int32
    private let cublasLtMatmul: @convention(c) (
        OpaquePointer?, OpaquePointer?, UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?, UnsafeRawPointer?, OpaquePointer?,
        UnsafeRawPointer, UnsafeRawPointer?, OpaquePointer?, UnsafeMutableRawPointer?, OpaquePointer?,
        UnsafeRawPointer?, UnsafeMutableRawPointer?, Int, CUHandle?
    ) -> Int32
    /// The library's version number (e.g. 130001).
    let version: Int

    /// `cudaDataType` codes.
    enum DataType: Int32 {
        case f32 = 0, f16 = 2, bf16 = 14, e4m3 = 28, e5m2 = 29
    }

    /// `cublasComputeType_t` codes.
    enum ComputeType: Int32 {
        case f32 = 68
        case f32FastTF32 = 77
    }

    /// One cached product shape: descriptors and the chosen algorithm (`cublasLtMatmulAlgo_t`, 64 bytes).
    private final class Plan: @unchecked Sendable {
        let description: OpaquePointer
        let layoutA: OpaquePointer, layoutB: OpaquePointer, layoutC: OpaquePointer
        var algorithm = [UInt64](repeating: 0, count: 8)
        var workspace = 0
        init(description: OpaquePointer, layoutA: OpaquePointer, layoutB: OpaquePointer, layoutC: OpaquePointer) {
            self.description = description
            self.layoutA = layoutA
            self.layoutB = layoutB
            self.layoutC = layoutC
        }
    }

    /// A column-major product `D = alpha op(A) op(B) + beta C` (C and D alias), as cuBLASLt sees it.
    struct Problem: Hashable {
        var typeA: DataType, typeB: DataType, typeC: DataType
        var compute: ComputeType
        var transposeA: Bool, transposeB: Bool
        var m: Int, n: Int, k: Int
        var lda: Int, ldb: Int, ldc: Int
        var batch: Int
        var strideA: Int, strideB: Int, strideC: Int
        var alignmentA: Int, alignmentB: Int, alignmentC: Int
        /// `cublasLtMatmulMatrixScale_t` of A and B (0: none); block-scaled fp8 products pass their scale
        /// tensors to `matmul`.
        var scaleModeA: ScaleMode = .none, scaleModeB: ScaleMode = .none
    }

    /// `cublasLtMatmulMatrixScale_t` codes.
    enum ScaleMode: Int32 {
        case none = -1
        /// One fp32 scale per 128 consecutive elements along K.
        case vector128 = 4
        /// One fp32 scale per 128 x 128 tile.
        case block128x128 = 5
    }

    /// The first cuBLASLt with 1 x 128 and 128 x 128 fp8 scaling (12.9).
    static let blockScalingVersion = 120_900

    private let plans = Mutex<[Problem: Plan]>([:])
    /// Problems cuBLASLt could not plan or run, not asked again.
    private let failed = Mutex<Set<Problem>>([])

    func hasFailed(_ problem: Problem) -> Bool { failed.withLock { $0.contains(problem) } }
    func markFailed(_ problem: Problem) { _ = failed.withLock { $0.insert(problem) } }

    static func candidates() -> [String] {
        var candidates: [String] = []
        if let configured = environment("KITE_CUBLASLT_PATH") { candidates.append(configured) }
        for directory in LibrarySearch.toolkitDirectories { candidates += LibrarySearch.versionedFiles(in: directory, prefix: "libcublasLt.so") }
        candidates += ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]
        for directory in LibrarySearch.pythonWheelDirectories(components: ["cu13", "cublas"]) {
            candidates += LibrarySearch.versionedFiles(in: directory, prefix: "libcublasLt.so")
        }
        return candidates
    }

    init(driver: CUDADriver, workspaceBytes: Int = 32 << 20) throws(CUDAError) {
        let library = try DynamicLibrary.open("libcublasLt", candidates: Self.candidates())
        self.library = library
        self.driver = driver
        let create: @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32 = try library.symbol("cublasLtCreate")
        let getVersion: @convention(c) () -> Int = try library.symbol("cublasLtGetVersion")
        cublasLtGetStatusString = try library.symbol("cublasLtGetStatusString")
        cublasLtMatmulDescCreate = try library.symbol("cublasLtMatmulDescCreate")
        cublasLtMatmulDescSetAttribute = try library.symbol("cublasLtMatmulDescSetAttribute")
        cublasLtMatrixLayoutCreate = try library.symbol("cublasLtMatrixLayoutCreate")
        cublasLtMatrixLayoutSetAttribute = try library.symbol("cublasLtMatrixLayoutSetAttribute")
        cublasLtMatmulPreferenceCreate = try library.symbol("cublasLtMatmulPreferenceCreate")
        cublasLtMatmulPreferenceSetAttribute = try library.symbol("cublasLtMatmulPreferenceSetAttribute")
        cublasLtMatmulPreferenceDestroy = try library.symbol("cublasLtMatmulPreferenceDestroy")
        cublasLtMatmulAlgoGetHeuristic = try library.symbol("cublasLtMatmulAlgoGetHeuristic")
        cublasLtMatmul = try library.symbol("cublasLtMatmul")
        version = getVersion()
        var handle: OpaquePointer?
        let status = create(&handle)
        guard status == 0, let handle else {
            throw .cublas(call: "cublasLtCreate", code: status, message: cublasLtGetStatusString(status).map { String(cString: $0) } ?? "unknown")
        }
        self.handle = handle
        var workspace: CUDevicePointer = 0
        try driver.check(driver.cuMemAlloc(&workspace, workspaceBytes), "cuMemAlloc(cuBLASLt workspace, \(workspaceBytes) bytes)")
        self.workspace = workspace
        self.workspaceBytes = workspaceBytes
    }

    private func sideWorkspace() throws(CUDAError) -> CUDevicePointer {
        try sideWorkspaceAddress.withLock { (address: inout CUDevicePointer?) throws(CUDAError) -> CUDevicePointer in
            if let address { return address }
            var pointer: CUDevicePointer = 0
            try driver.check(driver.cuMemAlloc(&pointer, workspaceBytes), "cuMemAlloc(cuBLASLt side-stream workspace, \(workspaceBytes) bytes)")
            address = pointer
            return pointer
        }
    }

    private func check(_ status: Int32, _ call: @autoclosure () -> String) throws(CUDAError) {
        guard status != 0 else { return }
        throw .cublas(call: call(), code: status, message: cublasLtGetStatusString(status).map { String(cString: $0) } ?? "unknown")
    }

    /// Runs `D = alpha op(A) op(B) + beta C` (column-major, C == D) on `stream`. `mayTune` allows timing the
    /// heuristic's candidates on these very buffers the first time a thin product's shape is seen (see `plan`).
    /// `scales` are the device addresses of A's and B's scale tensors when the problem has scale modes.
    func matmul(
        _ problem: Problem, a: CUDevicePointer, b: CUDevicePointer, c: CUDevicePointer, alpha: Float, beta: Float, stream: CUHandle?,
        mayTune: Bool = false, scales: (a: CUDevicePointer, b: CUDevicePointer)? = nil, sideStream: Bool = false
    ) throws(CUDAError) {
        // Products that may run at the same time on the two streams must not share a split-K workspace.
        let workspace = sideStream ? try sideWorkspace() : self.workspace
        // Block-scaled fp8 products are tuned at every size: with the heuristic's first choice a narrow weight
        // (576 x 7168) at 4096 rows ran at 0.21x the bf16 product's speed.
        let thin = problem.n <= Self.tunedColumns || problem.scaleModeA != .none
        let tuning = mayTune && beta == 0 && thin && Self.tuningEnabled ? (a, b, c, stream) : nil
        let plan = try self.plan(for: problem, tuneWith: tuning, scales: scales)
        if let scales { try setScales(plan.description, scales) }
        var alphaValue = alpha, betaValue = beta
        let status = plan.algorithm.withUnsafeBytes { algorithm in
            cublasLtMatmul(
                handle, plan.description, &alphaValue, UnsafeRawPointer(bitPattern: UInt(a)), plan.layoutA,
                UnsafeRawPointer(bitPattern: UInt(b)), plan.layoutB, &betaValue, UnsafeRawPointer(bitPattern: UInt(c)), plan.layoutC,
                UnsafeMutableRawPointer(bitPattern: UInt(c)), plan.layoutC, algorithm.baseAddress,
                UnsafeMutableRawPointer(bitPattern: UInt(workspace)), plan.workspace, stream)
        }
        try check(status, "cublasLtMatmul(\(describe(problem)))")
    }

    private func describe(_ p: Problem) -> String {
        "m \(p.m) n \(p.n) k \(p.k), \(p.transposeA ? "T" : "N")\(p.transposeB ? "T" : "N"), types \(p.typeA)/\(p.typeB)/\(p.typeC), batch \(p.batch)"
    }

    /// Products with at most this many columns in cuBLASLt's view (rows of activations in Kite's: decode
    /// steps) are tuned; training's large products keep the heuristic's first choice.
    static let tunedColumns = 512
    static let tuningEnabled = environment("KITE_CUBLASLT_TUNE") != "0"
    static let candidateCount = 8

    /// The cached plan of a shape; built on first use from the heuristic's best algorithm, or, given buffers
    /// to run on (`tuneWith`, only for products that overwrite C), from the fastest of its first eight
    /// candidates timed on them (cold: `time`): for the thin products of decode steps the first choice often leaves most
    /// of the GPU idle.
    private func plan(
        for problem: Problem, tuneWith buffers: (CUDevicePointer, CUDevicePointer, CUDevicePointer, CUHandle?)? = nil,
        scales: (a: CUDevicePointer, b: CUDevicePointer)? = nil
    ) throws(CUDAError) -> Plan {
        if let plan = plans.withLock({ $0[problem] }) { return plan }
        var description: OpaquePointer?
        try check(cublasLtMatmulDescCreate(&description, problem.compute.rawValue, DataType.f32.rawValue), "cublasLtMatmulDescCreate")
        var transA: Int32 = problem.transposeA ? 1 : 0, transB: Int32 = problem.transposeB ? 1 : 0
        try check(cublasLtMatmulDescSetAttribute(description, 3, &transA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)")
        try check(cublasLtMatmulDescSetAttribute(description, 4, &transB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)")
        // CUBLASLT_MATMUL_DESC_A_SCALE_MODE (31) and B_SCALE_MODE (32); the scale pointers (17, 18) are set
        // before the heuristic, which may look at them, and again before every call.
        for (attribute, mode) in [(Int32(31), problem.scaleModeA), (32, problem.scaleModeB)] where mode != .none {
            var value = mode.rawValue
            try check(cublasLtMatmulDescSetAttribute(description, attribute, &value, 4), "cublasLtMatmulDescSetAttribute(SCALE_MODE \(mode))")
        }
        if let scales { try setScales(description, scales) }
        // Stored shapes: op(A) is m x k, so A is k x m when transposed.
        let (rowsA, colsA) = problem.transposeA ? (problem.k, problem.m) : (problem.m, problem.k)
        let (rowsB, colsB) = problem.transposeB ? (problem.n, problem.k) : (problem.k, problem.n)
        let layoutA = try layout(problem.typeA, rowsA, colsA, problem.lda, problem.batch, problem.strideA)
        let layoutB = try layout(problem.typeB, rowsB, colsB, problem.ldb, problem.batch, problem.strideB)
        let layoutC = try layout(problem.typeC, problem.m, problem.n, problem.ldc, problem.batch, problem.strideC)
        guard let description else { throw .cublas(call: "cublasLtMatmulDescCreate", code: -1, message: "returned no descriptor") }
        let plan = Plan(description: description, layoutA: layoutA, layoutB: layoutB, layoutC: layoutC)

        var preference: OpaquePointer?
        try check(cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = cublasLtMatmulPreferenceDestroy(preference) }
        var bytes = UInt64(workspaceBytes)
        try check(cublasLtMatmulPreferenceSetAttribute(preference, 1, &bytes, 8), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)")
        for (attribute, alignment) in [(Int32(5), problem.alignmentA), (6, problem.alignmentB), (7, problem.alignmentC), (8, problem.alignmentC)] {
            var value = UInt32(alignment)
            try check(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, 4), "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)")
        }
        // cublasLtMatmulHeuristicResult_t: algo (64 bytes), workspaceSize (8), state (4), wavesCount (4), reserved (16).
        let wanted = buffers == nil ? 1 : Self.candidateCount
        var results = [UInt8](repeating: 0, count: 96 * wanted)
        var returned: Int32 = 0
        let status = results.withUnsafeMutableBytes { buffer in
            cublasLtMatmulAlgoGetHeuristic(handle, description, layoutA, layoutB, layoutC, layoutC, preference, Int32(wanted), buffer.baseAddress!, &returned)
        }
        try check(status, "cublasLtMatmulAlgoGetHeuristic(\(describe(problem)))")
        guard returned > 0 else { throw .unsupported("cuBLASLt has no algorithm for \(describe(problem))") }
        func load(_ index: Int) -> (algorithm: [UInt64], workspace: Int) {
            results.withUnsafeBytes { buffer in
                ((0..<8).map { buffer.load(fromByteOffset: index * 96 + $0 * 8, as: UInt64.self) }, buffer.load(fromByteOffset: index * 96 + 64, as: Int.self))
            }
        }
        (plan.algorithm, plan.workspace) = load(0)
        if let (a, b, c, stream) = buffers, returned > 1 {
            // The flush buffer lives while this shape is tuned; without room for it, candidates are timed warm.
            var flush: CUDevicePointer = 0
            let haveFlush = driver.cuMemAlloc(&flush, Self.flushBytes) == 0
            defer { if haveFlush { _ = driver.cuMemFree(flush) } }
            var best = Double.infinity
            for index in 0..<Int(returned) {
                let candidate = load(index)
                guard candidate.workspace <= workspaceBytes,
                    let time = try? time(plan, candidate, a: a, b: b, c: c, stream: stream, flush: haveFlush ? flush : nil), time < best
                else { continue }
                best = time
                (plan.algorithm, plan.workspace) = candidate
            }
        }
        plans.withLock { $0[problem] = plan }
        return plan
    }

    private func setScales(_ description: OpaquePointer?, _ scales: (a: CUDevicePointer, b: CUDevicePointer)) throws(CUDAError) {
        var a = scales.a, b = scales.b
        try check(cublasLtMatmulDescSetAttribute(description, 17, &a, 8), "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)")
        try check(cublasLtMatmulDescSetAttribute(description, 18, &b, 8), "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)")
    }

    /// Bytes written between timed runs to push the operands out of L2 (twice the H100's 50 MB), so that
    /// candidates are compared on cold weights as a decode step reads them: every layer's weights are read once
    /// a step and the attention between them streams far more than L2 holds. Timed warm, a candidate that
    /// re-reads its operands from L2 wins and then runs slower in the step.
    static let flushBytes = 96 << 20

    /// Milliseconds of three runs of `candidate` (after one untimed run), each after an L2 flush that is not
    /// timed, or nil if it fails.
    private func time(
        _ plan: Plan, _ candidate: (algorithm: [UInt64], workspace: Int), a: CUDevicePointer, b: CUDevicePointer, c: CUDevicePointer,
        stream: CUHandle?, flush: CUDevicePointer?
    ) throws(CUDAError) -> Double? {
        var events: [CUHandle?] = []
        defer { for event in events { _ = driver.cuEventDestroy(event) } }
        for _ in 0..<6 {
            var event: CUHandle?
            try driver.check(driver.cuEventCreate(&event, 0), "cuEventCreate")
            events.append(event)
        }
        var alpha: Float = 1, beta: Float = 0
        func run() -> Int32 {
            candidate.algorithm.withUnsafeBytes { algorithm in
                cublasLtMatmul(
                    handle, plan.description, &alpha, UnsafeRawPointer(bitPattern: UInt(a)), plan.layoutA,
                    UnsafeRawPointer(bitPattern: UInt(b)), plan.layoutB, &beta, UnsafeRawPointer(bitPattern: UInt(c)), plan.layoutC,
                    UnsafeMutableRawPointer(bitPattern: UInt(c)), plan.layoutC, algorithm.baseAddress,
                    UnsafeMutableRawPointer(bitPattern: UInt(workspace)), candidate.workspace, stream)
            }
        }
        guard run() == 0 else { return nil }
        for index in 0..<3 {
            if let flush { try driver.check(driver.cuMemsetD8Async(flush, UInt8(index), Self.flushBytes, stream), "cuMemsetD8Async(L2 flush)") }
            try driver.check(driver.cuEventRecord(events[2 * index], stream), "cuEventRecord")
            guard run() == 0 else { return nil }
            try driver.check(driver.cuEventRecord(events[2 * index + 1], stream), "cuEventRecord")
        }
        try driver.check(driver.cuEventSynchronize(events[5]), "cuEventSynchronize")
        var total = 0.0
        for index in 0..<3 {
            var milliseconds: Float = 0
            try driver.check(driver.cuEventElapsedTime(&milliseconds, events[2 * index], events[2 * index + 1]), "cuEventElapsedTime")
            total += Double(milliseconds)
        }
        return total
    }

    private func layout(_ type: DataType, _ rows: Int, _ cols: Int, _ ld: Int, _ batch: Int, _ stride: Int) throws(CUDAError) -> OpaquePointer {
        var layout: OpaquePointer?
        try check(cublasLtMatrixLayoutCreate(&layout, type.rawValue, UInt64(rows), UInt64(cols), Int64(ld)), "cublasLtMatrixLayoutCreate(\(rows) x \(cols), ld \(ld))")
        guard let layout else { throw .cublas(call: "cublasLtMatrixLayoutCreate", code: -1, message: "returned no layout") }
        if batch > 1 {
            var count = Int32(batch), offset = Int64(stride)
            try check(cublasLtMatrixLayoutSetAttribute(layout, 5, &count, 4), "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)")
            try check(cublasLtMatrixLayoutSetAttribute(layout, 6, &offset, 8), "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)")
        }
        return layout
    }
}
