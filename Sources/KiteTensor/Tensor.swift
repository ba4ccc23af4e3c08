/// An n-dimensional, contiguous, row-major array on a device.
///
/// A `Tensor` is a view: copying it shares the storage, so writes through one copy are seen by the other.
/// Kernels allocate their outputs; model code treats tensors as values it does not mutate after creation,
/// except gradient accumulators, which backends update in place.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let dtype: DType
    public let storage: TensorStorage
    /// Where this view starts inside `storage`, in bytes.
    public let byteOffset: Int

    public init(shape: [Int], dtype: DType, storage: TensorStorage, byteOffset: Int = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(byteOffset + shape.reduce(1, *) * dtype.byteSize <= storage.byteCount, "view exceeds its storage")
        self.shape = shape
        self.dtype = dtype
        self.storage = storage
        self.byteOffset = byteOffset
    }

    /// A zero-filled host tensor.
    public init(zeros shape: [Int], dtype: DType = .f32) {
        let count = shape.reduce(1, *)
        self.init(shape: shape, dtype: dtype, storage: TensorStorage(hostByteCount: count * dtype.byteSize))
    }

    /// A host tensor whose contents are unspecified until written: for kernel outputs that are overwritten
    /// entirely, so no time is spent zeroing them.
    public init(uninitialized shape: [Int], dtype: DType = .f32) {
        let count = shape.reduce(1, *)
        self.init(shape: shape, dtype: dtype, storage: TensorStorage(hostByteCount: count * dtype.byteSize, zeroed: false))
    }

    /// A host tensor holding `values` (converted to `dtype` with round-to-nearest-even).
    public init(_ values: [Float], shape: [Int], dtype: DType = .f32) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: shape, dtype: dtype)
        values.withUnsafeBufferPointer { source in
            TensorConversion.store(source, into: self)
        }
    }

    /// A host i32 tensor.
    public init(int32 values: [Int32], shape: [Int]? = nil) {
        let shape = shape ?? [values.count]
        precondition(values.count == shape.reduce(1, *), "\(values.count) values for shape \(shape)")
        self.init(zeros: shape, dtype: .i32)
        values.withUnsafeBufferPointer { source in
            guard let base = source.baseAddress else { return }
            self.rawPointer.copyMemory(from: base, byteCount: values.count * 4)
        }
    }

    public var device: Device { storage.device }
    public var rank: Int { shape.count }
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    public var byteCount: Int { count * dtype.byteSize }

    /// Start of this view's memory (host pointer on the CPU; device pointer bits elsewhere).
    public var rawPointer: UnsafeMutableRawPointer { storage.address + byteOffset }

    /// The view as fp32 elements; host tensors of dtype f32 only.
    public var floats: UnsafeMutableBufferPointer<Float> {
        precondition(dtype == .f32 && device == .cpu, "floats of a \(dtype) tensor on \(device)")
        return UnsafeMutableBufferPointer(start: rawPointer.assumingMemoryBound(to: Float.self), count: count)
    }

    /// The view as i32 elements; host tensors of dtype i32 only.
    public var int32s: UnsafeMutableBufferPointer<Int32> {
        precondition(dtype == .i32 && device == .cpu, "int32s of a \(dtype) tensor on \(device)")
        return UnsafeMutableBufferPointer(start: rawPointer.assumingMemoryBound(to: Int32.self), count: count)
    }

    /// The same memory with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(shape: newShape, dtype: dtype, storage: storage, byteOffset: byteOffset)
    }

    /// Rows `range` of the first dimension, sharing memory.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "rows \(range) of \(shape)")
        let rowBytes = shape.dropFirst().reduce(1, *) * dtype.byteSize
        var newShape = shape
        newShape[0] = range.count
        return Tensor(shape: newShape, dtype: dtype, storage: storage, byteOffset: byteOffset + range.lowerBound * rowBytes)
    }

    /// One view over `parts` stacked along the first dimension, when they already lie back to back in one
    /// storage (in order, same dtype and trailing shape): how an inference copy of a model reads the q, k and
    /// v weights it keeps in one allocation as a single matrix. Nil when they do not.
    public static func contiguousStack(_ parts: [Tensor]) -> Tensor? {
        guard let first = parts.first, first.rank >= 1 else { return nil }
        let trailing = Array(first.shape.dropFirst())
        var end = first.byteOffset
        for part in parts {
            guard part.storage === first.storage, part.dtype == first.dtype, part.rank == first.rank,
                Array(part.shape.dropFirst()) == trailing, part.byteOffset == end
            else { return nil }
            end += part.byteCount
        }
        return Tensor(shape: [parts.reduce(0) { $0 + $1.shape[0] }] + trailing, dtype: first.dtype, storage: first.storage, byteOffset: first.byteOffset)
    }

    /// The elements as fp32 (host tensors of any floating-point or integer dtype).
    public func toFloats() -> [Float] {
        precondition(device == .cpu, "toFloats of a tensor on \(device): copy it to the host first")
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            TensorConversion.load(self, into: buffer)
            initialized = count
        }
    }

    /// The elements as Int32 (host tensors of an integer dtype).
    public func toInt32s() -> [Int32] {
        precondition(device == .cpu && !dtype.isFloatingPoint, "toInt32s of a \(dtype) tensor on \(device)")
        switch dtype {
        case .i32: return Array(int32s)
        case .i64:
            let source = rawPointer.assumingMemoryBound(to: Int64.self)
            return (0..<count).map { Int32(truncatingIfNeeded: source[$0]) }
        default:
            let source = rawPointer.assumingMemoryBound(to: UInt8.self)
            return (0..<count).map { Int32(source[$0]) }
        }
    }

    /// A host copy converted to `dtype` (round-to-nearest-even for narrowing float conversions).
    public func converted(to target: DType) -> Tensor {
        precondition(device == .cpu, "converted(to:) of a tensor on \(device)")
        if target == dtype { return copy() }
        let floatsValue = toFloats()
        return Tensor(floatsValue, shape: shape, dtype: target)
    }

    /// A host copy with its own storage.
    public func copy() -> Tensor {
        precondition(device == .cpu, "copy of a tensor on \(device)")
        let result = Tensor(zeros: shape, dtype: dtype)
        result.rawPointer.copyMemory(from: rawPointer, byteCount: byteCount)
        return result
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor(\(dtype), \(shape), \(device))" }
}
