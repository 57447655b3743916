"""fp32 fused graph -> ORT MatMulNBits (4-bit, block 32). e5's weights are
4-bit already (dequantised by convert_e5.py), so each block is re-packed
exactly: the check refuses any block that does not come back bit for bit.
usage: nbits.py FP32.onnx OUT.onnx ACCURACY_LEVEL [mha]"""
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
src, dst, acc = sys.argv[1], sys.argv[2], int(sys.argv[3])
split_attn = len(sys.argv) > 4 and sys.argv[4] == 'mha'
m = onnx.load(src)
g = m.graph
inits = {i.name: i for i in g.initializer}

def exact_q4(W):
    K, N = W.shape
    Wt = W.T.reshape(N, K // 32, 32).astype(np.float32)  # [N, blocks, 32]
    amax = np.abs(Wt).max(-1)
    best_d = np.zeros_like(amax); done = np.zeros(amax.shape, bool)
    for k in [s * k for k in range(8, 0, -1) for s in (1, -1)]:
        d = (amax / np.float32(k)).astype(np.float32)
        dd = np.where(d == 0, 1, d)
        q = np.round(Wt / dd[..., None])
        ok = (q >= -8).all(-1) & (q <= 7).all(-1) & ((q * dd[..., None]).astype(np.float32) == Wt).all(-1)
        sel = ok & ~done
        # prefer the largest k that is exact (finest scale) -- any exact one works
        best_d = np.where(sel, d, best_d); done |= ok
    if not done.all():
        raise SystemExit(f"not exactly 4-bit: {(~done).sum()} blocks")
    dd = np.where(best_d == 0, 1, best_d)
    q = (np.round(Wt / dd[..., None]) + 8).astype(np.uint8)
    packed = q[..., 0::2] | (q[..., 1::2] << 4)
    return packed, best_d.astype(np.float32)

new_nodes = []
for n in g.node:
    if n.op_type == 'MatMul' and n.input[1] in inits:
        W = numpy_helper.to_array(inits[n.input[1]])
        K, N = W.shape
        packed, sc = exact_q4(W)
        bn, sn = n.input[1] + '.q4', n.input[1] + '.scales'
        g.initializer.append(numpy_helper.from_array(packed, bn))
        g.initializer.append(numpy_helper.from_array(sc.reshape(-1), sn))
        g.initializer.remove(inits[n.input[1]])
        new_nodes.append(helper.make_node('MatMulNBits', [n.input[0], bn, sn], list(n.output), domain='com.microsoft',
                                          K=K, N=N, bits=4, block_size=32, accuracy_level=acc, name=n.name))
    elif split_attn and n.op_type == 'Attention':
        x, w, b, mask = n.input
        W = numpy_helper.to_array(inits[w]); K, N = W.shape
        packed, sc = exact_q4(W)
        g.initializer.append(numpy_helper.from_array(packed, w + '.q4'))
        g.initializer.append(numpy_helper.from_array(sc.reshape(-1), w + '.scales'))
        g.initializer.remove(inits[w])
        o = n.output[0]
        new_nodes.append(helper.make_node('MatMulNBits', [x, w + '.q4', w + '.scales'], [o + '.qkv'], domain='com.microsoft',
                                          K=K, N=N, bits=4, block_size=32, accuracy_level=acc))
        new_nodes.append(helper.make_node('Split', [o + '.qkv'], [o + '.q', o + '.k', o + '.v'], axis=2, num_outputs=3))
        heads = [a.i for a in n.attribute if a.name == 'num_heads'][0]
        new_nodes.append(helper.make_node('MultiHeadAttention', [o + '.q', o + '.k', o + '.v', b, mask], [o], domain='com.microsoft', num_heads=heads))
    else:
        new_nodes.append(n)
del g.node[:]
g.node.extend(new_nodes)
if split_attn:
    m.opset_import[0].version = max(m.opset_import[0].version, 18)
onnx.save(m, dst)
