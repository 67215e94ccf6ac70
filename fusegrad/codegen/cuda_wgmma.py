"""Half-precision products on Hopper's tensor cores: `wgmma` fed by the tensor memory accelerator.

A tiled product (cuda_gemm.plan: a sum of products and any elementwise epilogue) whose operands
are float16 or bfloat16 matrices read without padding guards renders, for sm_90a, as a kernel of
three warpgroups. The first is the producer: one thread issues bulk tensor copies (TMA) of each
operand's BK-deep slice into a ring of shared-memory stages and arms the stage's "full" barrier
with the bytes to expect. The other two are consumers: each waits for a stage, multiplies its half
of the BM x BN tile with 64 x BN x 16 `wgmma` steps into float32 registers, and releases the
stage through its "empty" barrier once the step after it has been issued (one group in flight).
The copies use the 128-byte swizzle, which `wgmma`'s shared-memory descriptors read without bank
conflicts; an operand stored with the reduction contiguous is K-major, otherwise it is MN-major
and `wgmma` transposes it (both are exact for 16-bit types). Copies past a matrix edge are zero
filled by the hardware, so any size is right. With one block per multiprocessor the producer
hands most of its registers to the consumers (`setmaxnreg`).

Blocks are persistent (as many as fit, each taking tiles gridDim.x apart), so the producer loads
the next tile's first slices while the consumers finish the last one. Two blocks working on
neighbouring rows of tiles form a cluster and share operand b's slices: each copies half of every
slice into both blocks' shared memory (TMA multicast) and a stage is refilled once the consumers of
both have released it, which cuts the operand traffic from L2 by a third for a 128 x 256 tile.

The accumulators then go, 32 columns at a time, through a per-warpgroup chunk of shared memory
(not the stages, which the producer is refilling) to an epilogue loop in which consecutive threads
take consecutive outputs: the statements after the sum run per element with the loop variables
recovered from its row and column, so every fused epilogue (bias, activation, residual, casts,
scaling) runs on the tile without a second pass, and stores are coalesced. Products with few
tiles and a long reduction split it over work items as the SIMT kernel does (partial tiles added
into a zeroed workspace; the warpgroup adding the last part of its rows runs the epilogue).

A tensor map (the TMA's description of an operand: base address, sizes, strides, box) depends on
the buffer's address, so the runtime encodes it at launch and passes it by value
(runtime/cuda_tma.py, from the `// fusegrad tma` line). Where a base is not 16-byte aligned, or
the GPU is not sm_90, the runtime launches the kernel's fallback (`<name>_fallback`, the kernel
that would otherwise have been rendered) instead.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .. import dtypes, precision
from ..graph.symbolic import Lin, Var
from .cuda_gemm import TiledGemm, declare_vars, split_length, whole_slice_splits
from .ir import Define, Load, LoopIR
from .render import CStyleRenderer

BM = 128  # tile rows (two consumer warpgroups of 64)
ROW = 128  # bytes of a stage row: the 128-byte swizzle's width (64 halves or 32 floats of the reduction)
BK = ROW // 2  # a stage row in the 16-bit units shared memory is addressed in
CONSUMERS = 2
THREADS = 128 * (1 + CONSUMERS)
SMEM = 227 * 1024  # shared memory a multiprocessor gives its resident blocks
MAX_STAGES = 8
# blocks a multiprocessor holds at once for each tile width: a 64-wide tile's consumers fit in half
# the register file (80 registers a thread), so a second block's products run while the first one's
# epilogue stores; wider tiles need more
RESIDENT = {256: 1, 128: 1, 64: 2}
SMS = 132  # multiprocessors of an H100/H200
MIN_WORK = 1 << 22  # multiply-adds below which the SIMT kernel's launch is as fast
SPLIT_MIN_K = 512  # reduction length each split keeps at least
MAX_WORKSPACE = 1 << 21  # float32 elements of a split product's accumulation buffer
CHUNK = 32  # columns of a consumer's epilogue chunk in shared memory
CHUNK_LD = CHUNK + 8  # its row stride: a half-warp's float2 stores of four fragment rows hit 32 banks
EPILOGUE_BYTES = CONSUMERS * 64 * CHUNK_LD * 4
GROUP = 8  # tile rows swept together, so resident blocks share operand panels in L2
_PTX = {"bfloat16": "bf16", "float16": "f16", "float32": "tf32"}  # float32 operands: TF32, when allowed
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class TensorMap:
    """One operand as the TMA sees it: dimensions innermost first (the contiguous one, then the other
    matrix dimension, then batch variables), byte strides of all but the first, the copy's box."""

    param: int
    offset: int  # elements from the buffer's start to element [0, 0]
    dims: tuple[int, ...]
    strides: tuple[int, ...]
    box: tuple[int, int]
    k_major: bool  # the reduction is the contiguous dimension
    batch: tuple[Var, ...]  # the batch variables of dimensions 2..

    def spec(self, dtype: str) -> dict:
        """The runtime's description; float32 operands are copied as TF32 (rounded to nearest)."""
        return {"param": self.param, "offset": self.offset, "dims": list(self.dims), "strides": list(self.strides),
                "box": list(self.box), "dtype": "tfloat32" if dtype == "float32" else dtype,
                "itemsize": dtypes.to_dtype(dtype).itemsize}


@dataclass(frozen=True)
class WgmmaPlan:
    tiled: TiledGemm
    dtype: str
    bn: int
    stages: int
    resident: int  # blocks per multiprocessor (the launch bounds)
    splits: int
    cluster: int  # blocks of consecutive tile rows sharing operand b's copies (TMA multicast)
    a: TensorMap
    b: TensorMap

    @property
    def tiles(self) -> int:
        """Tiles computed, a cluster's worth of rows at a time (an odd last one computes nothing)."""
        t = self.tiled
        return t.nbatch * -(-(-(-t.m // BM)) // self.cluster) * self.cluster * -(-t.n // self.bn)

    @property
    def work(self) -> int:
        """Work items: a cluster's tiles, or one split of them."""
        return self.tiles // self.cluster * self.splits

    @property
    def blocks(self) -> int:
        """Blocks to launch for one work item each; the runtime launches as many as fit at once."""
        return self.work * self.cluster

    @property
    def k_split(self) -> int:
        return split_length(self.tiled.k, self.splits, self.slice)

    @property
    def itemsize(self) -> int:
        return dtypes.to_dtype(self.dtype).itemsize

    @property
    def slice(self) -> int:
        """Reduction elements a stage holds: a 128-byte row of the operand's type."""
        return ROW // self.itemsize

    @property
    def smem(self) -> int:
        """Dynamic shared memory: the stages, the consumers' epilogue chunks, and 1 KiB to align them."""
        return self.stages * _stage_bytes(self.bn) + EPILOGUE_BYTES + 1024


def _flat(coefs: dict, variables: tuple[Var, ...]) -> tuple[int, int] | None:
    """(extent, stride) of row-major variables read as one dimension, or None when their strides
    do not nest."""
    stride = coefs.get(variables[-1], 0)
    expect = stride
    for v in reversed(variables):
        if stride == 0 or coefs.get(v) != expect:
            return None
        expect *= v.extent
    return math.prod(v.extent for v in variables), stride


def _tensor_map(load: Load, outer: tuple[Var, ...], ks: tuple[Var, ...], batch: tuple[Var, ...], tile: int,
                itemsize: int, share: int = 1) -> TensorMap | None:
    """The operand `load` as a tensor map: a plain strided read (no guard) whose reduction or outer
    variables are contiguous, the other strides positive multiples of 16 bytes; else None. The box's
    outer dimension is divided among `share` blocks, each copying its part to all of them."""
    index: Lin = load.index
    if load.valid or not all(isinstance(a, Var) for a, _ in index.terms):
        return None
    coefs = dict(index.terms)
    mat, red = _flat(coefs, outer), _flat(coefs, ks)
    used = tuple(v for v in batch if coefs.get(v))
    if mat is None or red is None or set(coefs) != set(outer) | set(ks) | set(used) or len(used) > 3:
        return None
    if red[1] == 1:
        first, second, k_major, box = red, mat, True, (ROW // itemsize, tile // share)
    elif mat[1] == 1:
        first, second, k_major, box = mat, red, False, (64, BK // share)
    else:
        return None
    strides = (second[1] * itemsize, *(coefs[v] * itemsize for v in used))
    if any(s <= 0 or s % 16 or s >= 1 << 40 for s in strides) or index.const < 0:
        return None
    dims = (first[0], second[0], *(v.extent for v in used))
    return TensorMap(load.param, index.const, dims, strides, box, k_major, used)


def _choose_bn(nbatch: int, m: int, n: int) -> int:
    """The tile width whose waves of blocks cost least, a wave of BN-wide tiles taking time
    proportional to BN plus a fixed part."""
    def cost(bn: int) -> int:
        return -(-nbatch * -(-m // BM) * -(-n // bn) // SMS) * (bn + 32)
    return min((256, 128, 64), key=cost)


def _stage_bytes(bn: int) -> int:
    """Shared memory of one stage: a row of each of the tile's BM rows of a and bn columns of b."""
    return (BM + bn) * ROW


def plan(ir: LoopIR, tiled: TiledGemm | None) -> WgmmaPlan | None:
    """The Hopper kernel for a tiled product of half operands, or of float32 ones where TF32 is allowed
    (both K-major: `wgmma` transposes only 16-bit types), or None where it does not apply."""
    if tiled is None or tiled.acc.dtype is not dtypes.float32:
        return None
    dtype = ir.params[tiled.a.load.param].dtype.name
    if dtype not in _PTX or ir.params[tiled.b.load.param].dtype.name != dtype:
        return None
    if dtype == "float32" and not precision.allow_tf32():
        return None
    itemsize = ir.params[tiled.a.load.param].dtype.itemsize
    transposes = itemsize == 2
    t = tiled
    if t.m < 64 or t.n < 64 or t.nbatch * t.m * t.n * t.k < MIN_WORK or t.nbatch * t.m * t.n > _INT32:
        return None
    bn = _choose_bn(t.nbatch, t.m, t.n)
    a = _tensor_map(t.a.load, t.a.outer, t.ks, t.batch, BM, itemsize)
    if a is None or not (a.k_major or transposes):
        return None
    tiles_m = -(-t.m // BM)
    # pairs of row tiles share b's copies, unless pairing would add many idle tiles
    cluster = 2 if tiles_m % 2 == 0 or tiles_m >= 8 else 1
    b = _tensor_map(t.b.load, t.b.outer, t.ks, t.batch, bn, itemsize, cluster)
    if b is None or not (b.k_major or transposes):
        return None
    tiles = t.nbatch * tiles_m * -(-t.n // bn)
    splits = 1
    if tiles < SMS and t.k >= 2 * SPLIT_MIN_K and t.nbatch * t.m * t.n <= MAX_WORKSPACE:
        splits = min(-(-SMS // tiles), t.k // SPLIT_MIN_K)
        splits = whole_slice_splits(t.k, splits, ROW // itemsize)
    resident = RESIDENT[bn]
    # each block's share of shared memory, less its barriers, epilogue chunks and alignment slack
    stages = max(2, min(MAX_STAGES, (SMEM // resident - 2048 - EPILOGUE_BYTES - 1024) // _stage_bytes(bn)))
    return WgmmaPlan(t, dtype, bn, stages, resident, splits, cluster, a, b)


def tma_comment(name: str, p: WgmmaPlan) -> str:
    """The line telling the runtime to launch kernel `name` with tensor maps and dynamic shared memory."""
    spec = {"smem": p.smem, "cluster": p.cluster, "maps": [p.a.spec(p.dtype), p.b.spec(p.dtype)]}
    return f"// fusegrad tma {name} {json.dumps(spec, separators=(',', ':'))}"


def _acc_list(first: int, count: int) -> str:
    return "{" + ", ".join(f"%{first + i}" for i in range(count)) + "}"


def _wgmma_helper(ptx: str, bn: int) -> str:
    """One warpgroup's product of a 32-byte reduction step (16 halves or 8 TF32 values) into float32
    registers, 64 x bn; TA/TB: the operand is MN-major (16-bit types only: TF32 has no transpose)."""
    regs = bn // 2
    binds = ", ".join(f'"+f"(d[{i}])' for i in range(regs))
    k, transposes, inputs = (8, "", "") if ptx == "tf32" else \
        (16, f", %{regs + 3}, %{regs + 4}", ', "n"(TA), "n"(TB)')
    return (f"template <int TA, int TB> FG_DEVICE void fg_wgmma_{ptx}_n{bn}(float (&d)[{regs}], uint64_t da, "
            f"uint64_t db) {{\n  asm volatile(\"{{ .reg .pred p; setp.ne.b32 p, %{regs + 2}, 0; "
            f"wgmma.mma_async.sync.aligned.m64n{bn}k{k}.f32.{ptx}.{ptx} "
            f"{_acc_list(0, regs)}, %{regs}, %{regs + 1}, p, 1, 1{transposes}; }}\"\n"
            f"    : {binds}\n    : \"l\"(da), \"l\"(db), \"r\"(1){inputs});\n}}")


WGMMA_PREAMBLE = r"""struct __align__(64) fg_tensor_map { unsigned long long bits[16]; };
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
FG_DEVICE unsigned fg_shared(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
FG_DEVICE void fg_bar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(fg_shared(bar)), "r"(count) : "memory");
}
FG_DEVICE void fg_bar_expect(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(fg_shared(bar)), "r"(bytes) : "memory");
}
FG_DEVICE void fg_bar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" :: "r"(fg_shared(bar)) : "memory");
}
FG_DEVICE void fg_bar_wait(uint64_t* bar, unsigned parity) {
  unsigned done = 0;
  while (!done) {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(fg_shared(bar)), "r"(parity) : "memory");
  }
}
#define FG_TMA(rank, coords, ...) asm volatile("cp.async.bulk.tensor." #rank "d.shared::cluster.global.tile" \
  ".mbarrier::complete_tx::bytes [%0], [%1, {" coords "}], [%2];" \
  :: "r"(fg_shared(dst)), "l"((uint64_t)map), "r"(fg_shared(bar)), __VA_ARGS__ : "memory")
FG_DEVICE void fg_tma(void* dst, const fg_tensor_map* map, uint64_t* bar, int c0, int c1) {
  FG_TMA(2, "%3, %4", "r"(c0), "r"(c1));
}
FG_DEVICE void fg_tma(void* dst, const fg_tensor_map* map, uint64_t* bar, int c0, int c1, int c2) {
  FG_TMA(3, "%3, %4, %5", "r"(c0), "r"(c1), "r"(c2));
}
FG_DEVICE void fg_tma(void* dst, const fg_tensor_map* map, uint64_t* bar, int c0, int c1, int c2, int c3) {
  FG_TMA(4, "%3, %4, %5, %6", "r"(c0), "r"(c1), "r"(c2), "r"(c3));
}
FG_DEVICE void fg_tma(void* dst, const fg_tensor_map* map, uint64_t* bar, int c0, int c1, int c2, int c3, int c4) {
  FG_TMA(5, "%3, %4, %5, %6, %7", "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4));
}
#define FG_TMA_MULTICAST(rank, coords, mask, ...) asm volatile("cp.async.bulk.tensor." #rank "d.shared::cluster" \
  ".global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {" coords "}], [%2], " mask ";" \
  :: "r"(fg_shared(dst)), "l"((uint64_t)map), "r"(fg_shared(bar)), "h"(blocks), __VA_ARGS__ : "memory")
FG_DEVICE void fg_tma_multicast(void* dst, const fg_tensor_map* map, uint64_t* bar, uint16_t blocks, int c0, int c1) {
  FG_TMA_MULTICAST(2, "%4, %5", "%3", "r"(c0), "r"(c1));
}
FG_DEVICE void fg_tma_multicast(void* dst, const fg_tensor_map* map, uint64_t* bar, uint16_t blocks, int c0, int c1,
                                int c2) {
  FG_TMA_MULTICAST(3, "%4, %5, %6", "%3", "r"(c0), "r"(c1), "r"(c2));
}
FG_DEVICE void fg_tma_multicast(void* dst, const fg_tensor_map* map, uint64_t* bar, uint16_t blocks, int c0, int c1,
                                int c2, int c3) {
  FG_TMA_MULTICAST(4, "%4, %5, %6, %7", "%3", "r"(c0), "r"(c1), "r"(c2), "r"(c3));
}
FG_DEVICE void fg_tma_multicast(void* dst, const fg_tensor_map* map, uint64_t* bar, uint16_t blocks, int c0, int c1,
                                int c2, int c3, int c4) {
  FG_TMA_MULTICAST(5, "%4, %5, %6, %7, %8", "%3", "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4));
}
/* an arrival on the barrier at the same place in block `rank` of the cluster */
FG_DEVICE void fg_bar_arrive_remote(uint64_t* bar, unsigned rank) {
  asm volatile("{ .reg .b32 a; mapa.shared::cluster.u32 a, %0, %1; mbarrier.arrive.shared::cluster.b64 _, [a]; }"
               :: "r"(fg_shared(bar)), "r"(rank) : "memory");
}
FG_DEVICE void fg_cluster_sync() {
  asm volatile("barrier.cluster.arrive.release;\nbarrier.cluster.wait.acquire;" ::: "memory");
}
/* a shared-memory matrix descriptor: 128-byte swizzle; LBO and SBO in bytes */
FG_DEVICE uint64_t fg_wgmma_desc(const void* p, unsigned lbo, unsigned sbo) {
  return (uint64_t)((fg_shared(p) & 0x3FFFF) >> 4) | ((uint64_t)(lbo >> 4) << 16) | ((uint64_t)(sbo >> 4) << 32)
         | (1ull << 62);
}
""" + "\n".join(_wgmma_helper(ptx, bn) for ptx in _PTX.values() for bn in (64, 128, 256)) + """
#define FG_CLUSTER_DIMS(n) __cluster_dims__(n, 1, 1)
#else
#define FG_CLUSTER_DIMS(n)
#endif
"""


def _stage(label: str, rows: int) -> str:
    """Where stage `fg_s` of operand `label` (`rows` rows or columns of the tile) starts in shared memory."""
    return f"fg_s{label} + fg_s * {rows * BK}"


def _copies(p: WgmmaPlan, label: str, tmap: TensorMap, origin: str) -> list[str]:
    """The producer's bulk copies of one operand's slice at reduction index `fg_k` into stage `fg_s`.
    Operand b is shared by the cluster's blocks (the same columns, other rows): each copies the
    half of it given by its rank (its boxes' outer half) to the same place in every block."""
    rows = BM if label == "a" else p.bn
    stage, batch = _stage(label, rows), "".join(f", (int){v.name}" for v in tmap.batch)
    shared = label == "b" and p.cluster > 1
    call = "fg_tma_multicast" if shared else "fg_tma"
    mask = f", {(1 << p.cluster) - 1}" if shared else ""
    if tmap.k_major:  # boxes of BK reduction steps (128 bytes) by the tile's rows, or by this block's share
        share = rows // p.cluster if shared else rows
        at, outer = (f" + fg_rank * {share * BK}", f" + (int)fg_rank * {share}") if shared else ("", "")
        return [f"{call}({stage}{at}, &fg_map_{label}, &fg_full[fg_s]{mask}, fg_k, {origin}{outer}{batch});"]
    share = BK // p.cluster if shared else BK  # boxes of 64 rows or columns by BK steps, or this block's share
    at, outer = (f" + fg_rank * {share * 64}", f" + (int)fg_rank * {share}") if shared else ("", "")
    return [f"{call}({stage} + {64 * BK * j}{at}, &fg_map_{label}, &fg_full[fg_s]{mask}, {origin} + {64 * j}, "
            f"fg_k{outer}{batch});" for j in range(rows // 64)]


def _descriptor(p: WgmmaPlan, label: str, tmap: TensorMap) -> str:
    """The descriptor of this warpgroup's operand at step fg_kk of stage fg_s."""
    base = _stage(label, BM if label == "a" else p.bn) + (" + fg_c * 64 * 64" if label == "a" else "")
    if tmap.k_major:  # rows of 128 bytes, 8-row groups 1 KiB apart; a step is 16 halves along a row
        return f"fg_wgmma_desc({base} + fg_kk * 16, 16, 1024)"
    # 64-wide boxes of BK rows, 8 KiB apart; a step is 16 rows of 128 bytes
    return f"fg_wgmma_desc({base} + fg_kk * 16 * 64, {64 * BK * 2}, 1024)"


def _work(p: WgmmaPlan) -> list[str]:
    """Decode work item fg_w: batch element, this block's tile (groups of cluster rows swept column
    by column, so the blocks working at once share operand panels in L2), split and its steps."""
    t = p.tiled
    pairs, tiles_n = -(-(-(-t.m // BM)) // p.cluster), -(-t.n // p.bn)
    return [
        f"const unsigned int fg_tile = fg_w / {p.splits}u, fg_split = fg_w % {p.splits}u;",
        f"const unsigned int fg_batch = fg_tile / {pairs * tiles_n}u, fg_t = fg_tile % {pairs * tiles_n}u;",
        f"const unsigned int fg_first = fg_t / {GROUP * tiles_n}u * {GROUP}u, fg_in = fg_t % {GROUP * tiles_n}u;",
        f"const unsigned int fg_rows = min({pairs}u - fg_first, {GROUP}u);",
        f"const int fg_m0 = (int)((fg_first + fg_in % fg_rows) * {p.cluster}u + fg_rank) * {BM};",
        f"const int fg_n0 = (int)(fg_in / fg_rows) * {p.bn};",
        *(declare_vars(t.batch, "fg_batch", "const int64_t") if t.batch else ["(void)fg_batch;"]),
        f"const int fg_k0 = (int)fg_split * {p.k_split};",
        f"const int fg_steps = (min(fg_k0 + {p.k_split}, {t.k}) - fg_k0 + {p.slice - 1}) / {p.slice};",
    ]


def _epilogue(renderer: CStyleRenderer, p: WgmmaPlan, name: str) -> list[str]:
    """A consumer warpgroup's 64 rows of the tile, after its products: the statements after the sum,
    per element, consecutive threads on consecutive outputs. Without a split, the accumulators go
    through this warpgroup's chunk buffer 32 columns at a time (the stages stay the producer's, which
    is already loading the next tile); with one, they are added into the workspace, and the
    warpgroup adding the last part of its rows reads them back."""
    t, bn = p.tiled, p.bn
    where = f"((int64_t)fg_batch * {t.m} + fg_m0 + fg_r) * {t.n} + fg_n0 + fg_col"
    sync = "asm volatile(\"bar.sync %0, 128;\" :: \"r\"(1 + fg_c) : \"memory\");"  # this warpgroup only

    def per_element(value: list[str]) -> list[str]:
        lines = [*declare_vars(t.a.outer, "fg_m0 + fg_r", "const int64_t"),
                 *declare_vars(t.b.outer, "fg_n0 + fg_col", "const int64_t"), *value]
        for s in t.epilogue:
            lines.append(f"const {renderer.compute_type(s.dtype)} {s.name} = {renderer.expr(s.value)};"
                         if isinstance(s, Define) else renderer.store(s))
        return ["  if (fg_m0 + fg_r < %d && fg_n0 + fg_col < %d) {" % (t.m, t.n),
                *["    " + line for line in lines], "  }"]
    if p.splits > 1:
        counter = f"fg_cnt_{name}[(fg_tile * {p.cluster}u + fg_rank) * {CONSUMERS}u + fg_c]"
        return [
            "#pragma unroll",
            f"for (int fg_i = 0; fg_i < {bn // 2}; fg_i++) {{",
            "  const int fg_r = fg_c * 64 + fg_row + fg_i % 4 / 2 * 8, fg_col = fg_i / 4 * 8 + fg_fc + fg_i % 2;",
            f"  if (fg_m0 + fg_r < {t.m} && fg_n0 + fg_col < {t.n}) atomicAdd(&fg_ws_{name}[{where}], fg_acc[fg_i]);",
            "}",
            "__threadfence();  /* this warpgroup's additions are seen before its count */",
            sync,
            f"if (fg_tid == 0) fg_last[fg_c] = atomicAdd(&{counter}, 1u) == {p.splits - 1}u;",
            sync,
            "if (fg_last[fg_c]) {",
            "  __threadfence();",
            f"  if (fg_tid == 0) {counter} = 0u;",
            f"  for (int fg_e = fg_tid; fg_e < {64 * bn}; fg_e += 128) {{",
            f"    const int fg_r = fg_c * 64 + fg_e / {bn}, fg_col = fg_e % {bn};",
            *["  " + line for line in per_element([f"const float {t.acc.name} = __ldcg(&fg_ws_{name}[{where}]);",
                                                    f"fg_ws_{name}[{where}] = 0.0f;"])],
            "  }",
            "}",
        ]
    return [
        f"float* fg_buf = fg_out + fg_c * {64 * CHUNK_LD};",
        f"for (int fg_chunk = 0; fg_chunk < {bn // CHUNK}; fg_chunk++) {{",
        "  " + sync + "  /* the previous chunk has been read */",
        "  #pragma unroll",
        f"  for (int fg_i = 0; fg_i < {bn // 8}; fg_i++) {{  /* fragment rows fg_row and fg_row + 8 */",
        f"    if (fg_i / {CHUNK // 8} != fg_chunk) continue;",
        f"    float* fg_at = fg_buf + fg_row * {CHUNK_LD} + fg_i % {CHUNK // 8} * 8 + fg_fc;",
        "    *(float2*)fg_at = make_float2(fg_acc[4 * fg_i], fg_acc[4 * fg_i + 1]);",
        f"    *(float2*)(fg_at + {8 * CHUNK_LD}) = make_float2(fg_acc[4 * fg_i + 2], fg_acc[4 * fg_i + 3]);",
        "  }",
        "  " + sync,
        f"  for (int fg_e = fg_tid; fg_e < {64 * CHUNK}; fg_e += 128) {{",
        f"    const int fg_r = fg_c * 64 + fg_e / {CHUNK}, fg_col = fg_chunk * {CHUNK} + fg_e % {CHUNK};",
        *["  " + line for line in per_element(
            [f"const float {t.acc.name} = fg_buf[fg_e / {CHUNK} * {CHUNK_LD} + fg_e % {CHUNK}];"])],
        "  }",
        "}",
    ]


def render(renderer: CStyleRenderer, ir: LoopIR, p: WgmmaPlan) -> str:
    """The kernel's source (without launch lines): workspace declarations, then the kernel. Blocks are
    persistent: each takes work items (a tile, or a split of one) `gridDim.x / cluster` apart, its
    producer running ahead into the next item while the consumers finish the last one."""
    t, name, bn = p.tiled, ir.name, p.bn
    regs = bn // 2
    ptx = _PTX[p.dtype]
    stage_bytes = _stage_bytes(bn)
    head = []
    if p.splits > 1:
        head = [f"__device__ float fg_ws_{name}[{t.nbatch * t.m * t.n}];",
                f"__device__ unsigned int fg_cnt_{name}[{p.tiles * CONSUMERS}];"]
    ta, tb = int(not p.a.k_major), int(not p.b.k_major)
    fence = [f"for (int fg_i = 0; fg_i < {regs}; fg_i++) asm volatile(\"\" : \"+f\"(fg_acc[fg_i]) :: \"memory\");"]
    release = ("fg_bar_arrive(&fg_empty[fg_done]);" if p.cluster == 1 else
               f"for (unsigned int fg_to = 0; fg_to < {p.cluster}u; fg_to++) "
               "fg_bar_arrive_remote(&fg_empty[fg_done], fg_to);")  # the stage is written by the whole cluster
    registers = RESIDENT[bn] == 1  # one block per multiprocessor: the producer gives its registers to the consumers
    items = (f"for (unsigned int fg_w = blockIdx.x / {p.cluster}u; fg_w < {p.work}u; "
             f"fg_w += gridDim.x / {p.cluster}u) {{")
    body = [
        "extern __shared__ uint8_t fg_dynamic[];",
        f"__shared__ __align__(8) uint64_t fg_full[{p.stages}], fg_empty[{p.stages}];",
        *([f"__shared__ bool fg_last[{CONSUMERS}];"] if p.splits > 1 else []),
        "uint8_t* fg_base = (uint8_t*)(((unsigned long long)fg_dynamic + 1023) & ~1023ull);  /* swizzle atoms */",
        "uint16_t* fg_sa = (uint16_t*)fg_base;",
        f"uint16_t* fg_sb = (uint16_t*)(fg_base + {p.stages * BM * ROW});",
        *([f"float* fg_out = (float*)(fg_base + {p.stages * stage_bytes});  /* the epilogue's chunks */"]
          if p.splits == 1 else []),
        "const int fg_wg = threadIdx.x / 128, fg_tid = threadIdx.x % 128;",
        f"const unsigned int fg_rank = blockIdx.x % {p.cluster}u;  /* in the cluster: the rows' parity */",
        "if (threadIdx.x == 0) {",
        f"  for (int fg_i = 0; fg_i < {p.stages}; fg_i++) {{",
        "    fg_bar_init(&fg_full[fg_i], 1);",
        f"    fg_bar_init(&fg_empty[fg_i], {4 * CONSUMERS * p.cluster});  /* a release per consumer warp */",
        "  }",
        "  asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");",
        "}",
        "fg_cluster_sync();  /* no copy reaches a block before its barriers exist */" if p.cluster > 1
        else "__syncthreads();",
        "if (fg_wg == 0) {  /* the producer */",
        *(["  asm volatile(\"setmaxnreg.dec.sync.aligned.u32 40;\");"] if registers else []),
        "  if (fg_tid == 0) {",
        "    unsigned int fg_it = 0;",
        "    " + items,
        *["      " + line for line in _work(p)],
        "      for (int fg_step = 0; fg_step < fg_steps; fg_step++, fg_it++) {",
        f"        const unsigned int fg_s = fg_it % {p.stages}u;",
        f"        const int fg_k = fg_k0 + fg_step * {p.slice};",
        f"        if (fg_it >= {p.stages}u) fg_bar_wait(&fg_empty[fg_s], (fg_it / {p.stages}u + 1) & 1);",
        f"        fg_bar_expect(&fg_full[fg_s], {stage_bytes});",
        *["        " + line for line in _copies(p, "a", p.a, "fg_m0")],
        *["        " + line for line in _copies(p, "b", p.b, "fg_n0")],
        "      }",
        "    }",
        "  }",
        "} else {  /* the consumers */",
        *(["  asm volatile(\"setmaxnreg.inc.sync.aligned.u32 232;\");"] if registers else []),
        "  const int fg_c = fg_wg - 1;",
        "  const int fg_row = fg_tid / 32 * 16 + fg_tid % 32 / 4, fg_fc = fg_tid % 4 * 2;  /* fragment, in 64 rows */",
        "  (void)fg_row; (void)fg_fc;",
        "  unsigned int fg_it = 0;",
        "  " + items,
        *["    " + line for line in _work(p)],
        f"    float fg_acc[{regs}];",
        "    #pragma unroll",
        f"    for (int fg_i = 0; fg_i < {regs}; fg_i++) fg_acc[fg_i] = 0.0f;",
        "    for (int fg_step = 0; fg_step < fg_steps; fg_step++, fg_it++) {",
        f"      const unsigned int fg_s = fg_it % {p.stages}u;",
        f"      fg_bar_wait(&fg_full[fg_s], (fg_it / {p.stages}u) & 1);",
        "      #pragma unroll",
        *["      " + line for line in fence],
        "      asm volatile(\"wgmma.fence.sync.aligned;\" ::: \"memory\");",
        "      #pragma unroll",
        f"      for (int fg_kk = 0; fg_kk < {BK // 16}; fg_kk++)",
        f"        fg_wgmma_{ptx}_n{bn}<{ta}, {tb}>(fg_acc, {_descriptor(p, 'a', p.a)}, {_descriptor(p, 'b', p.b)});",
        "      asm volatile(\"wgmma.commit_group.sync.aligned;\" ::: \"memory\");",
        "      asm volatile(\"wgmma.wait_group.sync.aligned 1;\" ::: \"memory\");  /* the previous step is done */",
        "      #pragma unroll",
        *["      " + line for line in fence],
        "      if (fg_step > 0 && fg_tid % 32 == 0) {",
        f"        const unsigned int fg_done = (fg_it - 1) % {p.stages}u;",
        "        " + release,
        "      }",
        "    }",
        "    asm volatile(\"wgmma.wait_group.sync.aligned 0;\" ::: \"memory\");",
        "    #pragma unroll",
        *["    " + line for line in fence],
        "    if (fg_tid % 32 == 0) {",
        f"      const unsigned int fg_done = (fg_it - 1) % {p.stages}u;",
        "      " + release,
        "    }",
        *["    " + line for line in _epilogue(renderer, p, name)],
        "  }",
        "}",
        *(["fg_cluster_sync();  /* no block leaves while the other may still write to it */"]
          if p.cluster > 1 else []),
    ]
    maps = "const __grid_constant__ fg_tensor_map fg_map_a, const __grid_constant__ fg_tensor_map fg_map_b"
    signature = renderer.signature(ir)
    signature = signature[:-1] + f", {maps})"
    signature = signature.replace(
        f" {name}(", f" __launch_bounds__({THREADS}, {p.resident}) FG_CLUSTER_DIMS({p.cluster}) {name}(", 1)
    return "\n".join(head + [signature + " {", "#if defined(__CUDA_ARCH_FEAT_SM90_ALL)"]
                     + ["  " + line for line in body] + ["#endif", "}"])
