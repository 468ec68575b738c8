"""The restricted unpickler against hostile pickles, written opcode by opcode: code-execution gadgets,
numpy dtype states that crash numpy, bombs of work and memory, cycles; and numpy pickles of every
protocol that must still load exactly."""

from __future__ import annotations

import pickle
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llkl_db.errors import LlklError
from llkl_db.importers import safe_pickle
from llkl_db.importers.safe_pickle import load_pickle, load_pickle_in_process

LOADERS = [load_pickle, load_pickle_in_process]

# --- a tiny pickle builder: raw opcodes, nothing pickled from a malicious class -------------------

PROTO2, PROTO3, PROTO4 = b"\x80\x02", b"\x80\x03", b"\x80\x04"
NONE, TRUE, FALSE, REDUCE, BUILD, STOP = b"N", b"\x88", b"\x89", b"R", b"b", b"."


def text(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def raw(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data  # BINBYTES


def num(n: int) -> bytes:
    return b"J" + struct.pack("<i", n) if -(1 << 31) <= n < 1 << 31 else big(n)  # BININT or LONG1


def big(n: int) -> bytes:
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def stack_glob(module: str, name: str) -> bytes:
    return b"\x8c" + bytes([len(module)]) + module.encode() + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93"


def tup(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def dct(*pairs: tuple[bytes, bytes]) -> bytes:
    return b"}(" + b"".join(k + v for k, v in pairs) + b"u"


def call(callable_: bytes, *args: bytes) -> bytes:
    return callable_ + tup(*args) + REDUCE


def dtype_state(order="<", subarray=NONE, names=NONE, fields=NONE, elsize=-1, alignment=-1, flags=0) -> bytes:
    return tup(num(3), text(order), subarray, names, fields, num(elsize), num(alignment), num(flags))


def dtype(name: str, state: bytes | None = None) -> bytes:
    out = call(glob("numpy", "dtype"), text(name), FALSE, TRUE)
    return out + state + BUILD if state is not None else out


def array(dt: bytes, shape: tuple, data: bytes, fortran: bool = False) -> bytes:
    made = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(num(0)), raw(b"b"))
    return made + tup(num(1), tup(*map(num, shape)), dt, TRUE if fortran else FALSE, raw(data)) + BUILD


F8 = dtype("f8", dtype_state())


def write(tmp_path: Path, data: bytes, name: str = "hostile.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(path: Path, pattern: str, loader=load_pickle) -> str:
    with pytest.raises(LlklError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert re.search(pattern, message), message
    return message


# --- code execution --------------------------------------------------------------------------------


def gadgets(sentinel: Path) -> list[tuple[str, str, list[bytes]]]:
    s = str(sentinel)
    touch = f"open({s!r}, 'w').close()"
    return [
        ("os", "system", [text(f"touch {s}")]),
        ("posix", "system", [text(f"touch {s}")]),
        ("builtins", "eval", [text(touch)]),
        ("builtins", "exec", [text(touch)]),
        ("__builtin__", "eval", [text(touch)]),
        ("copyreg", "_reconstructor", [NONE, NONE, NONE]),
        ("numpy", "load", [text(s)]),
        ("numpy", "memmap", [text(s), text("u1"), text("w+"), num(0), tup(num(1))]),  # would create the file
        ("numpy.f2py", "run_main", [b"](" + text("-h") + text(s) + text("x.f") + b"e"]),
        ("numpy.ctypeslib", "load_library", [text("libc"), text(str(sentinel.parent))]),
    ]


@pytest.mark.parametrize("form", ["GLOBAL", "STACK_GLOBAL"])
@pytest.mark.parametrize("index", range(10))
def test_code_execution_gadgets_are_refused_before_running(tmp_path, form, index):
    sentinel = tmp_path / "PWNED"
    module, name, args = gadgets(sentinel)[index]
    if form == "GLOBAL":
        data = PROTO2 + call(glob(module, name), *args) + STOP
    else:
        data = PROTO4 + call(stack_glob(module, name), *args) + STOP
    path = write(tmp_path, data)
    for loader in LOADERS:
        refused(path, rf"refused global {re.escape(module)}\.{re.escape(name)}", loader)
    assert not sentinel.exists()


def test_gadget_inside_plain_data_and_after_a_real_array(tmp_path):
    sentinel = tmp_path / "PWNED"
    gadget = call(glob("os", "system"), text(f"touch {sentinel}"))
    path = write(tmp_path, PROTO2 + dct((text("ok"), array(F8, (1,), bytes(8))), (text("x"), gadget)) + STOP)
    refused(path, r"refused global os\.system")
    assert not sentinel.exists()


def test_a_global_name_with_a_newline_is_reported_on_one_line(tmp_path):
    path = write(tmp_path, PROTO4 + call(stack_glob("os\nfake", "system\r\nx"), text("true")) + STOP)
    for loader in LOADERS:
        refused(path, r"refused global os fake\.system  x", loader)


def test_only_inert_placeholders_are_handed_to_the_unpickler():
    for (module, name), found in safe_pickle._GLOBALS.items():
        assert type(found).__module__ == safe_pickle.__name__ or found.__module__ == safe_pickle.__name__, (
            module,
            name,
        )


# --- numpy dtype states that numpy itself would trust ---------------------------------------------

DTYPE_GADGETS = {
    # a structured dtype with an object field and zeroed flags: numpy reads the bytes as a pointer
    "object-field": (
        dtype(
            "V8",
            dtype_state(
                "|",
                names=tup(text("a")),
                fields=dct((text("a"), tup(dtype("O8", dtype_state("|", flags=0)), num(0)))),
                elsize=8,
                alignment=1,
                flags=0,
            ),
        ),
        b"AAAAAAAA",
        r"refused numpy dtype 'V8'",
    ),
    # a field offset far beyond the item size: reads out of bounds
    "field-offset": (
        dtype(
            "V8",
            dtype_state(
                "|", names=tup(text("a")), fields=dct((text("a"), tup(F8, num(1 << 20)))), elsize=8, alignment=1
            ),
        ),
        bytes(8),
        r"refused numpy dtype 'V8'",
    ),
    "fields-on-a-float": (
        dtype("f8", dtype_state(names=tup(text("a")), fields=dct((text("a"), tup(F8, num(64)))))),
        bytes(8),
        r"fields or a subarray",
    ),
    "object": (dtype("O8", dtype_state("|", flags=63)), b"AAAAAAAA", r"refused numpy dtype 'O8'.*objects"),
    "void": (dtype("V8", dtype_state("|", elsize=8, alignment=1)), bytes(8), r"refused numpy dtype 'V8'"),
    "string": (dtype("S8", dtype_state("|", elsize=8, alignment=1)), bytes(8), r"refused numpy dtype 'S8'"),
    "datetime": (dtype("M8", dtype_state()), bytes(8), r"refused numpy dtype 'M8'"),
    "byteorder-!": (dtype("f8", dtype_state("!")), bytes(8), r"refused byte order '!'"),
    "byteorder-x": (dtype("f8", dtype_state("x")), bytes(8), r"refused byte order 'x'"),
    "flags": (dtype("f8", dtype_state(flags=63)), bytes(8), r"flags 63"),
    "itemsize": (dtype("f8", dtype_state(elsize=4096)), bytes(8), r"item size 4096"),
    "not-a-dtype": (text("f8"), bytes(8), r"not a numpy dtype"),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("case", sorted(DTYPE_GADGETS))
def test_dtype_state_gadgets_are_refused(tmp_path, case, loader):
    dt, data, pattern = DTYPE_GADGETS[case]
    path = write(tmp_path, PROTO3 + array(dt, (1,), data) + STOP)
    refused(path, pattern, loader)


def test_a_hostile_dtype_as_a_scalar_or_a_protocol5_buffer_is_refused(tmp_path):
    dt = DTYPE_GADGETS["object"][0]
    scalar = call(glob("numpy.core.multiarray", "scalar"), dt, raw(b"AAAAAAAA"))
    refused(write(tmp_path, PROTO3 + scalar + STOP), r"refused numpy dtype 'O8'")
    frombuffer = call(stack_glob("numpy._core.numeric", "_frombuffer"), raw(b"AAAAAAAA"), dt, tup(num(1)), text("C"))
    refused(write(tmp_path, PROTO4 + frombuffer + STOP), r"refused numpy dtype 'O8'")


@pytest.mark.parametrize(
    ("shape", "data", "pattern"),
    [
        ((3,), bytes(16), r"needs 24 bytes, the pickle has 16"),
        ((2, 2), bytes(40), r"needs 32 bytes"),
        ((-1,), bytes(8), r"negative array shape"),
        ((1 << 31, 1 << 31, 0), b"", r"too large"),
    ],
)
def test_shape_and_byte_count_must_agree(tmp_path, shape, data, pattern):
    refused(write(tmp_path, PROTO3 + array(F8, shape, data) + STOP), pattern)


def test_malformed_array_states_are_refused(tmp_path):
    reconstruct = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(num(0)), raw(b"b"))
    cases = {
        "no state": (reconstruct, r"without its state"),
        "bad version": (reconstruct + tup(num(7), tup(num(1)), F8, FALSE, raw(bytes(8))) + BUILD, r"version 7"),
        "data is a list": (reconstruct + tup(num(1), tup(num(1)), F8, FALSE, b"]") + BUILD, r"not bytes"),
        "state is itself": (reconstruct + b"q\x00" + tup(num(1), b"h\x00", F8, FALSE, raw(bytes(8))) + BUILD, r"shape"),
        "two builds": (
            reconstruct + tup(num(1), tup(num(1)), F8, FALSE, raw(bytes(8))) + BUILD + NONE + BUILD,
            r"BUILD",
        ),
        "build on a scalar": (
            call(glob("numpy.core.multiarray", "scalar"), F8, raw(bytes(8))) + NONE + BUILD,
            r"BUILD",
        ),
        "ndarray called": (call(glob("numpy", "ndarray"), tup(num(1))), r"not callable|readable"),
        "bool bytes": (array(dtype("b1", dtype_state("|")), (1,), b"\x07"), r"other than 0 and 1"),
        "_codecs to utf-16": (call(glob("_codecs", "encode"), text("x"), text("utf-16")), r"encoding 'utf-16'"),
        "bytes(n)": (call(glob("__builtin__", "bytes"), num(1 << 30)), r"bytes\(\) with arguments"),
    }
    for name, (body, pattern) in cases.items():
        path = write(tmp_path, PROTO3 + body + STOP, name.replace(" ", "-") + ".pkl")
        refused(path, pattern, load_pickle_in_process)


# --- bombs -----------------------------------------------------------------------------------------


def list_bomb(levels: int = 20, width: int = 12) -> bytes:
    """A list of `width` references to a list of `width` references ... : width**levels leaves."""
    out = PROTO2 + b"]q\x00" + text("lol") + b"a"
    for level in range(1, levels):
        out += b"]q" + bytes([level]) + b"(" + (b"h" + bytes([level - 1])) * width + b"e"
    return out + STOP


def test_shared_leaf_list_bomb_is_refused_at_once(tmp_path):
    data = list_bomb()
    assert 500 < len(data) < 700
    path = write(tmp_path, data)
    for loader in LOADERS:
        refused(path, r"reached twice \(a cycle or a shared reference\)", loader)


def test_shared_tuple_bomb_runs_out_of_budget(tmp_path):
    out = PROTO2 + tup(text("x"), text("y")) + b"q\x00"
    for level in range(1, 40):
        out += b"(" + (b"h" + bytes([level - 1])) * 4 + b"tq" + bytes([level])
    path = write(tmp_path, out + STOP)
    refused(path, r"more than [\d,]+ values to check .*pickle bomb")


def test_a_64_byte_pickle_cannot_ask_for_4_gb(tmp_path):
    # numpy's _reconstruct would allocate the shape it is given before any state
    made = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"), tup(big(1 << 32)), raw(b"b"))
    path = write(tmp_path, PROTO2 + made + STOP)
    assert len(path.read_bytes()) < 80
    refused(path, r"malformed numpy _reconstruct")
    # and a state that declares 4 GB of items without the bytes
    path = write(tmp_path, PROTO3 + array(dtype("i1", dtype_state("|")), (1 << 32,), b"") + STOP)
    refused(path, r"needs 4294967296 bytes, the pickle has 0")


def test_memo_index_and_length_bombs_are_refused_before_loading(tmp_path):
    # LONG_BINPUT 4e9: the C unpickler would size its memo table to twice that
    refused(write(tmp_path, PROTO4 + NONE + b"r" + struct.pack("<I", 0xFFFFFFF0) + STOP), r"memo index 4294967280")
    # BINBYTES8 claiming 4 GB in a 20-byte file
    refused(write(tmp_path, PROTO4 + b"\x8e" + struct.pack("<Q", 1 << 32) + b"x" + STOP), r"not a readable pickle")
    # FRAME longer than the file
    refused(write(tmp_path, PROTO4 + b"\x95" + struct.pack("<Q", 1 << 40) + NONE + STOP), r"frame of \d+ bytes")
    # an integer of 2,000 bits (dict keys of huge ints can be made to collide)
    refused(write(tmp_path, PROTO2 + big(1 << 2000) + STOP), r"beyond 64 bits")


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"]q\x00h\x00a", r"list is reached twice"),  # l = []; l.append(l)
        (b"}q\x00" + text("k") + b"h\x00s", r"dict is reached twice"),  # d = {}; d["k"] = d
        (b"]q\x00h\x00\x85a", r"list is reached twice"),  # l = []; l.append((l,))
        (b"]" * 150 + b"a" * 149, r"nested deeper than 100"),
    ],
)
def test_cycles_and_deep_nesting_are_refused(tmp_path, body, pattern):
    path = write(tmp_path, PROTO2 + body + STOP)
    for loader in LOADERS:
        refused(path, pattern, loader)


def test_truncated_and_garbage_pickles(tmp_path):
    good = pickle.dumps({"a": np.arange(10.0)}, protocol=4)
    refused(write(tmp_path, good[:-12]), r"not a readable pickle")
    refused(write(tmp_path, b"garbage"), r"not a readable pickle")
    refused(write(tmp_path, b""), r"not a readable pickle")


def test_out_of_band_buffers_and_sets_are_refused(tmp_path):
    data = pickle.dumps(np.arange(3.0), protocol=5, buffer_callback=lambda buffer: False)
    refused(write(tmp_path, data), r"refused opcode NEXT_BUFFER \(an out-of-band buffer\)")
    refused(write(tmp_path, pickle.dumps({1, 2}, protocol=4)), r"refused opcode EMPTY_SET")


# --- what must load ---------------------------------------------------------------------------------


def numbers() -> dict:
    return {
        "f2": np.array([1.5, -2.0], dtype=np.float16),
        "f4": np.linspace(0, 1, 7, dtype=np.float32),
        "f8": np.linspace(-1, -2, 5),
        "i": np.arange(-3, 3, dtype=np.int64),
        "i1": np.array([-128, 127], dtype=np.int8),
        "u2": np.array([0, 65535], dtype=np.uint16),
        "bool": np.array([True, False, True]),
        "c16": np.array([1 + 2j, -3j]),
        "zero-d": np.array(2.5),
        "empty": np.zeros((0, 3)),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "transposed": np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2),
        "big-endian": np.arange(5, dtype=">f8"),
        "big-endian-int": np.arange(5, dtype=">i4"),
        "nested": [{"a": np.arange(3), "t": (np.float64(1.5), "x", None, True)}, (1, 2.5, b"raw")],
        "float64": np.float64(1.5),
        "int64": np.int64(-7),
        "bool_": np.bool_(True),
        "float32": np.float32(0.25),
        "dtype": np.dtype("<f4"),
    }


def assert_same(loaded, expected):
    if isinstance(expected, dict):
        assert isinstance(loaded, dict) and loaded.keys() == expected.keys()
        for key in expected:
            assert_same(loaded[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert type(loaded) is type(expected) and len(loaded) == len(expected)
        for a, b in zip(loaded, expected, strict=True):
            assert_same(a, b)
    elif isinstance(expected, np.ndarray):
        assert isinstance(loaded, np.ndarray) and loaded.dtype == expected.dtype and loaded.shape == expected.shape
        np.testing.assert_array_equal(loaded, expected)
        assert loaded.flags.writeable
    elif isinstance(expected, np.generic):
        assert type(loaded) is type(expected) and loaded == expected
    else:
        assert type(loaded) is type(expected) and loaded == expected


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_every_protocol_load_exactly(tmp_path, protocol, loader):
    value = numbers()
    path = write(tmp_path, pickle.dumps(value, protocol=protocol), "good.pkl")
    assert_same(loader(path), value)


def test_hand_written_numpy_1_names_load(tmp_path):
    data = PROTO3 + array(F8, (2, 2), np.arange(4.0).tobytes(), fortran=True) + STOP
    np.testing.assert_array_equal(load_pickle(write(tmp_path, data)), np.arange(4.0).reshape(2, 2, order="F"))


def test_shared_arrays_and_tuple_constants_are_kept(tmp_path):
    vector, pair = np.arange(4.0), (1, 2)
    value = {"a": vector, "b": vector, "rows": [{"range": pair} for _ in range(50)]}
    loaded = load_pickle(write(tmp_path, pickle.dumps(value, protocol=4)))
    assert loaded["a"] is loaded["b"] and loaded["rows"][49]["range"] == (1, 2)
    np.testing.assert_array_equal(loaded["a"], vector)


def test_a_large_array_loads_through_the_child(tmp_path):
    value = {f"m{i}": np.full(10_000, float(i)) for i in range(100)}
    loaded = load_pickle(write(tmp_path, pickle.dumps(value, protocol=4)))
    assert len(loaded) == 100 and loaded["m99"][-1] == 99.0 and loaded["m3"].flags.aligned


# --- the child process -------------------------------------------------------------------------------


def tiny_limits(**changes):
    def limits_for(size):
        limits = {"cpu_s": 60, "memory": 1 << 30, "wall_s": 120}
        limits.update(changes)
        return limits

    return limits_for


def test_a_child_killed_by_a_signal_is_a_clean_error(tmp_path, monkeypatch):
    code = "import os, resource, signal\nresource.setrlimit(resource.RLIMIT_CORE, (0, 0))\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    monkeypatch.setattr(safe_pickle, "_CHILD_CODE", code)
    refused(write(tmp_path, pickle.dumps([1])), r"the unpickler was killed \(SIGSEGV\)")


def test_a_child_past_its_cpu_limit_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_pickle, "_limits_for", tiny_limits(cpu_s=1))
    path = write(tmp_path, PROTO2 + b"](" + NONE * 4_000_000 + b"e" + STOP)
    refused(path, r"CPU time limit \(SIGXCPU|killed \(SIGKILL\)")


def test_a_child_out_of_memory_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_pickle, "_limits_for", tiny_limits(memory=48 << 20))
    path = write(tmp_path, PROTO2 + b"](" + b"}" * 800_000 + b"e" + STOP)  # 800 kB of empty dicts: ~70 MB
    refused(path, r"ran out of memory \(limit 48 MB\)")


def test_a_hung_or_lying_child_is_a_clean_error(tmp_path, monkeypatch):
    path = write(tmp_path, pickle.dumps([1]))
    monkeypatch.setattr(safe_pickle, "_limits_for", tiny_limits(wall_s=1))
    monkeypatch.setattr(safe_pickle, "_CHILD_CODE", "import time\ntime.sleep(60)\n")
    refused(path, r"ran past 1 s and was stopped")
    lie = "import struct, sys\nsys.stdout.buffer.write(b'O' + struct.pack('<Q', 4) + b'aXYZ' + bytes(8))\n"
    monkeypatch.setattr(safe_pickle, "_CHILD_CODE", lie)
    refused(path, r"sent back malformed data")
    monkeypatch.setattr(safe_pickle, "_CHILD_CODE", "raise SystemExit(3)\n")
    refused(path, r"the unpickler failed \(exit code 3")


def test_the_child_module_imports_no_numpy(tmp_path):
    code = safe_pickle._CHILD_CODE.replace("module._child_main(sys.argv[3:])", "assert 'numpy' not in sys.modules")
    root = Path(safe_pickle.__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-I", "-S", "-c", code, str(root), safe_pickle.__file__], check=True)
