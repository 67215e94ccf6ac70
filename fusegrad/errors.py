"""The typed exceptions fusegrad raises. Every one subclasses `Error`.

Each also subclasses the builtin exceptions torch raises for the same mistake, so `except
RuntimeError` (torch's type for shape and dtype mismatches) and `except ValueError`/`TypeError`
around PyTorch-style code keep working."""


class Error(Exception):
    """Base class of every fusegrad error."""


class ShapeError(Error, RuntimeError, ValueError):
    """Shapes that do not fit the op (broadcasting, reshape, matmul, ...)."""


class DTypeError(Error, RuntimeError, TypeError):
    """A dtype the op does not support, or an impossible conversion."""


class DeviceError(Error, RuntimeError):
    """Tensors on different devices, or a device that does not exist."""


class IndexOutOfRangeError(Error, IndexError):
    """An index (integer, slice or index tensor) outside the indexed dimension."""


class CompileError(Error, RuntimeError):
    """The system compiler rejected a generated kernel. Carries the source and the message."""

    def __init__(self, message: str, source: str = "", compiler_output: str = ""):
        super().__init__(f"{message}\n{compiler_output}".rstrip())
        self.source = source
        self.compiler_output = compiler_output


class GradError(Error, RuntimeError):
    """A gradient that cannot be computed as asked (no path, non-scalar without gradient, ...)."""


class JitError(Error, RuntimeError):
    """Something `fg.jit` cannot capture or replay faithfully (a host read during capture, a
    result overwritten by a later call, state it cannot carry from one call to the next)."""


class LinAlgError(Error, RuntimeError):
    """A matrix the factorization cannot handle: singular for inv/solve, not positive-definite for
    cholesky (torch.linalg.LinAlgError). Raising it reads values back from the device."""


class CacheWarning(UserWarning):
    """The kernel cache folder was refused (not private to this user) or could not be written; the
    process goes on with a private temporary folder. The message names the folder and the fix."""
