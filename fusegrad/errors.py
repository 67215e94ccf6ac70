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


class IntegerOverflowError(Error, OverflowError, ValueError):
    """A Python int outside [-2**63, 2**64), the range ops read scalars in (torch raises OverflowError,
    and ValueError from torch.tensor and item assignment)."""


class ValueRangeError(Error, RuntimeError):
    """A value that does not fit the dtype it is written into (full, fill_, masked_fill, x[i] = v,
    tensor(..., dtype=)): torch's "value cannot be converted to type ... without overflow"."""


class StateDictError(Error, ValueError, KeyError):
    """A state dict that does not fit the object loading it (groups, parameter counts, shapes, dtypes,
    missing keys): ValueError, as torch raises for count mismatches, and KeyError for a missing entry."""

    __str__ = Exception.__str__  # the message as written, not KeyError's quoted repr


class DeviceError(Error, RuntimeError):
    """Tensors on different devices, or a device that does not exist."""


class IndexOutOfRangeError(Error, IndexError, RuntimeError):
    """An index (integer, slice or index tensor) outside the indexed dimension. Also a RuntimeError:
    torch raises that for gather and scatter, IndexError for indexing, index_select and embedding."""


class InvalidValueError(Error, RuntimeError, ValueError):
    """Values an op cannot take (multinomial weights that are negative, infinite or NaN); torch raises
    RuntimeError, a host-side check in plain Python would raise ValueError."""


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
