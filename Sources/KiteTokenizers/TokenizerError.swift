/// Why a tokenizer could not be loaded or could not decode: the file (or metadata source), the field inside it
/// as a JSON path (`model.merges[12]`), the line and column where the JSON text itself was malformed, and what
/// was expected.
public struct TokenizerError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, to branch on in code and tests.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be read.
        case io
        /// The text is not JSON (`line` and `column` say where reading stopped).
        case syntax
        /// A required field is absent.
        case missingField
        /// A field has the wrong type or an impossible value.
        case invalidField
        /// A well-formed feature Kite does not implement (an unknown pre-tokenizer type, a regex construct).
        case unsupported
        /// A token id outside the vocabulary.
        case unknownTokenID
    }

    /// What went wrong.
    public let kind: Kind
    /// The file path, or a name such as "GGUF metadata".
    public let source: String
    /// A JSON path (`pre_tokenizer.pretokenizers[0].pattern.Regex`) or metadata key, when one applies.
    public let field: String?
    /// Line and column (from 1) in the source text, for syntax errors.
    public let line: Int?
    public let column: Int?
    /// What was found and what was expected.
    public let message: String

    /// An error about `source` (and `field` in it, when given).
    public init(_ kind: Kind, source: String, field: String? = nil, line: Int? = nil, column: Int? = nil, _ message: String) {
        self.kind = kind
        self.source = source
        self.field = field
        self.line = line
        self.column = column
        self.message = message
    }

    /// One line: "source[:line:column]: [field: ]message".
    public var description: String {
        var text = source
        if let line, let column { text += ":\(line):\(column)" }
        if let field { text += ": \(field)" }
        return text + ": " + message
    }
}
