"""Tensor cores for float16/bfloat16 products on CUDA: a tiled kernel of warp matrix (wmma) instructions.

A half-precision kernel that is one plain strided product (it has a cuBLAS descriptor,
codegen/cuda_blas.py) is rendered from that descriptor instead of as a reduction per output.
Each block computes a TILE_M x TILE_N tile of one batch element's output. The operands' TILE_K
slices are staged in shared memory in their global layout (so a transposed operand is a column-major
fragment, not a copy), two stages deep: while the warps multiply one stage, `cp.async` fills the
other. Four warps each hold a 64x64 block of the tile as 4x4 fragments of 16x16 float32
accumulators; 16x16x16 `wmma.mma` steps consume the stage. Loads past the matrix edges are zero
filled and stores are guarded, so any size is right; 16-byte copies are used where every row
starts 16-byte aligned (checked in the kernel for the base pointers), element copies elsewhere.

The wmma instructions are written as inline PTX: NVRTC has no <mma.h> without a CUDA toolkit.
They need sm_80 (bfloat16 fragments, cp.async); the kernel keeps the plain generated body under
`#else` for older GPUs, which runs right with the same launch (its threads stride over the grid).
"""
from __future__ import annotations

TILE_M, TILE_N, TILE_K = 128, 128, 32
WARPS_M, WARPS_N = 2, 2  # the block's warps as a grid over the tile (measured: 2x2 beat 2x4, 1x4 and 128x64 tiles)
THREADS = 32 * WARPS_M * WARPS_N
FRAG = 16  # wmma's m16n16k16
FRAGS_M, FRAGS_N = TILE_M // WARPS_M // FRAG, TILE_N // WARPS_N // FRAG  # fragments per warp each way
# halves of padding per shared row: rows land 16 bytes further along the banks, fragments stay 32-byte aligned
PAD = 8
GROUP = 8  # tile rows swept together, so the blocks resident at once share operand panels in L2
VECTOR = 8  # halves per 16-byte copy
MAX_BLOCKS = 2**31 - 1
_PTX_TYPE = {"bfloat16": "bf16", "float16": "f16"}
_REGS = {"bfloat16": 4, "float16": 8}  # 32-bit registers holding a thread's share of an a or b fragment


def _operands(first: int, count: int) -> str:
    """PTX operand vector {%first, ..., %(first+count-1)}."""
    return "{" + ", ".join(f"%{first + i}" for i in range(count)) + "}"


def _bind(constraint: str, array: str, count: int) -> str:
    return ", ".join(f'"{constraint}"({array}[{i}])' for i in range(count))


def _asm_function(signature: str, instruction: str, outputs: str, inputs: str, clobbers: str = "") -> str:
    return f'FG_DEVICE void {signature} {{\n  asm volatile("{instruction};" : {outputs} : {inputs}{clobbers});\n}}'


def _wmma_helpers() -> str:
    """Device functions wrapping the wmma PTX for both half types and both layouts of each operand."""
    shared = '"r"((unsigned)__cvta_generic_to_shared(s))'
    functions = []
    for dtype, ptx in _PTX_TYPE.items():
        n = _REGS[dtype]
        for operand in ("a", "b"):
            for layout in ("row", "col"):
                load = f"wmma.load.{operand}.sync.aligned.{layout}.m16n16k16.shared.{ptx}"
                functions.append(_asm_function(  # "memory": ordered after the plain stores of fg_mma_stage
                    f"fg_wmma_{operand}_{layout}_{ptx}(unsigned (&r)[{n}], const uint16_t* s, int ld)",
                    f"{load} {_operands(0, n)}, [%{n}], %{n + 1}", _bind("=r", "r", n), f'{shared}, "r"(ld)',
                    ' : "memory"'))
        types = "f32.bf16.bf16.f32" if ptx == "bf16" else "f32.f32"
        for la in ("row", "col"):
            for lb in ("row", "col"):
                functions.append(_asm_function(
                    f"fg_wmma_mma_{la}_{lb}_{ptx}(float (&d)[8], const unsigned (&a)[{n}], const unsigned (&b)[{n}])",
                    f"wmma.mma.sync.aligned.{la}.{lb}.m16n16k16.{types} {_operands(0, 8)}, {_operands(8, n)}, "
                    f"{_operands(8 + n, n)}, {_operands(0, 8)}",
                    _bind("+f", "d", 8), _bind("r", "a", n) + ", " + _bind("r", "b", n)))
    functions.append(_asm_function(
        "fg_wmma_store(float* s, const float (&d)[8])",
        f"wmma.store.d.sync.aligned.row.m16n16k16.shared.f32 [%0], {_operands(1, 8)}, 16", "",
        f'{shared}, {_bind("f", "d", 8)}', ' : "memory"'))
    return "\n".join(functions)


# Staging one operand slice (`rows` x `cols` of the global matrix at `g`, row stride `ld`; only
# `rows_left` x `cols_left` of it inside the matrix) into a ROWS x COLS shared tile of row stride LDS.
MMA_PREAMBLE = r"""#if __CUDA_ARCH__ >= 800
template <int ROWS, int COLS, int LDS>
FG_DEVICE void fg_mma_stage(uint16_t* s, const uint16_t* g, int64_t ld, int rows_left, int cols_left, bool vec) {
  if (vec) {  /* 16-byte copies in flight while the warps compute; a chunk outside the matrix reads 0 bytes */
    for (int i = threadIdx.x; i < ROWS * COLS / 8; i += blockDim.x) {
      const int r = i / (COLS / 8), c = i % (COLS / 8) * 8;
      const bool inside = r < rows_left && c < cols_left;
      const uint16_t* src = inside ? g + r * ld + c : g;
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::
                   "r"((unsigned)__cvta_generic_to_shared(s + r * LDS + c)), "l"(src), "r"(inside ? 16 : 0));
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * COLS; i += blockDim.x) {
      const int r = i / COLS, c = i % COLS;
      s[r * LDS + c] = (r < rows_left && c < cols_left) ? g[r * ld + c] : (uint16_t)0;
    }
  }
}
""" + _wmma_helpers() + "\n#endif\n"


def fits(descriptor: dict) -> bool:
    """Whether the tensor-core kernel computes this product: a half type, a whole fragment each way."""
    d = descriptor
    return d["dtype"] in _PTX_TYPE and d["m"] >= FRAG and d["n"] >= FRAG and blocks(d) <= MAX_BLOCKS


def blocks(descriptor: dict) -> int:
    """Blocks to launch: one per output tile of each batch element."""
    d = descriptor
    return d["batch"] * -(-d["m"] // TILE_M) * -(-d["n"] // TILE_N)


def _aligned(*elements: int) -> bool:
    return all(e % VECTOR == 0 for e in elements)


def _operand(name: str, desc: dict, transposed: bool, ld: int, outer: str, inner: str) -> dict[str, object]:
    """Where a stage of operand `name` comes from and how its fragments read it. Stored
    [outer][inner] (as written: A is [m][k], B is [k][n]) or, transposed, [inner][outer]."""
    param, offset, stride = desc[name]
    rows, cols = (inner, outer) if transposed else (outer, inner)
    tile = {"m": TILE_M, "n": TILE_N, "k": TILE_K}
    contiguous = desc[cols]
    return {"param": param, "base": f"{offset} + (int64_t)fg_batch * {stride}", "ld": ld,
            "rows": rows, "cols": cols, "tile_rows": tile[rows], "tile_cols": tile[cols],
            "lds": tile[cols] + PAD, "vec": _aligned(ld, offset, stride, contiguous)}


def render_mma(signature: str, name: str, desc: dict, fallback: str) -> str:
    """The kernel source: the tensor-core product for sm_80 and newer, `fallback` (the plain
    generated body, without its braces) for older GPUs."""
    ptx, m, n, k = _PTX_TYPE[desc["dtype"]], desc["m"], desc["n"], desc["k"]
    a = _operand("a", desc, desc["ta"], desc["lda"], "m", "k")
    b = _operand("b", desc, desc["tb"], desc["ldb"], "k", "n")
    tiles_m, tiles_n = -(-m // TILE_M), -(-n // TILE_N)
    c_offset, c_stride = desc["c"]
    store_vec = _aligned(n, c_offset, c_stride)
    to_half = "fg_f32_to_bf16" if ptx == "bf16" else "fg_f2h"
    extent = {"m": m, "n": n, "k": k}

    def stage(buffer: object, k0: object) -> str:
        """Copies of both operands' slices starting at k0 into stage `buffer`."""
        origin = {"m": "fg_m0", "n": "fg_n0", "k": f"({k0})"}
        calls = []
        for label, op in (("a", a), ("b", b)):
            r, c = op["rows"], op["cols"]
            calls.append(f"fg_mma_stage<{op['tile_rows']}, {op['tile_cols']}, {op['lds']}>(fg_s{label}[{buffer}], "
                         f"fg_{label} + (int64_t){origin[r]} * {op['ld']} + {origin[c]}, {op['ld']}, "
                         f"{extent[r]} - {origin[r]}, {extent[c]} - {origin[c]}, fg_vec);")
        return " ".join(calls)
    # a fragment's first element: A at (row, kk), B at (kk, column), in each operand's shared layout
    a_at = (f"fg_sa[fg_stage] + fg_kk * {a['lds']} + fg_wm + {FRAG} * i" if desc["ta"]
            else f"fg_sa[fg_stage] + (fg_wm + {FRAG} * i) * {a['lds']} + fg_kk")
    b_at = (f"fg_sb[fg_stage] + (fg_wn + {FRAG} * j) * {b['lds']} + fg_kk" if desc["tb"]
            else f"fg_sb[fg_stage] + fg_kk * {b['lds']} + fg_wn + {FRAG} * j")
    la, lb = ("col" if desc["ta"] else "row"), ("col" if desc["tb"] else "row")
    regs = _REGS[desc["dtype"]]
    vec_static = "true" if a["vec"] and b["vec"] else "false"
    body = f"""#if __CUDA_ARCH__ >= 800
  __shared__ __align__(128) uint16_t fg_sa[2][{a['tile_rows'] * a['lds']}];
  __shared__ __align__(128) uint16_t fg_sb[2][{b['tile_rows'] * b['lds']}];
  const int fg_warp = threadIdx.x / 32, fg_lane = threadIdx.x % 32;
  const int fg_wm = fg_warp / {WARPS_N} * {FRAGS_M * FRAG}, fg_wn = fg_warp % {WARPS_N} * {FRAGS_N * FRAG};
  /* the block's tile: batch element, then groups of {GROUP} tile rows swept column by column */
  const unsigned int fg_batch = blockIdx.x / {tiles_m * tiles_n}u, fg_t = blockIdx.x % {tiles_m * tiles_n}u;
  const unsigned int fg_first = fg_t / {GROUP * tiles_n}u * {GROUP}u, fg_in = fg_t % {GROUP * tiles_n}u;
  const unsigned int fg_rows = min({tiles_m}u - fg_first, {GROUP}u);
  const int fg_m0 = (int)(fg_first + fg_in % fg_rows) * {TILE_M}, fg_n0 = (int)(fg_in / fg_rows) * {TILE_N};
  const uint16_t* fg_a = p{a['param']} + ({a['base']});
  const uint16_t* fg_b = p{b['param']} + ({b['base']});
  uint16_t* fg_c = p0 + ({c_offset} + (int64_t)fg_batch * {c_stride});
  const bool fg_vec = {vec_static} && ((((unsigned long long)fg_a | (unsigned long long)fg_b) & 15) == 0);
  float fg_acc[{FRAGS_M}][{FRAGS_N}][8];
  #pragma unroll
  for (int i = 0; i < {FRAGS_M}; i++)
    #pragma unroll
    for (int j = 0; j < {FRAGS_N}; j++)
      #pragma unroll
      for (int e = 0; e < 8; e++) fg_acc[i][j][e] = 0.0f;
  const int fg_steps = {-(-k // TILE_K)};
  {stage(0, 0)}
  asm volatile("cp.async.commit_group;");
  for (int fg_step = 0; fg_step < fg_steps; fg_step++) {{
    if (fg_step + 1 < fg_steps) {{  /* fill the other stage with the next slice while this one is used */
      {stage("(fg_step + 1) & 1", f"(fg_step + 1) * {TILE_K}")}
    }}
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 1;" ::: "memory");  /* this step's slice has landed */
    __syncthreads();
    const int fg_stage = fg_step & 1;
    #pragma unroll
    for (int fg_kk = 0; fg_kk < {TILE_K}; fg_kk += {FRAG}) {{
      unsigned fg_fa[{FRAGS_M}][{regs}], fg_fb[{FRAGS_N}][{regs}];
      #pragma unroll
      for (int i = 0; i < {FRAGS_M}; i++) fg_wmma_a_{la}_{ptx}(fg_fa[i], {a_at}, {a['lds']});
      #pragma unroll
      for (int j = 0; j < {FRAGS_N}; j++) fg_wmma_b_{lb}_{ptx}(fg_fb[j], {b_at}, {b['lds']});
      #pragma unroll
      for (int i = 0; i < {FRAGS_M}; i++)
        #pragma unroll
        for (int j = 0; j < {FRAGS_N}; j++) fg_wmma_mma_{la}_{lb}_{ptx}(fg_acc[i][j], fg_fa[i], fg_fb[j]);
    }}
    __syncthreads();  /* the stage is refilled next */
  }}
  /* through shared memory, one fragment per warp at a time: its element order is the hardware's */
  float* fg_out = (float*)&fg_sa[0][0] + fg_warp * {FRAG * FRAG};
  const int fg_r = fg_lane / 2, fg_col = fg_lane % 2 * 8;
  #pragma unroll
  for (int i = 0; i < {FRAGS_M}; i++)
    #pragma unroll
    for (int j = 0; j < {FRAGS_N}; j++) {{
      fg_wmma_store(fg_out, fg_acc[i][j]);
      __syncwarp();
      const int fg_gm = fg_m0 + fg_wm + {FRAG} * i + fg_r, fg_gn = fg_n0 + fg_wn + {FRAG} * j + fg_col;
      __align__(16) uint16_t fg_h[8];
      #pragma unroll
      for (int e = 0; e < 8; e++) fg_h[e] = {to_half}(fg_out[fg_r * {FRAG} + fg_col + e]);
      uint16_t* fg_dst = fg_c + (int64_t)fg_gm * {n} + fg_gn;
      if (fg_gm < {m}) {{
        if ({'true' if store_vec else 'false'} && fg_gn + 8 <= {n} && (((unsigned long long)fg_dst & 15) == 0)) {{
          *(uint4*)fg_dst = *(const uint4*)fg_h;
        }} else {{
          for (int e = 0; e < 8 && fg_gn + e < {n}; e++) fg_dst[e] = fg_h[e];
        }}
      }}
      __syncwarp();
    }}
#else
{fallback}
#endif"""
    launch_bounds = f" __launch_bounds__({THREADS}) {name}("
    return signature.replace(f" {name}(", launch_bounds, 1) + " {\n" + body + "\n}"

