"""fusegrad.linalg, shaped like torch.linalg: factorizations, solves and norms for float32 and float64
batches of matrices (leading batch dims).

Everything is composed from Tensor ops, so it runs as generated kernels on every device; the
factorizations take O(n) steps of a few kernels each (fine up to n of about 64-128). Gradients
of solve, inv, det, slogdet, cholesky, eigh, matrix_exp and the triangular solves are closed-form
`autograd.Function` rules written with these same ops (second derivatives work); the others' come by
composition.
Only inv, solve and cholesky (and matrix_power of a negative power, through inv) read values back,
to raise LinAlgError where torch's CPU kernels do; their `_ex` variants never do. See docs/linalg.md.
"""
from __future__ import annotations

from ..errors import LinAlgError
from .jacobi import eigh, eigvalsh, svdvals
from .leastsq import lstsq, pinv
from .lu import det, inv, inv_ex, lu, lu_factor, lu_solve, slogdet, solve, solve_ex
from .householder import qr
from .norms import cond, cross, matrix_norm, norm, vector_norm
from .products import diagonal, matmul, matrix_exp, matrix_power, multi_dot, vecdot
from .triangular import cholesky, cholesky_ex, solve_triangular

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cond", "cross", "det", "diagonal", "eigh", "eigvalsh", "inv",
           "inv_ex", "lstsq", "lu", "lu_factor", "lu_solve", "matmul", "matrix_exp", "matrix_norm", "matrix_power",
           "multi_dot", "norm", "pinv", "qr", "slogdet", "solve", "solve_ex", "solve_triangular", "svdvals", "vecdot",
           "vector_norm"]
