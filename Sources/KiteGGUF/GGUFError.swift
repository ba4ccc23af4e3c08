/// An error reading a GGUF file: a malformed container, a metadata value of the wrong type,
/// or tensor data that cannot be produced.
///
/// The description names the file, where in it the problem was found (a byte offset, a metadata key or
/// a tensor name) and what was expected, so that a CLI can print it as one line.
public struct GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, coarse enough to branch on in code and tests.
    public enum Kind: String, Sendable, Equatable {
        /// The file could not be opened, inspected or mapped.
        case io
        /// The first four bytes are not `GGUF`.
        case badMagic
        /// A container version other than 2 or 3 (or a big-endian file).
        case unsupportedVersion
        /// The file ends inside the header, the metadata or the tensor table.
        case truncated
        /// A count, length, dimension, offset or value that cannot be right.
        case invalidValue
        /// A metadata key or tensor name that appears twice.
        case duplicate
        /// A ggml tensor type or metadata value type that this reader does not know.
        case unknownType
        /// A tensor type that is known but cannot be dequantised (or a request not in whole blocks).
        case unsupportedDequantization
        /// A metadata key that is required but absent.
        case missingKey
        /// A metadata value of another type than the one asked for.
        case typeMismatch
        /// A tensor name the file does not have, or a tensor info that belongs to another file.
        case missingTensor
        /// A tensor whose data is not (entirely) inside the file (a truncated file or one part of a split model).
        case tensorDataUnavailable
    }

    public let kind: Kind
    /// The file the error is about; `nil` for data that did not come from a file.
    public let path: String?
    /// The byte offset in the file where the problem was found, when there is one.
    public let offset: Int?
    /// What was found and what was expected.
    public let message: String

    public init(_ kind: Kind, path: String?, offset: Int? = nil, _ message: String) {
        self.kind = kind
        self.path = path
        self.offset = offset
        self.message = message
    }

    public var description: String {
        var text = path ?? "<memory>"
        if let offset { text += " at byte \(offset)" }
        return text + ": " + message
    }
}
