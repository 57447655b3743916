"""Measurement probe, not part of verbatim: how far can all-MiniLM-L6-v2 go on
MAMS aspect polarity if the encoder itself is fine-tuned (which verbatim does
not do: it would change the sentence vectors themes are built on)?

Trains the same kind of head verbatim ships (one attention query per target
over the last layer's token vectors, then absent/negative/neutral/positive per
target, class weights 1/2/1/1.5) on MAMS train + models/heads/train_extra.jsonl
(+ any --extra files), with the encoder's top layers unfrozen (--freeze N keeps
the first N of 6 frozen), and after every epoch prints the same scores
`verbatim eval` reports for staff and product (targets F1 `ts`/`tp`,
complaints F1 `cs`/`cp`, `pol` polarity accuracy) on MAMS val and SemEval-2014.
The figures in README.md ("Comment analysis") came from this script on a GPU
(`--device cuda`, seeds 1-3, --freeze 0/4/5); it runs on a CPU too, slowly.

usage (repository root, `../shared` beside it, PyTorch + transformers, e.g.
.cache/peer-venv after `bash .ci/setup.sh`):
  python models/heads/probes/finetune_probe.py --model .cache/models/all-MiniLM-L6-v2 \
      --freeze 0 --epochs 6 --lr 5e-5 --seed 1 [--extra FILE.jsonl] [--device cuda]
"""
import argparse
import json
import random

import torch
import torch.nn as nn
from transformers import AutoModel, AutoTokenizer

T = ["staff", "product", "process", "price", "delivery", "environment", "other"]
C = ["absent", "negative", "neutral", "positive"]
DATA = "../shared/data/labelled/"

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--freeze", type=int, default=0)
ap.add_argument("--epochs", type=int, default=6)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--extra", action="append", default=[])
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
dev = a.device


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def labels(rows):
    out = []
    for r in rows:
        y = [0] * len(T)
        for x in r.get("aspects", []):
            if x["target"] in T and x["polarity"] in C:
                y[T.index(x["target"])] = C.index(x["polarity"])
        out.append(y)
    return torch.tensor(out)


class Head(nn.Module):
    def __init__(self, d=384):
        super().__init__()
        self.key = nn.Linear(d, d)
        self.q = nn.Parameter(torch.randn(len(T), d) * 0.05)
        b = (1 / d) ** 0.5
        self.out = nn.Parameter(torch.empty(len(T), d, 4).uniform_(-b, b))
        self.ob = nn.Parameter(torch.zeros(len(T), 4))

    def forward(self, x, m):
        k = torch.tanh(self.key(x))
        sc = (k @ self.q.T).transpose(1, 2) + (m.unsqueeze(1) - 1) * 1e9
        pooled = (sc.softmax(-1) @ x).transpose(0, 1)
        return (pooled @ self.out + self.ob.unsqueeze(1)).transpose(0, 1)


def scores(rows, probs):
    """The `verbatim eval` definitions (src/cli/eval.rs) for staff and product."""
    pol = [0, 0]
    tg = {t: [0, 0, 0] for t in T}
    cp = {t: [0, 0, 0] for t in T}
    for r, p in zip(rows, probs):
        pred = {t: int(p[i, 1:].argmax()) + 1 for i, t in enumerate(T) if 1 - p[i, 0] >= 0.5}
        gold = [(x["target"], x["polarity"]) for x in r["aspects"]]

        def res(t, neg):
            if t != "staff_or_process":
                return t
            hit = (lambda x: pred.get(x) == 1) if neg else (lambda x: x in pred)
            return "process" if (not hit("staff") and hit("process")) else "staff"

        for t in T:
            gh = any(res(x, False) == t for x, _ in gold)
            gn = any(q in ("negative", "conflict") and res(x, True) == t for x, q in gold)
            for d, g, q in ((tg, gh, t in pred), (cp, gn, pred.get(t) == 1)):
                d[t][0 if g and q else 1 if q else 2] += 1 if (g or q) else 0
        for x, q in gold:
            if q != "conflict" and res(x, False) in pred:
                pol[1] += 1
                pol[0] += C[pred[res(x, False)]] == q

    def f1(c):
        return round(2 * c[0] / (2 * c[0] + c[1] + c[2]), 3) if c[0] else 0.0

    return dict(pol=round(pol[0] / max(pol[1], 1), 3), ts=f1(tg["staff"]), tp=f1(tg["product"]),
                cs=f1(cp["staff"]), cp=f1(cp["product"]))


torch.manual_seed(a.seed)
random.seed(a.seed)
tok = AutoTokenizer.from_pretrained(a.model)
enc = AutoModel.from_pretrained(a.model).to(dev)
head = Head().to(dev)
for p in enc.embeddings.parameters():
    p.requires_grad = False
for layer in enc.encoder.layer[: a.freeze]:
    for p in layer.parameters():
        p.requires_grad = False
train = load(DATA + "mams_train.jsonl") + load("models/heads/train_extra.jsonl")
for f in a.extra:
    train += load(f)
y = labels(train)
val, sem = load(DATA + "mams_val.jsonl"), load(DATA + "semeval14_train.jsonl")


def run(texts):
    b = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt").to(dev)
    h = enc(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
    return head(h, b["attention_mask"].float())


def predict(rows):
    enc.eval()
    head.eval()
    with torch.no_grad():
        return torch.cat([run([r["text"] for r in rows[i:i + 128]]).softmax(-1).float().cpu()
                          for i in range(0, len(rows), 128)])


opt = torch.optim.AdamW([{"params": [p for p in enc.parameters() if p.requires_grad], "lr": a.lr},
                         {"params": head.parameters(), "lr": 2e-3}], weight_decay=1e-2)
cw = torch.tensor([1.0, 2.0, 1.0, 1.5]).to(dev)
order = list(range(len(train)))
for ep in range(a.epochs):
    enc.train()
    head.train()
    random.shuffle(order)
    for i in range(0, len(order), 32):
        b = order[i:i + 32]
        logits = run([train[j]["text"] for j in b])
        loss = nn.functional.cross_entropy(logits.reshape(-1, 4), y[b].to(dev).reshape(-1), weight=cw)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"seed {a.seed} freeze {a.freeze} epoch {ep + 1}", "mams_val", scores(val, predict(val)),
          "semeval14", scores(sem, predict(sem)), flush=True)
