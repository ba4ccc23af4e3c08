/// How a pre-tokenizer cuts normalized text into the pieces that BPE sees, as HF `tokenizers` defines it:
/// `ByteLevel`, `Split`, `Digits`, and `Sequence` of those.
indirect enum PreTokenizer: Sendable {
    /// GPT-2's byte-level step: optionally prefix a space, optionally split with GPT-2's regex. (Mapping bytes
    /// to GPT-2's printable characters is implicit: Kite's BPE works on bytes.)
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(SplitPattern, behavior: SplitBehavior, invert: Bool)
    /// Split off digits (`\p{N}`, as Rust's `char::is_numeric`): each one, or runs of them.
    case digits(individual: Bool)
    case sequence([PreTokenizer])

    /// Whether any step changes the text (rather than only cutting it).
    var addsPrefixSpace: Bool {
        switch self {
        case .byteLevel(let addPrefixSpace, _): return addPrefixSpace
        case .sequence(let steps): return steps.contains { $0.addsPrefixSpace }
        case .split, .digits: return false
        }
    }
}

/// A `Split` pattern: a regex (hand-written matcher when known), or a literal string.
struct SplitPattern: Sendable {
    enum Matcher: Sendable {
        case known(KnownPattern)
        case program(RegexProgram)
    }
    let source: String
    let matcher: Matcher

    /// Compiles `regex` with Oniguruma's syntax and semantics.
    init(regex: String) throws(RegexError) {
        source = regex
        if let known = KnownPattern(pattern: regex) {
            matcher = .known(known)
        } else {
            matcher = .program(try RegexProgram(pattern: regex))
        }
    }

    /// Matches `literal` exactly (HF escapes a `String` pattern into a regex).
    init(literal: String) throws(RegexError) {
        var escaped = ""
        for scalar in literal.unicodeScalars {
            if scalar.value < 0x80, !(scalar.properties.isAlphabetic || (0x30...0x39).contains(scalar.value)) {
                escaped += "\\x{\(String(scalar.value, radix: 16))}"
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        source = literal
        matcher = .program(try RegexProgram(pattern: escaped))
    }
}

/// What `Split` does with the matches (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Scratch space for pre-tokenization, reused across the pieces of one encode call.
struct PreTokenizerScratch {
    var matcher = RegexMatcher()
    var matches: [(Int, Int)] = []
    var ends: [Int] = []
    var flagged: [(start: Int, end: Int, isMatch: Bool)] = []
    var next: [(Int, Int)] = []
}

extension PreTokenizer {
    /// Cuts the pieces `pieces` (byte ranges of `text`) further, in place. Not for `addsPrefixSpace`
    /// pre-tokenizers, which change the text (see `Tokenizer`).
    func split(_ text: UnsafeBufferPointer<UInt8>, pieces: inout [(Int, Int)], scratch: inout PreTokenizerScratch) {
        switch self {
        case .sequence(let steps):
            for step in steps { step.split(text, pieces: &pieces, scratch: &scratch) }
        case .byteLevel(_, let useRegex):
            guard useRegex else { return }
            PreTokenizer.knownSplit(.gpt2, text, pieces: &pieces, scratch: &scratch)
        case .split(let pattern, let behavior, let invert):
            if case .known(let known) = pattern.matcher, behavior == .isolated, !invert {
                PreTokenizer.knownSplit(known, text, pieces: &pieces, scratch: &scratch)
                return
            }
            scratch.next.removeAll(keepingCapacity: true)
            for (lower, upper) in pieces {
                scratch.flagged.removeAll(keepingCapacity: true)
                PreTokenizer.flagMatches(pattern, text, lower: lower, upper: upper, scratch: &scratch)
                if invert {
                    for index in scratch.flagged.indices { scratch.flagged[index].isMatch.toggle() }
                }
                PreTokenizer.apply(behavior, scratch.flagged, into: &scratch.next)
            }
            swap(&pieces, &scratch.next)
        case .digits(let individual):
            scratch.next.removeAll(keepingCapacity: true)
            UnicodeClassTable.with { table in
                for (lower, upper) in pieces {
                    // Runs of digits and of other text; individual digits each make their own piece.
                    var start = lower
                    var position = lower
                    var inDigits = false
                    while position < upper {
                        let (scalar, length) = decode(text, position, upper)
                        let isDigit = table.contains(scalar, .number)
                        if position > start, isDigit != inDigits || (isDigit && individual) {
                            scratch.next.append((start, position))
                            start = position
                        }
                        inDigits = isDigit
                        position += length
                    }
                    if start < upper { scratch.next.append((start, upper)) }
                }
            }
            swap(&pieces, &scratch.next)
        }
    }

    /// An isolated split by a hand-written matcher: the matches and the text between them are the pieces.
    private static func knownSplit(_ known: KnownPattern, _ text: UnsafeBufferPointer<UInt8>, pieces: inout [(Int, Int)], scratch: inout PreTokenizerScratch) {
        scratch.next.removeAll(keepingCapacity: true)
        for (lower, upper) in pieces {
            if known.tiles {
                scratch.ends.removeAll(keepingCapacity: true)
                known.appendMatchEnds(in: text, lower: lower, upper: upper, into: &scratch.ends)
                var start = lower
                for end in scratch.ends {
                    scratch.next.append((start, end))
                    start = end
                }
            } else {
                scratch.matches.removeAll(keepingCapacity: true)
                known.appendMatches(in: text, lower: lower, upper: upper, into: &scratch.matches)
                var previous = lower
                for (start, end) in scratch.matches {
                    if previous < start { scratch.next.append((previous, start)) }
                    scratch.next.append((start, end))
                    previous = end
                }
                if previous < upper { scratch.next.append((previous, upper)) }
            }
        }
        swap(&pieces, &scratch.next)
    }

    /// Covers `text[lower..<upper]` with matches and the gaps between them, as HF's `find_matches` does.
    private static func flagMatches(_ pattern: SplitPattern, _ text: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int, scratch: inout PreTokenizerScratch) {
        if lower == upper {
            scratch.flagged.append((lower, upper, false))
            return
        }
        scratch.matches.removeAll(keepingCapacity: true)
        switch pattern.matcher {
        case .known(let known):
            known.appendMatches(in: text, lower: lower, upper: upper, into: &scratch.matches)
        case .program(let program):
            scratch.matcher.findAll(program, in: text, lower: lower, upper: upper, into: &scratch.matches)
        }
        var previous = lower
        for (start, end) in scratch.matches {
            if previous != start { scratch.flagged.append((previous, start, false)) }
            scratch.flagged.append((start, end, true))
            previous = end
        }
        if previous != upper { scratch.flagged.append((previous, upper, false)) }
    }

    /// Turns flagged ranges into pieces by `behavior`, dropping empty ones (HF drops empty splits).
    private static func apply(_ behavior: SplitBehavior, _ flagged: [(start: Int, end: Int, isMatch: Bool)], into pieces: inout [(Int, Int)]) {
        let first = pieces.count
        switch behavior {
        case .isolated:
            for item in flagged { pieces.append((item.start, item.end)) }
        case .removed:
            for item in flagged where !item.isMatch { pieces.append((item.start, item.end)) }
        case .contiguous:
            var previousMatch = false
            for item in flagged {
                if item.isMatch == previousMatch, pieces.count > first {
                    pieces[pieces.count - 1].1 = item.end
                } else {
                    pieces.append((item.start, item.end))
                }
                previousMatch = item.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for item in flagged {
                if item.isMatch, !previousMatch, pieces.count > first {
                    pieces[pieces.count - 1].1 = item.end
                } else {
                    pieces.append((item.start, item.end))
                }
                previousMatch = item.isMatch
            }
        case .mergedWithNext:
            // HF folds from the right: a match joins the piece after it.
            var reversed: [(Int, Int)] = []
            var previousMatch = false
            for item in flagged.reversed() {
                if item.isMatch, !previousMatch, !reversed.isEmpty {
                    reversed[reversed.count - 1].0 = item.start
                } else {
                    reversed.append((item.start, item.end))
                }
                previousMatch = item.isMatch
            }
            pieces.append(contentsOf: reversed.reversed())
        }
        // Remove empty pieces appended by this call.
        var write = first
        for read in first..<pieces.count where pieces[read].0 != pieces[read].1 {
            pieces[write] = pieces[read]
            write += 1
        }
        pieces.removeSubrange(write...)
    }
}

extension PreTokenizer {
    /// The pieces of `text` for pre-tokenizers that prefix a space (ByteLevel `add_prefix_space`), which HF
    /// adds to every piece not already starting with one. Pieces are copied; only such tokenizers pay for it.
    func piecesWithPrefixSpace(_ text: [UInt8], scratch: inout PreTokenizerScratch) -> [[UInt8]] {
        var pieces = [text]
        apply(to: &pieces, scratch: &scratch)
        return pieces.filter { !$0.isEmpty }
    }

    private func apply(to pieces: inout [[UInt8]], scratch: inout PreTokenizerScratch) {
        switch self {
        case .sequence(let steps):
            for step in steps { step.apply(to: &pieces, scratch: &scratch) }
        case .byteLevel(let addPrefixSpace, _):
            if addPrefixSpace {
                pieces = pieces.map { $0.first == 0x20 ? $0 : [0x20] + $0 }
            }
            fallthrough
        default:
            var result: [[UInt8]] = []
            for piece in pieces {
                piece.withUnsafeBufferPointer { buffer in
                    var ranges = [(0, buffer.count)]
                    self.split(buffer, pieces: &ranges, scratch: &scratch)
                    for (start, end) in ranges { result.append(Array(buffer[start..<end])) }
                }
            }
            pieces = result
        }
    }
}
