"""Try llkl-db the way a hostile contributor or an unlucky user would, and count the outcomes.

Each case prepares files in a fresh temporary folder, runs one `llkl-db` command in a child
process (with a timeout and a memory limit), and is classed by what happened: a clean error (one
`Error:` line, non-zero exit), a correct result, a traceback, a silent wrong result (exit 0
where the input should have been refused, or a wrong answer), a hang, a crash (killed by a
signal) or data lost (a file the user owned changed or disappeared).

    python benchmarks/hostile_sweep.py [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
EMBEDDED = ROOT / "llkl_db" / "data" / "embedded"
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TIMEOUT = 60
CODE_UNDER_TEST: str | None = None  # --code: another checkout's llkl_db for the commands (a before/after)


@dataclass
class Case:
    name: str
    group: str
    prepare: Callable[[Path], list[str]]  # returns the CLI arguments
    expect: str = "error"  # "error": refused in one line; "report": a failed report (validate); "ok": must succeed
    check: Callable[[Path, subprocess.CompletedProcess], str | None] | None = None  # extra check: a problem or None
    owned: Callable[[Path], list[Path]] | None = None  # the user's files that must survive unchanged
    env: dict | None = None
    memory_mb: int | None = None
    cwd: str | None = None  # a subfolder of the case's folder to run in


def _digest(paths: list[Path]) -> dict[str, str | None]:
    out = {}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        else:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return out


def run_case(case: Case) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix="llkl-sweep-") as tmp:
        tmp = Path(tmp)
        args = case.prepare(tmp)
        owned = case.owned(tmp) if case.owned else []
        before = _digest(owned)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", **(case.env or {})}
        if CODE_UNDER_TEST:
            env["PYTHONPATH"] = CODE_UNDER_TEST

        def limit() -> None:
            if case.memory_mb:
                resource.setrlimit(resource.RLIMIT_AS, (case.memory_mb << 20, case.memory_mb << 20))

        try:
            proc = subprocess.run(
                [sys.executable, "-m", "llkl_db.cli", *args],
                cwd=tmp / case.cwd if case.cwd else tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                preexec_fn=limit,
            )
        except subprocess.TimeoutExpired:
            return "hang", f"no answer in {TIMEOUT} s"
        output = proc.stdout + proc.stderr
        if _digest(owned) != before:
            return "data lost", "a file the user owned changed or disappeared"
        if proc.returncode < 0:
            return "crash", f"killed by {signal.Signals(-proc.returncode).name}"
        if "Traceback" in output:
            return "traceback", output.strip().splitlines()[-1][:160]
        problem = case.check(tmp, proc) if case.check else None
        if case.expect == "report":
            if proc.returncode == 0:
                return "silent wrong result", "validation passed on input that should fail it"
            return ("silent wrong result", problem) if problem else ("clean error", "validation failed, as it should")
        if case.expect == "error":
            lines = proc.stderr.strip().splitlines()
            if proc.returncode == 0:
                return "silent wrong result", "exit 0 on input that should be refused"
            if len(lines) != 1 or not lines[0].startswith("Error: "):
                return "traceback", f"not one Error: line: {proc.stderr.strip()[:160]!r}"
            return ("silent wrong result", problem) if problem else ("clean error", lines[0][:160])
        if proc.returncode != 0:
            return "silent wrong result", f"exit {proc.returncode}: {proc.stderr.strip()[:160]}"
        return ("silent wrong result", problem) if problem else ("correct result", "")


# --- building blocks --------------------------------------------------------------------------
def copy_embedded(tmp: Path, name: str = "ds") -> Path:
    target = tmp / name
    shutil.copytree(EMBEDDED, target)
    return target


def rewrite_vectors(folder: Path, edit: Callable[[pa.Table], pa.Table]) -> Path:
    path = sorted((folder / "vectors").rglob("*.parquet"))[0]
    table = edit(pq.read_table(path))
    pq.write_table(table, path)
    return path


def set_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, type=table.schema.field(name).type))


def edit_metadata(folder: Path, **changes) -> None:
    path = folder / "llkl-db.json"
    text = path.read_text()
    raw = json.loads(text)
    for key, value in changes.items():
        raw[key] = value
    out = json.dumps(raw, allow_nan=True)
    path.write_text(out)


def foreign_folder(tmp: Path, name: str = "mine") -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


def shard(tmp: Path) -> Path:
    from contrib_helpers import good_shard

    return good_shard(tmp / "shard")


def pickle_folder(tmp: Path, body: bytes) -> Path:
    from modelmap_files import write_modelmap

    folder = tmp / "release"
    write_modelmap(folder, k=4)
    (folder / "raw_log-likelihood_1018.pkl").write_bytes(body)
    return folder


def hostile_pickles() -> dict[str, bytes]:
    import test_safe_pickle as sp

    sentinel = "/tmp/llkl-sweep-pwned"
    return {
        "pickle calling os.system": b"\x80\x04" + sp.glob("os", "system") + sp.text(f"touch {sentinel}") + b"\x85R.",
        "pickle calling builtins.eval": b"\x80\x04" + sp.glob("builtins", "eval") + sp.text("1+1") + b"\x85R.",
        "pickle: structured dtype with an object field": b"\x80\x04"
        + sp.array(sp.dtype("V16", sp.dtype_state("|", names=b"N", fields=b"N", flags=63)), (1,), b"\x00" * 16)
        + b".",
        "pickle asking for 4 GB": b"\x80\x04" + sp.array(sp.dtype("f8"), (1 << 29,), b"") + b".",
        "pickle list bomb": b"\x80\x04" + sp.list_bomb() + b".",
        "pickle with a self-referencing list": b"\x80\x04]\x94h\x00a.",
        "truncated pickle": b"\x80\x04\x95\x10\x00\x00",
    }


def markup_dataset(tmp: Path, hostile: str) -> Path:
    folder = copy_embedded(tmp)

    def edit(table: pa.Table) -> pa.Table:
        ids = table.column("entry_id").to_pylist()
        models = table.column("model_id").to_pylist()
        ids[0], models[0] = f"{hostile}@main", hostile
        return set_column(set_column(table, "entry_id", ids), "model_id", models)

    rewrite_vectors(folder, edit)
    return folder


def no_raw_escape(tmp: Path, proc: subprocess.CompletedProcess) -> str | None:
    raw = proc.stdout + proc.stderr
    return "raw escape sequence or markup rendered in output" if "\x1b" in raw or "\x07" in raw else None


def footer_bomb(tmp: Path) -> Path:
    """A Parquet file whose footer claims far more rows than it holds."""
    folder = copy_embedded(tmp)
    path = sorted((folder / "vectors").rglob("*.parquet"))[0]
    data = bytearray(path.read_bytes())
    footer_len = struct.unpack("<i", data[-8:-4])[0]
    footer = data[-8 - footer_len : -8]
    rows = pq.ParquetFile(path).metadata.num_rows
    # the file's num_rows is a thrift i64 (zigzag varint): patch its first occurrence after the schema
    old = _varint(rows << 1)
    new = _varint((10**8) << 1)
    at = footer.find(bytes([0x16]) + old)  # field 3 (num_rows), type i64
    if at < 0 or len(new) != len(old):
        footer = footer.replace(old, new.ljust(len(old), b"\x00")[: len(old)], 1)
    else:
        footer[at + 1 : at + 1 + len(old)] = new
    data[-8 - footer_len : -8] = footer
    path.write_bytes(bytes(data))
    return folder


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def zstd_bomb(tmp: Path) -> Path:
    """A small file that decompresses to a million rows of 160 floats."""
    folder = copy_embedded(tmp)
    template = pq.read_table(sorted((folder / "vectors").rglob("*.parquet"))[0]).slice(0, 1)
    big = pa.concat_tables([template] * 1000)
    big = pa.concat_tables([big] * 1000)
    ids = [f"bomb/m@{i}" for i in range(big.num_rows)]
    big = set_column(big, "entry_id", ids)
    pq.write_table(big, folder / "vectors" / "models" / "bomb.parquet", compression="zstd", row_group_size=1 << 20)
    return folder


def fifo_dataset(tmp: Path) -> Path:
    folder = copy_embedded(tmp)
    os.mkfifo(folder / "vectors" / "models" / "pipe.parquet")
    return folder


def good_dataset_of(tmp: Path) -> Path:
    from contrib_helpers import good_dataset

    return good_dataset(tmp / "ds", k=4, n=30)


def few_texts(tmp: Path, n: int) -> Path:
    """A dataset of n texts written by hand, as a careless or hostile writer would (llkl-db's own
    writers refuse fewer than MIN_TEXTS)."""
    from contrib_helpers import good_dataset

    folder = good_dataset(tmp / "ds", k=4, n=12)
    for path in (folder / "vectors").rglob("*.parquet"):
        table = pq.read_table(path)
        m = table.column("loglik").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)[:, :n].copy()
        arr = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel(), type=pa.float32()), n)
        table = table.drop_columns(["loglik", "n_tokens"]).append_column("loglik", arr)
        pq.write_table(table.replace_schema_metadata(pq.read_schema(path).metadata), path)
    texts_path = next((folder / "texts").glob("*.parquet"))
    texts = pq.read_table(texts_path).slice(0, n)
    pq.write_table(texts, texts_path)
    from llkl_db.io.texts import text_set_sha256

    sha = text_set_sha256(texts.column("text").to_pylist())
    edit_metadata(
        folder,
        n_texts=n,
        text_set_sha256=sha,
        mean_text_bytes=float(np.mean([len(t.encode()) for t in texts.column("text").to_pylist()])),
    )
    for path in (folder / "vectors").rglob("*.parquet"):
        table = pq.read_table(path)
        pq.write_table(
            set_column(table, "text_set_sha256", [sha] * table.num_rows).replace_schema_metadata(
                pq.read_schema(path).metadata
            ),
            path,
        )
    return folder


# --- the cases --------------------------------------------------------------------------------
def cases() -> list[Case]:
    out: list[Case] = []
    add = out.append

    # data loss
    add(
        Case(
            "merge into a folder of someone's files",
            "data loss",
            lambda t: ["merge", str(shard(t)), "--out", str(foreign_folder(t))],
            owned=lambda t: [t / "mine"],
        )
    )
    add(
        Case(
            "import into a folder of someone's files",
            "data loss",
            lambda t: ["import", "modelmap", str(pickle_folder(t, b"")), "--out", str(foreign_folder(t))],
            owned=lambda t: [t / "mine"],
        )
    )
    add(
        Case(
            "publish --to a file",
            "data loss",
            lambda t: (
                t.joinpath("file.txt").write_text("x"),
                ["publish", str(copy_embedded(t)), "--to", str(t / "file.txt")],
            )[1],
            owned=lambda t: [t / "file.txt"],
        )
    )
    add(
        Case(
            "publish --to a folder of someone's files",
            "data loss",
            lambda t: ["publish", str(copy_embedded(t)), "--to", str(foreign_folder(t))],
            owned=lambda t: [t / "mine"],
        )
    )
    add(
        Case(
            "texts import --out a file that is not a text set",
            "data loss",
            lambda t: (
                t.joinpath("x.parquet").write_text("mine"),
                t.joinpath("t.jsonl").write_text('{"index": 0, "text": "hello there", "pile_set_name": "x"}\n'),
                ["texts", "import", str(t / "t.jsonl"), "--out", str(t / "x.parquet")],
            )[2],
            owned=lambda t: [t / "x.parquet"],
        )
    )
    add(
        Case(
            "merge --out . in a folder of someone's files",
            "data loss",
            lambda t: (foreign_folder(t, "cwd"), ["merge", str(shard(t)), "--out", "."])[1],
            owned=lambda t: [t / "cwd"],
            cwd="cwd",
        )
    )
    add(
        Case(
            "publish a folder that fails validation: source untouched",
            "data loss",
            lambda t: (edit_metadata(copy_embedded(t), n_texts=7), ["publish", str(t / "ds"), "--to", str(t / "pub")])[
                1
            ],
            owned=lambda t: [t / "ds"],
        )
    )

    # hostile pickles
    for name, body in hostile_pickles().items():
        add(
            Case(
                name,
                "hostile pickle",
                lambda t, b=body: ["import", "modelmap", str(pickle_folder(t, b)), "--out", str(t / "out")],
                check=lambda t, p: "the gadget ran" if Path("/tmp/llkl-sweep-pwned").exists() else None,
            )
        )

    # --where
    secret = "TOP-SECRET-VALUE"
    for name, cond in {
        "--where read_csv of a local file": "entry_id IN (SELECT column_1 FROM read_csv('{f}'))",
        "--where read_parquet subquery": "entry_id IN (SELECT entry_id FROM read_parquet('{f}'))",
        "--where with a URL": "entry_id IN (SELECT a FROM read_csv('http://127.0.0.1:9/x.csv'))",
        "--where SELECT": "SELECT 1",
        "--where statement separator": "layer IS NULL; DROP TABLE x",
        "--where comment": "layer IS NULL -- x",
        "--where unknown column": "no_such = 1",
        "--where type mismatch": "model_id = 1",
        "--where 10,000 nested parentheses": "(" * 10000 + "TRUE" + ")" * 10000,
    }.items():
        add(
            Case(
                name,
                "--where",
                lambda t, c=cond: (
                    t.joinpath("secret.env").write_text(secret + "\n"),
                    ["nearest", SMOL, "--where", c.format(f=t / "secret.env")],
                )[1],
                check=lambda t, p: "file contents leaked" if secret in p.stdout + p.stderr else None,
            )
        )
    add(
        Case(
            "--where a valid filter",
            "--where",
            lambda t: ["nearest", SMOL, "--where", "layer IS NULL AND variant IS NULL", "--json"],
            expect="ok",
            check=lambda t, p: (
                None
                if all(r["entry_id"].count(":") == 0 for r in json.loads(p.stdout)["neighbours"])
                else "filter not applied"
            ),
        )
    )

    # untrusted text in output
    for hostile in (
        "evil[/b]",
        "[bold red]x[/bold red]",
        "[link=http://evil]x[/link]",
        "x\x1b[2Jy",
        "x\x1b]8;;http://e\x07y",
    ):
        add(
            Case(
                f"entry id {hostile!r} in nearest",
                "untrusted text",
                lambda t, h=hostile: ["nearest", SMOL, "-d", str(markup_dataset(t, h)), "-k", "125"],
                expect="ok",
                check=no_raw_escape,
            )
        )
        add(
            Case(
                f"entry id {hostile!r} in models",
                "untrusted text",
                lambda t, h=hostile: ["models", "-d", str(markup_dataset(t, h))],
                expect="ok",
                check=no_raw_escape,
            )
        )
    add(
        Case(
            "validate refuses an id with control characters",
            "untrusted text",
            lambda t: ["validate", str(markup_dataset(t, "x\x1b[2Jy"))],
            expect="report",
            check=no_raw_escape,
        )
    )

    # malformed or huge files
    add(Case("footer claiming 10^8 rows", "malformed files", lambda t: ["nearest", SMOL, "-d", str(footer_bomb(t))]))
    add(
        Case(
            "zstd bomb of a million rows",
            "malformed files",
            lambda t: ["validate", str(zstd_bomb(t))],
            expect="report",
            memory_mb=1500,
        )
    )
    add(Case("a FIFO named *.parquet", "malformed files", lambda t: ["nearest", SMOL, "-d", str(fifo_dataset(t))]))
    for name, value in {"NaN": float("nan"), "Infinity": float("inf"), "a positive value": 5.0}.items():
        add(
            Case(
                f"clip_threshold {name}",
                "malformed files",
                lambda t, v=value: (
                    edit_metadata(copy_embedded(t), clip_threshold=v),
                    ["nearest", SMOL, "-d", str(t / "ds")],
                )[1],
            )
        )
    add(
        Case(
            "mean_text_bytes NaN",
            "malformed files",
            lambda t: (
                edit_metadata(copy_embedded(t), mean_text_bytes=float("nan")),
                ["nearest", SMOL, "-d", str(t / "ds")],
            )[1],
        )
    )
    add(
        Case(
            "numeric text_set",
            "malformed files",
            lambda t: (edit_metadata(copy_embedded(t), text_set=12), ["nearest", SMOL, "-d", str(t / "ds")])[1],
        )
    )
    add(
        Case(
            "one text",
            "malformed files",
            lambda t: ["kl", "org/model-000", "org/model-001", "-d", str(few_texts(t, 1))],
        )
    )
    add(
        Case(
            "two texts",
            "malformed files",
            lambda t: ["kl", "org/model-000", "org/model-001", "-d", str(few_texts(t, 2))],
        )
    )
    add(
        Case(
            "a positive log-likelihood",
            "malformed files",
            lambda t: (
                rewrite_vectors(copy_embedded(t), lambda tb: _shift_first(tb, 500.0)),
                ["nearest", SMOL, "-d", str(t / "ds"), "-k", "3"],
            )[1],
        )
    )

    # wrong answers that look right
    add(Case("validate the embedded dataset", "wrong answers", lambda t: ["validate", str(EMBEDDED)], expect="ok"))
    add(
        Case(
            "a model with only layer entries resolves to a layer and says so",
            "wrong answers",
            lambda t: [
                "nearest",
                "google/gemma-3-270m",
                "-d",
                str(_without_outputs(t, "google/gemma-3-270m")),
                "-k",
                "1",
            ],
            expect="ok",
            check=lambda t, p: (
                "note claims output layer" if "output layer" in p.stderr and "no output" not in p.stderr else None
            ),
        )
    )
    add(
        Case(
            "validate --recompute that cannot run",
            "wrong answers",
            lambda t: ["validate", str(good_dataset_of(t)), "--recompute", "2", "--device", "cpu"],
            expect="report",
        )
    )
    add(Case("kl --json of a NaN result", "tracebacks", lambda t: ["kl", SMOL, SMOL, "--json"], expect="ok"))

    # tracebacks where a one-line error belongs
    add(Case("review with the Hub unreachable", "tracebacks", lambda t: ["review", "org/name"]))
    add(
        Case(
            "publish with the Hub unreachable",
            "tracebacks",
            lambda t: ["publish", str(copy_embedded(t)), "--repo", "org/name"],
        )
    )
    add(
        Case(
            "texts build pile-10k offline",
            "tracebacks",
            lambda t: ["texts", "build", "pile-10k", "--out", str(t / "p.parquet")],
        )
    )
    add(Case("nearest under a 300 MB memory limit", "tracebacks", lambda t: ["nearest", SMOL], memory_mb=300))
    add(
        Case(
            "merge a folder into itself",
            "tracebacks",
            lambda t: ["merge", str(copy_embedded(t)), "--out", str(t / "ds")],
        )
    )
    return out


def _shift_first(table: pa.Table, amount: float) -> pa.Table:
    ll = table.column("loglik").combine_chunks()
    m = ll.flatten().to_numpy().reshape(table.num_rows, -1).copy()
    m[0, 0] += amount - m[0, 0]
    arr = pa.FixedSizeListArray.from_arrays(pa.array(m.ravel(), type=pa.float32()), m.shape[1])
    return table.set_column(table.schema.get_field_index("loglik"), table.schema.field("loglik"), arr)


def _without_outputs(tmp: Path, model: str) -> Path:
    folder = copy_embedded(tmp)
    for path in (folder / "vectors").rglob("*.parquet"):
        table = pq.read_table(path)
        mask = np.array(
            [
                not (m == model and layer is None)
                for m, layer in zip(
                    table.column("model_id").to_pylist(), table.column("layer").to_pylist(), strict=True
                )
            ]
        )
        pq.write_table(table.filter(pa.array(mask)), path)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every case and its outcome here")
    parser.add_argument("-k", help="only cases whose name contains this")
    parser.add_argument("--code", help="run the commands with this folder first on PYTHONPATH (an older llkl_db)")
    args = parser.parse_args()
    global CODE_UNDER_TEST
    CODE_UNDER_TEST = args.code
    results = []
    for case in cases():
        if args.k and args.k not in case.name:
            continue
        outcome, detail = run_case(case)
        results.append({"case": case.name, "group": case.group, "outcome": outcome, "detail": detail})
        print(f"{outcome:20} {case.group:16} {case.name}: {detail}", flush=True)
    counts = Counter(r["outcome"] for r in results)
    print(f"\n{len(results)} cases: " + ", ".join(f"{n} {k}" for k, n in counts.most_common()))
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "cases": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
