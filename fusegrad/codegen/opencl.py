"""OpenCL C: the global loops of a kernel become one flat range of work-items; the rest runs
sequentially inside each work-item, or, when outputs are few and reductions long (lanes.py's plan),
is shared by the lanes of a work-group that combine their partials through local memory."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..dtypes import DType
from ..graph.symbolic import Var
from ..runtime.opencl import LANES_MACRO, lanes_comment
from .ir import Accumulate, Attention, EndLoop, Expr, Index, Load, Loop, LoopIR, Rand, Recurrence, Ref, Store
from . import float8
from .lanes import LaneCombine, LaneLoop, LaneStore, thread_plan
from .recurrence import row_bytes
from .render import CStyleRenderer, decompose

# Helpers with the semantics of c.py's preamble (floor division, NaN-propagating max, bf16
# rounding, Philox), in OpenCL C. Double versions only where the device has cl_khr_fp64.
OPENCL_PREAMBLE = r"""#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
#define INT8_MIN CHAR_MIN
#define INT16_MIN SHRT_MIN
#define INT32_MIN INT_MIN
#define INT64_MIN LONG_MIN
static inline float fg_bf16_to_f32(ushort x) { return as_float((uint)x << 16); }
static inline ushort fg_f32_to_bf16(float f) {
  uint u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
  return (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
static inline uint fg_f32_bits(float f) { return as_uint(f); }
static inline float fg_bits_f32(uint u) { return as_float(u); }
static inline ushort fg_f16_bits(float f) { ushort u; vstore_half_rte(f, 0, (__private half*)&u); return u; }
static inline float fg_bits_f16(ushort u) { return vload_half(0, (const __private half*)&u); }
static inline float fg_maxf(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float fg_fmodf(float a, float b) {
  float r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
#ifdef cl_khr_fp64
static inline ulong fg_f64_bits(double f) { return as_ulong(f); }
static inline double fg_bits_f64(ulong u) { return as_double(u); }
static inline double fg_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double fg_fmod(double a, double b) {
  double r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
#endif
/* integer division and remainder round toward -inf like Python; x/0 gives 0 instead of a trap */
static inline long fg_floordiv(long a, long b) {
  if (b == 0) return 0;
  if (b == -1) return (long)(0UL - (ulong)a);
  long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline long fg_floormod(long a, long b) {
  if (b == 0 || b == -1) return 0;
  long r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
static inline long fg_ipow(long a, long b) {
  if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
  ulong r = 1, x = (ulong)a;
  while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }
  return (long)r;
}
/* a failed data check claims the error word (runtime/device_errors.py) unless one already has */
static inline void fg_check(__global const long* word, int code, int ok, long value, long position) {
  if (!ok && atomic_cmpxchg((volatile __global int*)word, 0, code) == 0) {
    ((__global long*)word)[1] = value; ((__global long*)word)[2] = position;
  }
}
/* Philox4x32-10: element `ctr` of the stream `seed`, as a uniform float in [0, 1) (same bits as c.py) */
static inline float fg_rand(ulong seed, ulong ctr) {
  uint c0 = (uint)ctr, c1 = (uint)(ctr >> 32), c2 = 0x243F6A88u, c3 = 0x85A308D3u;
  uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
  for (int i = 0; i < 10; i++) {
    uint n0 = mul_hi(0xCD9E8D57u, c2) ^ c1 ^ k0, n2 = mul_hi(0xD2511F53u, c0) ^ c3 ^ k1;
    c1 = 0xCD9E8D57u * c2; c3 = 0xD2511F53u * c0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return (float)(c0 >> 8) * (1.0f / 16777216.0f);
}

""" + float8.helpers("static inline", "uchar", "uint", "rint")


@dataclass(frozen=True)
class _Groups(Loop):
    """The output space walked by work-groups: a group's lanes share one element at a time."""

    threads: tuple[Var, ...] = ()
    lanes: int = 1  # the plan's lanes: the local arrays' length, so the most lanes a launch may give


_DECLARE = "  const long {name} = {value};"  # an index variable recovered from the flat work index


def _red(ct: str, k: int) -> str:
    """The local array that the k-th accumulator of a combine (of compute type `ct`) passes through."""
    return f"fg_red_{ct}_{k}"


# the private arrays of one work-group's items together: PoCL runs a group's items in a loop on one
# thread, their private arrays on its stack (groups of 1024 items of an LSTM's 14 KiB overflowed it)
GROUP_PRIVATE_BYTES = 1 << 16
MOST_GROUP_ITEMS = 64


def private_group_size(ir: LoopIR) -> int | None:
    """The work-group size a kernel with a fused row's private arrays requires (a power of two whose
    arrays fit GROUP_PRIVATE_BYTES, at most MOST_GROUP_ITEMS), None for other kernels."""
    s = next((s for s in ir.stmts if isinstance(s, (Attention, Recurrence))), None)
    if s is None:
        return None
    if isinstance(s, Recurrence):
        per_item = row_bytes(s.j.extent, s.k.extent, s.dtype.itemsize)
    else:  # at most two head-wide vectors of each side (grad_kv)
        per_item = 2 * (s.d.extent + s.e.extent) * max(s.dtype.itemsize, 4)
    fit = max(1, GROUP_PRIVATE_BYTES // per_item)
    return min(MOST_GROUP_ITEMS, 1 << (fit.bit_length() - 1))


class OpenCLRenderer(CStyleRenderer):
    kernel_prefix = "__kernel void"
    # bool is not allowed in kernel parameters: stored as uchar 0/1. half is storage only
    # (vload_half/vstore_half), so devices without cl_khr_fp16 run float16 too.
    storage_types = {"bool": "uchar", "uint8": "uchar", "int8": "char", "int16": "short", "int32": "int",
                     "int64": "long", "float16": "half", "bfloat16": "ushort", "float32": "float",
                     "float64": "double", "float8_e4m3fn": "uchar", "float8_e5m2": "uchar"}
    unsigned_types = {1: "uchar", 2: "ushort", 4: "uint", 8: "ulong"}
    preamble = OPENCL_PREAMBLE
    supports_gemm = False

    def signature(self, ir: LoopIR) -> str:
        """Each buffer comes as its memory object and a byte offset into it (`p3_base`, `p3_at`):
        OpenCL has no pointers to pass, and a range of a buffer as a sub-buffer would need the
        device's base-address alignment (and crashed NVIDIA's driver on release, docs/gpu.md)."""
        params = []
        for i, p in enumerate(ir.params):
            params += [f"__global {'' if p.output else 'const '}uchar* p{i}_base", f"ulong p{i}_at"]
        group = private_group_size(ir)
        prefix = self.kernel_prefix if group is None else \
            f"__kernel __attribute__((reqd_work_group_size({group}, 1, 1))) void"
        return f"{prefix} {ir.name}({', '.join(params)})"

    def entry(self, ir: LoopIR) -> list[str]:
        lines = []
        for i, p in enumerate(ir.params):
            ptr = f"__global {'' if p.output else 'const '}{self.storage_type(p.dtype)}*"
            lines.append(f"{ptr} restrict p{i} = ({ptr})(p{i}_base + p{i}_at);")
        return lines

    def literal(self, value: object, dtype: DType) -> str:
        if dtype.name != "int64":
            return super().literal(value, dtype)
        v = int(value)  # type: ignore[call-overload]
        return "(-9223372036854775807L-1)" if v == -2**63 else f"{v}L"  # no long long in OpenCL C

    def math_fn(self, name: str, dtype: DType) -> str:
        # OpenCL's built-ins are overloaded on float and double; only the preamble's helpers are not
        return super().math_fn(name, dtype) if name.startswith("fg_") else name

    def load(self, e: Load) -> str:
        index = e.index.render()
        if e.dtype.name == "float16":
            text = f"vload_half({index}, p{e.param})"
        else:
            text = self.widened(f"p{e.param}[{index}]", e.dtype)
        if e.valid:
            text = f"(({' && '.join(b.render() for b in e.valid)}) ? {text} : 0)"
        return text

    def expr(self, e: Expr) -> str:
        if isinstance(e, Index):
            return f"((long){e.index.render()})"
        if isinstance(e, Rand):
            state = f"p{e.state_param}"
            return f"fg_rand((ulong){state}[0], (ulong){state}[1] + (ulong){e.index.render()})"
        return super().expr(e)

    def store(self, s: Store) -> str:
        if isinstance(s, LaneStore):
            return f"if (lane == 0) {{ {self.store(Store(s.param, s.index, s.value, s.dtype))} }}"
        if s.dtype.name == "float16":
            return f"vstore_half_rte({self.expr(s.value)}, {s.index.render()}, p{s.param});"
        return super().store(s)

    def statement(self, s: object) -> list[str]:
        """A lane combine: a tree over the work-group's lanes in local memory (OpenCL 1.2 has no
        portable shuffles); every lane ends holding the total. `fg_lanes` is a power of two."""
        if not isinstance(s, LaneCombine):
            return super().statement(s)
        arrays = [(_red(self.compute_type(acc.dtype), k), acc) for k, acc in enumerate(s.accs)]
        lines = [f"{red}[lane] = {acc.name};" for red, acc in arrays]
        lines += ["barrier(CLK_LOCAL_MEM_FENCE);", "for (int fg_s = fg_lanes >> 1; fg_s > 0; fg_s >>= 1) {",
                  "  if (lane < fg_s) {"]
        for red, acc in arrays:
            partial = self.accumulate(Accumulate(acc.name, acc.op, Ref(f"{red}[lane + fg_s]", acc.dtype), acc.dtype))
            lines.append(f"    {partial} {red}[lane] = {acc.name};")
        lines += ["  }", "  barrier(CLK_LOCAL_MEM_FENCE);", "}"]
        lines += [f"{acc.name} = {red}[0];" for red, acc in arrays]
        lines.append("barrier(CLK_LOCAL_MEM_FENCE);  // the arrays are reused by the next combine or output")
        return lines

    def loop_open(self, loop: Loop, nest: int, work: int, body: list) -> list[str]:
        """The first global loop of a nest opens one grid-stride loop over the whole flattened nest
        (the launch size is the device's choice, so any kernel runs on any launch); the nest's
        other global loops only open a scope, their indices being decomposed here. With lanes, the
        work-groups stride over the outputs instead, so every lane of a group meets every barrier."""
        v = loop.var.name
        if isinstance(loop, LaneLoop):
            return [f"for (long {v} = lane; {v} < {loop.var.extent}; {v} += fg_lanes) {{"]
        if isinstance(loop, _Groups):
            return self._groups_open(loop, body)
        if loop.kind != "global":
            return [f"for (long {v} = 0; {v} < {loop.var.extent}; {v}++) {{"]
        if not nest:
            return ["{"]
        loops = [loop.var] + [lp.var for lp in body[:nest - 1]]
        total = math.prod(lp.extent for lp in loops)
        return [f"for (long fg_gid = get_global_id(0); fg_gid < {total}; fg_gid += get_global_size(0)) {{",
                *decompose("fg_gid", loops, _DECLARE)]

    def _groups_open(self, loop: _Groups, body: list) -> list[str]:
        """Kernel-scope local arrays (OpenCL C allows them nowhere else) and lane indices, then the
        loop of work-groups over the outputs."""
        arrays = {_red(self.compute_type(acc.dtype), k): self.compute_type(acc.dtype)
                  for s in body if isinstance(s, LaneCombine) for k, acc in enumerate(s.accs)}
        lines = [f"__local {ct} {red}[{loop.lanes}];" for red, ct in sorted(arrays.items())]
        lines += ["const int lane = (int)get_local_id(0), fg_lanes = (int)get_local_size(0);",
                  f"for (long fg_gid = get_group_id(0); fg_gid < {math.prod(v.extent for v in loop.threads)}; "
                  "fg_gid += get_num_groups(0)) {"]
        return lines + decompose("fg_gid", list(loop.threads), _DECLARE)

    def render_kernel(self, ir: LoopIR) -> str:
        """The kernel; one planned with lanes comes twice, shared by lanes in builds that define
        FG_LANES (devices that run lanes) and plain in the others (PoCL compiles barriers slowly)."""
        threads, body, lanes = thread_plan(ir)
        if lanes == 1:
            return self._plain(ir)
        stmts = [_Groups(Var("fg_gid", 1), "groups", threads, lanes), *body, EndLoop("groups")]
        shared = super().render_kernel(LoopIR(ir.name, ir.params, stmts, ir.work))
        comment = lanes_comment(ir.name, lanes, math.prod(v.extent for v in threads))
        return "\n".join([comment, f"#ifdef {LANES_MACRO}", shared, "#else", self._plain(ir), "#endif"])

    def _plain(self, ir: LoopIR) -> str:
        """The kernel with one work-item per output."""
        source = super().render_kernel(ir)
        if any(isinstance(s, Loop) and s.kind == "global" for s in ir.stmts):
            return source
        # no output space to spread (a full reduction, a scalar): one work-item does it all
        head, _, rest = source.partition("\n")
        return f"{head}\n  if (get_global_id(0) != 0) return;\n{rest}"
