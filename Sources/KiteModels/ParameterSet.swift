import KiteTensor

/// Named tensors in a fixed order, named as in Hugging Face checkpoints
/// (`model.layers.3.self_attn.q_proj.weight`). Model weights, their gradients and optimizer moments are
/// each one `ParameterSet` with the same names and shapes.
public final class ParameterSet: @unchecked Sendable {
    public private(set) var names: [String] = []
    private var tensors: [String: Tensor] = [:]

    public init() {}

    public init(_ entries: [(String, Tensor)]) {
        for (name, tensor) in entries { insert(name, tensor) }
    }

    /// Adds a tensor; replaces the tensor of an existing name in place of order.
    public func insert(_ name: String, _ tensor: Tensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = tensor
    }

    public subscript(name: String) -> Tensor? { tensors[name] }

    /// The tensor of `name`, or an error naming what is missing.
    public func require(_ name: String, source: String = "parameters") throws -> Tensor {
        guard let tensor = tensors[name] else { throw ModelError.missingTensor(path: source, name: name) }
        return tensor
    }

    public var count: Int { names.count }

    /// Number of scalar elements in all tensors.
    public var elementCount: Int { names.reduce(0) { $0 + (tensors[$1]?.count ?? 0) } }

    /// Tensors in order, with their names.
    public var entries: [(name: String, tensor: Tensor)] { names.compactMap { name in tensors[name].map { (name, $0) } } }

    /// A set with the same names and shapes, every tensor zero, on `backend`'s device.
    public func zerosLike(backend: any Backend, dtype: DType = .f32) throws -> ParameterSet {
        let result = ParameterSet()
        for (name, tensor) in entries { result.insert(name, try backend.zeros(tensor.shape, dtype: dtype)) }
        return result
    }
}
