"""Sentences/s of one ONNX graph over NAME.npy (from tok.py), batched as
verbatim does (sorted by length, sub-batches under a token budget), 2 intra-op
threads, spinning off. DIS=Opt1,Opt2 switches ORT optimizers off.
usage: bench.py MODEL.onnx NAME [TOKEN_BUDGET MAX_ROWS]"""
import sys, time, numpy as np, onnxruntime as ort
from batches import padded_batches
model, name = sys.argv[1], sys.argv[2]
ids = np.load(f'{name}.npy', allow_pickle=True)
budget, max_rows = int(sys.argv[3]) if len(sys.argv)>3 else 4096, int(sys.argv[4]) if len(sys.argv)>4 else 64
batches = padded_batches(ids, budget, max_rows)
so = ort.SessionOptions()
so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
import os; dis=[x for x in os.environ.get('DIS','').split(',') if x]; s = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'], disabled_optimizers=dis)
outs = [o.name for o in s.get_outputs()]
s.run(outs, {'input_ids': batches[0][0], 'attention_mask': batches[0][1]})
best = None
for rep in range(2):
    t = time.time(); res = []
    for a, m in batches:
        res.append(s.run(['sentence_embedding'], {'input_ids': a, 'attention_mask': m})[0])
    dt = time.time() - t
    best = dt if best is None else min(best, dt)
emb = np.concatenate(res)
np.save(model.split('/')[-1] + '.emb.npy', emb)
import resource
print(f"{model.split('/')[-1]}: {len(ids)/best:.1f} sent/s  rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")
