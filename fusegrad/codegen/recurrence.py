"""The fused recurrent-layer kernel (Op.RECURRENCE, graph/recurrence.py): its loop IR and its body.

A global loop runs over blocks of batch rows; inside, the steps run in order, since each needs the
state the last one left. A block keeps its rows' states in local arrays; per step the product of
the states with the recurrent weights is summed over the hidden units with the weight row of each
unit read once for every row of the block, then each unit's cell update runs on its own. The
backward walks the steps in the other order with the gradients of the states in local arrays, its
product the gate gradients times the weights. One C-family body serves every renderer: blocks of
rows are parallel (OpenMP on the CPU, where the loops over gate columns and units vectorize and the
step product is the renderer's hook, codegen/c_recurrence.py). A GPU renderer that declares
`cooperative` runs a row per block of threads instead, its arrays in shared memory, the loops over
columns and units split among the threads with a barrier after each phase; others a thread per row.
"""
from __future__ import annotations

from ..dtypes import int64
from ..graph.recurrence import GATES, forward_width, state_count
from ..graph.symbolic import Lin, Var, atom, flat_index
from .ir import EndLoop, Loop, LoopIR, Recurrence, Ref, Store
from .lower import KernelSpec, kernel_params, load_at

# a block's local arrays stay within this many bytes (the CPU's stack); rows per block at most
LOCAL_BYTES = 1 << 16
MAX_ROWS = 8


def lower_recurrence(spec: KernelSpec, name: str, blocked: bool, shared_bytes: int) -> LoopIR:
    """The kernel's IR: a global loop over blocks of batch rows (one row each unless `blocked`); a
    row's arrays go to memory its block of threads shares when they fit `shared_bytes`."""
    root = spec.root
    arg = root.arg
    length, batch = root.shape[:2]
    states = state_count(arg.mode)
    if arg.direction == "forward":
        xproj, wt, bias, *initial = root.srcs
        hidden, gates = wt.shape
    else:
        w, *initial = root.srcs[:1 + states]
        saved, grad = root.srcs[1 + states:]
        gates, hidden = w.shape
    tv, nv, jv, kv = Var("r_t", length), Var("r_n", batch), Var("r_j", gates), Var("r_k", hidden)
    pv = Var("r_tp", length)
    t, n, j, k = atom(tv), atom(nv), atom(jv), atom(kv)
    reads = [(f"{s}0", load_at(spec, node, (n, k))) for s, node in zip("hc", initial)]
    if arg.direction == "forward":
        reads += [("bias", load_at(spec, bias, (j,))), ("wt", load_at(spec, wt, (k, j)))]
        reads += [(f"x{m}", load_at(spec, xproj, (t, n, k + m * hidden))) for m in range(gates // hidden)]
    else:
        reads.append(("w", load_at(spec, w, (j, k))))
        reads += [(f"s{m}", load_at(spec, saved, (t, n, k + m * hidden)))
                  for m in range(forward_width(arg.mode, hidden) // hidden)]
        reads += [(f"s{m}p", load_at(spec, saved, (atom(pv), n, k + m * hidden))) for m in range(states)]
        reads += [(f"g{m}", load_at(spec, grad, (t, n, k + m * hidden))) for m in range(states)]
    rows = block_rows(gates, hidden, root.dtype.itemsize) if blocked else 1
    shared = not blocked and row_bytes(gates, hidden, root.dtype.itemsize) <= shared_bytes
    bv = Var("r_b", -(-batch // rows))
    out = flat_index((t, n, Lin((), 0)), root.shape)
    stmt = Recurrence(arg.mode, arg.direction, arg.reverse, root.dtype, tv, pv, nv, jv, kv, bv, rows, shared,
                      tuple(reads), out)
    work = 2 * length * batch * gates * hidden
    return LoopIR(name, kernel_params(spec), [Loop(bv, "global"), stmt, EndLoop("global")], work)


def row_bytes(gates: int, hidden: int, itemsize: int) -> int:
    """Bytes of a row's local arrays: a gate row and three states, in the compute type (at most)."""
    return (gates + 3 * hidden) * max(itemsize, 4)


def block_rows(gates: int, hidden: int, itemsize: int) -> int:
    """Rows per block: as many as keep the block's arrays within LOCAL_BYTES, at most MAX_ROWS, at least one."""
    return max(1, min(MAX_ROWS, LOCAL_BYTES // row_bytes(gates, hidden, itemsize)))


def recurrence_lines(r, s: Recurrence) -> list[str]:
    """The C-family statements computing one block of rows of `s` with renderer `r`."""
    ct, index = r.compute_type(s.dtype), r.storage_type(int64)
    exp = r.math_fn("exp", s.dtype)
    one, two, zero = (r.literal(v, s.dtype) for v in (1, 2, 0))
    big_l, big_n, big_h, big_g, rows = s.t.extent, s.n.extent, s.k.extent, s.j.extent, s.rows
    t, n, j, k, b = s.t.name, s.n.name, s.j.name, s.k.name, s.block.name
    ld = {name: r.load(load) for name, load in s.reads}
    lane, lanes, barrier, qualifier = r.cooperative if s.shared else ("", "", "", "")
    sync = [barrier] if s.shared else []

    def array(name: str, width: int, zero: bool = False) -> str:
        """A local array of the block's rows; zeroed where the rows past the batch's end are computed too."""
        if s.shared:
            return f"{qualifier} {ct} {name}[1][{width}];"
        return f"{ct} {name}[{rows}][{width}]{r.local_align}" + (" = {0};" if zero and rows > 1 else ";")

    def sig(x: str) -> str:
        return f"({one} / ({one} + {exp}(-({x}))))"

    def tanh(x: str) -> str:
        return f"({one} - {two} / ({exp}({two} * ({x})) + {one}))"

    def over(var: str, extent: int, body: list[str], vector: bool = True) -> list[str]:
        """A loop over units or gate columns: the block's threads take turns where they share the arrays."""
        if s.shared:
            return [f"for ({index} {var} = {lane}; {var} < {extent}; {var} += {lanes}) {{",
                    *("  " + x for x in body), "}"]
        pragma = r.inner_pragma(None) if vector else ""
        head = f"for ({index} {var} = 0; {var} < {extent}; {var}++) {{"
        return ([pragma] if pragma else []) + [head, *("  " + x for x in body), "}"]

    def rows_loop(body: list[str]) -> list[str]:
        return [f"for ({index} fg_r = 0; fg_r < fg_rows; fg_r++) {{",
                f"  const {index} {n} = {b} * {rows} + fg_r;", *("  " + x for x in body), "}"]

    def store(column: int, value: str) -> str:
        return r.store(Store(0, s.out + atom(s.k) + column, Ref(value, s.dtype), s.dtype))

    lstm = s.mode == "LSTM"
    head = [f"const {index} fg_rows = {big_n} - {b} * {rows} < {rows} ? {big_n} - {b} * {rows} : {rows};"]
    if s.direction == "forward":
        arrays = [array("fg_h", big_h, True), array("fg_a", big_g, True)] + ([array("fg_c", big_h)] if lstm else [])
        init = rows_loop(over(k, big_h, [f"fg_h[fg_r][{k}] = {ld['h0']};"] +
                                        ([f"fg_c[fg_r][{k}] = {ld['c0']};"] if lstm else []), False))
        order = f"{big_l} - 1 - fg_s" if s.reverse else "fg_s"
        product = [*rows_loop(over(j, big_g, [f"fg_a[fg_r][{j}] = {ld['bias']};"])),
                   *r.recurrence_product(s, "fg_a", "fg_h", s.read("wt"), s.j, s.k), *sync]
        step = [f"const {index} {t} = {order};", *product,
                *rows_loop(over(k, big_h, _forward_cell(s, ld, sig, tanh, store, ct, one, zero))), *sync]
        body = [*arrays, *head, *init, *sync, f"for ({index} fg_s = 0; fg_s < {big_l}; fg_s++) {{",
                *("  " + x for x in step), "}"]
    else:
        arrays = [array("fg_dh", big_h), array("fg_p", big_h, True), array("fg_d", big_g, True)] + \
                 ([array("fg_dc", big_h)] if lstm else [])
        init = rows_loop(over(k, big_h, [f"fg_dh[fg_r][{k}] = {zero};"] +
                                        ([f"fg_dc[fg_r][{k}] = {zero};"] if lstm else []), False))
        order = f"{big_l} - 1 - fg_f" if s.reverse else "fg_f"
        dh_column = big_g + (0 if s.mode != "GRU" else big_h)
        product = r.recurrence_product(s, "fg_p", "fg_d", s.read("w"), s.k, s.j)
        carry = [f"fg_dh[fg_r][{k}] = fg_p[fg_r][{k}];", store(dh_column, f"fg_p[fg_r][{k}]")] + \
                ([store(dh_column + big_h, f"fg_dc[fg_r][{k}]")] if lstm else [])
        step = [f"const {index} fg_f = {big_l} - 1 - fg_s;  // the step's place in the forward's order",
                f"const {index} {t} = {order};",
                # the step before in the forward's order; the first step reads its own row (never used)
                f"const {index} {s.before.name} = fg_f == 0 ? {t} : {t} {'+' if s.reverse else '-'} 1;",
                *rows_loop(over(k, big_h, _backward_cell(s, ld, tanh, store, ct, one, zero))), *sync,
                *product, *rows_loop(over(k, big_h, carry)), *sync]
        body = [*arrays, *head, *init, f"for ({index} fg_s = 0; fg_s < {big_l}; fg_s++) {{",
                *("  " + x for x in step), "}"]
    return ["{", *("  " + x for x in body), "}"]


def plain_product(r, s: Recurrence, out: str, inp: str, matrix, x: Var, y: Var, start: int = 0) -> list[str]:
    """out[row][x] += sum over y of inp[row][y] * matrix(y, x) for the block's rows and the columns x
    from `start` on, as loops."""
    ct, index = r.compute_type(s.dtype), r.storage_type(int64)
    pragma = r.inner_pragma(None)
    return [f"for ({index} {y.name} = 0; {y.name} < {y.extent}; {y.name}++) {{",
            f"  for ({index} fg_r = 0; fg_r < fg_rows; fg_r++) {{",
            f"    const {ct} fg_in = {inp}[fg_r][{y.name}];",
            *([f"    {pragma}"] if pragma else []),
            f"    for ({index} {x.name} = {start}; {x.name} < {x.extent}; {x.name}++) "
            f"{out}[fg_r][{x.name}] += fg_in * {r.load(matrix)};",
            "  }", "}"]


def _forward_cell(s: Recurrence, ld: dict, sig, tanh, store, ct: str, one: str, zero: str) -> list[str]:
    """One unit's step of the forward: the gates from the input projection and the product in fg_a,
    the new state into the local arrays and the output row."""
    k, h = s.k.name, s.k.extent
    a = [f"fg_a[fg_r][{m * h} + {k}]" for m in range(GATES[s.mode])]
    if s.mode == "LSTM":
        lines = [f"const {ct} fg_i = {sig(ld['x0'] + ' + ' + a[0])};",
                 f"const {ct} fg_fg = {sig(ld['x1'] + ' + ' + a[1])};",
                 f"const {ct} fg_g = {tanh(ld['x2'] + ' + ' + a[2])};",
                 f"const {ct} fg_o = {sig(ld['x3'] + ' + ' + a[3])};",
                 f"const {ct} fg_cv = fg_fg * fg_c[fg_r][{k}] + fg_i * fg_g;",
                 f"const {ct} fg_hv = fg_o * {tanh('fg_cv')};",
                 f"fg_c[fg_r][{k}] = fg_cv;"]
        saved = ["fg_hv", "fg_cv", "fg_i", "fg_fg", "fg_g", "fg_o"]
    elif s.mode == "GRU":
        lines = [f"const {ct} fg_rv = {sig(ld['x0'] + ' + ' + a[0])};",
                 f"const {ct} fg_z = {sig(ld['x1'] + ' + ' + a[1])};",
                 f"const {ct} fg_hn = {a[2]};",
                 f"const {ct} fg_nv = {tanh(ld['x2'] + ' + fg_rv * fg_hn')};",
                 f"const {ct} fg_hv = ({one} - fg_z) * fg_nv + fg_z * fg_h[fg_r][{k}];"]
        saved = ["fg_hv", "fg_rv", "fg_z", "fg_nv", "fg_hn"]
    else:
        pre = f"{ld['x0']} + {a[0]}"
        act = tanh(pre) if s.mode == "RNN_TANH" else f"(fg_pre < {zero} ? {zero} : fg_pre)"  # NaN stays NaN
        lines = [f"const {ct} fg_pre = {pre};", f"const {ct} fg_hv = {act};"]
        saved = ["fg_hv"]
    lines.append(f"fg_h[fg_r][{k}] = fg_hv;")
    return lines + [store(m * h, v) for m, v in enumerate(saved)]


def _backward_cell(s: Recurrence, ld: dict, tanh, store, ct: str, one: str, zero: str) -> list[str]:
    """One unit's step of the backward: the gate gradients (input side to the output row, weight side
    to fg_d) and the part of the previous state's gradient that skips the product (to fg_p)."""
    k, h = s.k.name, s.k.extent
    first = "fg_f == 0"
    lines = [f"const {ct} fg_dhv = fg_dh[fg_r][{k}] + {ld['g0']};"]
    if s.mode == "LSTM":
        lines += [f"const {ct} fg_i = {ld['s2']}, fg_fg = {ld['s3']}, fg_g = {ld['s4']}, fg_o = {ld['s5']};",
                  f"const {ct} fg_cp = {first} ? {ld['c0']} : {ld['s1p']};",
                  f"const {ct} fg_tc = {tanh(ld['s1'])};",
                  f"const {ct} fg_dcv = fg_dc[fg_r][{k}] + {ld['g1']} + fg_dhv * fg_o * ({one} - fg_tc * fg_tc);",
                  f"fg_dc[fg_r][{k}] = fg_dcv * fg_fg;"]
        grads = [f"fg_dcv * fg_g * fg_i * ({one} - fg_i)", f"fg_dcv * fg_cp * fg_fg * ({one} - fg_fg)",
                 f"fg_dcv * fg_i * ({one} - fg_g * fg_g)", f"fg_dhv * fg_tc * fg_o * ({one} - fg_o)"]
        names = ["fg_di", "fg_df", "fg_dg", "fg_do"]
        weight_side, direct = names, zero
    elif s.mode == "GRU":
        lines += [f"const {ct} fg_rv = {ld['s1']}, fg_z = {ld['s2']}, fg_nv = {ld['s3']}, fg_hn = {ld['s4']};",
                  f"const {ct} fg_hp = {first} ? {ld['h0']} : {ld['s0p']};"]
        grads = [f"fg_dn * fg_hn * fg_rv * ({one} - fg_rv)", f"fg_dhv * (fg_hp - fg_nv) * fg_z * ({one} - fg_z)",
                 f"fg_dhv * ({one} - fg_z) * ({one} - fg_nv * fg_nv)", "fg_dn * fg_rv"]
        names = ["fg_dr", "fg_dz", "fg_dn", "fg_dhn"]
        lines.append(f"const {ct} fg_dn = {grads[2]};")
        grads[2] = None
        weight_side, direct = ["fg_dr", "fg_dz", "fg_dhn"], "fg_dhv * fg_z"
    else:
        slope = f"({one} - fg_hv * fg_hv)" if s.mode == "RNN_TANH" else f"(fg_hv > {zero} ? {one} : {zero})"
        lines.append(f"const {ct} fg_hv = {ld['s0']};")
        grads, names = [f"fg_dhv * {slope}"], ["fg_dp"]
        weight_side, direct = names, zero
    lines += [f"const {ct} {name} = {g};" for name, g in zip(names, grads) if g is not None]
    lines += [f"fg_d[fg_r][{m * h} + {k}] = {name};" for m, name in enumerate(weight_side)]
    lines.append(f"fg_p[fg_r][{k}] = {direct};")
    return lines + [store(m * h, name) for m, name in enumerate(names)]
