"""OpenCL C: the global loops of a kernel become one flat range of work-items; the rest runs
sequentially inside each work-item."""
from __future__ import annotations

import math

from ..dtypes import DType
from .ir import Expr, Index, Load, Loop, LoopIR, Rand, Store
from .render import CStyleRenderer

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
static inline float fg_maxf(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float fg_fmodf(float a, float b) {
  float r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
#ifdef cl_khr_fp64
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

"""


class OpenCLRenderer(CStyleRenderer):
    kernel_prefix = "__kernel void"
    buffer_qualifier = "__global "
    # bool is not allowed in kernel parameters: stored as uchar 0/1. half is storage only
    # (vload_half/vstore_half), so devices without cl_khr_fp16 run float16 too.
    storage_types = {"bool": "uchar", "uint8": "uchar", "int8": "char", "int16": "short", "int32": "int",
                     "int64": "long", "float16": "half", "bfloat16": "ushort", "float32": "float",
                     "float64": "double"}
    preamble = OPENCL_PREAMBLE
    supports_gemm = False

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
        elif e.dtype.name == "bfloat16":
            text = f"fg_bf16_to_f32(p{e.param}[{index}])"
        else:
            text = f"p{e.param}[{index}]"
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
        if s.dtype.name == "float16":
            return f"vstore_half_rte({self.expr(s.value)}, {s.index.render()}, p{s.param});"
        return super().store(s)

    def loop_open(self, loop: Loop, nest: int, work: int, body: list) -> list[str]:
        """The first global loop of a nest opens one grid-stride loop over the whole flattened nest
        (the launch size is the device's choice, so any kernel runs on any launch); the nest's
        other global loops only open a scope, their indices being decomposed here."""
        v = loop.var.name
        if loop.kind != "global":
            return [f"for (long {v} = 0; {v} < {loop.var.extent}; {v}++) {{"]
        if not nest:
            return ["{"]
        loops = [loop] + body[:nest - 1]
        total = math.prod(lp.var.extent for lp in loops)
        lines = [f"for (long fg_gid = get_global_id(0); fg_gid < {total}; fg_gid += get_global_size(0)) {{"]
        stride = 1
        for lp in reversed(loops):
            flat = f"fg_gid / {stride}" if stride > 1 else "fg_gid"
            value = flat if lp is loop else f"({flat}) % {lp.var.extent}"
            lines.append(f"  const long {lp.var.name} = {value};")
            stride *= lp.var.extent
        return lines

    def render_kernel(self, ir: LoopIR) -> str:
        source = super().render_kernel(ir)
        if any(isinstance(s, Loop) and s.kind == "global" for s in ir.stmts):
            return source
        # no output space to spread (a full reduction, a scalar): one work-item does it all
        head, _, rest = source.partition("\n")
        return f"{head}\n  if (get_global_id(0) != 0) return;\n{rest}"
