"""Benchmark of the HTML explorer (issue 13): a synthetic dataset of K entries (default 20,000)
in schema v1, written with the library's writers as the tests do, mapped, rendered with k = 10
neighbours per entry, then loaded in headless chromium via Playwright.

    python benchmarks/bench_explorer.py [--k 20000] [--n 256] [--out bench-out/explorer.json]

Reports the time of each stage (PCA map, neighbours via Dataset.nearest per entry, rendering),
the page's size, and in the browser: the load time (navigation start to the explorer ready,
first frame drawn), the time of a hover and of a search. Targets: file < 25 MB, load < 3 s.
Needs chromium (/usr/bin/chromium, or LLKL_DB_CHROMIUM) and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TYPES = ["llama", "gpt2", "gpt_neox", "qwen2", "gemma", "mistral", "phi", "olmo", "opt", "bloom"]


def synthetic(k: int, n: int, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """K entries: models of 10 types, each with a run of 7 checkpoints, its output, an 8-bit
    variant and one logit-lens layer (10 entries per model), log-likelihoods built hierarchically
    (text difficulty, type, model, checkpoint walk, small variant noise, a far-away layer)."""
    from llkl_db.io.vectors import entry_id

    rng = np.random.default_rng(seed)
    base = -300.0 + 60.0 * rng.standard_normal(n)
    type_dev = {t: 12.0 * rng.standard_normal(n) for t in TYPES}
    rows, vectors = [], []
    i = 0
    while len(rows) < k:
        t = TYPES[i % len(TYPES)]
        model = f"org{i % 37}/{t}-{i:05d}-{(i % 7 + 1) * 100}m"
        own = base + type_dev[t] + 6.0 * rng.standard_normal(n)
        walk = own + 15.0 * rng.standard_normal(n)
        for step in (0, 1000, 2000, 4000, 8000, 16000, 32000):
            walk = walk + (own - walk) * 0.5 + 0.5 * rng.standard_normal(n)
            rows.append({"entry_id": entry_id(model, f"step{step}"), "model_id": model, "revision": f"step{step}",
                         "step": step, "model_type": t, "n_params": (i % 7 + 1) * 10**8})  # fmt: skip
            vectors.append(walk.copy())
        rows.append(
            {"entry_id": entry_id(model, "main"), "model_id": model, "model_type": t, "n_params": (i % 7 + 1) * 10**8}
        )
        vectors.append(own)
        rows.append(
            {"entry_id": entry_id(model, "main", None, "q8_0"), "model_id": model, "variant": "q8_0", "model_type": t}
        )
        vectors.append(own + 0.3 * rng.standard_normal(n))
        rows.append({"entry_id": entry_id(model, "main", 0), "model_id": model, "layer": 0, "model_type": t})
        vectors.append(base + 40.0 * rng.standard_normal(n))
        i += 1
    return np.asarray(vectors[:k], dtype=np.float32), rows[:k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=20_000, help="entries")
    parser.add_argument("--n", type=int, default=256, help="texts")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", type=Path, help="keep the page at this path")
    args = parser.parse_args()

    from helpers import write_dataset

    import llkl_db
    from llkl_db.analysis import entry_map
    from llkl_db.analysis.render import write_map

    results: dict = {"k": args.k, "n": args.n}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        loglik, rows = synthetic(args.k, args.n)
        root = write_dataset(Path(tmp) / "ds", loglik, rows, files=4)
        results["build_dataset_s"] = round(time.perf_counter() - t0, 2)
        ds = llkl_db.open(root)
        t0 = time.perf_counter()
        m = entry_map(ds, method="pca", color="kind")
        results["pca_map_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        from llkl_db.analysis.map import neighbour_lists

        m.neighbours = neighbour_lists(ds, 10)
        results["neighbours_k10_s"] = round(time.perf_counter() - t0, 2)
        page = args.keep or Path(tmp) / "map.html"
        t0 = time.perf_counter()
        write_map(m, page)
        results["render_s"] = round(time.perf_counter() - t0, 2)
        results["file_mb"] = round(page.stat().st_size / 1e6, 2)
        results.update(browser(page))
    print(json.dumps(results, indent=2))
    targets = results["file_mb"] < 25 and results["load_s_median"] < 3
    print(f"file {results['file_mb']} MB (< 25), load {results['load_s_median']} s median (< 3): "
          + ("PASS" if targets else "FAIL"))  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


def browser(page: Path, repeat: int = 3) -> dict:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("LLKL_DB_CHROMIUM", "/usr/bin/chromium")
    loads, errors = [], []
    out: dict = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        for attempt in range(repeat):
            pg = b.new_page(viewport={"width": 1280, "height": 800})
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            t0 = time.perf_counter()
            pg.goto(page.as_uri())
            pg.wait_for_function("window.explorer && window.explorer.ready", timeout=60_000)
            pg.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")  # drawn
            loads.append(time.perf_counter() - t0)
            if attempt == 0:
                n = pg.evaluate("window.explorer.ids.length")
                hover = []
                for i in range(0, n, max(1, n // 20)):
                    x, y = pg.evaluate(f"window.explorer.screenPosition({i})")
                    t1 = time.perf_counter()
                    pg.mouse.move(x, y)
                    pg.locator("#under li").first.wait_for()
                    hover.append(time.perf_counter() - t1)
                t1 = time.perf_counter()
                pg.fill("#search", pg.evaluate(f"window.explorer.ids[{n // 2}]"))
                pg.press("#search", "Enter")
                pg.locator("#neighbours tr").first.wait_for()
                out["search_select_s"] = round(time.perf_counter() - t1, 3)
                out["hover_s_median"] = round(statistics.median(hover), 3)
            pg.close()
        b.close()
    out["load_s"] = [round(t, 2) for t in loads]
    out["load_s_median"] = round(statistics.median(loads), 2)
    out["console_errors"] = errors
    return out


if __name__ == "__main__":
    main()
