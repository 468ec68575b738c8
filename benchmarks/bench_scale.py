"""Benchmarks of the index (issue 12): nearest over many entries, exact, locally and by ranged reads.

    python benchmarks/bench_scale.py spectrum
    python benchmarks/bench_scale.py generate --k 100000 --n 10000 --out /work/bench-data/k100k
    python benchmarks/bench_scale.py index /work/bench-data/k100k          # llkl-db index, timed
    python benchmarks/bench_scale.py run /work/bench-data/k100k [--queries 5] [--out results.json]

``generate`` writes a synthetic dataset in schema v1 through DatasetFolder's writers, one
family at a time (memory: one family's block): a few hundred families, each with sizes,
training checkpoints, fine-tunes and quantizations. Structure: a shared low-rank part
(per-text difficulty, then 32 directions with singular values falling like 1/k), a per-family
vector, member-specific noise, tiny noise for quantizations. ``spectrum`` compares its
spectrum (after clipping and double centring) with the embedded dataset's.

``run`` measures: cold ``llkl-db nearest`` (fresh process, end to end, peak RSS of the child),
warm queries in one process, the time split (bounds, candidate fetch, re-rank), exact top-10
against a brute-force pass over the whole file read in blocks, the disk's sequential read rate
(reading the vector file, in the same run), and ranged reads through a local HTTP server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
PY = sys.executable
RANK = 32


def family_block(rng, n, size, V, sigmas, base, shared):
    """One family's K_f x N float32 log-likelihoods and metadata rows."""
    fam_a = rng.standard_normal(RANK)
    size_dir = rng.standard_normal(RANK) * 0.6
    init_a = rng.standard_normal(RANK) * 2.0
    fam_vec = (3.0 * rng.standard_normal(n)).astype(np.float32)
    loadings, kinds = [], []
    n_sizes = int(rng.integers(3, 7))
    per_size = max(4, size // n_sizes)
    for z in range(n_sizes):
        final = fam_a + size_dir * (z - n_sizes / 2) / n_sizes + 0.1 * rng.standard_normal(RANK)
        n_ckpt = per_size // 2
        n_ft = per_size // 4
        n_q = per_size - n_ckpt - n_ft
        for t in np.linspace(0.05, 1.0, n_ckpt):
            loadings.append(final + (1 - t) ** 2 * (init_a - final) + 0.05 * rng.standard_normal(RANK))
            kinds.append(("ckpt", z, int(t * 100000), None))
        for f in range(n_ft):
            loadings.append(final + 0.15 * rng.standard_normal(RANK))
            kinds.append(("ft", z, f, None))
        for q in range(n_q):
            loadings.append(final)
            kinds.append(("quant", z, q, ["q8_0", "q5_0", "q4_0", "bnb-4bit", "bnb-8bit", "float16"][q % 6]))
    a = np.asarray(loadings)
    m = a.shape[0]
    out = (a * sigmas) @ V
    out += base
    out += fam_vec
    noise_scale = np.array([0.3 if k[0] == "quant" else 1.5 for k in kinds], dtype=np.float32)[:, None]
    out += noise_scale * rng.standard_normal((m, n), dtype=np.float32)
    out += (20.0 * rng.standard_normal((m, 1))).astype(np.float32)
    return out.astype(np.float32), kinds, shared


def generate(k: int, n: int, out: Path, families: int | None, seed: int = 0) -> None:
    from helpers import make_texts

    from llkl_db.io.folder import DatasetFolder
    from llkl_db.io.metadata import DatasetMetadata, write_metadata
    from llkl_db.io.texts import write_texts
    from llkl_db.io.vectors import vector_file_limits

    rng = np.random.default_rng(seed)
    families = families or max(20, k // 250)
    out.mkdir(parents=True, exist_ok=True)
    folder = DatasetFolder(out)
    texts = make_texts(n)
    sha = write_texts(out / "texts" / "synthetic.parquet", texts, ["synthetic"] * n)
    mean_bytes = float(np.mean([len(t.encode()) for t in texts]))
    V = rng.standard_normal((RANK, n)).astype(np.float32)
    sigmas = (30.0 / np.arange(1, RANK + 1)).astype(np.float32)
    base = (-300.0 + 60.0 * rng.standard_normal(n)).astype(np.float32)
    # The clip threshold (2nd percentile) from a first family, recorded like merge records it.
    probe, _, _ = family_block(np.random.default_rng(seed + 1), n, 200, V, sigmas, base, None)
    threshold = float(np.percentile(probe, 2.0))
    write_metadata(
        out,
        DatasetMetadata(
            dataset_version="1.0.0",
            text_set="synthetic",
            text_set_sha256=sha,
            n_texts=n,
            mean_text_bytes=mean_bytes,
            clip_threshold=threshold,
        ),
    )
    sizes = np.full(families, k // families)
    sizes[: k - sizes.sum()] += 1
    # Vector files of whole families, each within the per-file limit readers enforce.
    per_file = vector_file_limits(n)[0]
    written = 0
    start = time.time()
    for part, fams in enumerate(_split(sizes, per_file)):
        with folder.vector_writer(folder.vector_path("models", f"data-{part:03d}")) as write:
            for f in fams:
                written += _write_family(write, rng, f, int(sizes[f]), n, V, sigmas, base, sha)
                if f % 50 == 0:
                    print(f"  {written}/{k} entries, {time.time() - start:.0f} s", flush=True)
    print(f"generated {written} x {n} in {time.time() - start:.1f} s: {out}")


def _split(sizes: np.ndarray, per_file: int) -> list[list[int]]:
    """Families (indices) grouped into files of at most ``per_file`` entries."""
    parts: list[list[int]] = [[]]
    held = 0
    for f, size in enumerate(sizes):
        if held + size > per_file and parts[-1]:
            parts.append([])
            held = 0
        parts[-1].append(f)
        held += int(size)
    return parts


def _write_family(write, rng, f: int, size: int, n: int, V, sigmas, base, sha: str) -> int:
    """Generate family ``f`` (``size`` entries) and write it; returns the entries written."""
    import pyarrow as pa

    block, kinds, _ = family_block(rng, n, size, V, sigmas, base, None)
    block, kinds = block[:size], kinds[:size]
    if block.shape[0] < size:  # pad with more fine-tunes of the last size
        extra = size - block.shape[0]
        block = np.vstack([block, block[-extra:] + 1.5 * rng.standard_normal((extra, n), dtype=np.float32)])
        kinds = kinds + [("ft", kinds[-1][1], 1000 + j, None) for j in range(extra)]
    np.minimum(block, -1.0, out=block)  # log-likelihoods: merge refuses positive ones
    rows = []
    for i, (kind, z, x, variant) in enumerate(kinds):
        model = f"synth/fam{f:04d}-s{z}" + (f"-ft{x}" if kind == "ft" else "")
        revision = f"step{x}" if kind == "ckpt" else "main"
        rid = f"{model}@{revision}" + (f":{variant}" if variant else "")
        if kind == "quant":
            rid = f"{model}@main:{variant}-{i}"
        rows.append((rid, model, revision, x if kind == "ckpt" else None, variant, f"fam{f:04d}"))
    cols = list(zip(*rows, strict=True))
    m = len(rows)
    table = pa.table(
        {
            "entry_id": pa.array(cols[0]),
            "model_id": pa.array(cols[1]),
            "revision": pa.array(cols[2]),
            "step": pa.array(cols[3], pa.int64()),
            "variant": pa.array([v.split("-")[0] if v else None for v in cols[4]], pa.string()),
            "model_type": pa.array(cols[5]),
            "n_params": pa.array([10**8] * m, pa.int64()),
            "text_set": pa.array(["synthetic"] * m),
            "text_set_sha256": pa.array([sha] * m),
            "bos_policy": pa.array(["bos"] * m),
            "loglik": pa.FixedSizeListArray.from_arrays(pa.array(block.ravel()), n),
        }
    )
    schema_names = folder_schema_names(n)
    for name in schema_names:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(m))
    write(table.select(schema_names))
    return m


def folder_schema_names(n):
    from llkl_db.schema import arrow_schema

    return arrow_schema("vectors", n).names


def spectrum(k: int = 2000, n: int = 160) -> dict:
    """Energy fractions of the leading singular values after clipping and double centring."""
    import llkl_db
    from llkl_db.math import clip, clip_threshold, double_center

    def fractions(matrix):
        q = double_center(clip(matrix, clip_threshold(matrix)))
        s = np.linalg.svd(q, compute_uv=False)
        e = s**2 / np.sum(s**2)
        return {
            "top": np.round(e[:5], 4).tolist(),
            "cum@1,2,5,10,20": np.round(np.cumsum(e)[[0, 1, 4, 9, 19]], 4).tolist(),
        }

    emb = llkl_db.open(None)
    rng = np.random.default_rng(0)
    V = rng.standard_normal((RANK, n)).astype(np.float32)
    sigmas = (30.0 / np.arange(1, RANK + 1)).astype(np.float32)
    base = (-300.0 + 60.0 * rng.standard_normal(n)).astype(np.float32)
    blocks = [family_block(rng, n, 250, V, sigmas, base, None)[0] for _ in range(k // 250)]
    return {
        "embedded (125 x 160)": fractions(emb._store.folder.read_loglik(emb._store.entries)),
        f"synthetic ({k} x {n})": fractions(np.vstack(blocks)),
    }


def child_rss_run(cmd: list[str], env=None) -> tuple[float, float, str]:
    """Wall time, peak RSS (MB) of a fresh child (GNU time -v: getrusage of the children would
    count the pages a fork shares with this big process), and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{cmd}: {done.stderr[-2000:]}")
    peak = [line for line in done.stderr.splitlines() if "Maximum resident set size" in line]
    return wall, int(peak[-1].split(":")[-1]) / 1024, done.stdout


def drop_cache(path: Path) -> bool:
    """Evict a file from the page cache (posix_fadvise DONTNEED), for cold reads."""
    try:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        return True
    except OSError:
        return False


def sequential_read_rate(path: Path, limit: int = 2 << 30) -> float:
    drop_cache(path)
    start = time.perf_counter()
    got = 0
    with open(path, "rb", buffering=0) as f:
        while got < limit:
            chunk = f.read(16 << 20)
            if not chunk:
                break
            got += len(chunk)
    return got / (time.perf_counter() - start)


def run(path: Path, queries: int, out: Path | None, brute: bool = True) -> dict:
    import llkl_db
    from llkl_db.math import index as mindex

    results: dict = {"dataset": str(path), "load_average_at_start": os.getloadavg()}
    files = sorted((path / "vectors").rglob("*.parquet"))
    size = sum(f.stat().st_size for f in files)
    results["dataset_bytes"] = size
    ds = llkl_db.open(path)
    k, n = ds._store.entries.height, ds.metadata.n_texts
    results["k"], results["n"] = k, n
    rng = np.random.default_rng(1)
    qids = [ds._store.entries["entry_id"][int(i)] for i in rng.choice(k, queries, replace=False)]

    # Cold: a fresh process, end to end, with the vector files out of the page cache.
    cold = []
    for q in qids[:3]:
        for f in files:
            drop_cache(f)
        wall, rss, _ = child_rss_run([PY, "-m", "llkl_db.cli", "nearest", q, "--dataset", str(path), "--json"])
        cold.append({"query": q, "wall_s": round(wall, 3), "peak_rss_mb": round(rss, 1)})
    results["cold_cli"] = cold

    # Warm: later queries in the same process, with the time split. A process that has served
    # queries has read the footers of the vector files (each file's once, on the first query
    # that touches it): timed apart, the first-touch cost of a file.
    store = ds._store
    ds.nearest(ds._store.entries["entry_id"][0], k=10)
    start = time.perf_counter()
    for rel in store.index.files:
        store.reader._file(rel)
    results["footers"] = {
        "files": len(store.index.files),
        "open_all_s": round(time.perf_counter() - start, 4),
        "footer_bytes": sum(store.reader._file(rel)[0].metadata.serialized_size for rel in store.index.files),
    }
    warm = []
    for q in qids:
        # The query as a user runs it (its row groups not yet read by this process), then the
        # same search again, split, after the reader's cache of decoded groups is emptied.
        store.reader._recent.clear()
        s = time.perf_counter()
        ds.nearest(q, k=10)
        total = time.perf_counter() - s
        store.reader._recent.clear()
        pos = ds.resolve(q).position
        t0 = time.perf_counter()
        qrow = store.rows([pos])[0]
        t1 = time.perf_counter()
        idx = store.index
        bounds = mindex.lower_bounds(idx.coords, idx.residuals, idx.norms, pos, store.tau, idx.ynorms)
        t2 = time.perf_counter()
        fetch_time = [0.0]
        read0 = store.reader.bytes_read

        def fetch(p, _ft=fetch_time):
            s = time.perf_counter()
            got = store.fetch_rows(p)
            _ft[0] += time.perf_counter() - s
            return got

        mask = np.ones(k, dtype=bool)
        mask[pos] = False
        res = mindex.search(bounds, mask, fetch, qrow, 10, group_of=store.group_of)
        t3 = time.perf_counter()
        warm.append(
            {
                "query": q,
                "nearest_s": round(total, 4),
                "query_row_s": round(t1 - t0, 4),
                "bounds_s": round(t2 - t1, 4),
                "fetch_s": round(fetch_time[0], 4),
                "rerank_s": round(t3 - t2 - fetch_time[0], 4),
                "n_reranked": res.n_reranked,
                "bytes_read": store.reader.bytes_read - read0,
                "top10": res.positions.tolist(),
            }
        )
    results["warm"] = warm

    if brute:
        brute_force_check(results, path, ds, qids, warm, n)
    else:
        for w in warm:
            del w["top10"]
    files = sorted((path / "vectors").rglob("*.parquet"))
    rate = sequential_read_rate(files[0])
    results["disk_seq_read_MBps"] = round(rate / 1e6, 1)
    fetch_bytes = np.mean([w["bytes_read"] for w in warm])
    fetch_s = np.mean([w["fetch_s"] + w["query_row_s"] for w in warm])
    results["rerank_read_vs_disk"] = {
        "mean_bytes": int(fetch_bytes),
        "mean_read_s": round(float(fetch_s), 4),
        "bytes_at_disk_rate_s": round(float(fetch_bytes / rate), 4),
        "ratio": round(float(fetch_s / (fetch_bytes / rate)), 2) if fetch_bytes else None,
    }
    results["remote_http"] = http_run(path, qids[0], size)
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if out:
        out.write_text(json.dumps(results, indent=2))
    return results


def brute_force_check(results: dict, path: Path, ds, qids: list[str], warm: list[dict], n: int) -> None:
    """Brute force over the whole file in blocks: the exact top-10 of each query."""
    from llkl_db.math import index as mindex

    store = ds._store
    # Brute force over the whole file in blocks: the exact top-10 of each query.
    from llkl_db.io.rowgroups import RowGroupReader, local_opener

    reader = RowGroupReader(local_opener(str(path)), n)
    idx = store.index
    qrows = np.stack([store.rows([ds.resolve(q).position])[0] for q in qids]).astype(np.float64)
    qpos = [ds.resolve(q).position for q in qids]
    best = [np.empty(0)] * len(qids)
    bestp = [np.empty(0, dtype=np.int64)] * len(qids)
    t0 = time.perf_counter()
    for fi, rel in enumerate(idx.files):
        rows_in = idx.row_of[idx.file_of == fi]
        base = int(np.flatnonzero(idx.file_of == fi)[0])
        for start in range(0, rows_in.size, 4096):
            got, _, values = reader.read(rel, rows_in[start : start + 4096])
            # whole row groups come back: a group across two blocks (a file whose groups are
            # not 64-aligned) must count once
            fresh = (got >= start) & (got < start + 4096)
            got, values = got[fresh], values[fresh]
            np.maximum(values, np.float32(ds.metadata.clip_threshold), out=values)
            v64 = values.astype(np.float64)
            for j in range(len(qids)):
                var, _ = mindex.variance_with_se(v64 - qrows[j])
                p = base + got
                var = np.where(p == qpos[j], np.inf, var)
                allv = np.concatenate([best[j], var])
                allp = np.concatenate([bestp[j], p])
                top = np.lexsort((allp, allv))[:10]
                best[j], bestp[j] = allv[top], allp[top]
    results["brute_force_s"] = round(time.perf_counter() - t0, 2)
    results["exact_match"] = all(w["top10"] == bp.tolist() for w, bp in zip(warm, bestp, strict=True))
    results["mismatches"] = [
        {"query": w["query"], "index": w["top10"], "brute": bp.tolist(), "brute_var": b.tolist()}
        for w, bp, b in zip(warm, bestp, best, strict=True)
        if w["top10"] != bp.tolist()
    ]
    for w in warm:
        del w["top10"]


def http_run(path: Path, query: str, size: int) -> dict:
    from range_server import serve

    with serve(path) as (url, counter):
        before = counter["bytes"]
        wall, rss, _ = child_rss_run([PY, "-m", "llkl_db.cli", "nearest", query, "--dataset", url, "--json"])
        served = counter["bytes"] - before
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1), "bytes_served": served, "fraction": served / size}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--k", type=int, required=True)
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--families", type=int)
    g.add_argument("--out", type=Path, required=True)
    sub.add_parser("spectrum")
    i = sub.add_parser("index")
    i.add_argument("path", type=Path)
    r = sub.add_parser("run")
    r.add_argument("path", type=Path)
    r.add_argument("--queries", type=int, default=5)
    r.add_argument("--out", type=Path)
    r.add_argument("--no-brute-force", action="store_true", help="skip the exactness check (minutes)")
    args = parser.parse_args()
    if args.cmd == "generate":
        generate(args.k, args.n, args.out, args.families)
    elif args.cmd == "spectrum":
        print(json.dumps(spectrum(), indent=2))
    elif args.cmd == "index":
        wall, rss, text = child_rss_run([PY, "-m", "llkl_db.cli", "index", str(args.path)])
        size = sum(f.stat().st_size for f in (args.path / "index").iterdir())
        print(
            json.dumps({"wall_s": round(wall, 1), "peak_rss_mb": round(rss), "index_bytes": size, "out": text.strip()})
        )
    else:
        run(args.path, args.queries, args.out, brute=not args.no_brute_force)


if __name__ == "__main__":
    main()
