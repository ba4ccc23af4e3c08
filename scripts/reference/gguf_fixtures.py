"""Writes the fixtures of Tests/KiteGGUFTests into Tests/Fixtures/gguf/.

References are independent of Kite: files are written with gguf-py's GGUFWriter (llama.cpp's Python
package), quantised with `gguf.quants.quantize`, dequantised with `gguf.quants.dequantize` (what
transformers uses to load a GGUF), and the Hugging Face weights come from transformers loading the GGUF.

  quants.gguf          tensors of every type Kite dequantises, each followed by `<name>.expected`
                       (F32, gguf-py's dequantisation), plus row slices of real tensors of the assets
  metadata.gguf        every metadata value type (nested arrays too), alignment 64, two tiny tensors
  metadata_v2.gguf     the same bytes with version 2
  metadata.json        what gguf-py reads from metadata.gguf (keys in order, types, values, tensors)
  ggml_types.json      gguf-py's GGML_QUANT_SIZES table
  assets.json          header, keys, some tensor infos and hyper-parameters of the two real assets
  smollm2_hf_qkv.gguf  columns 0..<8 of q/k/v_proj of layers 0 and 29 as transformers loads them
                       from the SmolLM2 GGUF (dequantised, Q/K permutation undone)
  corpus/*.gguf        hand-made malformed files; corpus/manifest.json says how each must fail

Run from anywhere: python3 scripts/reference/gguf_fixtures.py (needs .assets/, see scripts/assets/fetch.sh).
Pass --skip-transformers to keep the existing smollm2_hf_qkv.gguf (loading the model takes a minute).
"""
import json
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "gguf")
ASSETS = os.path.join(ROOT, ".assets")
SMOL = os.path.join(ASSETS, "SmolLM2-135M-Instruct.Q4_1.gguf")
R1 = os.path.join(ASSETS, "DeepSeek-R1-Distill-Qwen-7B-part-0000.gguf")
rng = np.random.default_rng(20261125)


class TruncatedReader(gguf.GGUFReader):
    """gguf-py's reader, stopping before the tensor data (the R1 part's data is truncated)."""

    def _build_tensors(self, start_offs, fields):
        self.data_start = start_offs
        self.tensor_fields = fields
        self.tensors = []


def tensor_table(reader):
    rows = []
    for field in reader.tensor_fields:
        _, name, _, dims, ggml_type, offset = field.parts
        rows.append({"name": str(bytes(name), "utf-8"), "dimensions": [int(d) for d in dims],
                     "type": T(int(ggml_type[0])).name, "offset": int(offset[0])})
    return rows


def raw_rows(reader, table, name, rows):
    """Bytes of rows [start, stop) of a tensor, read straight from the file."""
    info = next(t for t in table if t["name"] == name)
    block, size = gguf.GGML_QUANT_SIZES[T[info["type"]]]
    row_bytes = info["dimensions"][0] // block * size
    start = reader.data_start + info["offset"] + rows[0] * row_bytes
    data = np.asarray(reader.data[start:start + (rows[1] - rows[0]) * row_bytes], dtype=np.uint8)
    return data.reshape(rows[1] - rows[0], row_bytes), info


# ---------------------------------------------------------------------------------------------- quants

def random_k_blocks(qtype, n_blocks):
    """Random bytes for K-quant blocks, with the f16 scale fields set to finite values of realistic size
    (gguf-py cannot quantise K-quants; every bit pattern of the other fields is a valid block)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    half_fields = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}[qtype]
    for offset in half_fields:
        scales = (rng.uniform(0.001, 0.05, size=n_blocks) * rng.choice([-1, 1], size=n_blocks)).astype(np.float16)
        data[:, offset:offset + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return data


def write_quants():
    writer = gguf.GGUFWriter(os.path.join(OUT, "quants.gguf"), "llama")
    shape = (4, 256)  # HF order: 4 rows of 256

    def add(name, stored, qtype, values):
        # Quantised data is passed as bytes [rows, row bytes]; the writer derives the element shape.
        writer.add_tensor(name, stored, raw_dtype=qtype if qtype not in (T.F32, T.F16) else None)
        writer.add_tensor(name + ".expected", np.ascontiguousarray(values, dtype=np.float32))

    data = rng.standard_normal(shape).astype(np.float32) * 0.1
    data[0, :8] = [0.0, -0.0, 1.0, -1.0, 65504.0, 6e-8, -3e-5, 1e-3]
    special = data.copy()
    special[1, :6] = [np.inf, -np.inf, np.nan, 1e-40, -1e-45, 3.4e38]
    add("f32", special, T.F32, special)
    with np.errstate(over="ignore"):  # 3.4e38 becomes inf in f16, on purpose
        f16 = special.astype(np.float16)
    add("f16", f16, T.F16, gguf.quants.dequantize(f16, T.F16))
    bf16 = gguf.quants.quantize(special, T.BF16)
    add("bf16", bf16, T.BF16, gguf.quants.dequantize(bf16, T.BF16))
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        quantized = gguf.quants.quantize(data, qtype)
        add(qtype.name.lower(), quantized, qtype, gguf.quants.dequantize(quantized, qtype))
    for qtype in (T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        blocks = random_k_blocks(qtype, shape[0] * shape[1] // 256).reshape(shape[0], -1)
        add(qtype.name.lower(), blocks, qtype, gguf.quants.dequantize(blocks, qtype))
    # Q8_K: gguf-py has no Q8_K codec; the reference is its definition, x = d (f32) * q (i8).
    n_blocks = shape[0] * shape[1] // 256
    d = rng.uniform(0.001, 0.02, size=n_blocks).astype(np.float32)
    q = rng.integers(-128, 128, size=(n_blocks, 256), dtype=np.int8)
    bsums = q.reshape(n_blocks, 16, 16).astype(np.int16).sum(axis=-1, dtype=np.int16)
    blocks = np.concatenate([d.view(np.uint8).reshape(n_blocks, 4), q.view(np.uint8),
                             bsums.view(np.uint8).reshape(n_blocks, 32)], axis=1).reshape(shape[0], -1)
    add("q8_k", blocks, T.Q8_K, (d[:, None] * q.astype(np.float32)).reshape(shape))

    # Row slices of real tensors: SmolLM2 (Q4_1, Q8_0, F32) and the R1 part (Q6_K: the first rows of
    # output.weight are inside the truncated part).
    real = [(SMOL, "blk.0.attn_q.weight", (0, 4)), (SMOL, "token_embd.weight", (100, 103)),
            (SMOL, "blk.0.attn_norm.weight", (0, 1)), (R1, "output.weight", (0, 2))]
    manifest = []
    for path, name, rows in real:
        reader = TruncatedReader(path)
        table = tensor_table(reader)
        stored, info = raw_rows(reader, table, name, rows)
        qtype = T[info["type"]]
        expected = gguf.quants.dequantize(stored, qtype)
        slice_name = f"{os.path.basename(path).split('-')[0].split('.')[0].lower()}:{name}[{rows[0]}:{rows[1]}]"
        if qtype == T.F32:
            writer.add_tensor(slice_name, stored.view(np.float32).copy())
        else:
            writer.add_tensor(slice_name, stored, raw_dtype=qtype)
        writer.add_tensor(slice_name + ".expected", expected.astype(np.float32))
        manifest.append({"slice": slice_name, "asset": os.path.basename(path), "tensor": name,
                         "rows": list(rows), "type": qtype.name})
    writer.add_string("kite.real_slices", json.dumps(manifest))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# -------------------------------------------------------------------------------------------- metadata

NESTED = {"test.array_nested": [[1, 2], [3], [4, 5, 6]], "test.array_nested_strings": [["x"], ["y", "z"]]}


def write_metadata():
    path = os.path.join(OUT, "metadata.gguf")
    writer = gguf.GGUFWriter(path, "qwen3")
    writer.add_custom_alignment(64)
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_uint64("test.u64", 18000000000000000000)
    writer.add_int64("test.i64", -9000000000000000000)
    writer.add_float32("test.f32", 0.1)
    writer.add_float64("test.f64", 0.1)
    writer.add_bool("test.true", True)
    writer.add_bool("test.false", False)
    writer.add_string("test.string", "héllo, 世界 🙂")
    writer.add_key_value("test.empty_string", "", V.STRING)  # add_string skips empty strings
    writer.add_array("test.array_i32", [1, -2, 3])
    writer.add_key_value("test.array_u8", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    writer.add_key_value("test.array_i64", [-(2 ** 62), 2 ** 62], V.ARRAY, sub_type=V.INT64)
    writer.add_key_value("test.array_f32", [0.5, -1.25, 3.0], V.ARRAY, sub_type=V.FLOAT32)
    writer.add_key_value("test.array_f64", [0.1, 1e300], V.ARRAY, sub_type=V.FLOAT64)
    writer.add_array("test.array_bool", [True, False, True])
    writer.add_array("test.array_string", ["a", "", "ü"])
    for key, value in NESTED.items():
        writer.add_array(key, value)
    writer.add_context_length(4096)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_key_length(32)
    writer.add_value_length(32)
    writer.add_rope_freq_base(1000000.0)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(4.0)
    writer.add_rope_scaling_orig_ctx_len(32768)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_token_list(["<a>", "b", "c"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(2)
    writer.add_tensor("token_embd.weight", np.arange(6, dtype=np.float32).reshape(3, 2))
    writer.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), T.Q8_0),
                      raw_dtype=T.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    data = bytearray(open(path, "rb").read())
    data[4:8] = struct.pack("<I", 2)
    open(os.path.join(OUT, "metadata_v2.gguf"), "wb").write(bytes(data))

    reader = gguf.GGUFReader(path)
    entries = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        types = [t.name for t in field.types]
        value = field.contents()
        if key in NESTED:  # gguf-py flattens nested arrays; keep the structure that was written
            assert value == [x for inner in NESTED[key] for x in inner], key
            value = NESTED[key]
        entries.append({"key": key, "types": types, "value": jsonable(value)})
    tensors = [{"name": t.name, "dimensions": [int(d) for d in t.shape], "type": t.tensor_type.name,
                "offset": int(t.data_offset - reader.data_offset), "byte_count": int(t.n_bytes),
                "values": gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).ravel().tolist()}
               for t in reader.tensors]
    document = {"version": 3, "alignment": int(reader.alignment), "data_offset": int(reader.data_offset),
                "file_size": len(data), "entries": entries, "tensors": tensors}
    dump_json("metadata.json", document)


def jsonable(value):
    if isinstance(value, float):
        return {"f": repr(value)}  # keep every digit; the test parses the repr
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ assets

def describe_asset(path, tensor_names):
    reader = TruncatedReader(path)
    table = tensor_table(reader)
    fields = reader.fields
    keys = [k for k in fields if not k.startswith("GGUF.")]
    arch = fields["general.architecture"].contents()

    def get(key, default=None):
        return fields[key].contents() if key in fields else default

    heads = get(f"{arch}.attention.head_count")
    embedding = get(f"{arch}.embedding_length")
    hyper = {
        "architecture": arch,
        "vocabulary_size": get(f"{arch}.vocab_size", len(fields["tokenizer.ggml.tokens"].data)),
        "context_length": get(f"{arch}.context_length"),
        "embedding_length": embedding,
        "block_count": get(f"{arch}.block_count"),
        "feed_forward_length": get(f"{arch}.feed_forward_length"),
        "head_count": heads,
        "head_count_kv": get(f"{arch}.attention.head_count_kv", heads),
        "key_length": get(f"{arch}.attention.key_length", embedding // heads),
        "rope_freq_base": {"f": repr(get(f"{arch}.rope.freq_base", 10000.0))},
        "rope_dimension_count": get(f"{arch}.rope.dimension_count"),
        "rms_norm_epsilon": {"f": repr(get(f"{arch}.attention.layer_norm_rms_epsilon"))},
        "tied_embeddings": "output.weight" not in {t["name"] for t in table},
        "bos_token_id": get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": get("tokenizer.ggml.eos_token_id"),
    }
    tokens = fields["tokenizer.ggml.tokens"]
    return {
        "file": os.path.basename(path), "file_size": os.path.getsize(path), "version": get("GGUF.version"),
        "keys": keys, "data_offset": int(reader.data_start), "alignment": int(reader.alignment),
        "tensor_count": len(table), "tensor_type_counts": count_types(table),
        "tensors": [t for t in table if t["name"] in tensor_names],
        "token_count": len(tokens.data), "tokens_sample": {str(i): tokens.contents(i) for i in (0, 1, 2, 100, len(tokens.data) - 1)},
        "merge_count": len(fields["tokenizer.ggml.merges"].data),
        "chat_template_length": len(get("tokenizer.chat_template").encode("utf-8")),
        "hyperparameters": hyper,
    }


def count_types(table):
    counts = {}
    for t in table:
        counts[t["type"]] = counts.get(t["type"], 0) + 1
    return counts


def write_assets():
    document = [
        describe_asset(SMOL, {"token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"}),
        describe_asset(R1, {"output.weight", "token_embd.weight", "blk.0.attn_q.bias", "blk.27.ffn_up.weight"}),
    ]
    dump_json("assets.json", document)


def write_hf_reference():
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(ASSETS, gguf_file=os.path.basename(SMOL), dtype=torch.float32)
    state = model.state_dict()
    writer = gguf.GGUFWriter(os.path.join(OUT, "smollm2_hf_qkv.gguf"), "llama")
    for layer in (0, 29):
        for proj in ("q_proj", "k_proj", "v_proj"):
            name = f"model.layers.{layer}.self_attn.{proj}.weight"
            writer.add_tensor(name + "[:, :8]", np.ascontiguousarray(state[name][:, :8].numpy()))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# ------------------------------------------------------------------------------------------------ corpus

def gguf_string(text):
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key, vtype, payload):
    return gguf_string(key) + struct.pack("<I", vtype) + payload


def tensor_info(name, dims, ggml_type, offset):
    return (gguf_string(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            + struct.pack("<I", ggml_type) + struct.pack("<Q", offset))


def container(kvs=(), tensors=(), data=b"", version=3, magic=b"GGUF", alignment=32, kv_count=None,
              tensor_count=None, pad=True):
    head = magic + struct.pack("<IQQ", version, len(tensors) if tensor_count is None else tensor_count,
                               len(kvs) if kv_count is None else kv_count)
    body = head + b"".join(kvs) + b"".join(tensors)
    if pad and data:
        body += b"\0" * (-len(body) % alignment)
    return body + data


def f32_tensor(name="t", offset=0, dims=(4,)):
    return tensor_info(name, list(dims), T.F32, offset)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def nested(depth):
    payload = u32(V.INT32) + u64(1) + struct.pack("<i", 7)
    for _ in range(depth):
        payload = u32(V.ARRAY) + u64(1) + payload
    return payload


def write_corpus():
    corpus = os.path.join(OUT, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for name in os.listdir(corpus):
        os.remove(os.path.join(corpus, name))
    four = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    good_kv = kv("general.architecture", V.STRING, gguf_string("llama"))
    cases = [
        ("empty", b"", "truncated", None, "a zero-byte file"),
        ("bad_magic", container(magic=b"GGML"), "badMagic", None, "magic GGML"),
        ("version_1", container(version=1), "unsupportedVersion", None, "v1 used 32-bit counts"),
        ("version_4", container(version=4), "unsupportedVersion", None, "unknown version"),
        ("big_endian", b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "unsupportedVersion", None, "big-endian v3"),
        ("truncated_header", container()[:13], "truncated", None, "ends inside the tensor count"),
        ("kv_count_huge", container(kv_count=2 ** 62), "truncated", None, "2^62 metadata entries"),
        ("tensor_count_huge", container(tensor_count=2 ** 63), "truncated", None, "2^63 tensors"),
        ("tensor_count_lies", container(kvs=[good_kv], tensor_count=3), "truncated", None,
         "3 tensors announced, none present"),
        ("key_length_2_60", container(kvs=[u64(2 ** 60) + b"abc"]), "truncated", None, "key length 2^60"),
        ("string_length_2_60", container(kvs=[gguf_string("k") + u32(V.STRING) + u64(2 ** 60) + b"x"]),
         "truncated", None, "string value length 2^60"),
        ("array_count_2_61", container(kvs=[kv("k", V.ARRAY, u32(V.UINT32) + u64(2 ** 61) + u32(1))]),
         "truncated", None, "u32 array of 2^61 elements"),
        ("string_array_count_huge", container(kvs=[kv("k", V.ARRAY, u32(V.STRING) + u64(2 ** 59) + gguf_string("a"))]),
         "truncated", None, "string array of 2^59 elements"),
        ("nested_arrays_deep", container(kvs=[kv("k", V.ARRAY, nested(100))]), "invalidValue", None,
         "arrays nested 100 deep"),
        ("nested_arrays_ok", container(kvs=[kv("k", V.ARRAY, nested(3))]), "ok", None, "arrays nested 4 deep"),
        ("empty_array", container(kvs=[kv("k", V.ARRAY, u32(V.STRING) + u64(0))]), "ok", None,
         "an empty array (gguf-py cannot write one, llama.cpp can)"),
        ("unknown_value_type", container(kvs=[kv("k", 13, u32(0))]), "unknownType", None, "value type 13"),
        ("unknown_array_type", container(kvs=[kv("k", V.ARRAY, u32(99) + u64(1) + u32(0))]), "unknownType", None,
         "array element type 99"),
        ("invalid_utf8_key", container(kvs=[kv(b"\xff\xfe", V.UINT8, b"\x01")]), "invalidValue", None,
         "key bytes FF FE"),
        ("duplicate_key", container(kvs=[kv("k", V.UINT8, b"\x01"), kv("k", V.UINT8, b"\x02")]), "duplicate", None,
         "the same key twice"),
        ("value_truncated", container(kvs=[kv("k", V.UINT64, b"\x01\x02")]), "truncated", None,
         "u64 value cut after 2 bytes"),
        ("alignment_zero", container(kvs=[kv("general.alignment", V.UINT32, u32(0))]), "invalidValue", None,
         "general.alignment 0"),
        ("alignment_not_power_of_two", container(kvs=[kv("general.alignment", V.UINT32, u32(48))]), "invalidValue",
         None, "general.alignment 48"),
        ("alignment_string", container(kvs=[kv("general.alignment", V.STRING, gguf_string("32"))]), "invalidValue",
         None, "general.alignment as a string"),
        ("five_dimensions", container(tensors=[tensor_info("t", [1, 1, 1, 1, 1], T.F32, 0)]), "invalidValue", None,
         "more than GGML_MAX_DIMS"),
        ("dimension_negative", container(tensors=[tensor_info("t", [2 ** 63], T.F32, 0)]), "invalidValue", None,
         "ne[0] = 2^63 (negative as int64)"),
        ("dimension_product_overflow", container(tensors=[tensor_info("t", [2 ** 32, 2 ** 32, 2 ** 32], T.F32, 0)]),
         "invalidValue", None, "ne product 2^96"),
        ("byte_size_overflow", container(tensors=[tensor_info("t", [2 ** 31, 2 ** 31], T.F32, 0)]), "invalidValue",
         None, "2^62 f32 elements: 2^64 bytes"),
        ("rows_overflow_with_zero_ne0", container(tensors=[tensor_info("t", [0, 2 ** 40, 2 ** 40], T.F32, 0)]),
         "invalidValue", None, "ne[0] = 0 must not hide an overflowing row count"),
        ("row_bytes_overflow_with_zero_rows", container(tensors=[tensor_info("t", [2 ** 63 - 32, 0], T.Q8_0, 0)]),
         "invalidValue", None, "found by fuzzing: no elements, but one row of 2^63-32 Q8_0 elements overflows"),
        ("unknown_ggml_type", container(tensors=[tensor_info("t", [32], 99, 0)]), "unknownType", None, "type 99"),
        ("removed_ggml_type", container(tensors=[tensor_info("t", [32], 4, 0)]), "unknownType", None,
         "type 4 (Q4_2, removed from ggml)"),
        ("ne0_not_whole_blocks", container(tensors=[tensor_info("t", [31, 2], T.Q4_0, 0)]), "invalidValue", None,
         "Q4_0 row of 31 elements"),
        ("offset_unaligned", container(tensors=[f32_tensor(offset=4)], data=four * 2), "invalidValue", None,
         "data offset 4 with alignment 32"),
        ("offset_overflow", container(tensors=[f32_tensor(offset=2 ** 63 - 32)], data=four), "invalidValue", None,
         "data offset near 2^63: end overflows"),
        ("tensors_overlap", container(tensors=[f32_tensor("a", 0, (16,)), f32_tensor("b", 32, (16,))], data=b"\0" * 96),
         "invalidValue", None, "b starts inside a"),
        ("duplicate_tensor", container(tensors=[f32_tensor("a", 0), f32_tensor("a", 32)], data=b"\0" * 64),
         "duplicate", None, "two tensors named a"),
        ("invalid_utf8_tensor_name", container(tensors=[tensor_info(b"\xc3", [4], T.F32, 0)], data=four),
         "invalidValue", None, "tensor name cut inside a UTF-8 sequence"),
        ("tensor_table_truncated", container(tensors=[f32_tensor()])[:-3], "truncated", None,
         "file ends inside the offset of the only tensor"),
        ("data_past_end", container(tensors=[f32_tensor(offset=2 ** 40)], data=four), "ok", "tensorDataUnavailable",
         "offset 2^40: opens (metadata use), reading the data fails"),
        ("data_truncated", container(tensors=[f32_tensor(dims=(8,))], data=four), "ok", "tensorDataUnavailable",
         "8 floats announced, 4 present"),
        ("data_146_gb_past_end", container(tensors=[tensor_info("t", [32, 2 ** 32 - 1], T.Q8_0, 0)], data=b"\0" * 64),
         "ok", "tensorDataUnavailable",
         "found by fuzzing: 2^32-1 rows announced; the reader must check the bytes before allocating 549 GB"),
        ("metadata_only", container(kvs=[good_kv]), "ok", None, "no tensors, no padding after the metadata"),
        ("v2_with_tensor", container(kvs=[good_kv], tensors=[f32_tensor()], data=four, version=2), "ok", "ok",
         "a valid version 2 file"),
        ("scalar_tensor", container(tensors=[tensor_info("s", [], T.F32, 0)], data=four), "ok", "ok",
         "a tensor with no dimensions holds one element"),
        ("empty_tensor_inside_other", container(tensors=[f32_tensor("a", 0, (16,)), f32_tensor("z", 32, (0,)),
                                                         f32_tensor("b", 64, (8,))], data=b"\0" * 96),
         "ok", "ok", "an empty tensor may sit anywhere"),
        ("iq_type_not_dequantizable", container(tensors=[tensor_info("t", [256], T.IQ2_XXS, 0)], data=b"\0" * 66),
         "ok", "unsupportedDequantization", "known type without a dequantizer"),
    ]
    manifest = []
    for name, data, open_result, read_result, note in cases:
        open(os.path.join(corpus, name + ".gguf"), "wb").write(data)
        manifest.append({"file": name + ".gguf", "open": open_result, "read": read_result, "note": note})
    dump_json(os.path.join("corpus", "manifest.json"), manifest)


def dump_json(name, document):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    dump_json("ggml_types.json", [{"name": t.name, "id": int(t), "block_size": b, "type_size": s}
                                  for t, (b, s) in gguf.GGML_QUANT_SIZES.items()])
    write_corpus()
    write_metadata()
    write_quants()
    write_assets()
    if "--skip-transformers" not in sys.argv:
        write_hf_reference()


if __name__ == "__main__":
    main()
