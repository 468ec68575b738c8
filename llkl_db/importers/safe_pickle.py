"""Loading pickles of numbers (numpy arrays, dtypes, scalars in plain containers) without running them:
nothing a file names is called, arrays are rebuilt from checked dtypes and byte counts, in a child process.

A pickle is a program, and numpy's own rebuilders trust the dtype state they are given (a
structured dtype with an object field is a segfault). :class:`SafeUnpickler` maps numpy's pickle
globals to inert placeholders; :func:`scan` checks the opcodes first and :class:`_Walker` the
result, with work bounded by the file size.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import signal
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO

from llkl_db.errors import LlklError

# ---------------------------------------------------------------------------------------------
# Limits. Everything a pickle can make this code do is bounded by these and by the file size.

MAX_DEPTH = 100  # nesting of containers (the 2025 files nest 4 deep)
MAX_NDIM = 32  # numpy 1.x's own limit
VISITS_BASE = 10_000  # values the post-load walk may visit, plus VISITS_PER_BYTE per byte of opcodes
# (every value costs at least one byte that is not string or bytes data)
VISITS_PER_BYTE = 4
_INT_BOUND = 1 << 63  # integers must fit in 64 bits: no quadratic hash collisions of huge ints
_BASE_MEMORY = 256 << 20  # the child's interpreter before any data (about 16 MB in practice)
_MEMORY_PER_PAYLOAD_BYTE = 4  # bytes and strings in the file: a copy or two while loading
_MEMORY_PER_STRUCTURE_BYTE = 160  # other opcodes: an empty dict is 1 byte in the file, 64 in memory
_BASE_CPU_S = 10
_CPU_S_PER_STRUCTURE_MB = 30  # the opcode scan and the walk run at a few microseconds per opcode
_CPU_S_PER_PAYLOAD_MB = 0.2

# Plain numeric dtypes, as numpy pickles name them, and their item sizes.
_ITEMSIZE = {
    "b1": 1,
    "i1": 1,
    "i2": 2,
    "i4": 4,
    "i8": 8,
    "u1": 1,
    "u2": 2,
    "u4": 4,
    "u8": 8,
    "f2": 2,
    "f4": 4,
    "f8": 8,
    "c8": 8,
    "c16": 16,
}
_NATIVE = "<" if sys.byteorder == "little" else ">"
_DTYPE_STRS = frozenset(
    (("|" if size == 1 else order) + name)
    for name, size in _ITEMSIZE.items()
    for order in "<>"  # one-byte types take '|', as numpy.dtype(...).str writes them
)

# Opcodes that numpy pickles of numbers never use and that reach past plain data.
_REFUSED_OPCODES = {
    "PERSID": "a persistent id",
    "BINPERSID": "a persistent id",
    "EXT1": "the copyreg extension registry",
    "EXT2": "the copyreg extension registry",
    "EXT4": "the copyreg extension registry",
    "INST": "a class instance",
    "OBJ": "a class instance",
    "NEWOBJ": "a class instance",
    "NEWOBJ_EX": "a class instance",
    "NEXT_BUFFER": "an out-of-band buffer",
    "READONLY_BUFFER": "an out-of-band buffer",
    "EMPTY_SET": "a set",
    "ADDITEMS": "a set",
    "FROZENSET": "a frozenset",
}
_INT_OPCODES = {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4"}
_PUT_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT"}
_PAYLOAD_OPCODES = {
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
    "BINBYTES",
    "SHORT_BINBYTES",
    "BINBYTES8",
    "BYTEARRAY8",
    "UNICODE",
    "BINUNICODE",
    "SHORT_BINUNICODE",
    "BINUNICODE8",
}


class Refused(Exception):
    """A pickle that is refused: the message says why, in one line, without the file name."""


def _one_line(text: str, limit: int = 300) -> str:
    """A message from pickle data (names may hold newlines) as one printable line."""
    return "".join(c if c.isprintable() else " " for c in text[:limit])


# ---------------------------------------------------------------------------------------------
# Placeholders: what find_class hands the unpickler instead of numpy's functions.

_UNSET = object()


class _NdarrayMarker:
    """Stands for ``numpy.ndarray``, which numpy pickles only pass to ``_reconstruct``; not callable."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayMarker()


class _Call:
    """A recorded call of a numpy global (and, for dtype and ndarray, its BUILD state): inert data."""

    __slots__ = ("kind", "args", "state")

    def __init__(self, kind: str, args: tuple) -> None:
        self.kind = kind
        self.args = args
        self.state = _UNSET

    def __setstate__(self, state: Any) -> None:
        # pickle's BUILD calls this: only store the state, once, for the two kinds that take one.
        if self.kind not in ("dtype", "ndarray") or self.state is not _UNSET:
            raise pickle.UnpicklingError(f"refused a BUILD on numpy {self.kind}")
        self.state = state


def _reconstruct(*args: Any) -> _Call:
    return _Call("ndarray", args)


def _dtype(*args: Any) -> _Call:
    return _Call("dtype", args)


def _scalar(*args: Any) -> _Call:
    return _Call("scalar", args)


def _frombuffer(*args: Any) -> _Call:
    return _Call("frombuffer", args)


def _latin1_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, restricted to latin-1."""
    if encoding not in ("latin1", "latin-1") or type(text) is not str or type(encoding) is not str:
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {str(encoding)[:40]!r}")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``, as protocols 0 to 2 write empty bytes (``bytes(n)`` would allocate n bytes)."""
    if args:
        raise pickle.UnpicklingError("refused bytes() with arguments")
    return b""


_GLOBALS: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _dtype}
for _core in ("numpy.core", "numpy._core"):
    _GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _GLOBALS[(f"{_core}.multiarray", "scalar")] = _scalar
    _GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _frombuffer
_GLOBALS[("_codecs", "encode")] = _latin1_encode
_GLOBALS[("__builtin__", "bytes")] = _GLOBALS[("builtins", "bytes")] = _empty_bytes


class SafeUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are inert placeholders for numpy's pickle functions;
    any other global is refused before anything is called."""

    def __init__(self, file: BinaryIO, source: str = "pickle") -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global {str(module)[:100]}.{str(name)[:100]}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id")


# ---------------------------------------------------------------------------------------------
# Checked data: what the walk after loading turns placeholders into (plain Python, no numpy).


class ArrayData:
    """A checked array: ``np.frombuffer(data, dtype).reshape(shape, order).transpose(axes)``."""

    __slots__ = ("dtype", "shape", "order", "axes", "data")

    def __init__(self, dtype: str, shape: tuple, order: str, axes: tuple | None, data: Any) -> None:
        self.dtype, self.shape, self.order, self.axes, self.data = dtype, shape, order, axes, data


class ScalarData:
    """A checked numpy scalar: one item of ``dtype`` in ``data``."""

    __slots__ = ("dtype", "data")

    def __init__(self, dtype: str, data: Any) -> None:
        self.dtype, self.data = dtype, data


class DtypeData:
    """A checked numpy dtype that appears as a value of its own."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


def _describe(value: Any) -> str:
    if type(value) is _Call:
        return f"numpy {value.kind}"
    return type(value).__name__


def _dtype_str(call: Any) -> str:
    """The dtype string ('<f8', '|b1') of a recorded ``numpy.dtype`` call, if it is plain numeric."""
    if type(call) is not _Call or call.kind != "dtype":
        raise Refused(f"an array's dtype is a {_describe(call)}, not a numpy dtype")
    args = call.args
    name = args[0] if args else None
    if type(name) is not str or name not in _ITEMSIZE:
        shown = repr(name)[:40] if type(name) in (str, bytes) else _describe(name)
        raise Refused(
            f"refused numpy dtype {shown}: only booleans, integers, floats and complex numbers are admitted "
            "(no Python objects, strings, records or dates)"
        )
    if len(args) != 3 or not all(type(a) in (bool, int) and a in (0, 1) for a in args[1:]) or args[1] != 0:
        raise Refused(f"malformed numpy dtype call for {name!r}")
    size = _ITEMSIZE[name]
    order = _NATIVE
    state = call.state
    if state is not _UNSET:
        if (
            type(state) is not tuple
            or len(state) not in (8, 9)
            or type(state[0]) is not int
            or state[0] != len(state) - 5
        ):
            raise Refused(f"unsupported numpy dtype state for {name!r} (expected version 3)")
        if len(state) == 9 and state[8] is not None:
            raise Refused(f"refused numpy dtype {name!r} with metadata")
        order, subarray, names, fields, elsize, alignment, flags = state[1:8]
        if type(order) is not str or order not in ("<", ">", "|", "="):
            shown = repr(order)[:20] if type(order) is str else _describe(order)
            raise Refused(f"refused byte order {shown} of numpy dtype {name!r}")
        if subarray is not None or names is not None or fields is not None:
            raise Refused(f"refused numpy dtype {name!r} with fields or a subarray (structured dtype)")
        if type(elsize) is not int or elsize not in (-1, size):
            raise Refused(f"refused numpy dtype {name!r} with item size {str(elsize)[:20]} (expected {size})")
        if type(alignment) is not int or alignment not in (-1, 1, 2, 4, 8, 16):
            raise Refused(f"refused numpy dtype {name!r} with alignment {str(alignment)[:20]}")
        if type(flags) is not int or flags != 0:
            raise Refused(f"refused numpy dtype {name!r} with flags {str(flags)[:20]} (plain numbers have 0)")
        if order == "|" and size > 1:
            raise Refused(f"refused byte order '|' of the multi-byte numpy dtype {name!r}")
        if order == "=":
            order = _NATIVE
    return ("|" if size == 1 else order) + name


def _shape(value: Any) -> tuple[int, ...]:
    if type(value) is not tuple or len(value) > MAX_NDIM or not all(type(d) is int for d in value):
        raise Refused(f"an array shape must be a tuple of at most {MAX_NDIM} integers")
    if any(d < 0 for d in value):
        raise Refused(f"refused the negative array shape {value}")
    return value


def _buffer(value: Any, what: str) -> Any:
    if type(value) not in (bytes, bytearray):
        raise Refused(f"the data of {what} is a {_describe(value)}, not bytes")
    return value


def _check_items(dtype: str, shape: tuple[int, ...], data: Any) -> None:
    """The byte count must be exactly what the shape and dtype need; booleans must be 0 or 1."""
    size = _ITEMSIZE[dtype[1:]]
    count = 1
    for d in shape:
        count *= d
    span = size
    for d in shape:
        span *= max(d, 1)
    if span >= 1 << 62:
        raise Refused(f"refused the array shape {shape}: too large")
    if len(data) != count * size:
        raise Refused(
            f"an array of shape {shape} and dtype {dtype} needs {count * size} bytes, the pickle has {len(data)}"
        )
    if dtype == "|b1" and data.translate(None, b"\x00\x01"):
        raise Refused("a boolean array holds bytes other than 0 and 1")


def _holds_array(key: Any) -> bool:
    if type(key) is tuple:
        return any(_holds_array(item) for item in key)
    return type(key) is ArrayData


class _Walker:
    """Checks the loaded value and turns placeholders into :class:`ArrayData` and friends: lists and
    dicts are reached once only (no cycles, no sharing); a shared tuple costs its full size each time."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.visits = 0
        self.mutables = 0
        self.seen: dict[int, Any] = {}

    def count(self, n: int) -> None:
        self.visits += n
        if self.visits > self.budget:
            raise Refused(
                f"more than {self.budget:,} values to check for a file of this size (a pickle bomb of shared references?)"
            )

    def walk(self, value: Any, depth: int = 0) -> Any:
        self.count(1)
        kind = type(value)
        if value is None or kind in (bool, int, float, str, bytes):
            return value
        if depth >= MAX_DEPTH:
            raise Refused(f"containers nested deeper than {MAX_DEPTH} levels")
        key = id(value)
        if kind is list or kind is dict:
            if key in self.seen:
                raise Refused(f"a {kind.__name__} is reached twice (a cycle or a shared reference)")
            self.seen[key] = None
            self.mutables += 1
            if kind is list:
                return [self.walk(item, depth + 1) for item in value]
            out = {}
            for k, v in value.items():
                k = self.walk(k, depth + 1)
                if _holds_array(k):
                    raise Refused("a numpy array is used as a dict key")
                out[k] = self.walk(v, depth + 1)
            return out
        if kind is tuple:
            if key in self.seen:
                cached = self.seen[key]
                if cached is None:
                    raise Refused("a tuple contains itself (a cycle)")
                converted, cost, has_mutable = cached
                if has_mutable:
                    raise Refused("a tuple holding a list or dict is reached twice (a shared reference)")
                self.count(cost)
                return converted
            self.seen[key] = None
            visits, mutables = self.visits, self.mutables
            converted = tuple(self.walk(item, depth + 1) for item in value)
            self.seen[key] = (converted, self.visits - visits, self.mutables > mutables)
            return converted
        if kind is _Call:
            converted = self.seen.get(key)
            if converted is None:
                converted = self.seen[key] = self.call(value)
            return converted
        raise Refused(
            f"refused a value of type {_describe(value)} (only numbers, strings, bytes, lists, tuples, dicts and numpy arrays)"
        )

    def call(self, call: _Call) -> Any:
        if call.kind == "dtype":
            return DtypeData(_dtype_str(call))
        if call.kind == "scalar":
            args = call.args
            if len(args) != 2:
                raise Refused("malformed numpy scalar")
            dtype = _dtype_str(args[0])
            data = _buffer(args[1], "a numpy scalar")
            _check_items(dtype, (), data)
            return ScalarData(dtype, data)
        if call.kind == "frombuffer":
            return self.frombuffer(call.args)
        return self.reconstruct(call)

    @staticmethod
    def reconstruct(call: _Call) -> ArrayData:
        """``_reconstruct(ndarray, (0,), b'b')`` then BUILD ``(1, shape, dtype, fortran, data)``."""
        args = call.args
        if len(args) != 3 or args[0] is not _NDARRAY or args[1] != (0,) or type(args[2]) not in (bytes, str):
            raise Refused("malformed numpy _reconstruct call (numpy writes _reconstruct(ndarray, (0,), b'b'))")
        state = call.state
        if state is _UNSET:
            raise Refused("a numpy array without its state")
        if type(state) is not tuple or len(state) not in (4, 5):
            raise Refused("malformed numpy array state")
        if len(state) == 5:
            if type(state[0]) is not int or state[0] != 1:
                raise Refused(f"unsupported numpy array state version {str(state[0])[:20]}")
            state = state[1:]
        shape, dtype, fortran, data = state
        dtype = _dtype_str(dtype)
        shape = _shape(shape)
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            raise Refused("malformed numpy array state (the Fortran-order flag)")
        data = _buffer(data, "a numpy array")
        _check_items(dtype, shape, data)
        return ArrayData(dtype, shape, "F" if fortran else "C", None, data)

    @staticmethod
    def frombuffer(args: tuple) -> ArrayData:
        """Protocol 5: ``_frombuffer(buffer, dtype, shape, order[, axis_order])`` with an in-band buffer."""
        if len(args) not in (4, 5):
            raise Refused("malformed numpy _frombuffer call")
        data = _buffer(args[0], "a numpy array")
        dtype = _dtype_str(args[1])
        shape = _shape(args[2])
        order = args[3]
        axes = args[4] if len(args) == 5 else None
        if type(order) is not str or order not in ("C", "F", "K"):
            raise Refused("malformed numpy _frombuffer call (the order)")
        if order == "K":
            if type(axes) is not tuple or sorted(a if type(a) is int else -1 for a in axes) != list(range(len(shape))):
                raise Refused("malformed numpy _frombuffer call (the axis order)")
            order = "C"
        elif axes is not None:
            raise Refused("malformed numpy _frombuffer call (an axis order without order 'K')")
        _check_items(dtype, shape, data)
        return ArrayData(dtype, shape, order, axes, data)


# ---------------------------------------------------------------------------------------------
# Loading in this process.


class _Clamped:
    """A file whose reads never ask for more than what is left (pickletools would allocate a
    length field's worth of memory before finding the file shorter)."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file, self._size = file, size

    def read(self, n: int = -1) -> bytes:
        left = max(self._size - self._file.tell(), 0)
        return self._file.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self._file.readline()

    def tell(self) -> int:
        return self._file.tell()


def scan(file: BinaryIO, size: int) -> tuple[int, int]:
    """Check every opcode before anything is built (linear in the file size); return (payload bytes,
    other bytes). Memo indices are bounded because the C unpickler sizes its memo by the largest one."""
    payload = ops = 0
    try:
        for op, arg, pos in pickletools.genops(_Clamped(file, size)):
            ops += 1
            name = op.name
            if name in _REFUSED_OPCODES:
                raise Refused(f"refused opcode {name} ({_REFUSED_OPCODES[name]}) at byte {pos}")
            if name in _PAYLOAD_OPCODES:
                payload += len(arg)
            elif name in _INT_OPCODES:
                if not -_INT_BOUND <= arg < _INT_BOUND:
                    raise Refused(f"an integer beyond 64 bits at byte {pos}")
            elif name in _PUT_OPCODES:
                if arg > ops:
                    raise Refused(f"memo index {arg} at byte {pos} is beyond the {ops} opcodes before it")
            elif name == "PROTO":
                if arg > pickle.HIGHEST_PROTOCOL:
                    raise Refused(f"unsupported pickle protocol {arg}")
            elif name == "FRAME":
                if pos is not None and arg > size - pos:
                    raise Refused(f"not a readable pickle (a frame of {arg} bytes at byte {pos} runs past the end)")
    except ValueError as exc:  # pickletools: truncated or unknown opcodes
        raise Refused(f"not a readable pickle ({str(exc)[:160]})") from None
    return payload, max(size - payload, 0)


def _load_checked(file: BinaryIO, size: int, source: str, after_scan: Any = None) -> Any:
    """Scan, unpickle with placeholders and walk: the checked value, with ArrayData for arrays."""
    payload, structure = scan(file, size)
    if after_scan is not None:
        after_scan(payload, structure)
    file.seek(0)
    try:
        loaded = SafeUnpickler(file, source).load()
    except pickle.UnpicklingError as exc:
        raise Refused(
            f"unsafe or invalid pickle ({str(exc)[:200]}); only numpy arrays, dtypes and scalars are admitted"
        ) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, struct.error) as exc:
        raise Refused(f"not a readable pickle ({type(exc).__name__}: {str(exc)[:120]})") from None
    walker = _Walker(VISITS_BASE + VISITS_PER_BYTE * structure)
    try:
        return walker.walk(loaded)
    finally:
        del loaded  # dropped here, before the caller copies anything


def _materialise(value: Any, cache: dict[int, Any], copy: bool) -> Any:
    """Checked data -> the value with numpy arrays, scalars and dtypes (shared tuples and arrays stay shared)."""
    import numpy as np

    kind = type(value)
    if kind is list:
        return [_materialise(item, cache, copy) for item in value]
    if kind is dict:
        return {_materialise(k, cache, copy): _materialise(v, cache, copy) for k, v in value.items()}
    if kind not in (tuple, ArrayData, ScalarData, DtypeData):
        return value
    key = id(value)
    if key in cache:
        return cache[key][1]
    if kind is tuple:
        out: Any = tuple(_materialise(item, cache, copy) for item in value)
    elif kind is DtypeData:
        out = np.dtype(value.dtype)
    elif kind is ScalarData:
        out = np.frombuffer(value.data, dtype=np.dtype(value.dtype))[0]
    else:
        out = np.frombuffer(value.data, dtype=np.dtype(value.dtype)).reshape(value.shape, order=value.order)
        if value.axes is not None:
            out = out.transpose(value.axes)
        if copy and not out.flags.writeable:
            out = out.copy(order="K")
    cache[key] = (value, out)  # keeps value alive so that its id is not reused
    return out


def _read_error(path: Path, exc: OSError) -> LlklError:
    return LlklError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})")


def load_pickle_in_process(path: str | Path) -> Any:
    """Load a pickle of numbers in this process, with every check of :func:`load_pickle` but
    without the child's CPU and memory limits."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            checked = _load_checked(file, size, str(path))
    except OSError as exc:
        raise _read_error(path, exc) from None
    except Refused as exc:
        raise LlklError(f"{path}: {_one_line(str(exc))}") from None
    except MemoryError:
        raise LlklError(f"{path}: not enough memory to unpickle it") from None
    except RecursionError:
        raise LlklError(f"{path}: nested too deeply to unpickle") from None
    return _materialise(checked, {}, copy=True)


# ---------------------------------------------------------------------------------------------
# The child process: checked data goes back through a pipe in a small tagged format.
#
# stdout of the child: b"O", u64 length + structure, u64 length + data (the arrays' bytes, each
# padded to 16), or b"E" + a one-line message, or b"M" (out of memory). Structure tags: N T F
# (None, True, False), i (i64), f (f64), s (str), b (bytes), l t d (list, tuple, dict + count),
# a (array: dtype, order, axes, shape, offset, nbytes), r (an array sent before: its index),
# c (scalar: dtype + bytes), D (dtype).

_ALIGN = 16


class _Encoder:
    def __init__(self) -> None:
        self.out = bytearray()
        self.chunks: list[Any] = []
        self.offset = 0
        self.arrays: dict[int, int] = {}

    def text(self, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self.out += struct.pack("<Q", len(data))
        self.out += data

    def encode(self, value: Any) -> None:
        out = self.out
        kind = type(value)
        if value is None:
            out += b"N"
        elif value is True:
            out += b"T"
        elif value is False:
            out += b"F"
        elif kind is int:
            out += b"i" + struct.pack("<q", value)
        elif kind is float:
            out += b"f" + struct.pack("<d", value)
        elif kind is str:
            out += b"s"
            self.text(value)
        elif kind is bytes:
            out += b"b" + struct.pack("<Q", len(value))
            out += value
        elif kind in (list, tuple):
            out += (b"l" if kind is list else b"t") + struct.pack("<Q", len(value))
            for item in value:
                self.encode(item)
        elif kind is dict:
            out += b"d" + struct.pack("<Q", len(value))
            for k, v in value.items():
                self.encode(k)
                self.encode(v)
        elif kind is DtypeData:
            out += b"D"
            self.text(value.dtype)
        elif kind is ScalarData:
            out += b"c"
            self.text(value.dtype)
            out += struct.pack("<Q", len(value.data))
            out += value.data
        elif kind is ArrayData:
            if id(value) in self.arrays:
                out += b"r" + struct.pack("<Q", self.arrays[id(value)])
                return
            self.arrays[id(value)] = len(self.arrays)
            out += b"a"
            self.text(value.dtype)
            out += value.order.encode()
            axes = value.axes if value.axes is not None else ()
            out += struct.pack(f"<BB{len(axes)}B", value.axes is not None, len(axes), *axes)
            out += struct.pack(f"<B{len(value.shape)}Q", len(value.shape), *value.shape)
            out += struct.pack("<QQ", self.offset, len(value.data))
            self.chunks.append(value.data)
            pad = -len(value.data) % _ALIGN
            if pad:
                self.chunks.append(bytes(pad))
            self.offset += len(value.data) + pad
        else:  # the walk lets nothing else through
            raise Refused(f"cannot send a {kind.__name__} back")


class _Decoder:
    """Reads the child's structure; checks what it is told, as if the child could lie."""

    def __init__(self, structure: bytes, data: bytearray) -> None:
        import numpy as np

        self.np = np
        self.buf, self.pos, self.data = structure, 0, data
        self.arrays: list[Any] = []

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated")
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self) -> str:
        return self.take(self.unpack("<Q")[0]).decode("utf-8", "surrogatepass")

    def dtype(self) -> Any:
        name = self.text()
        if name not in _DTYPE_STRS:
            raise ValueError(f"dtype {name!r}")
        return self.np.dtype(name)

    def decode(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH + 1:
            raise ValueError("too deep")
        tag = self.take(1)
        if tag == b"N":
            return None
        if tag in (b"T", b"F"):
            return tag == b"T"
        if tag == b"i":
            return self.unpack("<q")[0]
        if tag == b"f":
            return self.unpack("<d")[0]
        if tag == b"s":
            return self.text()
        if tag == b"b":
            return self.take(self.unpack("<Q")[0])
        if tag in (b"l", b"t"):
            (n,) = self.unpack("<Q")
            if n > len(self.buf) - self.pos:
                raise ValueError("count")
            items = [self.decode(depth + 1) for _ in range(n)]
            return items if tag == b"l" else tuple(items)
        if tag == b"d":
            (n,) = self.unpack("<Q")
            if n > len(self.buf) - self.pos:
                raise ValueError("count")
            out = {}
            for _ in range(n):
                k = self.decode(depth + 1)
                out[k] = self.decode(depth + 1)
            return out
        if tag == b"D":
            return self.dtype()
        if tag == b"c":
            dtype = self.dtype()
            data = self.take(self.unpack("<Q")[0])
            if len(data) != dtype.itemsize:
                raise ValueError("scalar size")
            return self.np.frombuffer(data, dtype=dtype)[0]
        if tag == b"r":
            return self.arrays[self.unpack("<Q")[0]]
        if tag == b"a":
            return self.array()
        raise ValueError(f"tag {tag!r}")

    def array(self) -> Any:
        dtype = self.dtype()
        order = self.take(1).decode("ascii")
        has_axes, n_axes = self.unpack("<BB")
        axes = self.unpack(f"<{n_axes}B") if n_axes else ()
        (ndim,) = self.unpack("<B")
        shape = self.unpack(f"<{ndim}Q") if ndim else ()
        offset, nbytes = self.unpack("<QQ")
        count = 1
        for d in shape:
            count *= d
        if (
            order not in ("C", "F")
            or ndim > MAX_NDIM
            or (has_axes and sorted(axes) != list(range(ndim)))
            or count * dtype.itemsize != nbytes
            or offset % _ALIGN
            or offset + nbytes > len(self.data)
        ):
            raise ValueError("array header")
        array = self.np.frombuffer(self.data, dtype=dtype, count=count, offset=offset).reshape(shape, order=order)
        if has_axes:
            array = array.transpose(axes)
        self.arrays.append(array)
        return array


def _limits_for(size: int) -> dict[str, int]:
    """The child's caps for a file of ``size`` bytes: the most it may ever use (hard limits)."""
    mb = size / 2**20
    return {
        "cpu_s": int(_BASE_CPU_S + _CPU_S_PER_STRUCTURE_MB * mb) + 1,
        "memory": _BASE_MEMORY + _MEMORY_PER_STRUCTURE_BYTE * size,
        "wall_s": int(3 * (_BASE_CPU_S + _CPU_S_PER_STRUCTURE_MB * mb)) + 30,
    }


def _set_limit(resource: Any, which: int, soft: int, hard: int | None = None) -> None:
    """Lower a resource limit (never above the hard limit the process already has)."""
    try:
        old_soft, old_hard = resource.getrlimit(which)
        if hard is None:
            hard = old_hard
        elif old_hard != resource.RLIM_INFINITY:
            hard = min(hard, old_hard)
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        pass


def _child_main(argv: list[str]) -> None:
    """Entry point of the child: limits first, then load, check and send back (stdout)."""
    path, size, cpu_s, memory = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    out = sys.stdout.buffer
    try:
        import resource
    except ImportError:  # not POSIX: no limits, the checks still apply
        resource = None
    if resource is not None:
        _set_limit(resource, resource.RLIMIT_CORE, 0, 0)
        _set_limit(resource, resource.RLIMIT_FSIZE, 1 << 20, 1 << 20)  # no file grows past 1 MB
        # the scan holds one opcode's argument at a time: the file size is enough until it ends
        _set_limit(resource, resource.RLIMIT_AS, _BASE_MEMORY + 2 * size, memory)
        _set_limit(resource, resource.RLIMIT_CPU, min(cpu_s, _BASE_CPU_S + 5 * size // 2**20), cpu_s + 1)

    def after_scan(payload: int, structure: int) -> None:
        # now that the kinds of bytes are known: limits for loading what this file really holds
        if resource is None:
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        allowance = _BASE_CPU_S + _CPU_S_PER_STRUCTURE_MB * structure / 2**20 + _CPU_S_PER_PAYLOAD_MB * payload / 2**20
        _set_limit(resource, resource.RLIMIT_CPU, int(min(cpu_s, spent + allowance)) + 1)
        need = _BASE_MEMORY + _MEMORY_PER_PAYLOAD_BYTE * payload + _MEMORY_PER_STRUCTURE_BYTE * structure
        _set_limit(resource, resource.RLIMIT_AS, min(memory, need))

    try:
        with open(path, "rb") as file:
            checked = _load_checked(file, size, path, after_scan)
        encoder = _Encoder()
        encoder.encode(checked)
    except Refused as exc:
        out.write(b"E" + _one_line(str(exc)).encode("utf-8", "replace"))
        out.flush()
        return
    except MemoryError:
        out.write(b"M")
        out.flush()
        return
    except RecursionError:
        out.write(b"E" + b"nested too deeply to unpickle")
        out.flush()
        return
    out.write(b"O" + struct.pack("<Q", len(encoder.out)))
    out.write(encoder.out)
    out.write(struct.pack("<Q", encoder.offset))
    for chunk in encoder.chunks:
        out.write(chunk)
    out.flush()


_CHILD_CODE = (
    "import importlib.util, sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "spec = importlib.util.spec_from_file_location('_llkl_safe_pickle_child', sys.argv[2])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "sys.modules[spec.name] = module\n"
    "spec.loader.exec_module(module)\n"
    "module._child_main(sys.argv[3:])\n"
)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_into(stream: Any, buffer: bytearray) -> int:
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    view.release()
    return got


def _death(path: Path, returncode: int, limits: dict[str, int], stderr: bytes, timed_out: bool) -> LlklError:
    if timed_out:
        return LlklError(f"{path}: the unpickler ran past {limits['wall_s']} s and was stopped")
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        if name == "SIGXCPU":
            return LlklError(
                f"{path}: the unpickler ran past its CPU time limit (SIGXCPU; at most {limits['cpu_s']} s)"
            )
        return LlklError(f"{path}: the unpickler was killed ({name}); the file is not a safe pickle of numbers")
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    last = _one_line(lines[-1].strip(), 200) if lines else "no message"
    if "MemoryError" in last:
        return LlklError(f"{path}: the unpickler ran out of memory (limit {limits['memory'] >> 20} MB)")
    return LlklError(f"{path}: the unpickler failed (exit code {returncode}: {last})")


def _load_in_child(path: Path, size: int) -> Any:
    limits = _limits_for(size)
    root = str(Path(__file__).resolve().parents[2])
    argv = [sys.executable, "-I", "-S", "-c", _CHILD_CODE, root, str(Path(__file__).resolve())]
    argv += [str(path), str(size), str(limits["cpu_s"]), str(limits["memory"])]
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        except OSError as exc:
            raise LlklError(f"{path}: cannot start the unpickler process ({exc})") from None
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(limits["wall_s"], stop)
        timer.daemon = True
        timer.start()
        structure, data, status = b"", bytearray(), b""
        bound = limits["memory"]  # the child cannot have built more than this
        try:
            status = proc.stdout.read(1)
            if status == b"O":
                (n,) = struct.unpack("<Q", _read_exact(proc.stdout, 8).ljust(8, b"\xff"))
                structure = _read_exact(proc.stdout, min(n, bound)) if n <= bound else b""
                complete = len(structure) == n
                (m,) = struct.unpack("<Q", _read_exact(proc.stdout, 8).ljust(8, b"\xff")) if complete else (0,)
                if complete and m <= bound:
                    data = bytearray(m)
                    complete = _read_into(proc.stdout, data) == m
                else:
                    complete = False
            else:
                message = proc.stdout.read(4096)
            proc.stdout.close()
            returncode = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if returncode != 0 or timed_out.is_set():
            stderr.seek(0)
            raise _death(path, returncode, limits, stderr.read()[-4096:], timed_out.is_set())
    if status == b"E":
        raise LlklError(f"{path}: {_one_line(message.decode('utf-8', 'replace')) or 'refused'}")
    if status == b"M":
        raise LlklError(f"{path}: the unpickler ran out of memory (limit {limits['memory'] >> 20} MB)")
    if status != b"O" or not complete:
        raise LlklError(f"{path}: the unpickler process sent back no usable answer")
    try:
        decoder = _Decoder(structure, data)
        value = decoder.decode()
        if decoder.pos != len(structure):
            raise ValueError("trailing data")
    except (ValueError, TypeError, IndexError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise LlklError(f"{path}: the unpickler process sent back malformed data ({str(exc)[:80]})") from None
    return value


def load_pickle(path: str | Path) -> Any:
    """Load a pickle of numbers safely, in a child process under CPU and memory limits; a refusal or
    the child's death is a one-line :class:`LlklError` naming the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise LlklError(f"{path}: not a file")
    except OSError as exc:
        raise _read_error(path, exc) from None
    if not sys.executable:  # embedded interpreters: no child to start
        return load_pickle_in_process(path)
    return _load_in_child(path, size)
