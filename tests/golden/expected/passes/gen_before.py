# Writes the *.before.gsir inputs of the BN-folding, fusion and pattern golden tests (seeded numpy
# values, printed with 6 significant digits). The expected *.after.gsir files are produced by
# passes_golden_test.cpp with GS_UPDATE_GOLDEN=1 and reviewed by hand.
import numpy as np

rng = np.random.default_rng(7)


def t(dtype, shape, vals):
    flat = ', '.join(f'{v:.6g}' for v in np.asarray(vals).reshape(-1))
    dims = ','.join(str(d) for d in shape)
    return f'{dtype}[{dims}] = tensor<{dtype}[{dims}]>[{flat}]'


def p(name, shape, frozen=False, positive=False, dtype='f32'):
    v = rng.uniform(0.5, 1.5, shape) if positive else rng.normal(size=shape)
    return f'  param {"frozen " if frozen else ""}%{name}: {t(dtype, shape, v)}'


def bn(prefix, c):
    return [p(f'{prefix}.weight', [c], positive=True), p(f'{prefix}.bias', [c]),
            p(f'{prefix}.running_mean', [c], frozen=True),
            p(f'{prefix}.running_var', [c], frozen=True, positive=True)]


def bnnode(out, x, prefix):
    return (f'  %{out} = BatchNormalization(%{x}, %{prefix}.weight, %{prefix}.bias, '
            f'%{prefix}.running_mean, %{prefix}.running_var) @{prefix} {{epsilon=1e-05, momentum=0.9}}')


def write(name, lines):
    with open(f'{name}.before.gsir', 'w') as f:
        f.write('\n'.join([f'graph "{name}" {{', '  opset "" 17'] + lines + ['}']) + '\n')


conv_attrs = '{dilations=[1,1], group=1, kernel_shape=[1,1], pads=[0,0,0,0], strides=[1,1]}'
write('bn_fold_conv', [
    '  input %x: f32[N,2,3,3]',
    p('c1.weight', [3, 2, 1, 1]), p('c1.bias', [3]), *bn('c1.bn', 3),
    p('c2.weight', [2, 3, 1, 1]), *bn('c2.bn', 2),
    f'  %c1 = Conv(%x, %c1.weight, %c1.bias) @c1 {conv_attrs}',
    bnnode('b1', 'c1', 'c1.bn'),
    '  %r1 = Relu(%b1) @r1',
    f'  %c2 = Conv(%r1, %c2.weight) @c2 {conv_attrs}',
    bnnode('out', 'c2', 'c2.bn'),
    '  output %out',
])
write('bn_fold_conv_transpose', [
    '  input %x: f32[N,4,3,3]',
    p('ct.weight', [4, 1, 2, 2]), p('ct.bias', [2]), *bn('ct.bn', 2),
    '  %ct = ConvTranspose(%x, %ct.weight, %ct.bias) @ct {group=2, kernel_shape=[2,2], strides=[2,2]}',
    bnnode('y', 'ct', 'ct.bn'),
    '  output %y',
])
write('bn_fold_gemm_matmul', [
    '  input %x: f32[N,3]',
    p('fc.weight', [2, 3]), p('fc.bias', [2]), *bn('fc.bn', 2),
    p('mm.weight', [2, 4]), *bn('mm.bn', 4),
    '  %fc = Gemm(%x, %fc.weight, %fc.bias) @fc {transB=1}',
    bnnode('h', 'fc', 'fc.bn'),
    '  %mm = MatMul(%h, %mm.weight) @mm',
    bnnode('y', 'mm', 'mm.bn'),
    '  output %y',
])
# Negative cases: a second consumer of the conv output, and a weight that is a graph input.
write('bn_fold_blocked', [
    '  input %x: f32[N,2,3,3]',
    '  input %w_dyn: f32[2,2,1,1]',
    p('c1.weight', [2, 2, 1, 1]), *bn('c1.bn', 2), *bn('c2.bn', 2),
    f'  %c1 = Conv(%x, %c1.weight) @c1 {conv_attrs}',
    bnnode('b1', 'c1', 'c1.bn'),
    '  %side = Relu(%c1) @side',
    '  %sum = Add(%b1, %side) @sum',
    f'  %c2 = Conv(%sum, %w_dyn) @c2 {conv_attrs}',
    bnnode('y', 'c2', 'c2.bn'),
    '  output %y',
])
write('conv_act_fusion', [
    '  input %x: f32[N,2,4,4]',
    p('c1.weight', [3, 2, 1, 1]), p('c1.bias', [3]), p('c2.weight', [3, 3, 1, 1]),
    p('c3.weight', [2, 3, 1, 1]), p('c4.weight', [2, 2, 1, 1]),
    '  param frozen %zero: f32[] = tensor<f32[]>[0]',
    '  param frozen %six: f32[] = tensor<f32[]>[6]',
    f'  %c1 = Conv(%x, %c1.weight, %c1.bias) @c1 {conv_attrs}',
    '  %r1 = Relu(%c1) @r1',
    f'  %c2 = Conv(%r1, %c2.weight) @c2 {conv_attrs}',
    '  %r2 = Clip(%c2, %zero, %six) @relu6',
    f'  %c3 = Conv(%r2, %c3.weight) @c3 {conv_attrs}',
    '  %r3 = LeakyRelu(%c3) @leaky {alpha=0.2}',
    # Blocked: the conv output is also read by the Add (a data dependency outside the pair).
    f'  %c4 = Conv(%r3, %c4.weight) @c4 {conv_attrs}',
    '  %s4 = Sigmoid(%c4) @sig',
    '  %y = Add(%s4, %c4) @residual',
    '  output %y',
])
write('pattern_residual', [
    '  input %x: f32[N,2,3,3]',
    p('b1.conv.weight', [2, 2, 1, 1]), p('b2.conv.weight', [2, 2, 1, 1]),
    f'  %b1.conv = Conv(%x, %b1.conv.weight) @b1.conv {conv_attrs}',
    '  %b1.relu = Relu(%b1.conv) @b1.relu',
    '  %b1.add = Add(%x, %b1.relu) @b1.add',
    f'  %b2.conv = Conv(%b1.add, %b2.conv.weight) @b2.conv {conv_attrs}',
    '  %b2.relu = Relu(%b2.conv) @b2.relu',
    '  %b2.add = Add(%b2.relu, %b1.add) @b2.add',
    # Not residual: the Add reads a different value than the conv input.
    f'  %c3 = Conv(%b2.add, %b2.conv.weight) @c3 {conv_attrs}',
    '  %r3 = Relu(%c3) @r3',
    '  %a3 = Add(%r3, %b1.add) @a3',
    '  output %a3',
])
write('pattern_qdq', [
    '  input %x: f32[N,4]',
    '  param frozen %s: f32[] = tensor<f32[]>[0.05]',
    '  param frozen %s2: f32[] = tensor<f32[]>[0.1]',
    '  param frozen %z: i8[] = tensor<i8[]>[0]',
    '  %q1 = QuantizeLinear(%x, %s, %z) @q1',
    '  %d1 = DequantizeLinear(%q1, %s, %z) @d1',
    '  %r = Relu(%d1) @relu',
    '  %q2 = QuantizeLinear(%r, %s, %z) @q2',
    '  %d2 = DequantizeLinear(%q2, %s2, %z) @d2',
    '  output %d2',
])
write('pattern_attention', [
    '  input %q: f32[N,2,4,8]',
    '  input %k: f32[N,2,4,8]',
    '  input %v: f32[N,2,4,8]',
    '  %kt = Transpose(%k) @kt {perm=[0,1,3,2]}',
    '  %scores = MatMul(%q, %kt) @scores',
    '  %probs = Softmax(%scores) @probs {axis=-1}',
    '  %ctx = MatMul(%probs, %v) @ctx',
    # Softmax over a non-last axis: not an attention block.
    '  %s2 = MatMul(%ctx, %kt) @s2',
    '  %p2 = Softmax(%s2) @p2 {axis=1}',
    '  %c2 = MatMul(%p2, %v) @c2',
    '  output %c2',
])
write('pattern_commutative', [
    '  input %x: f32[N,4]',
    '  param frozen %one: f32[] = tensor<f32[]>[1]',
    '  param frozen %zero: f32[] = tensor<f32[]>[0]',
    '  param frozen %two: f32[] = tensor<f32[]>[2]',
    '  %a = Mul(%x, %one) @a',
    '  %b = Mul(%one, %a) @b',
    '  %c = Add(%zero, %b) @c',
    '  %d = Add(%c, %zero) @d',
    '  %e = Mul(%two, %d) @e',
    '  %f = Relu(%e) @f',
    '  output %f',
])
