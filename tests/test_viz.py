"""fg.viz: DOT content of known graphs (nodes, edges, labels, kernel clusters), rendering, module graphs."""
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import fusegrad as fg
from fusegrad import nn, viz
from fusegrad.nn import functional as F

NODE = re.compile(r'^\s*(n\w+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^\s*(n\w+) -> (n\w+)")
CLUSTER_LABEL = re.compile(r'^\s*graph \[label="((?:[^"\\]|\\.)*)"')


def unescape(text):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def parse_dot(source):
    """{node id: (label lines, attributes, enclosing cluster labels)}, [(src, dst)]."""
    nodes, edges, clusters = {}, [], []
    for line in source.splitlines():
        if line.strip().startswith("subgraph cluster_"):
            clusters.append(None)
        elif line.strip() == "}" and clusters:
            clusters.pop()
        elif (m := CLUSTER_LABEL.match(line)) and clusters:
            clusters[-1] = unescape(m.group(1))
        elif m := NODE.match(line):
            nodes[m.group(1)] = (unescape(m.group(2)).split("\n"), m.group(3), tuple(clusters))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
    return nodes, edges


def by_first_line(nodes):
    return {lines[0]: node_id for node_id, (lines, _, _) in nodes.items()}


def data(shape, seed, name=None, requires_grad=False):
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return fg.tensor(values, name=name, requires_grad=requires_grad)


def test_op_graph_nodes_edges_and_names():
    a = data((2, 3), 0, name="a", requires_grad=True)
    b = data((2, 3), 1, name="b")
    y = (a * b).exp().sum()
    nodes, edges = parse_dot(viz.draw(y))
    first = by_first_line(nodes)
    assert {"a", "b", "MUL", "EXP"} <= set(first)
    assert nodes[first["a"]][0] == ["a", "BUFFER", "(2, 3) float32"]
    assert 'fillcolor="#ffe9a8"' in nodes[first["a"]][1]  # a requires grad: drawn as a parameter
    assert {(first["a"], first["MUL"]), (first["b"], first["MUL"]), (first["MUL"], first["EXP"])} <= set(edges)
    # the sum over all elements ends in a reshape to (): that is the output, green and thick
    outputs = [i for i, (_, attrs, _) in nodes.items() if 'penwidth="2"' in attrs]
    assert len(outputs) == 1 and nodes[outputs[0]][0][-1] == "() float32"
    # every node but the inputs has an incoming edge, every node but the output an outgoing one
    assert {d for _, d in edges} == set(nodes) - {first["a"], first["b"]}
    assert {s for s, _ in edges} == set(nodes) - set(outputs)


def test_graph_without_history_still_names_inputs_and_escapes_labels(tmp_path):
    x = data((4,), 2, name='say "hi" \\path\nline two')
    y = (x * 2 + 1).sqrt()
    source = viz.draw(y, tmp_path / "g.svg")
    nodes, _ = parse_dot(source)
    assert any(lines[:2] == ['say "hi" \\path', "line two"] for lines, _, _ in nodes.values())
    texts = [t.text for t in ET.parse(tmp_path / "g.svg").iter("{http://www.w3.org/2000/svg}text")]
    assert 'say "hi" \\path' in texts and "SQRT" in texts


def test_params_argument_and_module_parameter_names():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert [p.name for p in model.parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    custom = nn.Linear(2, 2)
    custom.weight.name = "mine"
    assert [p.name for p in custom.parameters()] == ["mine", "bias"]
    x = data((5, 3), 3)
    nodes, _ = parse_dot(viz.draw(model(x).sum(), params={"x": x}))
    names = {lines[0] for lines, _, _ in nodes.values()}
    assert {"x", "0.weight", "0.bias", "2.weight", "2.bias"} <= names


def test_fusion_clusters_are_the_kernels_realization_runs():
    a, b = data((16, 8), 4), data((16, 8), 5)
    y = (a - a.amax(1, keepdim=True)).exp().sum(1) * b.sum(1)
    with fg.profile() as p:
        source = viz.draw(y, fusion=True)
    assert p.kernels == []  # drawing schedules, it runs nothing
    nodes, edges = parse_dot(source)
    with fg.profile() as p:
        y.realize()
    clusters = {c[0].split(" ")[0] for _, _, c in nodes.values() if c}
    assert clusters == {k.name for k in p.kernels} and len(p.kernels) >= 2
    # the inputs are buffers outside every kernel; each kernel's ops sit inside its cluster
    buffers = [i for i, (lines, _, c) in nodes.items() if lines[0] == "BUFFER"]
    assert len(buffers) == 2 and all(not nodes[i][2] for i in buffers)
    assert all(c for lines, _, c in nodes.values() if lines[0].split(" ")[0] in ("EXP", "SUM", "RMAX", "MUL"))
    assert len(edges) >= len(nodes) - 2


def test_one_kernel_expression_is_one_cluster():
    a, b, c = data((8, 4), 6), data((8, 4), 7), data((8, 4), 8)
    y = ((a * b + c).relu()).sum(1)
    nodes, _ = parse_dot(viz.draw(y, fusion=True))
    clusters = {c for _, _, c in nodes.values() if c}
    assert len(clusters) == 1
    label = next(iter(clusters))[0]
    with fg.profile() as p:
        y.realize()
    assert label.startswith(p.kernels[0].name + " (")


def test_backward_graph_leaves_grad_untouched():
    w = data((3, 2), 9, name="w", requires_grad=True)
    x = data((4, 3), 10, name="x")
    loss = (x @ w).tanh().sum()
    nodes, edges = parse_dot(viz.draw(loss, backward=True))
    assert w.grad is None
    grad_roots = [i for i, (lines, _, _) in nodes.items() if lines[0] == "grad of w"]
    assert len(grad_roots) == 1 and nodes[grad_roots[0]][0][-1] == "(3, 2) float32"
    grad_nodes = [i for i, (_, attrs, _) in nodes.items() if "#f7dede" in attrs]
    assert grad_nodes  # the gradient ops are drawn in their own colour
    # the gradient reads forward values (tanh's output, x): edges cross from forward to backward nodes
    assert any(s not in grad_nodes and d in grad_nodes and nodes[s][0][0] != "CONST 1" for s, d in edges)
    with pytest.raises(fg.GradError, match="GradientTape"):
        viz.draw(x * 2, backward=True)  # no history was recorded: there is no gradient graph to draw


def test_backward_fusion_matches_the_kernels_backward_runs():
    w = data((6, 5), 11, name="w", requires_grad=True)
    x = data((7, 6), 12)
    loss = F.relu(x @ w).mean()
    nodes, _ = parse_dot(viz.draw(loss, backward=True, fusion=True))
    with fg.profile() as p:
        loss.backward()
    clusters = {c[0].split(" ")[0] for _, _, c in nodes.values() if c}
    assert clusters == {k.name for k in p.kernels}


def test_deep_graphs_are_drawn_iteratively_and_limited():
    x = fg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):  # deeper than Python's recursion limit
        y = y * 1.0001
    assert sys.getrecursionlimit() < 5000
    nodes, edges = parse_dot(viz.draw(y, max_nodes=40))
    shown = [i for i, (lines, _, _) in nodes.items() if not lines[0].startswith("...")]
    assert len(shown) == 40
    markers = [i for i, (lines, _, _) in nodes.items() if lines[0].startswith("...")]
    assert markers and all(nodes[i][0][0] in ("... 1 more input", "... 2 more inputs") for i in markers)
    assert {s for s, _ in edges} >= set(markers) and all(d in shown for s, d in edges if s in markers)
    assert "showing 40 of" in viz.draw(y, max_nodes=40)
    nodes, _ = parse_dot(viz.draw(y, depth=2, max_nodes=None))
    kept = [n for n in nodes.values() if not n[0][0].startswith("...")]
    assert len(kept) == 5  # the result, its 2 inputs, and the 2 inputs of the one that has inputs
    with pytest.raises(ValueError):
        viz.draw(y, max_nodes=0)


def test_render_formats_and_errors(tmp_path, monkeypatch):
    y = (data((3,), 13, name="v") + 1).sum()
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")):
        viz.draw(y, tmp_path / f"g{suffix}")
        assert (tmp_path / f"g{suffix}").read_bytes().startswith(magic)
    source = viz.draw(y, tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == source and source.startswith("digraph")
    with pytest.raises(fg.Error, match=r"\.dot, \.gv, \.svg"):
        viz.draw(y, tmp_path / "g.jpeg")
    monkeypatch.setattr("fusegrad.viz.dot.shutil.which", lambda name: None)
    with pytest.raises(fg.Error, match="Debian package `graphviz`"):
        viz.draw(y, tmp_path / "h.svg")
    viz.draw(y, tmp_path / "h.dot")  # text needs no Graphviz


def test_draw_module_mlp_layer_order(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    source = viz.draw_module(model, fg.zeros(2, 1, 28, 28), tmp_path / "mlp.svg")
    assert (tmp_path / "mlp.svg").stat().st_size > 0
    nodes, edges = parse_dot(source)
    succ = dict(edges)
    chain, cur = [], by_first_line(nodes)["input"]
    while cur in succ:
        cur = succ[cur]
        chain.append(nodes[cur][0])
    kinds = [lines[1].split("(")[0] for lines in chain[:-1]]
    assert kinds == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert chain[1][1] == "Linear(in_features=784, out_features=128,"  # long descriptions wrap
    assert [lines[-1] for lines in chain] == ["(2, 784) float32", "(2, 128) float32", "(2, 128) float32",
                                              "(2, 64) float32", "(2, 64) float32", "(2, 10) float32",
                                              "(2, 10) float32"]
    assert chain[-1][0] == "output" and len(edges) == 7


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.bn = nn.BatchNorm1d(4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return x + self.drop(F.relu(self.bn(self.fc(x))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.blocks = nn.Sequential(Block(), Block())
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.blocks(self.inp(x).tanh()))


def test_draw_module_nesting_residuals_and_no_side_effects():
    net = Net()
    bn = net.blocks[0].bn
    before = (bn.running_mean.numpy().copy(), int(bn.num_batches_tracked.item()))
    x = data((5, 3), 14)
    fg.manual_seed(7)
    expected_next = fg.rand(3).numpy()
    fg.manual_seed(7)
    nodes, edges = parse_dot(viz.draw_module(net, x))
    assert np.array_equal(fg.rand(3).numpy(), expected_next)  # the random stream was restored
    assert np.array_equal(bn.running_mean.numpy(), before[0]) and int(bn.num_batches_tracked.item()) == before[1]
    assert all("forward" not in m.__dict__ for m in net.modules())
    first = by_first_line(nodes)
    assert nodes[first["blocks.0.fc"]][2] == ("blocks: Sequential", "blocks.0: Block")
    assert nodes[first["inp"]][2] == ()
    # residual: block 1's fc reads block 0's dropout output and (through the skip) the first layer
    assert (first["blocks.0.drop"], first["blocks.1.fc"]) in edges and (first["inp"], first["blocks.1.fc"]) in edges
    with pytest.raises(TypeError):
        viz.draw_module(lambda t: t, x)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x, y, scale):
        return self.fc(x) * scale + y, y


def test_draw_module_several_arguments_and_outputs():
    x = np.ones((4, 3), np.float32)  # numpy arguments become tensors; other arguments pass through
    nodes, edges = parse_dot(viz.draw_module(Scaled(), (x, fg.zeros(4, 2), 2.0)))
    first = by_first_line(nodes)
    assert {"input 0", "input 1", "fc", "output 0", "output 1"} == set(first)
    assert set(edges) == {(first["input 0"], first["fc"]), (first["fc"], first["output 0"]),
                          (first["input 1"], first["output 0"]), (first["input 1"], first["output 1"])}
