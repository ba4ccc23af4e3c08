import KiteJSON
import KiteTensor

/// Verifiable tasks Kite generates itself (`kite data make`), in slime's jsonl shape (`prompt`, `label`),
/// each with its rule reward (`--rm-type arithmetic|countdown|sort`).
public enum SyntheticTask: String, Sendable, CaseIterable {
    /// `AA+BB=` → the sum.
    case arithmetic
    /// Reach `target` with `+ - *` over the given numbers, each used once: "numbers 3 5 7 target 22" → "3*5+7".
    case countdown
    /// Sort a list of numbers ascending: "sort 5 2 9" → "2 5 9".
    case sort

    /// One problem as a data record: `{"prompt": ..., "label": ...}`.
    public func make(using generator: inout SeededGenerator) -> (prompt: String, label: String) {
        switch self {
        case .arithmetic:
            let a = Int(generator.next() % 100), b = Int(generator.next() % 100)
            return (Self.twoDigits(a) + "+" + Self.twoDigits(b) + "=", String(a + b))
        case .countdown:
            let count = 3 + Int(generator.next() % 2)
            let numbers = (0..<count).map { _ in 1 + Int(generator.next() % 12) }
            // A reachable target: a random left-to-right expression over a random order.
            var order = numbers
            order.shuffle(using: &generator)
            var value = order[0]
            var expression = String(order[0])
            for number in order.dropFirst() {
                switch generator.next() % 3 {
                case 0:
                    value += number
                    expression += "+\(number)"
                case 1 where value - number >= 0:
                    value -= number
                    expression += "-\(number)"
                default:
                    value *= number
                    expression = expression.contains(where: { $0 == "+" || $0 == "-" }) ? "(\(expression))*\(number)" : "\(expression)*\(number)"
                }
            }
            return ("numbers " + numbers.map(String.init).joined(separator: " ") + " target \(value)", "\(value)")
        case .sort:
            let count = 3 + Int(generator.next() % 4)
            let numbers = (0..<count).map { _ in Int(generator.next() % 100) }
            return ("sort " + numbers.map(String.init).joined(separator: " "), numbers.sorted().map(String.init).joined(separator: " "))
        }
    }

    static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// 1 for a correct answer, 0 otherwise. Leading and trailing whitespace is ignored. Countdown answers
    /// are checked against the prompt: every given number used exactly once, and the value equal to the target.
    public func reward(response: String, label: JSONValue?, prompt: String) -> Double {
        let answer = response.trimmingCharacters(in: \.isWhitespace)
        let expected = (label?.stringValue ?? label.map { $0.serialized() } ?? "").trimmingCharacters(in: \.isWhitespace)
        switch self {
        case .arithmetic, .sort:
            return answer == expected ? 1 : 0
        case .countdown:
            guard let target = Int(expected) else { return 0 }
            let words = prompt.split(separator: " ")
            guard let numbersStart = words.firstIndex(of: "numbers"), let targetIndex = words.firstIndex(of: "target"), numbersStart < targetIndex else { return 0 }
            let numbers = words[(numbersStart + 1)..<targetIndex].compactMap { Int($0) }
            var evaluator = IntegerExpression(answer)
            guard let (value, used) = evaluator.evaluate(), value == target, used.sorted() == numbers.sorted() else { return 0 }
            return 1
        }
    }
}

extension String {
    func trimmingCharacters(in isTrimmed: (Character) -> Bool) -> String {
        String(drop(while: isTrimmed).reversed().drop(while: isTrimmed).reversed())
    }
}

/// `+ - *` and parentheses over non-negative integers, with the literals it used; nil for anything else or
/// on overflow.
struct IntegerExpression {
    private let characters: [Character]
    private var position = 0
    private var literals: [Int] = []
    private var depth = 0

    init(_ text: String) {
        characters = text.filter { !$0.isWhitespace }
    }

    mutating func evaluate() -> (Int, [Int])? {
        guard characters.count <= 200, let value = sum(), position == characters.count else { return nil }
        return (value, literals)
    }

    private mutating func sum() -> Int? {
        guard var value = product() else { return nil }
        while position < characters.count, characters[position] == "+" || characters[position] == "-" {
            let plus = characters[position] == "+"
            position += 1
            guard let rhs = product() else { return nil }
            let (result, overflow) = plus ? value.addingReportingOverflow(rhs) : value.subtractingReportingOverflow(rhs)
            guard !overflow else { return nil }
            value = result
        }
        return value
    }

    private mutating func product() -> Int? {
        guard var value = atom() else { return nil }
        while position < characters.count, characters[position] == "*" {
            position += 1
            guard let rhs = atom() else { return nil }
            let (result, overflow) = value.multipliedReportingOverflow(by: rhs)
            guard !overflow else { return nil }
            value = result
        }
        return value
    }

    private mutating func atom() -> Int? {
        guard position < characters.count else { return nil }
        if characters[position] == "(" {
            depth += 1
            guard depth <= 50 else { return nil }
            position += 1
            guard let value = sum(), position < characters.count, characters[position] == ")" else { return nil }
            position += 1
            depth -= 1
            return value
        }
        var digits = ""
        while position < characters.count, let digit = characters[position].wholeNumberValue, characters[position].isASCII {
            digits.append(characters[position])
            position += 1
            _ = digit
        }
        guard !digits.isEmpty, digits.count <= 9, let value = Int(digits) else { return nil }
        literals.append(value)
        return value
    }
}
