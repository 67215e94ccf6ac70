"""fusegrad.linalg, shaped like torch.linalg: factorizations, solves and norms for float32 and float64
batches of matrices (leading batch dims).

Everything is composed from Tensor ops, so it runs as generated kernels on every device; the
factorizations take O(n) steps of a few kernels each (fine up to n of about 64-128). Gradients
of solve, inv, det, slogdet, cholesky and solve_triangular are closed-form `autograd.Function`
rules written with these same ops (second derivatives work); qr's and the norms' come by composition.
Only inv, solve and cholesky read values back (to raise LinAlgError where torch's CPU kernels do);
their `_ex` variants never do. See docs/linalg.md.
"""
from __future__ import annotations

from collections import namedtuple

from ..errors import LinAlgError

QRResult = namedtuple("QRResult", ["Q", "R"])
EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
CholeskyExResult = namedtuple("CholeskyExResult", ["L", "info"])
InvExResult = namedtuple("InvExResult", ["inverse", "info"])
SolveExResult = namedtuple("SolveExResult", ["result", "info"])
TriangularSolveResult = namedtuple("TriangularSolveResult", ["solution", "cloned_coefficient"])

from .jacobi import eigh, eigvalsh, svdvals  # noqa: E402
from .lu import det, inv, inv_ex, logdet, slogdet, solve, solve_ex  # noqa: E402
from .norms import cdist, cross, matrix_norm, norm, torch_cross, vector_norm  # noqa: E402
from .householder import qr  # noqa: E402
from .triangular import cholesky, cholesky_ex, cholesky_solve, solve_triangular, triangular_solve  # noqa: E402

__all__ = ["LinAlgError", "cholesky", "cholesky_ex", "cross", "det", "eigh", "eigvalsh", "inv", "inv_ex", "matrix_norm", "norm", "qr",
           "slogdet", "solve", "solve_ex", "solve_triangular", "svdvals", "vector_norm"]

