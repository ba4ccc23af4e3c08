extension GGUFFile {
    /// The tensor's elements as Float32, in storage order (row-major over `shape`).
    public func dequantize(_ tensor: GGUFTensorInfo) throws -> [Float] {
        try dequantize(tensor, rows: 0..<tensor.rowCount)
    }

    /// The tensor called `name` as Float32.
    public func dequantize(tensorNamed name: String) throws -> [Float] {
        try dequantize(tensor(name))
    }

    /// Writes the tensor's elements as Float32 into `destination`, which must hold exactly
    /// `tensor.elementCount` floats (used to fill a model's tensor without a copy).
    public func dequantize(_ tensor: GGUFTensorInfo, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try dequantize(tensor, rows: 0..<tensor.rowCount, into: destination)
    }

    /// Rows `rows` of the tensor as Float32. A row is `ne[0]` elements (one row of an HF `[out, in]`
    /// matrix), so a row range is a shard of the output dimension. Only the bytes of those rows need to be
    /// in the file.
    public func dequantize(_ tensor: GGUFTensorInfo, rows: Range<Int>) throws -> [Float] {
        let count = try elementCount(of: tensor, rows: rows)
        // Check the bytes before allocating: a lying table can announce terabytes past the end of the file.
        _ = try source(of: tensor, rows: rows)
        return try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try dequantize(tensor, rows: rows, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<count]))
            initialized = count
        }
    }

    /// Writes rows `rows` of the tensor as Float32 into `destination`, which must hold exactly
    /// `rows.count * tensor.rowLength` floats.
    public func dequantize(_ tensor: GGUFTensorInfo, rows: Range<Int>,
                           into destination: UnsafeMutableBufferPointer<Float>) throws {
        let count = try elementCount(of: tensor, rows: rows)
        guard destination.count == count else {
            throw GGUFError(.invalidValue, path: path,
                            "tensor '\(tensor.name)' rows \(rows) have \(count) elements, the destination holds \(destination.count)")
        }
        guard tensor.type.isDequantizable else {
            throw GGUFError(.unsupportedDequantization, path: path,
                            "tensor '\(tensor.name)' has type \(tensor.type), which cannot be dequantized")
        }
        let source = try source(of: tensor, rows: rows)
        let blocks = count / tensor.type.blockSize
        guard blocks > 0, let input = source.baseAddress, let output = destination.baseAddress else { return }
        withExtendedLifetime(self) {
            GGUFDequantizer.decode(input, type: tensor.type, blocks: blocks, into: output)
        }
    }

    /// The tensor as Float32 with llama.cpp's Q/K row permutation undone (see
    /// `GGUFTensorNames.unpermuteQK`): the Hugging Face `q_proj`/`k_proj` weight or bias.
    public func dequantize(_ tensor: GGUFTensorInfo, unpermutingHeads heads: Int) throws -> [Float] {
        _ = try source(of: tensor, rows: 0..<tensor.rowCount)
        return try [Float](unsafeUninitializedCapacity: tensor.elementCount) { buffer, initialized in
            try dequantize(tensor, unpermutingHeads: heads, into: buffer)
            initialized = tensor.elementCount
        }
    }

    /// Writes the tensor as Float32 with llama.cpp's Q/K row permutation undone into `destination`
    /// (`tensor.elementCount` floats). A matrix is decoded row by row straight into the HF row.
    public func dequantize(_ tensor: GGUFTensorInfo, unpermutingHeads heads: Int,
                           into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard destination.count == tensor.elementCount else {
            throw GGUFError(.invalidValue, path: path,
                            "tensor '\(tensor.name)' has \(tensor.elementCount) elements, the destination holds \(destination.count)")
        }
        // An empty tensor may still claim 2^40 rows of zero elements: nothing to do, nothing to loop over.
        guard tensor.elementCount > 0 else { return }
        let rows = tensor.shape.first ?? 1
        do {
            try GGUFTensorNames.checkPermutable(rows: rows, heads: heads)
        } catch let error as GGUFError {
            throw GGUFError(error.kind, path: path, "tensor '\(tensor.name)': \(error.message)")
        }
        guard tensor.dimensions.count == 2 else {
            // A bias (or another shape): permute along HF dimension 0 after decoding.
            let permuted = try GGUFTensorNames.unpermuteQK(dequantize(tensor), rows: rows,
                                                           columns: tensor.elementCount / rows, heads: heads)
            _ = destination.initialize(from: permuted)
            return
        }
        // A matrix: decode each GGUF row straight into its HF row.
        let columns = tensor.rowLength
        for row in 0..<rows {
            let target = GGUFTensorNames.huggingFaceRow(forGGUFRow: row, rows: rows, heads: heads)
            try dequantize(tensor, rows: row..<(row + 1),
                           into: UnsafeMutableBufferPointer(rebasing: destination[(target * columns)..<((target + 1) * columns)]))
        }
    }

    /// The bytes of rows `rows` (inside the tensor), checked to be inside the file.
    private func source(of tensor: GGUFTensorInfo, rows: Range<Int>) throws -> UnsafeRawBufferPointer {
        // The row range is inside the tensor, whose byte range was checked against overflow at open.
        let start = tensor.fileOffset + rows.lowerBound * tensor.rowByteCount
        let end = start + rows.count * tensor.rowByteCount
        return try rawData(of: tensor, bytes: start..<end)
    }

    private func elementCount(of tensor: GGUFTensorInfo, rows: Range<Int>) throws -> Int {
        guard rows.lowerBound >= 0, rows.upperBound <= tensor.rowCount else {
            throw GGUFError(.invalidValue, path: path,
                            "rows \(rows) are outside tensor '\(tensor.name)', which has \(tensor.rowCount) rows")
        }
        return rows.count * tensor.rowLength
    }
}
