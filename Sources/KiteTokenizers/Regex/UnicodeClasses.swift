/// Unicode character classes as bit flags per scalar, the way Oniguruma (the regex engine behind HF
/// `tokenizers`) defines `\p{..}`, `\s`, `\d` and `\w`, plus the Rust `regex` crate's `\w`/`\s` that HF uses
/// for added-token word boundaries.
///
/// Looking up `Unicode.Scalar.Properties.generalCategory` costs a table search per call; pre-tokenization asks
/// several questions per character, so the Basic Multilingual Plane is answered from a table built once, and
/// the rare supplementary-plane scalars are classified on demand.
struct UnicodeClass: OptionSet, Hashable, Sendable {
    let rawValue: UInt32

    static let uppercaseLetter = UnicodeClass(rawValue: 1 << 0)   // Lu
    static let lowercaseLetter = UnicodeClass(rawValue: 1 << 1)   // Ll
    static let titlecaseLetter = UnicodeClass(rawValue: 1 << 2)   // Lt
    static let modifierLetter = UnicodeClass(rawValue: 1 << 3)    // Lm
    static let otherLetter = UnicodeClass(rawValue: 1 << 4)       // Lo
    static let nonspacingMark = UnicodeClass(rawValue: 1 << 5)    // Mn
    static let spacingMark = UnicodeClass(rawValue: 1 << 6)       // Mc
    static let enclosingMark = UnicodeClass(rawValue: 1 << 7)     // Me
    static let decimalNumber = UnicodeClass(rawValue: 1 << 8)     // Nd
    static let letterNumber = UnicodeClass(rawValue: 1 << 9)      // Nl
    static let otherNumber = UnicodeClass(rawValue: 1 << 10)      // No
    static let connectorPunctuation = UnicodeClass(rawValue: 1 << 11)  // Pc
    static let dashPunctuation = UnicodeClass(rawValue: 1 << 12)  // Pd
    static let openPunctuation = UnicodeClass(rawValue: 1 << 13)  // Ps
    static let closePunctuation = UnicodeClass(rawValue: 1 << 14) // Pe
    static let initialPunctuation = UnicodeClass(rawValue: 1 << 15)  // Pi
    static let finalPunctuation = UnicodeClass(rawValue: 1 << 16) // Pf
    static let otherPunctuation = UnicodeClass(rawValue: 1 << 17) // Po
    static let mathSymbol = UnicodeClass(rawValue: 1 << 18)       // Sm
    static let currencySymbol = UnicodeClass(rawValue: 1 << 19)   // Sc
    static let modifierSymbol = UnicodeClass(rawValue: 1 << 20)   // Sk
    static let otherSymbol = UnicodeClass(rawValue: 1 << 21)      // So
    static let spaceSeparator = UnicodeClass(rawValue: 1 << 22)   // Zs
    static let lineSeparator = UnicodeClass(rawValue: 1 << 23)    // Zl
    static let paragraphSeparator = UnicodeClass(rawValue: 1 << 24)  // Zp
    static let control = UnicodeClass(rawValue: 1 << 25)          // Cc
    static let format = UnicodeClass(rawValue: 1 << 26)           // Cf
    static let privateUse = UnicodeClass(rawValue: 1 << 27)       // Co
    static let unassigned = UnicodeClass(rawValue: 1 << 28)       // Cn (Cs cannot occur in a Swift string)
    /// White_Space: Oniguruma's `\s` and Rust's `\s` and `char::is_whitespace`.
    static let whitespace = UnicodeClass(rawValue: 1 << 29)
    /// Alphabetic, marks, decimal numbers and connector punctuation: Oniguruma's `\w` inside a bracket class;
    /// with Join_Control, the Rust `regex` crate's `\w`, which HF uses for `single_word`. (Oniguruma's `\w`
    /// outside brackets adds six Latin-1 scalars, see `onigWordExtras`.)
    static let word = UnicodeClass(rawValue: 1 << 30)

    static let letter: UnicodeClass = [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter]
    static let mark: UnicodeClass = [.nonspacingMark, .spacingMark, .enclosingMark]
    static let number: UnicodeClass = [.decimalNumber, .letterNumber, .otherNumber]
    static let punctuation: UnicodeClass = [
        .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
        .finalPunctuation, .otherPunctuation,
    ]
    static let symbol: UnicodeClass = [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]
    static let separator: UnicodeClass = [.spaceSeparator, .lineSeparator, .paragraphSeparator]
    static let other: UnicodeClass = [.control, .format, .privateUse, .unassigned]

    /// The classes of `scalar`.
    @inline(__always)
    static func of(_ scalar: UInt32) -> UnicodeClass {
        if scalar < 0x10000 { return UnicodeClassTable.basic[Int(scalar)] }
        return compute(scalar)
    }

    /// Whether `scalar` is in any of `classes`.
    @inline(__always)
    static func contains(_ scalar: UInt32, _ classes: UnicodeClass) -> Bool {
        of(scalar).rawValue & classes.rawValue != 0
    }

    static func compute(_ value: UInt32) -> UnicodeClass {
        guard let scalar = Unicode.Scalar(value) else { return .unassigned }
        let properties = scalar.properties
        var result: UnicodeClass
        switch properties.generalCategory {
        case .uppercaseLetter: result = .uppercaseLetter
        case .lowercaseLetter: result = .lowercaseLetter
        case .titlecaseLetter: result = .titlecaseLetter
        case .modifierLetter: result = .modifierLetter
        case .otherLetter: result = .otherLetter
        case .nonspacingMark: result = .nonspacingMark
        case .spacingMark: result = .spacingMark
        case .enclosingMark: result = .enclosingMark
        case .decimalNumber: result = .decimalNumber
        case .letterNumber: result = .letterNumber
        case .otherNumber: result = .otherNumber
        case .connectorPunctuation: result = .connectorPunctuation
        case .dashPunctuation: result = .dashPunctuation
        case .openPunctuation: result = .openPunctuation
        case .closePunctuation: result = .closePunctuation
        case .initialPunctuation: result = .initialPunctuation
        case .finalPunctuation: result = .finalPunctuation
        case .otherPunctuation: result = .otherPunctuation
        case .mathSymbol: result = .mathSymbol
        case .currencySymbol: result = .currencySymbol
        case .modifierSymbol: result = .modifierSymbol
        case .otherSymbol: result = .otherSymbol
        case .spaceSeparator: result = .spaceSeparator
        case .lineSeparator: result = .lineSeparator
        case .paragraphSeparator: result = .paragraphSeparator
        case .control: result = .control
        case .format: result = .format
        case .privateUse: result = .privateUse
        case .surrogate, .unassigned: result = .unassigned
        @unknown default: result = .unassigned
        }
        if properties.isWhitespace { result.insert(.whitespace) }
        let wordCore = properties.isAlphabetic || !result.isDisjoint(with: [.mark, .decimalNumber, .connectorPunctuation])
        if wordCore { result.insert(.word) }
        return result
    }
}

/// Oniguruma's `\w` and `\b` outside brackets also count these Latin-1 scalars (superscript digits and
/// vulgar fractions, general category No) as word characters, from its Latin-1 character table; `[\w]` does
/// not. Verified against HF `tokenizers` (see the unicode_classes fixture and the regex tests).
let onigWordExtras: [ClosedRange<UInt32>] = [0xB2...0xB3, 0xB9...0xB9, 0xBC...0xBE]

/// The Basic Multilingual Plane's classes, built on first use (Swift runs a global's initializer once,
/// thread-safely).
enum UnicodeClassTable {
    static let basic: [UnicodeClass] = (0..<0x10000).map { UnicodeClass.compute(UInt32($0)) }

    /// Runs `body` with the table in hand: hot loops look classes up through it rather than through the
    /// global, whose every access checks that it is initialized.
    @inline(__always)
    static func with<R>(_ body: (ClassLookup) -> R) -> R {
        basic.withUnsafeBufferPointer { body(ClassLookup(basic: $0)) }
    }
}

/// Class lookup through the table (valid inside `UnicodeClassTable.with`).
struct ClassLookup {
    let basic: UnsafeBufferPointer<UnicodeClass>

    @inline(__always)
    func of(_ scalar: UInt32) -> UnicodeClass {
        scalar < 0x10000 ? basic[Int(scalar)] : UnicodeClass.compute(scalar)
    }

    @inline(__always)
    func contains(_ scalar: UInt32, _ classes: UnicodeClass) -> Bool {
        of(scalar).rawValue & classes.rawValue != 0
    }
}

extension UnicodeClass {
    /// The class named in `\p{name}`, as Oniguruma spells general categories (short or long names, any case,
    /// ignoring spaces, hyphens and underscores), or nil for a name Kite does not know (scripts, binary
    /// properties).
    static func named(_ name: String) -> UnicodeClass? {
        let key = String(name.unicodeScalars.filter { $0 != " " && $0 != "_" && $0 != "-" }).lowercased()
        switch key {
        case "l", "letter": return .letter
        case "lu", "uppercaseletter": return .uppercaseLetter
        case "ll", "lowercaseletter": return .lowercaseLetter
        case "lt", "titlecaseletter": return .titlecaseLetter
        case "lm", "modifierletter": return .modifierLetter
        case "lo", "otherletter": return .otherLetter
        case "lc", "casedletter": return [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter]
        case "m", "mark", "combiningmark": return .mark
        case "mn", "nonspacingmark": return .nonspacingMark
        case "mc", "spacingmark": return .spacingMark
        case "me", "enclosingmark": return .enclosingMark
        case "n", "number": return .number
        case "nd", "decimalnumber", "digit": return .decimalNumber
        case "nl", "letternumber": return .letterNumber
        case "no", "othernumber": return .otherNumber
        case "p", "punctuation", "punct": return .punctuation
        case "pc", "connectorpunctuation": return .connectorPunctuation
        case "pd", "dashpunctuation": return .dashPunctuation
        case "ps", "openpunctuation": return .openPunctuation
        case "pe", "closepunctuation": return .closePunctuation
        case "pi", "initialpunctuation": return .initialPunctuation
        case "pf", "finalpunctuation": return .finalPunctuation
        case "po", "otherpunctuation": return .otherPunctuation
        case "s", "symbol": return .symbol
        case "sm", "mathsymbol": return .mathSymbol
        case "sc", "currencysymbol": return .currencySymbol
        case "sk", "modifiersymbol": return .modifierSymbol
        case "so", "othersymbol": return .otherSymbol
        case "z", "separator": return .separator
        case "zs", "spaceseparator": return .spaceSeparator
        case "zl", "lineseparator": return .lineSeparator
        case "zp", "paragraphseparator": return .paragraphSeparator
        case "c", "other": return .other
        case "cc", "control", "cntrl": return .control
        case "cf", "format": return .format
        case "co", "privateuse": return .privateUse
        case "cn", "unassigned": return .unassigned
        case "whitespace", "space": return .whitespace
        case "any": return UnicodeClass(rawValue: (1 << 29) - 1)
        default: return nil
        }
    }
}
