"""Tokenizes the embed bench's corpus (the first 2,000 MAMS train texts of
10-60 words) for both models into NAME.npy in the current folder. Run with
the peer venv (it has `tokenizers`) from the repository root."""
import json, sys, numpy as np
from tokenizers import Tokenizer
texts=[]
for l in open('../shared/data/labelled/mams_train.jsonl'):
    t=json.loads(l).get('text')
    if t and 10<=len(t.split())<=60: texts.append(t)
    if len(texts)==2000: break
for name,prefix in [('multilingual-e5-small','query: '),('all-MiniLM-L6-v2','')]:
    tk=Tokenizer.from_file(f'.cache/models/{name}/tokenizer.json')
    tk.no_padding(); tk.enable_truncation(256)
    enc=tk.encode_batch([prefix+t for t in texts])
    ids=[np.array(e.ids,dtype=np.int64) for e in enc]
    np.save(f'{name}.npy', np.array(ids,dtype=object), allow_pickle=True)
    print(name, sum(len(i) for i in ids))
