"""The Python peer for benches/embed.rs: sentence-transformers on the same
model files, sentences and thread count. Prints one JSON line.

usage: python peer_embed.py MODEL_DIR CORPUS.txt THREADS OUT.f32 [PREFIX]

PREFIX is put before every text, as the model manifest says (e5: "query: ").
"""
import json
import resource
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

model_dir, corpus, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else ""
torch.set_num_threads(threads)
texts = [prefix + l.rstrip("\n") for l in open(corpus, encoding="utf-8")]
m = SentenceTransformer(model_dir, device="cpu")
m.encode(texts[:64], batch_size=32)  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
emb = m.encode(texts, batch_size=32, convert_to_numpy=True)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
np.asarray(emb, dtype=np.float32).tofile(out)
print(json.dumps({
    "engine": f"python sentence-transformers (torch {torch.__version__})",
    "n": len(texts), "wall_s": wall, "cpu_s": cpu,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
