"""Fits the linear map that themes read multilingual-e5-small's vectors
through: centred e5 vectors -> all-MiniLM-L6-v2's space (ridge regression,
lambda 0.01), so that one forward pass of the multilingual model gives theme
vectors that behave like MiniLM's (MiniLM's theme thresholds apply) while a
Russian comment lands next to its English original.

Training pairs (none from banking77, which `verbatim eval-themes` scores):
  - English: 6,000 Bitext customer-support utterances (seed 0), every NLU++
    utterance (banking, hotels), mams_train, semeval16_laptops_train,
    acos_laptop_train, semeval14_train, the first 1,500 CFPB complaint
    narratives (first 400 characters): e5("query: " + text) -> MiniLM(text);
  - Russian: M-ABSA hotel/laptop/phone/restaurant train, each Russian row
    paired with its English original: e5("query: " + ru) -> MiniLM(en).

Output: the file OUT, safetensors with f32 tensors `mean` (384), which
is subtracted, and `weight` (384 x 384, input x output); a vector v maps to
normalise((v - mean) @ weight). Its sha256 goes into
models/multilingual-e5-small.toml [theme_projection].

usage (needs `bash .ci/setup-peer.sh` and `bash models/setup.sh`; about 15
minutes on 2 cores):
  .cache/peer-venv/bin/python models/train_theme_projection.py \
      ../shared/data .cache/models models/projections/multilingual-e5-small.safetensors
"""
import csv
import glob
import hashlib
import json
import random
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer

data, models, out = sys.argv[1], sys.argv[2], sys.argv[3]
LAMBDA = 0.01
torch.set_num_threads(2)


def rows(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


random.seed(0)
en = []
bitext = [r["utterance"] for r in csv.DictReader(open(
    f"{data}/bitext_customer_support/bitext_customer_support_20k_sample.csv", encoding="utf-8-sig"))]
random.shuffle(bitext)
en += bitext[:6000]
for f in sorted(glob.glob(f"{data}/nlupp/data/*/fold*.json")):
    en += [r["text"] for r in json.load(open(f, encoding="utf-8"))]
for name in ["mams_train", "semeval16_laptops_train", "acos_laptop_train", "semeval14_train"]:
    en += [r["text"] for r in rows(f"{data}/labelled/{name}.jsonl")]
narratives = [r["Consumer complaint narrative"] for r in csv.DictReader(open(
    f"{data}/cfpb_complaints_sample/complaints_sample.csv", encoding="utf-8"))
    if r["Consumer complaint narrative"]]
en += [t[:400] for t in narratives[:1500]]
en = list(dict.fromkeys(t for t in en if t and t.strip()))
pairs = []
for dom in ["hotel", "laptop", "phone", "restaurant"]:
    e = {r["id"].rsplit("-", 1)[1]: r["text"] for r in rows(f"{data}/labelled/mabsa_{dom}_en_train.jsonl")}
    r_ = {r["id"].rsplit("-", 1)[1]: r["text"] for r in rows(f"{data}/labelled/mabsa_{dom}_ru_train.jsonl")}
    pairs += [(e[k], r_[k]) for k in e if k in r_]
print(f"{len(en)} English texts, {len(pairs)} Russian-English pairs", flush=True)

e5 = SentenceTransformer(f"{models}/multilingual-e5-small", device="cpu")
mini = SentenceTransformer(f"{models}/all-MiniLM-L6-v2", device="cpu")


def encode(model, texts, prefix=""):
    return model.encode([prefix + t for t in texts], batch_size=64,
                        normalize_embeddings=True, show_progress_bar=True).astype(np.float64)


english = en + [p[0] for p in pairs]
target = encode(mini, english)
source = np.vstack([encode(e5, english, "query: "), encode(e5, [p[1] for p in pairs], "query: ")])
target = np.vstack([target, target[len(en):]])
mean = source.mean(0)
a = source - mean
w = np.linalg.solve(a.T @ a + LAMBDA * np.eye(a.shape[1]), a.T @ target)
path = out
save_file({"mean": mean.astype(np.float32), "weight": w.astype(np.float32)}, path)
blob = open(path, "rb").read()
p = a @ w
p /= np.linalg.norm(p, axis=1, keepdims=True)
print(json.dumps({"rows": len(source), "mean_cosine_to_minilm": float((p * target).sum(1).mean()),
                  "sha256": hashlib.sha256(blob).hexdigest()}))
