"""Probe (issue 13): does tuning the encoder's top layers lift clause blame
on comments the heads never saw, over heads on frozen vectors?

The lower 12 - K layers of multilingual-e5-small are run once and their
hidden states cached; LoRA adapters (rank R) on the top K layers' linear
maps are trained together with a head of the same form as verbatim's
aspect head (src/nlp/heads.rs: per-target query attending over
tanh(W x + b), then a per-target linear layer to absent / negative /
neutral / positive) and a sentiment layer over the mean token vector. The
baseline (--frozen) trains the same heads over the untouched layers, same
data, same seed. Both are scored on sets never trained on, at the
comment level (a target is read when 1 - p(absent) >= 0.5, with the
likelier polarity):

    staff complaints P/R/F1, product complaints F1, polarity accuracy of
    the targets both gold and prediction name.

Usage (from the repository root, peer venv from .ci/setup-peer.sh, models
from models/setup.sh):
    .cache/peer-venv/bin/python models/probes/finetune.py --layers 4 --rank 16

This is a measurement, not the shipped training command.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

TARGETS = ["staff", "product", "process", "price", "delivery", "environment", "other"]
CLASSES = ["absent", "negative", "neutral", "positive"]
UNKNOWN = -100
D = "../shared/data/labelled"
TRAIN = [
    f"{D}/mams_train.jsonl", "models/heads/train_extra.jsonl",
    f"{D}/mabsa_hotel_ru_train.jsonl", f"{D}/mabsa_laptop_ru_train.jsonl",
    f"{D}/mabsa_phone_ru_train.jsonl", f"{D}/mabsa_restaurant_ru_train.jsonl",
    "tests/fixtures/team_labelled.jsonl", "tests/fixtures/team_fresh.jsonl",
    f"{D}/mabsa_hotel_en_train.jsonl", f"{D}/mabsa_laptop_en_train.jsonl",
    f"{D}/mabsa_phone_en_train.jsonl", f"{D}/mabsa_restaurant_en_train.jsonl",
    f"{D}/acos_laptop_train.jsonl", f"{D}/semeval16_laptops_train.jsonl",
]
HOLD_OUT = [f"{D}/semeval16_ru_restaurants_train.jsonl", f"{D}/sentiruEval15_restaurants.jsonl"]
SENTIMENT = [f"../shared/data/uci_sentiment_labelled/{n}_labelled.txt" for n in ("amazon_cells", "yelp", "imdb")]
EVAL = {
    "fresh_test_en": ("tests/fixtures/team_fresh.jsonl", "test", "en"),
    "fresh_test_ru": ("tests/fixtures/team_fresh.jsonl", "test", "ru"),
    "domains_en": ("tests/fixtures/team_domains.jsonl", None, "en"),
    "domains_ru": ("tests/fixtures/team_domains.jsonl", None, "ru"),
    "mams_val": (f"{D}/mams_val.jsonl", None, None),
    "hotel_en_dev": (f"{D}/mabsa_hotel_en_dev.jsonl", None, None),
    "acos_dev": (f"{D}/acos_laptop_dev.jsonl", None, None),
    "sem16_ru_heldout": (f"{D}/semeval16_ru_restaurants_train.jsonl", "heldout", None),
}


def cyrillic(text):
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum("\u0400" <= c <= "\u04ff" for c in letters) * 2 > len(letters)


def read_rows(path, split=None, lang=None, hold_out=None):
    rows = []
    n = 0
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        n += 1
        v = json.loads(line)
        if hold_out == "train" and (n - 1) % 10 == 0:
            continue
        if hold_out == "heldout" and (n - 1) % 10 != 0:
            continue
        if split in ("train", "test") and v.get("split", split) != split:
            continue
        if lang is not None and ("ru" if cyrillic(v["text"]) else "en") != lang:
            continue
        rows.append(v)
    return rows


def labels_of(rows):
    """The rules of src/cli/train.rs load_aspects."""
    uses = lambda t: any(a["target"] == t for r in rows for a in r.get("aspects", []))
    service_only = uses("staff_or_process") and not uses("staff") and not uses("process")
    out = []
    for r in rows:
        asp = [(a["target"], a["polarity"]) for a in r.get("aspects", [])]
        lab = [0] * len(TARGETS)
        if service_only or any(t == "staff_or_process" for t, _ in asp):
            lab[0] = lab[2] = UNKNOWN
        for t, p in asp:
            if t not in TARGETS:
                continue
            if p in CLASSES:
                lab[TARGETS.index(t)] = CLASSES.index(p)
            elif p == "conflict":
                lab[TARGETS.index(t)] = UNKNOWN
        sent = -100
        if asp and all(p == asp[0][1] for _, p in asp) and asp[0][1] in ("negative", "neutral", "positive"):
            sent = ["negative", "neutral", "positive"].index(asp[0][1])
        out.append((r["text"], lab, sent))
    return out


class LoRA(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


class Heads(nn.Module):
    def __init__(self, dim=384, t=len(TARGETS), k=4, sentiment=3):
        super().__init__()
        s = 1 / math.sqrt(dim)
        self.key = nn.Linear(dim, dim)
        nn.init.uniform_(self.key.weight, -s, s)
        nn.init.zeros_(self.key.bias)
        self.queries = nn.Parameter(torch.randn(t, dim) * 0.05)
        self.out_w = nn.Parameter(torch.empty(t, dim, k).uniform_(-s, s))
        self.out_b = nn.Parameter(torch.zeros(t, k))
        self.sent = nn.Linear(dim, sentiment)

    def forward(self, x, mask):
        keys = torch.tanh(self.key(x))  # B L D
        scores = (keys @ self.queries.t()).transpose(1, 2)  # B T L
        scores = scores + (mask[:, None, :] - 1.0) * 1e9
        attn = scores.softmax(-1)
        pooled = (attn @ x).transpose(0, 1)  # T B D
        logits = (pooled @ self.out_w + self.out_b[:, None, :]).transpose(0, 1)  # B T K
        m = mask[:, :, None]
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return logits, self.sent(mean)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4, help="top layers given LoRA adapters (0: frozen)")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--frozen", action="store_true", help="baseline: the top layers stay as they are")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=7, help="picks the --limit subset")
    ap.add_argument("--train-seed", type=int, default=0, help="initialises and orders training (0: --seed)")
    ap.add_argument("--limit", type=int, default=0, help="train rows (0: all)")
    ap.add_argument("--model", default=".cache/models/multilingual-e5-small")
    ap.add_argument("--cache", default="/tmp/ft_cache")
    ap.add_argument("--save", default="", help="write the adapters here (safetensors)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)

    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    tok.enable_truncation(256)
    cfg = BertConfig.from_pretrained(args.model)
    bert = BertModel(cfg, add_pooling_layer=False)
    sd = load_file(f"{args.model}/model.safetensors")
    sd = {k[5:] if k.startswith("bert.") else k: v for k, v in sd.items()}
    missing, unexpected = bert.load_state_dict(sd, strict=False)
    assert not [m for m in missing if "position_ids" not in m], missing
    bert.eval()
    n_layers = cfg.num_hidden_layers
    low = n_layers - args.layers

    # Training rows, balanced by language as verbatim train does.
    files = []
    for p in TRAIN:
        rows = read_rows(p, split="train" if "team_fresh" in p else None)
        files.append(labels_of(rows))
    for p in HOLD_OUT:
        files.append(labels_of(read_rows(p, hold_out="train")))
    langs = ["ru" if sum(cyrillic(t) for t, _, _ in f) * 2 > len(f) else "en" for f in files]
    per = {l: sum(len(f) for f, fl in zip(files, langs) if fl == l) for l in set(langs)}
    total = sum(per.values())
    train = []
    for f, l in zip(files, langs):
        w = total / (len(per) * per[l])
        train += [(t, lab, s, w) for t, lab, s in f]
    sent_rows = []
    for p in SENTIMENT:
        for line in open(p, encoding="utf-8"):
            if "\t" in line:
                t, l = line.rsplit("\t", 1)
                sent_rows.append((t.strip(), [UNKNOWN] * len(TARGETS), int(l) * 2, 1.0))
    train += sent_rows
    if args.limit:
        random.shuffle(train)
        train = train[: args.limit]
    evals = {}
    for name, (p, split, lang) in EVAL.items():
        rows = read_rows(p, split=None if split == "heldout" else split, lang=lang,
                         hold_out="heldout" if split == "heldout" else None)
        evals[name] = rows
    print(f"train rows {len(train)}; eval " + ", ".join(f"{k} {len(v)}" for k, v in evals.items()), flush=True)

    def ids_of(texts):
        return [e.ids for e in tok.encode_batch(["query: " + t for t in texts])]

    @torch.no_grad()
    def lower(texts, key):
        """Hidden states after layer `low` (cached per text list)."""
        path = f"{args.cache}/{key}_L{low}.pt"
        if os.path.exists(path):
            return torch.load(path, weights_only=True)
        ids = ids_of(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = [None] * len(ids)
        t0 = time.time()
        for s in range(0, len(order), 64):
            idx = order[s:s + 64]
            L = max(len(ids[i]) for i in idx)
            x = torch.zeros(len(idx), L, dtype=torch.long)
            m = torch.zeros(len(idx), L)
            for j, i in enumerate(idx):
                x[j, : len(ids[i])] = torch.tensor(ids[i])
                m[j, : len(ids[i])] = 1
            h = bert.embeddings(input_ids=x, token_type_ids=torch.zeros_like(x))
            ext = (1.0 - m[:, None, None, :]) * torch.finfo(torch.float32).min
            for layer in bert.encoder.layer[:low]:
                h = layer(h, attention_mask=ext)[0]
            for j, i in enumerate(idx):
                out[i] = h[j, : len(ids[i])].to(torch.float16).clone()
        print(f"  cached {key}: {len(texts)} texts through {low} layers in {time.time() - t0:.0f} s", flush=True)
        os.makedirs(args.cache, exist_ok=True)
        torch.save(out, path)
        return out

    top = bert.encoder.layer[low:]
    for p in bert.parameters():
        p.requires_grad_(False)
    torch.manual_seed(args.train_seed or args.seed)
    random.seed(args.train_seed or args.seed)
    adapters = []
    for layer in ([] if args.frozen else top):
        for parent, name in [(layer.attention.self, "query"), (layer.attention.self, "key"),
                             (layer.attention.self, "value"), (layer.attention.output, "dense"),
                             (layer.intermediate, "dense"), (layer.output, "dense")]:
            lora = LoRA(getattr(parent, name), args.rank, 2 * args.rank)
            setattr(parent, name, lora)
            adapters.append(lora)
    heads = Heads()
    params = list(heads.parameters()) + [p for a in adapters for p in (a.a, a.b)]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def run_layers(states, train_mode):
        """Pads cached states and runs them through the top layers."""
        L = max(s.shape[0] for s in states)
        h = torch.zeros(len(states), L, 384)
        m = torch.zeros(len(states), L)
        for j, s in enumerate(states):
            h[j, : s.shape[0]] = s.float()
            m[j, : s.shape[0]] = 1
        ext = (1.0 - m[:, None, None, :]) * torch.finfo(torch.float32).min
        for layer in top:
            layer.train(train_mode)
            h = layer(h, attention_mask=ext)[0]
        return h, m

    def forward(states, train_mode):
        return heads(*run_layers(states, train_mode))

    cache_key = f"train{len(train)}_{args.limit}_{args.seed}"
    states = lower([t for t, _, _, _ in train], cache_key)
    eval_states = {k: lower([r["text"] for r in v], f"eval_{k}") for k, v in evals.items()}
    if args.frozen:
        # The top layers as shipped, run once: only the heads train.
        with torch.no_grad():
            def run_top(st):
                out = []
                for s in range(0, len(st), 64):
                    h, _ = run_layers(st[s:s + 64], False)
                    out += [h[j, : x.shape[0]].clone() for j, x in enumerate(st[s:s + 64])]
                return out
            states = run_top(states)
            eval_states = {k: run_top(v) for k, v in eval_states.items()}
        top = []

    # Class weights as verbatim train: inverse frequency of known labels.
    lab = torch.tensor([l for _, l, _, _ in train])
    counts = torch.stack([(lab == c).sum() for c in range(4)]).float().clamp(min=1)
    cw = (counts.sum() / (4 * counts)).clamp(max=10.0)
    sl = torch.tensor([s for _, _, s, _ in train])
    scounts = torch.stack([(sl == c).sum() for c in range(3)]).float().clamp(min=1)
    sw = scounts.sum() / (3 * scounts)

    bs = 32
    order = sorted(range(len(train)), key=lambda i: states[i].shape[0])
    batches = [order[s:s + bs] for s in range(0, len(order), bs)]
    steps = args.epochs * len(batches)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100) * max(0.0, 1 - s / steps))
    @torch.no_grad()
    def predict(st):
        out = []
        for s in range(0, len(st), 64):
            logits, _ = forward(st[s:s + 64], False)
            out.append(logits.softmax(-1))
        return torch.cat(out)

    def evaluate():
        for name, rows in evals.items():
            probs = predict(eval_states[name])
            tp = {t: [0, 0, 0] for t in ("staff", "product")}
            pol_ok = pol_n = 0
            for r, p in zip(rows, probs):
                gold = {}
                for a in r.get("aspects", []):
                    t = a["target"]
                    if t == "staff_or_process":
                        gold["staff"] = a["polarity"]
                        gold["process"] = a["polarity"]
                    elif t in TARGETS:
                        gold[t] = a["polarity"]
                pred = {}
                for ti, t in enumerate(TARGETS):
                    if 1 - p[ti, 0] >= 0.5:
                        pred[t] = CLASSES[1 + int(p[ti, 1:].argmax())]
                service = any(a["target"] == "staff_or_process" for a in r.get("aspects", []))
                for t in ("staff", "product"):
                    g = gold.get(t) == "negative"
                    pr = pred.get(t) == "negative" or (t == "staff" and service and pred.get("process") == "negative")
                    tp[t][0] += g and pr
                    tp[t][1] += pr and not g
                    tp[t][2] += g and not pr
                for t, gp in gold.items():
                    if t in pred and gp in ("negative", "neutral", "positive"):
                        pol_n += 1
                        pol_ok += pred[t] == gp
            res = {}
            for t, (a, b, c) in tp.items():
                P = a / (a + b) if a + b else 0.0
                R = a / (a + c) if a + c else 0.0
                res[t] = (P, R, 2 * P * R / (P + R) if P + R else 0.0, a + c)
            print(f"{name:18s} staff P/R/F1 {res['staff'][0]:.2f}/{res['staff'][1]:.2f}/{res['staff'][2]:.2f} (n={res['staff'][3]})"
                  f"  product F1 {res['product'][2]:.2f} (n={res['product'][3]})  polarity {pol_ok / max(pol_n, 1):.3f} (n={pol_n})", flush=True)
    t0 = time.time()
    for ep in range(args.epochs):
        random.shuffle(batches)
        tot = 0.0
        for b in batches:
            logits, slog = forward([states[i] for i in b], True)
            y = lab[b]
            w = torch.tensor([train[i][3] for i in b])
            ce = F.cross_entropy(logits.reshape(-1, 4), y.reshape(-1), weight=cw, reduction="none", ignore_index=UNKNOWN)
            ce = (ce.view(len(b), -1) * w[:, None]).sum() / ((y != UNKNOWN).float() * w[:, None] * cw[y.clamp(min=0)]).sum().clamp(min=1e-6)
            sy = sl[b]
            sce = F.cross_entropy(slog, sy, weight=sw, ignore_index=-100) if (sy != -100).any() else torch.tensor(0.0)
            loss = ce + 0.5 * sce
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item()
        print(f"  epoch {ep + 1}: loss {tot / len(batches):.4f} ({time.time() - t0:.0f} s)", flush=True)
        evaluate()

    if args.save:
        from safetensors.torch import save_file
        tensors = {}
        for li, layer in enumerate(top):
            for key, mod in [("attention.self.query", layer.attention.self.query), ("attention.self.key", layer.attention.self.key),
                             ("attention.self.value", layer.attention.self.value), ("attention.output.dense", layer.attention.output.dense),
                             ("intermediate.dense", layer.intermediate.dense), ("output.dense", layer.output.dense)]:
                delta = (mod.b @ mod.a) * mod.scale
                tensors[f"encoder.layer.{low + li}.{key}.weight_delta"] = delta.contiguous()
        save_file(tensors, args.save)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    sys.exit(main())
