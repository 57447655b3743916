"""The sub-batches verbatim's embed stage makes (src/nlp/embed.rs,
plan_sub_batches): rows sorted by length, each sub-batch closed before
rows x longest passes the token budget or it holds max_rows rows; padded
input_ids and attention_mask per sub-batch."""
import numpy as np


def padded_batches(ids, budget, max_rows):
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    plan, cur = [], []
    for i in order:
        if cur and ((len(cur) + 1) * len(ids[i]) > budget or len(cur) >= max_rows):
            plan.append(cur)
            cur = []
        cur.append(i)
    plan.append(cur)
    out = []
    for g in plan:
        L = max(len(ids[i]) for i in g)
        a = np.zeros((len(g), L), np.int64)
        m = np.zeros((len(g), L), np.int64)
        for r, i in enumerate(g):
            a[r, : len(ids[i])] = ids[i]
            m[r, : len(ids[i])] = 1
        out.append((a, m))
    return out
