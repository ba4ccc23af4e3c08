import Synchronization

/// The families a training step's GPU time is reported in.
public enum OpFamily: String, CaseIterable, Sendable {
    /// Matrix products of the layers (not the output head's).
    case gemm
    /// Attention forward and backward.
    case attention
    /// The fused output head: its products and its softmax kernels.
    case head
    /// AdamW.
    case optimizer
    /// Everything else: norms, RoPE, SwiGLU, embeddings, casts, elementwise arithmetic, reductions.
    case other
}

/// Splits the stream's time between op families with pairs of CUDA events around each backend call.
///
/// Off by default; when on, each outermost backend call records one event before and one after its work
/// (calls made inside another call, such as the head's products, count towards the outer call's family).
/// Events never synchronise the stream; `stop` waits once and sums the intervals.
public final class OpProfiler: @unchecked Sendable {
    let context: CUDAContext

    private struct State {
        var enabled = false
        var depth = 0
        var pool: [CUDAEvent] = []
        var used = 0
        var intervals: [(family: OpFamily, name: String, start: Int, end: Int)] = []
    }

    /// GPU milliseconds per family, and per operation (name, family, milliseconds, calls), largest first.
    public struct Report: Sendable {
        public var families: [OpFamily: Double]
        public var operations: [(name: String, family: OpFamily, milliseconds: Double, calls: Int)]
    }
    private let state = Mutex(State())

    init(context: CUDAContext) { self.context = context }

    /// Starts recording (clearing what an earlier run recorded).
    public func start() {
        state.withLock { state in
            state.enabled = true
            state.used = 0
            state.intervals = []
        }
    }

    /// Stops recording, waits for the stream, and returns milliseconds per family and per operation.
    public func stop() throws -> Report {
        let (pool, intervals) = state.withLock { state -> ([CUDAEvent], [(family: OpFamily, name: String, start: Int, end: Int)]) in
            state.enabled = false
            return (state.pool, state.intervals)
        }
        try context.synchronize()
        var families: [OpFamily: Double] = [:]
        var operations: [String: (family: OpFamily, milliseconds: Double, calls: Int)] = [:]
        for interval in intervals {
            let milliseconds = try pool[interval.end].milliseconds(since: pool[interval.start])
            families[interval.family, default: 0] += milliseconds
            let previous = operations[interval.name] ?? (interval.family, 0, 0)
            operations[interval.name] = (interval.family, previous.milliseconds + milliseconds, previous.calls + 1)
        }
        let sorted = operations.map { (name: $0.key, family: $0.value.family, milliseconds: $0.value.milliseconds, calls: $0.value.calls) }
            .sorted { $0.milliseconds > $1.milliseconds }
        return Report(families: families, operations: sorted)
    }

    /// Runs `body`, timing it under `family` when recording and not nested in another timed call.
    func measure<R>(_ family: OpFamily, name: String = #function, _ body: () throws -> R) throws -> R {
        let (active, startIndex) = try state.withLock { state throws -> (Bool, Int?) in
            guard state.enabled else { return (false, nil) }
            state.depth += 1
            guard state.depth == 1 else { return (true, nil) }
            let index = try Self.nextEvent(&state, context: context)
            try state.pool[index].record(on: context.stream)
            return (true, index)
        }
        guard active else { return try body() }
        defer { state.withLock { $0.depth -= 1 } }
        let result = try body()
        if let startIndex {
            try state.withLock { state in
                let endIndex = try Self.nextEvent(&state, context: context)
                try state.pool[endIndex].record(on: context.stream)
                state.intervals.append((family, String(name.prefix { $0 != "(" }), startIndex, endIndex))
            }
        }
        return result
    }

    private static func nextEvent(_ state: inout State, context: CUDAContext) throws -> Int {
        if state.used == state.pool.count { state.pool.append(try context.makeEvent()) }
        state.used += 1
        return state.used - 1
    }
}
