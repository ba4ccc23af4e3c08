/// A compiled regex: instructions for a backtracking matcher, with Oniguruma's leftmost-first alternation,
/// greedy/lazy/possessive repetition and atomic lookahead.
///
/// Repetitions of a single character class, the bulk of every pre-tokenizer pattern, are one instruction that
/// consumes greedily and backs off one scalar at a time, so `\p{L}+` costs one backtrack entry, not one per
/// letter.
struct RegexProgram: Sendable {
    enum Instruction: Sendable {
        /// Match one scalar in the set.
        case set(Int)
        /// Match between `min` and `max` scalars of the set.
        case repeatSet(set: Int, min: Int, max: Int, greedy: Bool)
        /// Continue at the first target; on failure, at the second.
        case split(Int, Int)
        case jump(Int)
        case assertion(RegexAssertion)
        /// Run the body at pc+1 (which ends in `.succeed`) at the current position without consuming; continue
        /// at `next` if it matched (or, negated, if it did not).
        case lookahead(negated: Bool, next: Int)
        /// Run the body at pc+1 once, keep its first match and forget its alternatives; continue at `next`.
        case atomic(next: Int)
        /// Loops over a body that can match empty: remember the position at the start of an iteration...
        case saveProgress(slot: Int)
        /// ...and fail an iteration that consumed nothing, as Oniguruma stops such loops.
        case checkProgress(slot: Int)
        case succeed
        case match
    }

    let instructions: [Instruction]
    let sets: [ScalarSet]
    let progressSlots: Int
    /// Larger programs are refused (counted repetitions of groups are expanded).
    static let maximumInstructions = 20_000

    init(pattern: String) throws(RegexError) {
        let root = try RegexParser.parse(pattern)
        var compiler = Compiler()
        try compiler.emit(root)
        compiler.append(.match)
        instructions = compiler.instructions
        sets = compiler.sets
        progressSlots = compiler.slots
    }

    private struct Compiler {
        var instructions: [Instruction] = []
        var sets: [ScalarSet] = []
        var slots = 0

        mutating func append(_ instruction: Instruction) {
            instructions.append(instruction)
        }

        mutating func addSet(_ set: ScalarSet) -> Int {
            sets.append(set)
            return sets.count - 1
        }

        mutating func emit(_ node: RegexNode) throws(RegexError) {
            if instructions.count > RegexProgram.maximumInstructions {
                throw RegexError(message: "pattern too large to compile", offset: 0)
            }
            switch node {
            case .empty:
                break
            case .set(let set):
                append(.set(addSet(set)))
            case .assertion(let assertion):
                append(.assertion(assertion))
            case .concat(let items):
                for item in items { try emit(item) }
            case .alternation(let branches):
                var jumpsToEnd: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = instructions.count
                        append(.split(split + 1, -1))
                        try emit(branch)
                        jumpsToEnd.append(instructions.count)
                        append(.jump(-1))
                        instructions[split] = .split(split + 1, instructions.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumpsToEnd { instructions[jump] = .jump(instructions.count) }
            case .lookahead(let body, let negated):
                let start = instructions.count
                append(.succeed)
                try emit(body)
                append(.succeed)
                instructions[start] = .lookahead(negated: negated, next: instructions.count)
            case .atomic(let body):
                try emitAtomic(body)
            case .repetition(let body, let min, let max, let mode):
                if mode == .possessive {
                    try emitAtomic(.repetition(body, min: min, max: max, mode: .greedy))
                } else if case .set(let set) = body {
                    append(.repeatSet(set: addSet(set), min: min, max: max ?? Int.max, greedy: mode == .greedy))
                } else {
                    try emitRepetition(body, min: min, max: max, greedy: mode == .greedy)
                }
            }
        }

        mutating func emitAtomic(_ body: RegexNode) throws(RegexError) {
            let start = instructions.count
            append(.succeed)
            try emit(body)
            append(.succeed)
            instructions[start] = .atomic(next: instructions.count)
        }

        mutating func emitRepetition(_ body: RegexNode, min: Int, max: Int?, greedy: Bool) throws(RegexError) {
            for _ in 0..<min { try emit(body) }
            let needsProgressCheck = body.isNullable
            if let max {
                // Each optional copy: split(take, skip) - all skips go to the end.
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(instructions.count)
                    append(.split(-1, -1))
                    try emit(body)
                }
                let end = instructions.count
                for split in splits {
                    instructions[split] = greedy ? .split(split + 1, end) : .split(end, split + 1)
                }
            } else {
                let loop = instructions.count
                append(.split(-1, -1))
                var slot = -1
                if needsProgressCheck {
                    slot = slots
                    slots += 1
                    append(.saveProgress(slot: slot))
                }
                try emit(body)
                if needsProgressCheck { append(.checkProgress(slot: slot)) }
                append(.jump(loop))
                let end = instructions.count
                instructions[loop] = greedy ? .split(loop + 1, end) : .split(end, loop + 1)
            }
        }
    }
}
