/// A regex character class: literal ranges, Unicode classes and nested classes, possibly negated and
/// case-insensitive. ASCII membership is precomputed into a 128-bit map, since most text a tokenizer sees is
/// ASCII and pre-tokenization asks about every character.
struct ScalarSet: Sendable {
    var ranges: [ClosedRange<UInt32>] = []
    /// Scalars in any of these classes are members.
    var classes: UnicodeClass = []
    /// Scalars outside one of these classes are members (`\S`, `\P{L}` inside a class).
    var complementedClasses: [UnicodeClass] = []
    var nested: [ScalarSet] = []
    var negated = false
    var caseInsensitive = false
    private var asciiLow: UInt64 = 0
    private var asciiHigh: UInt64 = 0

    init() {}

    init(classes: UnicodeClass, negated: Bool = false) {
        self.classes = classes
        self.negated = negated
        finish()
    }

    init(scalar: UInt32, caseInsensitive: Bool) {
        ranges = [scalar...scalar]
        self.caseInsensitive = caseInsensitive
        finish()
    }

    /// Precomputes the ASCII map; call after changing the members.
    mutating func finish() {
        asciiLow = 0
        asciiHigh = 0
        for value in UInt32(0)..<128 where slowContains(value) {
            if value < 64 { asciiLow |= 1 << UInt64(value) } else { asciiHigh |= 1 << UInt64(value - 64) }
        }
    }

    @inline(__always)
    func contains(_ scalar: UInt32) -> Bool {
        if scalar < 64 { return asciiLow & (1 << UInt64(scalar)) != 0 }
        if scalar < 128 { return asciiHigh & (1 << UInt64(scalar - 64)) != 0 }
        return slowContains(scalar)
    }

    func slowContains(_ scalar: UInt32) -> Bool {
        if matchesIgnoringNegation(scalar) { return !negated }
        if caseInsensitive {
            for variant in ScalarSet.caseVariants(of: scalar) where variant != scalar && matchesIgnoringNegation(variant) {
                return !negated
            }
        }
        return negated
    }

    private func matchesIgnoringNegation(_ scalar: UInt32) -> Bool {
        for range in ranges where range.contains(scalar) { return true }
        if !classes.isEmpty || !complementedClasses.isEmpty {
            let own = UnicodeClass.of(scalar)
            if own.rawValue & classes.rawValue != 0 { return true }
            for complement in complementedClasses where own.rawValue & complement.rawValue == 0 { return true }
        }
        for set in nested where set.contains(scalar) { return true }
        return false
    }

    /// The scalars that match `scalar` case-insensitively by simple (one-scalar) case mappings: itself, its
    /// lowercase, uppercase and titlecase forms, and what those map back to (so that U+017F LONG S matches "s"
    /// through "S", and U+212A KELVIN SIGN matches "k").
    static func caseVariants(of value: UInt32) -> [UInt32] {
        guard let scalar = Unicode.Scalar(value) else { return [value] }
        var variants: [UInt32] = [value]
        func add(_ mapping: String) {
            let scalars = mapping.unicodeScalars
            if scalars.count == 1, let first = scalars.first, !variants.contains(first.value) { variants.append(first.value) }
        }
        let properties = scalar.properties
        add(properties.lowercaseMapping)
        add(properties.uppercaseMapping)
        add(properties.titlecaseMapping)
        for variant in variants.dropFirst() {
            guard let other = Unicode.Scalar(variant) else { continue }
            add(other.properties.lowercaseMapping)
            add(other.properties.uppercaseMapping)
        }
        return variants
    }
}
