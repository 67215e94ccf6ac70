"""CUDA C for NVIDIA GPUs, compiled by NVRTC: the kernel's parallel loops become one flat range of
threads (a grid-stride loop); reductions run inside each thread, or are shared by the lanes of a
warp or block when outputs are few (lanes.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..graph.symbolic import Var
from ..runtime.cublas import descriptor_comment
from ..runtime.cuda import launch_comment
from . import cuda_attention, cuda_flash, cuda_gemm, cuda_vector, cuda_wgmma, float8
from .cuda_blas import blas_descriptor
from .cuda_mma import MMA_PREAMBLE, THREADS as MMA_THREADS, blocks as mma_blocks, fits as mma_fits, render_mma
from .ir import Accumulate, Attention, EndLoop, IndexAdd, Load, Loop, LoopIR, Recurrence, Ref, Store
from .lanes import WARP, LaneCombine, LaneLoop, LaneStore, thread_plan
from .render import CStyleRenderer, decompose

THREADS = 256  # threads per block
REDUCE_THREADS = 128  # smaller blocks when each thread loops over a reduction: more blocks for the SMs
MAX_BLOCKS = 1 << 16  # beyond this many blocks the grid-stride loop covers the rest
THREADS_PER_ROW = 512  # a fused recurrence's threads per batch row: one per gate column of a 128-unit LSTM

# NVRTC has no standard headers: the fixed-width names, limits and NAN/INFINITY the shared
# renderer emits are defined here. Helpers keep c.py's semantics (floor division, NaN-propagating
# max, bf16 rounding, Philox bit for bit); float16 converts with the hardware's round-to-nearest-even.
CUDA_PREAMBLE = r"""typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#define INT8_MIN (-128)
#define INT16_MIN (-32768)
#define INT32_MIN (-2147483647 - 1)
#define INT64_MIN (-9223372036854775807LL - 1)
#define INFINITY __int_as_float(0x7f800000)
#define NAN __int_as_float(0x7fc00000)
#define FG_DEVICE static __device__ __forceinline__
FG_DEVICE float fg_h2f(uint16_t x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x)); return f; }
FG_DEVICE uint16_t fg_f2h(float f) { uint16_t x; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(x) : "f"(f)); return x; }
FG_DEVICE float fg_bf16_to_f32(uint16_t x) { return __uint_as_float((uint32_t)x << 16); }
FG_DEVICE uint16_t fg_f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
FG_DEVICE uint32_t fg_f32_bits(float f) { return __float_as_uint(f); }
FG_DEVICE float fg_bits_f32(uint32_t u) { return __uint_as_float(u); }
FG_DEVICE uint64_t fg_f64_bits(double f) { return (uint64_t)__double_as_longlong(f); }
FG_DEVICE double fg_bits_f64(uint64_t u) { return __longlong_as_double((long long)u); }
FG_DEVICE uint16_t fg_f16_bits(float f) { return fg_f2h(f); }
FG_DEVICE float fg_bits_f16(uint16_t u) { return fg_h2f(u); }
FG_DEVICE float fg_maxf(float a, float b) { return (a > b || a != a) ? a : b; }
FG_DEVICE double fg_max(double a, double b) { return (a > b || a != a) ? a : b; }
FG_DEVICE float fg_fmodf(float a, float b) {
  float r = fmodf(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
FG_DEVICE double fg_fmod(double a, double b) {
  double r = fmod(a, b); return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
/* integer division and remainder round toward -inf like Python; x/0 gives 0 instead of a trap */
FG_DEVICE int64_t fg_floordiv(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return (int64_t)(0ULL - (uint64_t)a);
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
FG_DEVICE int64_t fg_floormod(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
FG_DEVICE int64_t fg_ipow(int64_t a, int64_t b) {
  if (b < 0) return a == 1 ? 1 : (a == -1 ? ((b & 1) ? -1 : 1) : 0);
  uint64_t r = 1, x = (uint64_t)a;
  while (b) { if (b & 1) r *= x; x *= x; b >>= 1; }
  return (int64_t)r;
}
/* a failed data check claims the error word (runtime/device_errors.py) unless one already has */
FG_DEVICE void fg_check(const int64_t* word, int32_t code, int ok, int64_t value, int64_t position) {
  if (!ok && atomicCAS((int*)word, 0, code) == 0) { ((int64_t*)word)[1] = value; ((int64_t*)word)[2] = position; }
}
/* Philox4x32-10: element `ctr` of the stream `seed`, as a uniform float in [0, 1) (same bits as c.py) */
FG_DEVICE float fg_rand(uint64_t seed, uint64_t ctr) {
  uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0x243F6A88u, c3 = 0x85A308D3u;
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int i = 0; i < 10; i++) {
    uint32_t n0 = __umulhi(0xCD9E8D57u, c2) ^ c1 ^ k0, n2 = __umulhi(0xD2511F53u, c0) ^ c3 ^ k1;
    c1 = 0xCD9E8D57u * c2; c3 = 0xD2511F53u * c0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  return (float)(c0 >> 8) * (1.0f / 16777216.0f);
}
""" + float8.helpers("FG_DEVICE") + MMA_PREAMBLE + cuda_flash.FLASH_PREAMBLE + "\n" + cuda_wgmma.WGMMA_PREAMBLE


@dataclass(frozen=True)
class _Grid(Loop):
    """The flattened thread space: `threads` (row-major, the last varies fastest across threads)."""

    threads: tuple[Var, ...] = ()
    lanes: int = 1  # consecutive threads sharing one element of the space


def launch_dims(ir: LoopIR) -> tuple[int, int]:
    """(blocks, threads per block): one thread per element of the thread space times its lanes (per
    4 elements for a kernel with 16-byte accesses)."""
    threads, body, lanes = thread_plan(ir)
    vector = cuda_vector.plan(threads, body, lanes)
    return _launch_dims(vector.threads, 1, 0) if vector is not None else _launch_dims(threads, lanes, ir.work)


def _launch_dims(threads: tuple[Var, ...], lanes: int, work: int) -> tuple[int, int]:
    total = math.prod(v.extent for v in threads) * lanes
    if total == 1:
        return 1, 1
    if lanes > WARP:  # a block per output: its warps combine through shared memory
        return min(total // lanes, MAX_BLOCKS), lanes
    per_block = REDUCE_THREADS if work > total else THREADS
    per_block = min(per_block, -(-total // 32) * 32)
    return min(-(-total // per_block), MAX_BLOCKS), per_block


class CUDARenderer(CStyleRenderer):
    kernel_prefix = 'extern "C" __global__ void'
    restrict = "__restrict__"
    # bool is C++'s one-byte bool (numpy's 0/1 bytes); float16 is stored as its 16 bits and
    # computed in float, like bfloat16
    storage_types = {"bool": "bool", "uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t",
                     "int32": "int32_t", "int64": "int64_t", "float16": "uint16_t", "bfloat16": "uint16_t",
                     "float32": "float", "float64": "double", "float8_e4m3fn": "uint8_t", "float8_e5m2": "uint8_t"}
    preamble = CUDA_PREAMBLE
    supports_gemm = False
    cooperative = ("threadIdx.x", "blockDim.x", "__syncthreads();", "__shared__")
    cooperative_bytes = 48 * 1024  # static shared memory of one block
    vector_loads: dict[Load, str] = {}  # set on cuda_vector's copy of the renderer: operands read as float4

    def load(self, e: Load) -> str:
        name = self.vector_loads.get(e)
        if name is not None:  # one element of the float4 read before the unrolled body (cuda_vector.py)
            return f"(fg_aligned ? ((const float*)&{name})[fg_k] : {super().load(e)})"
        if e.dtype.name != "float16":
            return super().load(e)
        text = f"fg_h2f(p{e.param}[{e.index.render()}])"
        return f"(({' && '.join(b.render() for b in e.valid)}) ? {text} : 0.0f)" if e.valid else text

    def store(self, s: Store) -> str:
        if isinstance(s, LaneStore):
            return f"if (lane == 0) {{ {self.store(Store(s.param, s.index, s.value, s.dtype))} }}"
        if s.dtype.name == "float16":
            return f"p{s.param}[{s.index.render()}] = fg_f2h({self.expr(s.value)});"
        return super().store(s)

    def statement(self, s: object) -> list[str]:
        if not isinstance(s, LaneCombine):
            return super().statement(s)
        lines = []
        for acc in s.accs:  # butterfly over the warp: afterwards every lane holds the warp's total
            ct = self.compute_type(acc.dtype)
            wire = ct if ct in ("int32_t", "int64_t", "float", "double") else "int"  # __shfl_xor_sync's types
            partial = self.accumulate(Accumulate(acc.name, acc.op, Ref("fg_v", acc.dtype), acc.dtype))
            lines.append(f"for (int fg_o = {min(s.lanes, WARP) // 2}; fg_o > 0; fg_o >>= 1) {{ "
                         f"{ct} fg_v = ({ct})__shfl_xor_sync(0xffffffffu, ({wire}){acc.name}, fg_o); {partial} }}")
        if s.lanes <= WARP:
            return lines
        warps = s.lanes // WARP
        for acc in s.accs:  # then across the block's warps, through shared memory
            ct, red = self.compute_type(acc.dtype), f"fg_red{s.uid}_{acc.name}"
            lines.append(f"__shared__ {ct} {red}[{warps}];")
            lines.append(f"if (lane % {WARP} == 0) {red}[lane / {WARP}] = {acc.name};")
        lines.append("__syncthreads();")
        for acc in s.accs:
            red = f"fg_red{s.uid}_{acc.name}"
            partial = self.accumulate(Accumulate(acc.name, acc.op, Ref(f"{red}[fg_w]", acc.dtype), acc.dtype))
            lines.append(f"{acc.name} = {red}[0];")
            lines.append(f"for (int fg_w = 1; fg_w < {warps}; fg_w++) {{ {partial} }}")
        lines.append("__syncthreads();  // the arrays are reused by the block's next output")
        return lines

    def loop_open(self, loop: Loop, nest: int, work: int, body: list) -> list[str]:
        if isinstance(loop, LaneLoop):
            v = loop.var.name
            return [f"for (int64_t {v} = lane; {v} < {loop.var.extent}; {v} += {loop.lanes}) {{"]
        if not isinstance(loop, _Grid):
            return super().loop_open(loop, nest, work, body)
        lines = [self.grid_stride(math.prod(v.extent for v in loop.threads) * loop.lanes)]
        element = "gid"
        if loop.lanes > 1:  # blocks and the grid stride hold whole groups of lanes: a thread's lane is fixed
            lines.append(f"  const int lane = (int)(threadIdx.x % {loop.lanes}u);")
            element = f"(gid / {loop.lanes}u)"
        return lines + decompose(element, loop.threads, "  const int64_t {name} = (int64_t)({value});", "u")

    @staticmethod
    def grid_stride(total: int) -> str:
        """The opening of a loop of the flat index `gid` over `total` elements, striding by the grid."""
        index = "unsigned int" if total < 2**31 else "uint64_t"  # 32-bit index math where it fits
        return (f"for ({index} gid = blockIdx.x * ({index})blockDim.x + threadIdx.x; gid < {total}; "
                f"gid += ({index})gridDim.x * blockDim.x) {{")

    def inner_pragma(self, reduction: str | None) -> str:
        return "#pragma unroll"  # fixed trip counts: a fused row's vectors stay in registers

    def recurrence_product(self, s: Recurrence, out: str, inp: str, matrix: Load, x: Var, y: Var) -> list[str]:
        """With the row's arrays shared, each thread sums its own columns (coalesced reads of the matrix)."""
        if not s.shared:
            return super().recurrence_product(s, out, inp, matrix, x, y)
        ct = self.compute_type(s.dtype)
        return [f"for (int64_t {x.name} = threadIdx.x; {x.name} < {x.extent}; {x.name} += blockDim.x) {{",
                f"  {ct} fg_sum = {out}[0][{x.name}];",
                f"  for (int64_t {y.name} = 0; {y.name} < {y.extent}; {y.name}++) "
                f"fg_sum += {inp}[0][{y.name}] * {self.load(matrix)};",
                f"  {out}[0][{x.name}] = fg_sum;", "}"]

    def render_kernel(self, ir: LoopIR) -> str:
        """The statements wrapped in one grid-stride loop over the thread space (a single thread, or
        one block of lanes, when the kernel has none, e.g. a full reduction)."""
        recurrence = next((s for s in ir.stmts if isinstance(s, Recurrence)), None)
        if recurrence is not None and recurrence.shared:  # a block of threads per batch row
            threads = min(THREADS_PER_ROW, -(-max(recurrence.j.extent, recurrence.k.extent) // 32) * 32)
            body = [f"  const int64_t {recurrence.block.name} = blockIdx.x;",
                    *("  " + line for line in self.recurrence(recurrence))]
            return "\n".join([launch_comment(ir.name, recurrence.block.extent, threads),
                              self.signature(ir) + " {", *body, "}"])
        attention = next((s for s in ir.stmts if isinstance(s, Attention)), None)
        flash = None if attention is None else cuda_flash.plan(ir, attention)
        if flash is not None:  # half operands on the tensor cores
            return launch_comment(ir.name, flash.blocks, cuda_flash.THREADS, flash.smem) + "\n" + \
                cuda_flash.render(self, ir, attention, flash)
        if attention is not None and attention.dtype.name in ("float32", "bfloat16", "float16"):  # shared tiles
            blocks, per_block = cuda_attention.launch(ir, attention)
            return launch_comment(ir.name, blocks, per_block) + "\n" + cuda_attention.render(self, ir, attention)
        if attention is not None or recurrence is not None or any(isinstance(s, IndexAdd) for s in ir.stmts):
            # a thread per iteration of the global loops (codegen/attention.py, recurrence.py, scatter.py)
            threads = tuple(s.var for s in ir.stmts if isinstance(s, Loop))
            body = [s for s in ir.stmts if not isinstance(s, (Loop, EndLoop))]
            blocks, per_block = _launch_dims(threads, 1, ir.work)
            stmts = [_Grid(Var("gid", 1), "grid", threads, 1), *body, EndLoop("grid")]
            rendered = super().render_kernel(LoopIR(ir.name, ir.params, stmts, ir.work))
            return launch_comment(ir.name, blocks, per_block) + "\n" + rendered
        descriptor = blas_descriptor(ir)
        tiled = cuda_gemm.plan(ir)
        hopper = cuda_wgmma.plan(ir, tiled)
        if hopper is None:
            blocks, per_block, rendered = self._render_product(ir, descriptor, tiled)
            header = [launch_comment(ir.name, blocks, per_block)]
        else:  # tensor cores through TMA on sm_90; the kernel that would be rendered otherwise elsewhere
            fallback = LoopIR(f"{ir.name}_fallback", ir.params, ir.stmts, ir.work)
            blocks, per_block, plain = self._render_product(fallback, descriptor, tiled)
            rendered = cuda_wgmma.render(self, ir, hopper) + "\n" + launch_comment(fallback.name, blocks, per_block) \
                + "\n" + plain
            header = [launch_comment(ir.name, hopper.blocks, cuda_wgmma.THREADS),
                      cuda_wgmma.tma_comment(ir.name, hopper)]
        if descriptor is not None:  # cuBLAS may compute this product instead; the runtime measures
            header.append(descriptor_comment(ir.name, descriptor))
        return "\n".join(header) + "\n" + rendered

    def _render_product(self, ir: LoopIR, descriptor: dict | None, tiled: cuda_gemm.TiledGemm | None) \
            -> tuple[int, int, str]:
        """(blocks, threads per block, source) of a kernel without the Hopper product: the wmma
        product, the tiled SIMT product, 4 elements per thread, or the plain grid-stride loop."""
        threads, body, lanes = thread_plan(ir)
        mma = descriptor is not None and mma_fits(descriptor)
        tiled = None if mma else tiled
        vector = None if mma or tiled is not None else cuda_vector.plan(threads, body, lanes)
        if tiled is not None:  # any other contraction (convolutions, epilogues): the tiled SIMT product
            return tiled.blocks, cuda_gemm.THREADS, cuda_gemm.render(self, ir, tiled)
        if vector is not None:  # 4 elements per thread
            return *_launch_dims(vector.threads, 1, 0), cuda_vector.render(self, ir, body, vector)
        stmts = [_Grid(Var("gid", 1), "grid", threads, lanes), *body, EndLoop("grid")]
        rendered = super().render_kernel(LoopIR(ir.name, ir.params, stmts, ir.work))
        if mma:  # tensor cores; the plain body for older GPUs
            plain = rendered.split("\n")[1:-1]  # without the signature line and the closing brace
            return mma_blocks(descriptor), MMA_THREADS, render_mma(self.signature(ir), ir.name, descriptor,
                                                                   "\n".join(plain))
        return *_launch_dims(threads, lanes, ir.work), rendered
