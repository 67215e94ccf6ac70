"""The float8 conversions as kernel helpers, one text for the C, CUDA and OpenCL preambles:
`fg_f32_to_<short>(float)` gives a code, `fg_<short>_to_f32(code)` its value, with the arithmetic of
the host codec (fusegrad/float8.py), so a value rounds alike wherever it is cast."""
from __future__ import annotations

from ..float8 import FORMATS, NAN, Format


def _helpers(fmt: Format, qualifier: str, u8: str, u32: str, rint: str) -> str:
    s, m = fmt.short, fmt.mantissa
    top = (1 << (7 - m)) - 1
    special = (f"if (e == {top}u) return fg_bits_f32(sign | 0x7f800000u | (m << {23 - m}) | (m ? 0x400000u : 0u));"
               if fmt.infinity else
               f"if (e == {top}u && m == {(1 << m) - 1}u) return fg_bits_f32(sign | 0x7fc00000u);")
    return f"""{qualifier} {u8} fg_f32_to_{s}(float f) {{
  const {u32} u = fg_f32_bits(f), sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return ({u8})(sign | {NAN}u);
  if (a >= {fmt.overflow_from}u) return ({u8})(sign | {fmt.overflow}u);
  if (a < {fmt.normal_from}u) return ({u8})(sign | ({u32}){rint}(fg_bits_f32(a) * {fmt.subnormal_scale!r}f));
  const {u32} rounded = (a + {(1 << (fmt.shift - 1)) - 1}u + ((a >> {fmt.shift}) & 1u)) >> {fmt.shift};
  return ({u8})(sign | (rounded - {fmt.rebias}u));
}}
{qualifier} float fg_{s}_to_f32({u8} x) {{
  const {u32} sign = ({u32})(x & 0x80u) << 24, e = (x >> {m}) & {top}u, m = x & {(1 << m) - 1}u;
  {special}
  if (e == 0u) {{ const float v = (float)m * {1 / fmt.subnormal_scale!r}f; return sign ? -v : v; }}
  return fg_bits_f32(sign | ((e + {127 - fmt.bias}u) << 23) | (m << {23 - m}));
}}
"""


def helpers(qualifier: str, u8: str = "uint8_t", u32: str = "uint32_t", rint: str = "rintf") -> str:
    """Both formats' helpers in a dialect: its function qualifier, 8- and 32-bit unsigned types, and
    round-to-nearest-even of a float (the preamble already defines fg_f32_bits and fg_bits_f32)."""
    return "".join(_helpers(fmt, qualifier, u8, u32, rint) for fmt in FORMATS.values())


FLOAT_BITS = {name: (f"fg_f32_to_{fmt.short}", f"fg_{fmt.short}_to_f32") for name, fmt in FORMATS.items()}
