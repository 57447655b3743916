"""ONNX Runtime's own profile of one graph over 400 of the corpus sentences
(every fourth by length, batches of 64): kernel time per operator type.
DIS=Opt1,Opt2 switches ORT optimizers off. usage: prof.py MODEL.onnx NAME"""
import sys, json, time, numpy as np, onnxruntime as ort, collections
model, name = sys.argv[1], sys.argv[2]
ids = np.load(f'{name}.npy', allow_pickle=True)
order = sorted(range(len(ids)), key=lambda i: len(ids[i]))[::4][:400]
# batches of 64 rows sorted
batches=[]
for j in range(0,len(order),64):
    g=order[j:j+64]; L=max(len(ids[i]) for i in g)
    a=np.zeros((len(g),L),np.int64); m=np.zeros_like(a)
    for r,i in enumerate(g): a[r,:len(ids[i])]=ids[i]; m[r,:len(ids[i])]=1
    batches.append((a,m))
so=ort.SessionOptions(); so.intra_op_num_threads=2; so.inter_op_num_threads=1
so.add_session_config_entry("session.intra_op.allow_spinning","0")
so.enable_profiling=True; so.profile_file_prefix='ort_profile'
import os; dis=[x for x in os.environ.get('DIS','').split(',') if x]; s=ort.InferenceSession(model,so,providers=['CPUExecutionProvider'],disabled_optimizers=dis)
for a,m in batches: s.run(['sentence_embedding'],{'input_ids':a,'attention_mask':m})
p=s.end_profiling()
ev=json.load(open(p)); agg=collections.Counter()
for e in ev:
    if e.get('cat')=='Node' and e['name'].endswith('_kernel_time'):
        agg[e['args']['op_name']]+=e['dur']
tot=sum(agg.values())
for k,v in agg.most_common(): print(f"{k:35s} {v/1e3:8.1f} ms {100*v/tot:5.1f}%")
