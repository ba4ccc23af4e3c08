import Foundation
import Testing
import KiteGGUF

struct TensorNamesTests {
    @Test(arguments: [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight"),
        ("blk.12.ffn_norm.weight", "model.layers.12.post_attention_layernorm.weight"),
        ("blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight"),
        ("blk.3.attn_q.bias", "model.layers.3.self_attn.q_proj.bias"),
        ("blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight"),
        ("blk.3.attn_k.bias", "model.layers.3.self_attn.k_proj.bias"),
        ("blk.3.attn_v.weight", "model.layers.3.self_attn.v_proj.weight"),
        ("blk.3.attn_v.bias", "model.layers.3.self_attn.v_proj.bias"),
        ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
        ("blk.3.attn_q_norm.weight", "model.layers.3.self_attn.q_norm.weight"),
        ("blk.3.attn_k_norm.weight", "model.layers.3.self_attn.k_norm.weight"),
        ("blk.27.ffn_gate.weight", "model.layers.27.mlp.gate_proj.weight"),
        ("blk.27.ffn_up.weight", "model.layers.27.mlp.up_proj.weight"),
        ("blk.27.ffn_down.weight", "model.layers.27.mlp.down_proj.weight"),
    ])
    func llamaCppNamesMapToHuggingFace(gguf: String, hf: String) {
        for architecture in ["llama", "qwen2", "qwen3"] {
            #expect(GGUFTensorNames.huggingFaceName(for: gguf, architecture: architecture) == hf)
        }
    }

    @Test func namesWithoutCounterpartMapToNil() {
        for name in ["rope_freqs.weight", "blk.x.attn_q.weight", "blk.01.attn_q.weight", "blk.-1.attn_q.weight",
                     "blk.0.attn_q", "blk.0.ffn_gate_exps.weight", "token_embd.scale", "blk.0.attn_q.weight.extra"] {
            #expect(GGUFTensorNames.huggingFaceName(for: name, architecture: "llama") == nil, "\(name)")
        }
        #expect(GGUFTensorNames.huggingFaceName(for: "token_embd.weight", architecture: "gpt2") == nil)
    }

    @Test func onlyLlamaQueryAndKeyArePermuted() {
        let heads = { (name: String, arch: String) in
            GGUFTensorNames.permutationHeads(for: name, architecture: arch, headCount: 9, headCountKV: 3)
        }
        #expect(heads("blk.0.attn_q.weight", "llama") == 9)
        #expect(heads("blk.0.attn_k.weight", "llama") == 3)
        #expect(heads("blk.0.attn_q.bias", "llama") == 9)
        #expect(heads("blk.0.attn_v.weight", "llama") == nil)
        #expect(heads("blk.0.attn_q.weight", "qwen2") == nil)
        #expect(heads("blk.0.attn_k.weight", "qwen3") == nil)
    }

    @Test func unpermuteInvertsPermuteAndMatchesTheReshapeDefinition() throws {
        let heads = 3, headDim = 8, columns = 5
        let rows = heads * headDim
        let values = (0..<(rows * columns)).map { Float($0) }
        let permuted = try GGUFTensorNames.permuteQK(values, rows: rows, columns: columns, heads: heads)
        #expect(permuted != values)
        #expect(try GGUFTensorNames.unpermuteQK(permuted, rows: rows, columns: columns, heads: heads) == values)
        #expect(try GGUFTensorNames.permuteQK(GGUFTensorNames.unpermuteQK(values, rows: rows, columns: columns, heads: heads),
                                              rows: rows, columns: columns, heads: heads) == values)
        // llama.cpp: reshape(heads, 2, headDim / 2, columns).swapaxes(1, 2): GGUF row h*hd + 2j + i is HF row
        // h*hd + i*hd/2 + j. Written out for head 1, j = 2, i = 1.
        let ggufRow = 1 * headDim + 2 * 2 + 1, hfRow = 1 * headDim + 1 * headDim / 2 + 2
        #expect(Array(permuted[(ggufRow * columns)..<((ggufRow + 1) * columns)])
                == Array(values[(hfRow * columns)..<((hfRow + 1) * columns)]))
        expectGGUFError(.invalidValue) { try GGUFTensorNames.unpermuteQK(values, rows: rows, columns: columns, heads: 5) }
        expectGGUFError(.invalidValue) { try GGUFTensorNames.unpermuteQK(values, rows: rows, columns: 4, heads: 3) }
        expectGGUFError(.invalidValue) { try GGUFTensorNames.unpermuteQK([1, 2, 3], rows: 3, columns: 1, heads: 1) }
    }

    /// The file-level variant decodes matrix rows straight into their HF rows and permutes biases
    /// element-wise; both must equal the array function.
    @Test func fileUnpermuteHandlesWeightsAndBiases() throws {
        let heads = 2, headDim = 4, columns = 3
        let weight = (0..<(heads * headDim * columns)).map { Float($0) }
        let bias = (0..<(heads * headDim)).map { Float(100 + $0) }
        let tiny = TinyGGUF(metadata: [("general.architecture", .string("llama"))],
                            tensors: [("blk.0.attn_q.weight", [columns, heads * headDim], weight),
                                      ("blk.0.attn_q.bias", [heads * headDim], bias)])
        let file = try GGUFFile(bytes: tiny.bytes(), name: "tiny.gguf")
        #expect(try file.dequantize(file.tensor("blk.0.attn_q.weight"), unpermutingHeads: heads)
                == GGUFTensorNames.unpermuteQK(weight, rows: heads * headDim, columns: columns, heads: heads))
        #expect(try file.dequantize(file.tensor("blk.0.attn_q.bias"), unpermutingHeads: heads)
                == GGUFTensorNames.unpermuteQK(bias, rows: heads * headDim, columns: 1, heads: heads))
        let error = expectGGUFError(.invalidValue) { try file.dequantize(file.tensor("blk.0.attn_q.weight"), unpermutingHeads: 3) }
        #expect(error?.description.hasPrefix("tiny.gguf: tensor 'blk.0.attn_q.weight': Q/K permutation") == true)
    }

    /// The decisive check: transformers loading SmolLM2's GGUF (dequantise + its own reverse permutation)
    /// gives q/k/v_proj whose first 8 columns are in smollm2_hf_qkv.gguf. Kite's dequantised,
    /// unpermuted tensors must equal them exactly (same Float32 decode, a pure row reordering).
    @Test(Assets.needed(Assets.smolLM2))
    func unpermutedSmolLM2ProjectionsEqualTransformers() throws {
        let smol = try Assets.open(Assets.smolLM2)
        let reference = try GGUFFile(path: Fixtures.path("smollm2_hf_qkv.gguf"))
        let hyper = try GGUFModelHyperparameters(smol)
        var compared = 0
        for layer in [0, 29] {
            for (part, proj) in [("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj")] {
                let name = "blk.\(layer).\(part).weight"
                let tensor = try smol.tensor(name)
                let hfName = try #require(GGUFTensorNames.huggingFaceName(for: name, architecture: "llama"))
                #expect(hfName == "model.layers.\(layer).self_attn.\(proj).weight")
                let values: [Float]
                if let heads = GGUFTensorNames.permutationHeads(for: name, architecture: "llama", headCount: hyper.headCount,
                                                                headCountKV: hyper.headCountKV) {
                    values = try smol.dequantize(tensor, unpermutingHeads: heads)
                    // The array function agrees with the row-by-row file variant.
                    #expect(try GGUFTensorNames.unpermuteQK(smol.dequantize(tensor), rows: tensor.shape[0],
                                                            columns: tensor.shape[1], heads: heads) == values)
                } else {
                    values = try smol.dequantize(tensor)
                }
                let columns = tensor.shape[1]
                let firstColumns = (0..<tensor.shape[0]).flatMap { row in values[(row * columns)..<(row * columns + 8)] }
                let expected = try reference.dequantize(tensorNamed: hfName + "[:, :8]")
                #expect(firstMismatch(firstColumns, expected) == nil, "\(hfName): \(String(describing: firstMismatch(firstColumns, expected)))")
                compared += 1
            }
        }
        #expect(compared == 6)
    }
}
