"""End to end: ``llkl-db place`` of the offline GGUFs against the embedded dataset, and the bible
fine-tune (from its stored vector) against the embedded dataset without it.

    python benchmarks/place_end_to_end.py --out /tmp/place-e2e      # needs the offline models

Each GGUF is placed by the command in a child process (wall time and peak RSS from
``/usr/bin/time -v``) with ``--save``; the verdicts are printed. The fine-tune's trained folder is
not kept, so its stored vector, restricted to the texts ``place`` would choose, is placed with
and without its metadata.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llkl_db  # noqa: E402
from llkl_db.place.place import place, suggest_text_count, texts_to_score  # noqa: E402

# (offline model, extra arguments): the GGUFs the embedded entries come from, and a Q4_0 copy of
# SmolLM2 placed against the dataset without its own Q4_0 entry
GGUFS = (
    ("smollm2-135m-instruct", []),
    ("gemma3-270m", []),
    (
        "smollm2-135m-instruct",
        ["--variant", "q4_0", "--where", "entry_id != 'HuggingFaceTB/SmolLM2-135M-Instruct@gguf-q4_1:q4_0'"],
    ),
)
FINE_TUNE = "llkl-db/SmolLM2-135M-Instruct-bible"


def place_gguf(name: str, extra: list[str], out: Path) -> None:
    label = name + ("-" + extra[1] if extra else "")
    save = out / f"save-{label}"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "llkl_db.cli", "place", f"offline:{name}", *extra]
    run = subprocess.run([*cmd, "--device", "cpu", "--save", str(save)], capture_output=True, text=True, cwd=ROOT)
    (out / f"{label}.log").write_text(run.stdout + run.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", run.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    verdict = [line for line in run.stdout.splitlines() if line.startswith(f"offline:{name}@main")]
    print(f"{label}: exit {run.returncode}, wall {wall and wall[1]}, peak RSS {rss and int(rss[1]) / 1e6:.2f} GB")
    print("  ", verdict[-1] if verdict else run.stdout[-400:])  # the verdict follows the table title


def place_fine_tune() -> None:
    full = llkl_db.open()
    rows = full.entries.filter(full.entries["model_id"] == FINE_TUNE)
    if rows.height == 0:
        print(f"{FINE_TUNE}: not in the embedded dataset")
        return
    row = full.entries["entry_id"].to_list().index(rows["entry_id"][0])
    meta = full.entries.row(row, named=True)
    ds = full.filter(f"model_id != '{FINE_TUNE}'")
    ids = texts_to_score(ds, suggest_text_count(ds))
    for label, m in (("with its metadata", meta), ("without metadata", None)):
        result = place(ds, ids, full.loglik[row][ids], k=6, name=meta["entry_id"], meta=m)
        first = result.table.row(0, named=True)
        print(f"fine-tune, {label}: nearest {first['entry_id']} {first['kl_bpb']:.3g} ± {first['se_bpb']:.2g}")
        print("  ", result.verdict.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the logs and saved shards")
    parser.add_argument("--skip-gguf", action="store_true", help="only the fine-tune (no model scoring)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_gguf:
        for name, extra in GGUFS:
            place_gguf(name, extra, args.out)
    place_fine_tune()


if __name__ == "__main__":
    main()
