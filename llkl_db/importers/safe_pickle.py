"""Loading pickles that should hold only numpy arrays, dtypes, scalars and plain containers.

A pickle is a program: ``pickle.load`` calls whatever global the file names (``os.system`` as
easily as ``numpy.ndarray``). :class:`SafeUnpickler` resolves only the few globals that numpy
pickles of numbers reference, under their numpy 1.x and 2.x module names, and refuses every
other one before anything is called.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, restricted to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np
    from numpy._core import multiarray, numeric

    allowed: dict[tuple[str, str], Any] = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("_codecs", "encode")] = _latin1_encode
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays, dtypes and scalars, and plain containers
    (dict, list, tuple, str, numbers, which need no global); any other global is refused."""

    def __init__(self, file, source: str = "pickle") -> None:
        super().__init__(file)
        self._source = source
        self._allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        found = self._allowed.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        # A numpy dtype of Python objects would let the array carry arbitrary objects: the
        # dtype itself is checked after loading (see :func:`load_pickle`).
        return found


def _check_no_objects(value: Any, where: str) -> None:
    import numpy as np

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, np.ndarray) and item.dtype.hasobject:
            raise LlklError(f"{where}: refused a numpy array of Python objects (dtype {item.dtype})")


def load_pickle(path: str | Path) -> Any:
    """Load a pickle of numbers safely: a :class:`LlklError` names the file and the refused global."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LlklError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        value = SafeUnpickler(io.BytesIO(data), str(path)).load()
    except pickle.UnpicklingError as exc:
        raise LlklError(
            f"{path}: unsafe or invalid pickle ({exc}); only numpy arrays, dtypes and scalars are admitted"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise LlklError(f"{path}: not a readable pickle ({type(exc).__name__}: {str(exc)[:120]})") from None
    _check_no_objects(value, str(path))
    return value
