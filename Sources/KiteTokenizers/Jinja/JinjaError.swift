/// A failure to parse or render a Jinja template. The message names the template, the line and column
/// of the construct at fault, and what was expected (syntax) or what went wrong (rendering).
public struct JinjaError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The template text is not valid Jinja; reported when the template is created.
        case syntax
        /// Rendering failed: an undefined value was used, an operation got the wrong type, a limit was hit.
        case render
        /// The template called `raise_exception(message)`; `message` is exactly the template's text.
        case raised
    }

    public let kind: Kind
    public let message: String
    public let templateName: String
    /// 1-based; 0 when the error has no position (e.g. a limit on the whole render).
    public let line: Int
    public let column: Int

    public init(kind: Kind, message: String, templateName: String, line: Int, column: Int) {
        self.kind = kind
        self.message = message
        self.templateName = templateName
        self.line = line
        self.column = column
    }

    public var description: String {
        let place = line > 0 ? "\(templateName):\(line):\(column)" : templateName
        switch kind {
        case .syntax: return "\(place): syntax error: \(message)"
        case .render: return "\(place): render error: \(message)"
        case .raised: return "\(place): template raised: \(message)"
        }
    }
}

/// A position in the template source: an offset in Unicode scalars, resolved to line and column when an
/// error is reported (so that tokens stay small).
struct SourceOffset: Sendable, Hashable {
    var offset: Int
    static let unknown = SourceOffset(offset: -1)
}

/// Maps scalar offsets in the normalised template source to 1-based line and column numbers.
struct LineTable: Sendable {
    private var lineStarts: [Int] = [0]

    init(_ scalars: [Unicode.Scalar]) {
        for (i, scalar) in scalars.enumerated() where scalar == "\n" {
            lineStarts.append(i + 1)
        }
    }

    func position(of offset: SourceOffset) -> (line: Int, column: Int) {
        guard offset.offset >= 0 else { return (0, 0) }
        // Binary search for the last line start <= offset.
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= offset.offset { low = mid } else { high = mid - 1 }
        }
        return (low + 1, offset.offset - lineStarts[low] + 1)
    }
}

/// An error raised while evaluating, before it is tied to a template position. The interpreter attaches
/// the position of the node being evaluated when it converts this into a `JinjaError`.
struct RuntimeFailure: Error {
    var kind: JinjaError.Kind
    var message: String
    var offset: SourceOffset

    init(_ message: String, kind: JinjaError.Kind = .render, at offset: SourceOffset = .unknown) {
        self.kind = kind
        self.message = message
        self.offset = offset
    }
}
