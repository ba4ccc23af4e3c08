"""Writes a copy of a GGUF file that holds only its header and metadata (tensor count 0).

The R1 test asset is the first part of a split GGUF: its metadata is complete but its tensor table points
past the end of the file, so `gguf.GGUFReader` and transformers refuse it. The copy ends right after the
key-value section, which is all a tokenizer needs.

usage: python3 gguf_metadata_only.py IN.gguf OUT.gguf
"""
import struct
import sys

# Sizes of GGUF scalar value types (type id -> bytes); 8 = string, 9 = array.
SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def skip_value(data: bytes, pos: int, vtype: int) -> int:
    if vtype in SCALAR_SIZES:
        return pos + SCALAR_SIZES[vtype]
    if vtype == 8:
        (length,) = struct.unpack_from("<Q", data, pos)
        return pos + 8 + length
    if vtype == 9:
        (item_type, count) = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if item_type in SCALAR_SIZES:
            return pos + count * SCALAR_SIZES[item_type]
        for _ in range(count):
            pos = skip_value(data, pos, item_type)
        return pos
    raise ValueError(f"unknown GGUF value type {vtype} at byte {pos}")


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    magic, version, _tensor_count, kv_count = struct.unpack_from("<4sIQQ", data, 0)
    if magic != b"GGUF":
        sys.exit(f"{src}: not a GGUF file")
    pos = 24
    for _ in range(kv_count):
        (key_len,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + key_len
        (vtype,) = struct.unpack_from("<I", data, pos)
        pos = skip_value(data, pos + 4, vtype)
    header = struct.pack("<4sIQQ", magic, version, 0, kv_count)
    with open(dst, "wb") as f:
        f.write(header + data[24:pos])


if __name__ == "__main__":
    main()
