"""Benchmarks of the query layer (issue 2), each against a baseline measured in the same run.

    python benchmarks/bench_query.py [--quick] [--out results.json]

1. nearest, warm, in-process, K x N float32 (10,000 x 10,000): Dataset.nearest and the math
   layer's nearest vs one plain pass over the matrix (M.sum() and M @ v). Target: <= 1.5x.
2. Cold `llkl-db nearest` end to end on a small folder (30 entries x 160 texts), subprocess,
   median of several runs, plus the slowest imports (python -X importtime). Target: <= 1.0 s.
3. Full KL matrix, K = 3,000 x N = 10,000: achieved fraction of the float32 GEMM rate of the
   same shapes (2 K^2 N flops counted for our result). Target: >= 70%.
4. prepare (clip + double centring + norms): numpy vs the fused numba passes at 10,000 x 10,000,
   with numba's compile time and cached-load time measured in fresh subprocesses.

Times are the minimum over repetitions (the machine may be shared), except the cold CLI (median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic(k: int, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((k, n), dtype=np.float32)
    out *= 10.0
    out += (-300.0 + 60.0 * rng.standard_normal(n)).astype(np.float32)
    return out


def blas_info() -> dict:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"note": "threadpoolctl not installed"}
    pools = [
        {k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
        for p in threadpool_info()
    ]
    return {"pools": pools, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}


def in_memory_dataset(loglik: np.ndarray):
    """A Dataset over an in-memory matrix (writing 10^8 floats to Parquet is not what we time)."""
    import polars as pl

    from llkl_db import math as llmath
    from llkl_db.dataset import Dataset, _Store
    from llkl_db.io.metadata import DatasetMetadata
    from llkl_db.io.vectors import FILE_COLUMN, METADATA_COLUMNS

    k, n = loglik.shape
    ids = [f"org/model-{i:05d}@main" for i in range(k)]
    columns = {c: [None] * k for c in METADATA_COLUMNS}
    columns.update(
        entry_id=ids,
        model_id=[i.split("@")[0] for i in ids],
        revision=["main"] * k,
        model_type=["llama", "gpt2"] * (k // 2) + ["llama"] * (k % 2),
        n_params=list(range(k)),
    )
    entries = pl.DataFrame(columns).with_columns(
        pl.col("layer").cast(pl.Int32),
        pl.col("step").cast(pl.Int64),
        pl.col("variant").cast(pl.String),
        pl.lit("memory").alias(FILE_COLUMN),
    )
    meta = DatasetMetadata("1.0.0", "bench", "0" * 64, n, 972.0, -600.0)
    store = _Store(Path("."), meta, entries)
    store.__dict__["clipped"] = llmath.clip(loglik, -600.0)
    return Dataset(store)


def bench_nearest(k: int, n: int, repeat: int) -> dict:
    from llkl_db import math as llmath

    loglik = synthetic(k, n)
    ds = in_memory_dataset(loglik)
    del loglik
    start = time.perf_counter()
    prepared = ds._store.prepared
    prepare_s = time.perf_counter() - start
    query = "org/model-00007"
    ds.nearest(query, k=10)  # warm
    v = np.random.default_rng(1).standard_normal(n, dtype=np.float32)
    m = prepared.centered
    sum_s = best(lambda: m.sum(), repeat)
    gemv_s = best(lambda: m @ v, repeat)
    math_s = best(lambda: llmath.nearest(prepared, prepared.clipped[7], 10), repeat)
    dataset_s = best(lambda: ds.nearest(query, k=10), repeat)
    where_s = best(lambda: ds.filter("model_type = 'llama'").nearest(query, k=10), repeat)
    plain = max(sum_s, gemv_s)
    return {
        "K": k,
        "N": n,
        "prepare_first_use_s": prepare_s,
        "plain_sum_s": sum_s,
        "plain_gemv_s": gemv_s,
        "math_nearest_s": math_s,
        "dataset_nearest_s": dataset_s,
        "dataset_nearest_where_s": where_s,
        "ratio_vs_sum": dataset_s / sum_s,
        "ratio_vs_gemv": dataset_s / gemv_s,
        "ratio_vs_slower_plain_pass": dataset_s / plain,
        "target": "Dataset.nearest <= 1.5x one plain pass",
    }


def bench_cold_cli(runs: int) -> dict:
    from helpers import synthetic_loglik, write_dataset

    exe = Path(sys.executable).with_name("llkl-db")
    command = [str(exe)] if exe.exists() else [sys.executable, "-c", "from llkl_db.cli import main; main()"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_dataset(Path(tmp) / "ds", synthetic_loglik(30, 160), files=2)
        args = ["nearest", "org/model-003", "-k", "10", "--dataset", str(folder)]
        env = dict(os.environ, COLUMNS="120")
        subprocess.run(command + args, capture_output=True, check=True, env=env)  # warm the OS file cache
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command + args, capture_output=True, check=True, env=env)
            times.append(time.perf_counter() - start)
        imports = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-c",
                "from llkl_db.cli import main; import sys; sys.argv[1:] = " + repr(args) + "; main()",
            ],
            capture_output=True,
            text=True,
            env=env,
        ).stderr
    top = []
    for line in imports.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                top.append((int(cumulative.strip()) / 1e6, name.rstrip()))
    top = sorted(top, reverse=True)[:8]
    base = subprocess.run([sys.executable, "-c", "pass"], capture_output=True)  # interpreter start-up
    start = time.perf_counter()
    for _ in range(3):
        subprocess.run([sys.executable, "-S", "-c", "pass"], capture_output=True)
    python_s = (time.perf_counter() - start) / 3
    del base
    return {
        "command": " ".join(["llkl-db"] + args[:-1] + ["<30 x 160 folder>"]),
        "runs": runs,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "bare_python_s": python_s,
        "slowest_imports_cumulative_s": [{"module": name.strip(), "s": s} for s, name in top],
        "target": "<= 1.0 s",
    }


def bench_kl_matrix(k: int, n: int, repeat: int) -> dict:
    from llkl_db import math as llmath

    loglik = synthetic(k, n, seed=2)
    ds = in_memory_dataset(loglik)
    a = ds._store.clipped
    b = np.ascontiguousarray(np.random.default_rng(3).standard_normal((n, k), dtype=np.float32))
    a @ b  # warm the BLAS threads
    flops = 2.0 * k * k * n
    gemm_s = best(lambda: a @ b, repeat)
    prepared = llmath.prepare_clipped(a)
    math_s = best(lambda: llmath.variance_matrix(prepared), repeat)
    # end to end from the loaded matrix, on a view (so that the centring is not cached)
    view = ds.filter("n_params >= 0")
    dataset_s = best(lambda: view.kl_matrix(), repeat)
    gemm_rate = flops / gemm_s
    return {
        "K": k,
        "N": n,
        "flops_counted": flops,
        "gemm_s": gemm_s,
        "gemm_gflops": gemm_rate / 1e9,
        "variance_matrix_s": math_s,
        "dataset_kl_matrix_s": dataset_s,
        "fraction_of_gemm_math": gemm_s / math_s,
        "fraction_of_gemm_dataset": gemm_s / dataset_s,
        "target": ">= 0.70 of the GEMM rate",
    }


def bench_prepare(k: int, n: int, repeat: int) -> dict:
    from llkl_db import math as llmath
    from llkl_db.math import centering

    result: dict = {"K": k, "N": n, "numba_min_size": centering.NUMBA_MIN_SIZE}
    if not centering.numba_available():
        result["numba"] = "not installed"
    loglik = synthetic(k, n, seed=4)
    numpy_s, numba_s = [], []
    for _ in range(repeat):  # interleaved, so that both see the same machine
        start = time.perf_counter()
        llmath.prepare(loglik, -600.0, engine="numpy")
        numpy_s.append(time.perf_counter() - start)
        if "numba" not in result:
            start = time.perf_counter()
            llmath.prepare(loglik, -600.0, engine="numba")
            numba_s.append(time.perf_counter() - start)
    result["numpy_s"] = min(numpy_s)
    if numba_s:
        result["numba_s"] = min(numba_s)
        result["speedup"] = min(numpy_s) / min(numba_s)
        code = (
            "import time; t = time.perf_counter(); import numpy as np; from llkl_db.math import centering; "
            "centering.prepare(np.ones((4, 4), np.float32), None, engine='numba'); "
            "print(time.perf_counter() - t)"
        )
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            compile_s = float(
                subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
            )
            cached_s = float(
                subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
            )
        result["numba_import_and_compile_s"] = compile_s
        result["numba_import_and_cached_load_s"] = cached_s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller matrices and fewer repetitions (smoke test)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        sizes = {"nearest": (2000, 2000), "kl": (600, 2000), "prepare": (2000, 2000)}
        repeat, cli_runs = 3, 3
    else:
        sizes = {"nearest": (10_000, 10_000), "kl": (3_000, 10_000), "prepare": (10_000, 10_000)}
        repeat, cli_runs = 7, 7
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
            "blas": blas_info(),
            "quick": args.quick,
            "load_average_at_start": os.getloadavg(),
        },
        "nearest": bench_nearest(*sizes["nearest"], repeat),
        "cold_cli": bench_cold_cli(cli_runs),
        "kl_matrix": bench_kl_matrix(*sizes["kl"], max(3, repeat // 2)),
        "prepare": bench_prepare(*sizes["prepare"], max(3, repeat // 2)),
    }
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.out}")


def print_table(r: dict) -> None:
    nn, cli, kl, prep = r["nearest"], r["cold_cli"], r["kl_matrix"], r["prepare"]
    rows = [
        (
            f"nearest warm, Dataset.nearest, {nn['K']}x{nn['N']}",
            f"{nn['dataset_nearest_s'] * 1e3:.1f} ms",
            f"{nn['ratio_vs_sum']:.2f}x M.sum() ({nn['plain_sum_s'] * 1e3:.1f} ms), "
            f"{nn['ratio_vs_gemv']:.2f}x M@v ({nn['plain_gemv_s'] * 1e3:.1f} ms)",
            "<= 1.5x",
            "PASS" if nn["ratio_vs_slower_plain_pass"] <= 1.5 else "FAIL",
        ),
        (
            "nearest warm, math layer",
            f"{nn['math_nearest_s'] * 1e3:.1f} ms",
            f"{nn['math_nearest_s'] / nn['plain_gemv_s']:.2f}x M@v",
            "",
            "",
        ),
        (
            "nearest warm, with --where",
            f"{nn['dataset_nearest_where_s'] * 1e3:.1f} ms",
            f"{nn['dataset_nearest_where_s'] / max(nn['plain_sum_s'], nn['plain_gemv_s']):.2f}x plain pass",
            "",
            "",
        ),
        (
            "cold `llkl-db nearest` (30x160), median",
            f"{cli['median_s']:.3f} s",
            f"min {cli['min_s']:.3f} s, bare python {cli['bare_python_s']:.3f} s",
            "<= 1.0 s",
            "PASS" if cli["median_s"] <= 1.0 else "FAIL",
        ),
        (
            f"KL matrix {kl['K']}x{kl['N']}, variance_matrix",
            f"{kl['variance_matrix_s']:.3f} s",
            f"{kl['fraction_of_gemm_math']:.0%} of GEMM rate (GEMM {kl['gemm_s']:.3f} s, {kl['gemm_gflops']:.0f} GFLOP/s)",
            ">= 70%",
            "PASS" if kl["fraction_of_gemm_math"] >= 0.7 else "FAIL",
        ),
        (
            "KL matrix, Dataset.kl_matrix (view)",
            f"{kl['dataset_kl_matrix_s']:.3f} s",
            f"{kl['fraction_of_gemm_dataset']:.0%} of GEMM rate",
            ">= 70%",
            "PASS" if kl["fraction_of_gemm_dataset"] >= 0.7 else "FAIL",
        ),
        (f"prepare {prep['K']}x{prep['N']}, numpy", f"{prep['numpy_s']:.3f} s", "", "", ""),
    ]
    if "numba_s" in prep:
        rows.append(
            (
                "prepare, numba (fused, parallel)",
                f"{prep['numba_s']:.3f} s",
                f"{prep['speedup']:.2f}x faster than numpy; import+compile "
                f"{prep['numba_import_and_compile_s']:.2f} s, import+cached {prep['numba_import_and_cached_load_s']:.2f} s",
                "",
                "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    header = ("benchmark", "time", "ratio / baseline (same run)", "target", "")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in [header, tuple("-" * w for w in widths)] + rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    blas = r["machine"]["blas"]
    print(
        f"\nBLAS: {blas.get('pools')}; OPENBLAS_CORETYPE={blas.get('OPENBLAS_CORETYPE')}; "
        f"load average at start {r['machine']['load_average_at_start']}, at end {os.getloadavg()}"
    )
    print(
        "slowest imports of the cold CLI (cumulative s): "
        + ", ".join(f"{i['module']} {i['s']:.3f}" for i in cli["slowest_imports_cumulative_s"][:5])
    )


if __name__ == "__main__":
    main()
