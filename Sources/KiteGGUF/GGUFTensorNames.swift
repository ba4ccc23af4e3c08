/// Maps llama.cpp tensor names to Hugging Face (transformers) parameter names, and undoes the row
/// permutation llama.cpp's converter applies to the query and key projections of llama models.
public enum GGUFTensorNames {
    /// Architectures (`general.architecture`) whose names this mapping covers.
    public static let supportedArchitectures: Set<String> = ["llama", "qwen2", "qwen3"]

    /// Names outside the layers.
    private static let globalNames: [String: String] = [
        "token_embd": "model.embed_tokens",
        "output_norm": "model.norm",
        "output": "lm_head",
    ]

    /// Names inside `blk.N.`, mapped to the part after `model.layers.N.`.
    private static let layerNames: [String: String] = [
        "attn_norm": "input_layernorm",
        "ffn_norm": "post_attention_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    ]

    /// The Hugging Face name of a llama.cpp tensor (`blk.3.attn_q.weight` ->
    /// `model.layers.3.self_attn.q_proj.weight`), or `nil` for names with no HF counterpart
    /// (e.g. llama 3's `rope_freqs.weight`, which transformers computes from the config) and for
    /// architectures outside `supportedArchitectures`.
    public static func huggingFaceName(for name: String, architecture: String) -> String? {
        guard supportedArchitectures.contains(architecture) else { return nil }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard let suffix = parts.last, suffix == "weight" || suffix == "bias" else { return nil }
        if parts.count == 2, let global = globalNames[String(parts[0])] {
            return "\(global).\(suffix)"
        }
        guard parts.count == 4, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0,
              String(layer) == parts[1], let local = layerNames[String(parts[2])] else { return nil }
        return "model.layers.\(layer).\(local).\(suffix)"
    }

    /// The head count for undoing llama.cpp's Q/K row permutation of tensor `name`, or `nil` when the
    /// tensor is stored as in Hugging Face.
    ///
    /// llama.cpp's converter permutes the rows of `q_proj` (with `num_attention_heads`) and `k_proj`
    /// (with `num_key_value_heads`), weights and biases, for the `llama` architecture only, so that its
    /// RoPE can rotate adjacent pairs; Qwen models use the rotate-half RoPE in both and are not permuted.
    public static func permutationHeads(for name: String, architecture: String, headCount: Int,
                                        headCountKV: Int) -> Int? {
        guard architecture == "llama" else { return nil }
        let parts = name.split(separator: ".")
        guard parts.count == 4, parts[0] == "blk" else { return nil }
        switch parts[2] {
        case "attn_q": return headCount
        case "attn_k": return headCountKV
        default: return nil
        }
    }

    /// Undoes llama.cpp's Q/K row permutation on a row-major `[rows, columns]` matrix.
    ///
    /// The converter views the rows as `[heads, 2, headDim / 2]` and swaps the last two axes, so that
    /// GGUF row `h * headDim + 2 * j + i` holds HF row `h * headDim + i * headDim / 2 + j`. This function
    /// applies the inverse and returns the HF matrix. For a bias pass `columns: 1`.
    ///
    /// - Throws: `invalidValue` when the sizes do not match or `rows` is not `heads` times an even head size.
    public static func unpermuteQK(_ values: [Float], rows: Int, columns: Int, heads: Int) throws -> [Float] {
        try reorderRows(values, rows: rows, columns: columns, heads: heads, toHuggingFace: true)
    }

    /// Applies llama.cpp's Q/K row permutation (HF -> GGUF order): the inverse of `unpermuteQK`.
    public static func permuteQK(_ values: [Float], rows: Int, columns: Int, heads: Int) throws -> [Float] {
        try reorderRows(values, rows: rows, columns: columns, heads: heads, toHuggingFace: false)
    }

    /// The HF row that GGUF row `row` of a permuted Q/K matrix with `rows` rows and `heads` heads holds.
    /// The caller has checked the shape with `checkPermutable`.
    public static func huggingFaceRow(forGGUFRow row: Int, rows: Int, heads: Int) -> Int {
        let headDim = rows / heads
        let (head, within) = row.quotientAndRemainder(dividingBy: headDim)
        return head * headDim + (within & 1) * (headDim / 2) + within / 2
    }

    /// Throws unless `rows` rows split into `heads` heads of an even size.
    public static func checkPermutable(rows: Int, heads: Int) throws {
        guard heads > 0, rows >= 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
            throw GGUFError(.invalidValue, path: nil,
                            "Q/K permutation: \(rows) rows are not \(heads) heads of an even head size")
        }
    }

    private static func reorderRows(_ values: [Float], rows: Int, columns: Int, heads: Int,
                                    toHuggingFace: Bool) throws -> [Float] {
        let (count, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard rows >= 0, columns >= 0, !overflow, count == values.count else {
            throw GGUFError(.invalidValue, path: nil,
                            "Q/K permutation: \(values.count) values do not form a [\(rows), \(columns)] matrix")
        }
        try checkPermutable(rows: rows, heads: heads)
        var result = [Float](repeating: 0, count: count)
        values.withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { target in
                for ggufRow in 0..<rows {
                    let hfRow = huggingFaceRow(forGGUFRow: ggufRow, rows: rows, heads: heads)
                    let (from, to) = toHuggingFace ? (ggufRow, hfRow) : (hfRow, ggufRow)
                    for column in 0..<columns {
                        target[to * columns + column] = source[from * columns + column]
                    }
                }
            }
        }
        return result
    }
}
