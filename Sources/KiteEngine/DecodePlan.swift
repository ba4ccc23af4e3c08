import KiteTensor

/// The device side of decode steps of one padded batch size and block-table width: one i32 buffer the
/// engine fills each step (tokens, positions, slots, context lengths, block table), and the graph captured
/// from a step that read it, with that step's output.
final class DecodePlan {
    struct Key: Hashable {
        /// Rows, padded rows included.
        var batch: Int
        /// Blocks per row of the block table.
        var width: Int
    }

    let key: Key
    /// `[tokens | positions | slots | contextLengths | blockTable]`, `batch * (4 + width)` i32.
    let inputs: Tensor
    var graph: (any DeviceGraph)?
    /// The final hidden states the graph writes.
    var output: Tensor?
    /// A capture failed or the backend has no graphs: stay eager.
    var captureFailed = false

    init(key: Key, backend: any Backend) throws {
        self.key = key
        inputs = try backend.zeros([key.batch * (4 + key.width)], dtype: .i32)
    }

    var tokens: Tensor { inputs.rows(0..<key.batch) }
    var positions: Tensor { inputs.rows(key.batch..<(2 * key.batch)) }
    var slots: Tensor { inputs.rows((2 * key.batch)..<(3 * key.batch)) }
    var contextLengths: Tensor { inputs.rows((3 * key.batch)..<(4 * key.batch)) }
    var blockTable: Tensor { inputs.rows((4 * key.batch)..<(key.batch * (4 + key.width))).reshaped([key.batch, key.width]) }

    /// The smallest power of two at least `value`.
    static func roundedUp(_ value: Int) -> Int {
        var result = 1
        while result < value { result <<= 1 }
        return result
    }
}
