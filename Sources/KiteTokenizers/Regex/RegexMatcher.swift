/// Runs a `RegexProgram` over UTF-8 text by backtracking, and iterates its matches the way HF `tokenizers`
/// does through the `onig` crate: leftmost match first, and an empty match right where the previous match
/// ended is skipped by moving on one character.
///
/// The matcher holds scratch state (the backtrack stack), so each encode call uses its own.
struct RegexMatcher {
    private struct Backtrack {
        enum Kind: UInt8 {
            case branch, greedyRepeat, lazyRepeat, restoreSlot
        }
        var kind: Kind
        var pc: Int
        var position: Int
        /// greedyRepeat: how many more scalars can be given back; lazyRepeat: how many were taken.
        var count: Int
    }

    private var stack: [Backtrack] = []
    private var slots: [Int] = []
    /// Steps left before matching gives up; bounds the time a pathological pattern can take.
    private var budget = 0

    init() {}

    /// Appends to `matches` the (start, end) byte offsets of successive non-overlapping matches in
    /// `text[lower..<upper]`, which is treated as the whole text (anchors and lookarounds see nothing outside).
    mutating func findAll(
        _ program: RegexProgram, in text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int,
        into matches: inout [(Int, Int)]
    ) {
        if slots.count < program.progressSlots { slots = Array(repeating: 0, count: program.progressSlots) }
        // Generous for real patterns (a handful of steps per byte); a catastrophic pattern stops here instead
        // of running for hours, leaving the rest of the text unmatched.
        budget = 1_000_000 + (upper - lower) * 2_000
        var searchFrom = lower
        var lastMatchEnd = -1
        while searchFrom <= upper {
            guard let (start, end) = firstMatch(program, in: text, lower: lower, upper: upper, from: searchFrom) else { return }
            if start == end && end == lastMatchEnd {
                searchFrom = end + (end < upper ? scalarLength(text[end]) : 1)
                continue
            }
            matches.append((start, end))
            lastMatchEnd = end
            searchFrom = start == end ? end + (end < upper ? scalarLength(text[end]) : 1) : end
        }
    }

    /// The leftmost match starting at or after `from`.
    mutating func firstMatch(
        _ program: RegexProgram, in text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, from: Int
    ) -> (Int, Int)? {
        program.instructions.withUnsafeBufferPointer { instructions in
            program.sets.withUnsafeBufferPointer { sets in
                firstMatch(Code(instructions: instructions, sets: sets), text, lower: lower, upper: upper, from: from)
            }
        }
    }

    /// The program's arrays, borrowed for the duration of a search: sets hold arrays, and copying one out of
    /// `program.sets` per character would cost reference counting.
    private struct Code {
        let instructions: UnsafeBufferPointer<RegexProgram.Instruction>
        let sets: UnsafeBufferPointer<ScalarSet>
    }

    private mutating func firstMatch(_ code: Code, _ text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, from: Int) -> (Int, Int)? {
        // When every match must start with one class, skip start positions outside it cheaply.
        var firstSet = -1
        switch code.instructions.first {
        case .set(let index): firstSet = index
        case .repeatSet(let index, let min, _, _) where min > 0: firstSet = index
        default: break
        }
        var start = from
        while start <= upper {
            if firstSet >= 0 {
                if start == upper { return nil }
                let (scalar, length) = decode(text, start, upper)
                if !code.sets[firstSet].contains(scalar) {
                    start += length
                    continue
                }
            }
            if let end = run(code, text, lower: lower, upper: upper, pc: 0, position: start) {
                return (start, end)
            }
            if budget <= 0 { return nil }
            start += start < upper ? scalarLength(text[start]) : 1
        }
        return nil
    }

    /// Runs from `pc` at `position` until `.match` or `.succeed`; returns the end position, or nil.
    private mutating func run(
        _ code: Code, _ text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, pc startPC: Int, position startPosition: Int
    ) -> Int? {
        let base = stack.count
        var pc = startPC
        var position = startPosition
        while true {
            budget -= 1
            var failed = false
            if budget <= 0 {
                stack.removeSubrange(base...)
                return nil
            }
            switch code.instructions[pc] {
            case .set(let index):
                if position < upper {
                    let (scalar, length) = decode(text, position, upper)
                    if code.sets[index].contains(scalar) {
                        position += length
                        pc += 1
                    } else {
                        failed = true
                    }
                } else {
                    failed = true
                }
            case .repeatSet(let index, let minimum, let maximum, let greedy):
                var count = 0
                var end = position
                let limit = greedy ? maximum : minimum
                while count < limit, end < upper {
                    let (scalar, length) = decode(text, end, upper)
                    if !code.sets[index].contains(scalar) { break }
                    end += length
                    count += 1
                }
                if count < minimum {
                    failed = true
                } else {
                    if greedy, count > minimum {
                        stack.append(Backtrack(kind: .greedyRepeat, pc: pc + 1, position: end, count: count - minimum))
                    } else if !greedy, maximum > minimum {
                        stack.append(Backtrack(kind: .lazyRepeat, pc: pc, position: end, count: count))
                    }
                    position = end
                    pc += 1
                }
            case .split(let first, let second):
                stack.append(Backtrack(kind: .branch, pc: second, position: position, count: 0))
                pc = first
            case .jump(let target):
                pc = target
            case .assertion(let assertion):
                if holds(assertion, text, lower: lower, upper: upper, at: position) {
                    pc += 1
                } else {
                    failed = true
                }
            case .lookahead(let negated, let next):
                let matched = run(code, text, lower: lower, upper: upper, pc: pc + 1, position: position) != nil
                if budget <= 0 {
                    stack.removeSubrange(base...)
                    return nil
                }
                if matched != negated {
                    pc = next
                } else {
                    failed = true
                }
            case .atomic(let next):
                if let end = run(code, text, lower: lower, upper: upper, pc: pc + 1, position: position) {
                    position = end
                    pc = next
                } else {
                    failed = true
                }
            case .saveProgress(let slot):
                stack.append(Backtrack(kind: .restoreSlot, pc: slot, position: slots[slot], count: 0))
                slots[slot] = position
                pc += 1
            case .checkProgress(let slot):
                if slots[slot] == position {
                    failed = true
                } else {
                    pc += 1
                }
            case .succeed, .match:
                stack.removeSubrange(base...)
                return position
            }
            guard failed else { continue }
            // Backtrack to the most recent alternative.
            var resumed = false
            while stack.count > base, !resumed {
                let entry = stack.removeLast()
                switch entry.kind {
                case .branch:
                    pc = entry.pc
                    position = entry.position
                    resumed = true
                case .greedyRepeat:
                    position = previousScalarStart(text, before: entry.position, lower: lower)
                    if entry.count > 1 {
                        stack.append(Backtrack(kind: .greedyRepeat, pc: entry.pc, position: position, count: entry.count - 1))
                    }
                    pc = entry.pc
                    resumed = true
                case .lazyRepeat:
                    guard case .repeatSet(let index, _, let maximum, _) = code.instructions[entry.pc],
                        entry.position < upper
                    else { continue }
                    let (scalar, length) = decode(text, entry.position, upper)
                    guard code.sets[index].contains(scalar) else { continue }
                    position = entry.position + length
                    if entry.count + 1 < maximum {
                        stack.append(Backtrack(kind: .lazyRepeat, pc: entry.pc, position: position, count: entry.count + 1))
                    }
                    pc = entry.pc + 1
                    resumed = true
                case .restoreSlot:
                    slots[entry.pc] = entry.position
                }
            }
            if !resumed { return nil }
        }
    }

    private func holds(
        _ assertion: RegexAssertion, _ text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, at position: Int
    ) -> Bool {
        switch assertion {
        case .lineStart: return position == lower || text[position - 1] == 0x0A
        case .lineEnd: return position == upper || text[position] == 0x0A
        case .textStart: return position == lower
        case .textEnd: return position == upper
        case .textEndBeforeFinalNewline: return position == upper || (position == upper - 1 && text[position] == 0x0A)
        case .wordBoundary, .notWordBoundary:
            var before = false
            if position > lower {
                let start = previousScalarStart(text, before: position, lower: lower)
                before = isOnigWord(decode(text, start, upper).scalar)
            }
            let after = position < upper && isOnigWord(decode(text, position, upper).scalar)
            return (before != after) == (assertion == .wordBoundary)
        }
    }
}

/// Oniguruma's `\w` outside brackets, which `\b` uses.
@inline(__always)
func isOnigWord(_ scalar: UInt32) -> Bool {
    UnicodeClass.contains(scalar, .word) || onigWordExtras.contains { $0.contains(scalar) }
}

/// The scalar starting at `index` and its length in bytes. The text is valid UTF-8 (it comes from a Swift
/// string); a truncated sequence at `end` reads as U+FFFD of length 1 rather than reading past the end.
@inline(__always)
func decode(_ text: UnsafeBufferPointer<UInt8>, _ index: Int, _ end: Int) -> (scalar: UInt32, length: Int) {
    let lead = text[index]
    if lead < 0x80 { return (UInt32(lead), 1) }
    let length = scalarLength(lead)
    guard index + length <= end, length > 1 else { return (0xFFFD, 1) }
    var value = UInt32(lead) & (0xFF >> UInt32(length + 1))
    for offset in 1..<length { value = value << 6 | UInt32(text[index + offset] & 0x3F) }
    return (value, length)
}

/// The length of the UTF-8 sequence that `lead` starts (1 for a stray continuation byte).
@inline(__always)
func scalarLength(_ lead: UInt8) -> Int {
    if lead < 0xC0 { return 1 }
    if lead < 0xE0 { return 2 }
    if lead < 0xF0 { return 3 }
    return 4
}

@inline(__always)
func previousScalarStart(_ text: UnsafeBufferPointer<UInt8>, before position: Int, lower: Int) -> Int {
    var index = position - 1
    while index > lower, text[index] & 0xC0 == 0x80 { index -= 1 }
    return index
}
