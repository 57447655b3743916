"""Intra-op against data-parallel inference over one graph: MODE intra runs
the sub-batches in order on one session with 2 intra-op threads (what
verbatim does); data runs them on one session with 1 intra-op thread from
two Python threads, alternate sub-batches each (ONNX Runtime allows
concurrent Run calls on one session); two does the same with two sessions.
usage: par.py MODEL.onnx NAME TOKEN_BUDGET MAX_ROWS intra|data|two"""
import sys, time, threading, numpy as np, onnxruntime as ort
from batches import padded_batches
model, name = sys.argv[1], sys.argv[2]
budget, max_rows, mode = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ids = np.load(f'{name}.npy', allow_pickle=True)
batches = padded_batches(ids, budget, max_rows)
so = ort.SessionOptions()
so.intra_op_num_threads = 2 if mode == 'intra' else 1; so.inter_op_num_threads = 1
so.add_session_config_entry("session.intra_op.allow_spinning", "0")
s = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'], disabled_optimizers=['SkipLayerNormFusion'])
s2 = ort.InferenceSession(model, so, providers=['CPUExecutionProvider'], disabled_optimizers=['SkipLayerNormFusion']) if mode == 'two' else s
def work(bs, sess=None):
    sess = sess or s
    for a, m in bs: sess.run(['sentence_embedding','token_embeddings'], {'input_ids': a, 'attention_mask': m})
work(batches[:2])
best=None
for rep in range(2):
    t = time.time()
    if mode == 'intra':
        work(batches)
    else:
        th = [threading.Thread(target=work, args=(batches[k::2], [s, s2][k])) for k in range(2)]
        [x.start() for x in th]; [x.join() for x in th]
    dt = time.time() - t; best = dt if best is None else min(best, dt)
import resource; print(f"{mode} {budget}/{max_rows}: {len(ids)/best:.1f} sent/s, rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MiB")
