/// Parsed `kite train` flags.
public struct ParsedFlags: Sendable {
    public var values: [String: [String]] = [:]
    /// Flags given that have no effect in Kite, with why (reported once at start).
    public var ignored: [(flag: String, reason: String)] = []

    public func has(_ name: String) -> Bool { values[name] != nil }

    public func text(_ name: String) -> String? { values[name]?.first }

    public func list(_ name: String) -> [String] { values[name] ?? [] }

    public func integer(_ name: String) throws(RLError) -> Int? {
        guard let text = text(name) else { return nil }
        guard let value = Int(text) else { throw .invalidOption(name: name, message: "expected an integer, got '\(text)'") }
        return value
    }

    public func number(_ name: String) throws(RLError) -> Double? {
        guard let text = text(name) else { return nil }
        guard let value = Double(text), value.isFinite else { throw .invalidOption(name: name, message: "expected a number, got '\(text)'") }
        return value
    }
}

/// Reads slime-style flags (`--name value`, `--name=value`, toggles, lists that run until the next `--flag`).
/// An unknown flag is an error that suggests the nearest known one.
public enum FlagParser {
    public static func parse(_ arguments: [String]) throws(RLError) -> ParsedFlags {
        var flags = ParsedFlags()
        var index = 0
        while index < arguments.count {
            var argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                throw .invalidOption(name: argument, message: "expected a flag starting with --")
            }
            var inline: String?
            if let equals = argument.firstIndex(of: "=") {
                inline = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            guard let spec = FlagTable.byName[argument] else {
                let suggestion = nearest(argument).map { "; did you mean \($0)?" } ?? ""
                throw .invalidOption(name: argument, message: "unknown flag\(suggestion)")
            }
            if flags.values[argument] != nil && spec.kind != .list {
                throw .invalidOption(name: argument, message: "given twice")
            }
            var values: [String] = []
            switch spec.kind {
            case .toggle:
                if let inline {
                    guard ["true", "1"].contains(inline.lowercased()) || ["false", "0"].contains(inline.lowercased()) else {
                        throw .invalidOption(name: argument, message: "is a switch; '=\(inline)' is neither true nor false")
                    }
                    if ["false", "0"].contains(inline.lowercased()) { continue }
                }
                values = ["true"]
            case .integer, .number, .text:
                if let inline {
                    values = [inline]
                } else {
                    guard index < arguments.count, !isFlag(arguments[index]) else {
                        throw .invalidOption(name: argument, message: "needs a value")
                    }
                    values = [arguments[index]]
                    index += 1
                }
            case .list:
                if let inline { values = [inline] }
                while index < arguments.count, !isFlag(arguments[index]) {
                    values.append(arguments[index])
                    index += 1
                }
                guard !values.isEmpty else { throw .invalidOption(name: argument, message: "needs at least one value") }
            }
            flags.values[argument, default: []] += values
            if let reason = spec.noEffect, !flags.ignored.contains(where: { $0.flag == argument }) {
                flags.ignored.append((argument, reason))
            }
        }
        return flags
    }

    /// A value such as "-1" or "-0.5" is not a flag.
    static func isFlag(_ text: String) -> Bool {
        text.hasPrefix("--") || (text.hasPrefix("-") && Double(text) == nil && text.count > 1)
    }

    /// The known flag at the smallest edit distance, if it is reasonably close.
    public static func nearest(_ name: String) -> String? {
        var best: (String, Int)?
        for known in FlagTable.all.map(\.name) {
            let distance = editDistance(name, known)
            if distance < best?.1 ?? Int.max { best = (known, distance) }
        }
        guard let best, best.1 <= max(3, name.count / 3) else { return nil }
        return best.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }

    /// The help text, grouped like slime's scripts.
    public static func help() -> String {
        var lines = ["kite train: slime's GRPO/DAPO loop. Flags keep slime's names and defaults.", ""]
        for group in ["CKPT", "ROLLOUT", "REWARD", "GRPO", "OPTIMIZER", "PERF", "ENGINE", "LOOP", "EVAL", "LOG"] {
            lines.append("\(group)_ARGS")
            for spec in FlagTable.all where spec.group == group {
                let suffix = spec.noEffect.map { "accepted, no effect: \($0)" } ?? spec.help
                lines.append("  " + spec.name.padding(toLength: 36) + suffix)
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    func padding(toLength width: Int) -> String {
        count >= width ? self + " " : self + String(repeating: " ", count: width - count)
    }
}
