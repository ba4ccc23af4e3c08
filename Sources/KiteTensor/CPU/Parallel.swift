import Dispatch

/// Runs independent chunks of work on several threads.
///
/// Work is split into `parts` pieces; piece `i` is handed `i`. With one thread, or one piece, everything runs
/// inline, so small operations pay no scheduling cost.
public enum Parallel {
    /// Calls `body(i)` for every `i` in `0..<parts`, concurrently when `parts > 1`.
    public static func forEach(parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 {
            if parts == 1 { body(0) }
            return
        }
        // The parts touch disjoint memory by contract; Dispatch only needs the closure to be callable
        // from several threads, which the caller guarantees.
        withoutActuallyEscaping(body) { escapable in
            let shared = unsafeBitCast(escapable, to: (@Sendable (Int) -> Void).self)
            DispatchQueue.concurrentPerform(iterations: parts, execute: shared)
        }
    }

    /// Splits `0..<count` into at most `threads` contiguous ranges (never smaller than `minimumChunk`)
    /// and runs `body` on each range concurrently.
    public static func forRanges(count: Int, threads: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = max(1, min(threads, count / max(1, minimumChunk)))
        forEach(parts: chunks) { part in
            let start = count * part / chunks
            let end = count * (part + 1) / chunks
            if start < end { body(start..<end) }
        }
    }
}
