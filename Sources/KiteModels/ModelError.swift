/// Why a model could not be loaded or run. Every case names the file, field or tensor involved.
public enum ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A file could not be opened or read.
    case io(path: String, detail: String)
    /// A file's bytes do not follow its format.
    case malformed(path: String, detail: String)
    /// A configuration field is missing or has an unusable value.
    case config(path: String, field: String, detail: String)
    /// A tensor the architecture needs is absent.
    case missingTensor(path: String, name: String)
    /// A tensor exists but has the wrong shape or dtype.
    case badTensor(path: String, name: String, detail: String)
    /// A request outside what the model can do (a token id outside the vocabulary, say).
    case invalidInput(String)

    public var description: String {
        switch self {
        case .io(let path, let detail): "\(path): \(detail)"
        case .malformed(let path, let detail): "\(path): \(detail)"
        case .config(let path, let field, let detail): "\(path): field '\(field)': \(detail)"
        case .missingTensor(let path, let name): "\(path): missing tensor '\(name)'"
        case .badTensor(let path, let name, let detail): "\(path): tensor '\(name)': \(detail)"
        case .invalidInput(let detail): detail
        }
    }
}
