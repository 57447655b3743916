"""Graph variants of a fused fp32 encoder (models/build_onnx.py), each then
quantized like the shipped int8 graph. OPTS, comma-separated: ln (residual +
LayerNorm as plain ops), fastgelu, gelu20, mha (QKV MatMul + Split +
MultiHeadAttention). usage: variant.py FP32.onnx OUT_PREFIX OPTS"""
import sys, numpy as np, onnx
from onnx import helper, TensorProto
src, dst, opts = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
m = onnx.load(src); g = m.graph; out = []
for n in g.node:
    if 'ln' in opts and n.op_type == 'SkipLayerNormalization':
        a, skip, w, b, bias = n.input
        eps = [x.f for x in n.attribute if x.name == 'epsilon'][0]
        o = n.output[0]
        out.append(helper.make_node('Add', [a, bias], [o + '.ab']))
        out.append(helper.make_node('Add', [o + '.ab', skip], [o + '.res']))
        out.append(helper.make_node('LayerNormalization', [o + '.res', w, b], [o], axis=-1, epsilon=eps))
    elif 'fastgelu' in opts and n.op_type == 'BiasGelu':
        out.append(helper.make_node('FastGelu', list(n.input), list(n.output), domain='com.microsoft'))
    elif 'gelu20' in opts and n.op_type == 'BiasGelu':
        o = n.output[0]
        out.append(helper.make_node('Add', list(n.input), [o + '.ab']))
        out.append(helper.make_node('Gelu', [o + '.ab'], [o]))
    elif 'mha' in opts and n.op_type == 'Attention':
        x, w, b, mask = n.input
        o = n.output[0]
        heads = [a.i for a in n.attribute if a.name == 'num_heads'][0]
        out.append(helper.make_node('MatMul', [x, w], [o + '.qkv']))
        out.append(helper.make_node('Split', [o + '.qkv'], [o + '.q', o + '.k', o + '.v'], axis=2))
        out.append(helper.make_node('MultiHeadAttention', [o + '.q', o + '.k', o + '.v', b, mask], [o], domain='com.microsoft', num_heads=heads))
    else:
        out.append(n)
del g.node[:]; g.node.extend(out)
if 'gelu20' in opts:
    for o in m.opset_import:
        if o.domain in ('', 'ai.onnx'): o.version = 20
    m.ir_version = 9
onnx.save(m, dst + '.fp32.onnx')
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(dst + '.fp32.onnx', dst + '.int8.onnx', per_channel=True, weight_type=QuantType.QInt8,
                 extra_options={"DefaultTensorType": TensorProto.FLOAT})
