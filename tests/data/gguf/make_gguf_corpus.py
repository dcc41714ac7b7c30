#!/usr/bin/env python3
"""Writes the GGUF test corpus: small valid files and one damaged file per
validation rule, plus manifest.tsv with the outcome the reader must report.

The encoder here is written from the GGUF specification (ggml's docs/gguf.md)
with Python's struct module, independently of the C++ reader and writer, so
that the reader is checked against a second implementation. The output is
deterministic; run it from anywhere:

    python3 tests/data/gguf/make_gguf_corpus.py

and commit the regenerated files together with any change to this script.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# Value type ids (GGUF spec, gguf_metadata_value_type).
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
# Tensor type ids and (block elements, block bytes) (GGUF spec, ggml_type).
T_F32, T_F16, T_Q8_0 = 0, 1, 8
BLOCKS = {T_F32: (1, 4), T_F16: (1, 2), T_Q8_0: (32, 34)}
SCALAR_FORMATS = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
                  F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def gguf_string(s):
    data = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(data)) + data


def value_payload(vtype, value):
    if vtype == STRING:
        return gguf_string(value)
    if vtype == ARRAY:
        elem_type, items = value
        out = struct.pack("<IQ", elem_type, len(items))
        return out + b"".join(value_payload(elem_type, v) for v in items)
    return struct.pack(SCALAR_FORMATS[vtype], value)


def kv(key, vtype, value):
    return gguf_string(key) + struct.pack("<I", vtype) + value_payload(vtype, value)


def tensor_info(name, dims, ttype, offset):
    out = gguf_string(name) + struct.pack("<I", len(dims))
    out += b"".join(struct.pack("<Q", d) for d in dims)
    return out + struct.pack("<IQ", ttype, offset)


def tensor_bytes(dims, ttype):
    block_elems, block_bytes = BLOCKS[ttype]
    n = dims[0] // block_elems * block_bytes
    for d in dims[1:]:
        n *= d
    return n


def pad(data, alignment):
    return data + b"\0" * ((-len(data)) % alignment)


def gguf_file(kvs, tensors=(), version=3, alignment=32):
    """kvs: list of encoded kv byte strings; tensors: (name, dims, type)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    datas, offset = [], 0
    for index, (name, dims, ttype) in enumerate(tensors):
        out += tensor_info(name, dims, ttype, offset)
        n = tensor_bytes(dims, ttype)
        datas.append(bytes((index * 31 + i) % 251 for i in range(n)))
        offset += n + (-n) % alignment
    out = pad(out, alignment)
    for data in datas:
        out = pad(out + data, alignment)
    return out


def header(version, n_tensors, n_kv, magic=b"GGUF"):
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def corpus():
    """Yields (relative path, bytes, expected status name, message fragment)."""
    tiny = gguf_file(
        [kv("general.architecture", STRING, "llama"),
         kv("llama.context_length", U32, 256),
         kv("llama.rope.freq_base", F32, 10000.0),
         kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["<unk>", "<s>", "</s>", "\u2581a"])),
         kv("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, 0.0, -1.5])),
         kv("tokenizer.ggml.add_bos_token", BOOL, 1)],
        [("token_embd.weight", [8, 4], T_F32), ("blk.0.attn_q.weight", [32, 2], T_Q8_0)])
    yield "valid/tiny_model.gguf", tiny, "ok", ""
    yield "valid/aligned_64.gguf", gguf_file(
        [kv("general.alignment", U32, 64), kv("nested", ARRAY, (ARRAY, [(I16, [-1, 2]), (U8, [])]))],
        [("a", [3], T_F16), ("b", [5, 1, 1, 2], T_F32)], alignment=64), "ok", ""
    yield "valid/vocab_only_v2.gguf", gguf_file(
        [kv("tokenizer.ggml.model", STRING, "gpt2"),
         kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["!", "\"", "#"]))], version=2), "ok", ""

    yield "corrupt/truncated_header.gguf", tiny[:10], "corrupt", "truncated"
    yield "corrupt/truncated_tensor_data.gguf", tiny[:-40], "corrupt", "extends past the end"
    yield "corrupt/bad_magic.gguf", b"GGML" + tiny[4:], "corrupt", "not a GGUF file"
    yield "corrupt/version_1.gguf", tiny[:4] + struct.pack("<I", 1) + tiny[8:], "unsupported", \
        "version 1"
    yield "corrupt/big_endian.gguf", tiny[:4] + struct.pack(">I", 3) + tiny[8:], "unsupported", \
        "big-endian"
    yield "corrupt/huge_kv_count.gguf", header(3, 0, 2**63) + kv("a", U32, 1), "corrupt", \
        "metadata count"
    yield "corrupt/huge_string_length.gguf", header(3, 0, 1) + gguf_string("general.name") + \
        struct.pack("<IQ", STRING, 2**64 - 1) + b"abc", "corrupt", "string length"
    yield "corrupt/huge_array_length.gguf", header(3, 0, 1) + gguf_string("tokenizer.ggml.tokens") + \
        struct.pack("<IIQ", ARRAY, STRING, 2**60) + gguf_string("x"), "corrupt", "array of"
    bomb = header(3, 0, 1) + gguf_string("bomb") + struct.pack("<I", ARRAY)
    bomb += struct.pack("<IQ", ARRAY, 1) * 8 + struct.pack("<IQ", U8, 0)
    yield "corrupt/nested_array_bomb.gguf", bomb, "unsupported", "nested"
    yield "corrupt/alignment_zero.gguf", gguf_file([kv("general.alignment", U32, 0)]), "corrupt", \
        "general.alignment"
    misaligned = header(3, 1, 0) + tensor_info("w", [4], T_F32, 8)
    yield "corrupt/misaligned_offset.gguf", pad(misaligned, 32) + b"\0" * 64, "corrupt", \
        "not a multiple of the alignment"
    past_eof = header(3, 1, 0) + tensor_info("w", [64], T_F32, 0)
    yield "corrupt/tensor_past_eof.gguf", pad(past_eof, 32) + b"\0" * 32, "corrupt", \
        "extends past the end"
    overflow = header(3, 1, 0) + tensor_info("w", [2**40, 2**40], T_F32, 0)
    yield "corrupt/dims_overflow.gguf", pad(overflow, 32), "corrupt", "overflow"
    unknown_type = header(3, 1, 0) + tensor_info("w", [32], 1000, 0)
    yield "corrupt/unknown_tensor_type.gguf", pad(unknown_type, 32) + b"\0" * 128, "unsupported", \
        "type id 1000"
    yield "corrupt/duplicate_key.gguf", gguf_file([kv("k", U32, 1), kv("k", U8, 2)]), "corrupt", \
        "duplicate key 'k'"
    yield "corrupt/duplicate_tensor.gguf", gguf_file([], [("w", [8], T_F32), ("w", [8], T_F32)]), \
        "corrupt", "duplicate tensor name 'w'"


def main():
    lines = ["# file\texpected status (status_code_name or ok)\tmessage fragment",
             "# generated by make_gguf_corpus.py; do not edit by hand"]
    for sub in ("valid", "corrupt"):
        os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    for path, data, status, fragment in corpus():
        with open(os.path.join(HERE, path), "wb") as f:
            f.write(data)
        lines.append(f"{path}\t{status}\t{fragment}")
    with open(os.path.join(HERE, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
