"""End to end: ``llkl-db place`` of the offline GGUFs against the embedded dataset, and of the
bible fine-tune against the embedded dataset without it.

    python benchmarks/place_end_to_end.py --out /tmp/place-e2e      # needs the offline models
    llkl-db train --only SmolLM2-135M-Instruct-bible                  # first, for the fine-tune's own run

Each model is placed by the command in a child process (wall time and peak RSS from
``/usr/bin/time -v``) with ``--save`` and ``--json``; the nearest entries and the verdicts are
printed. The fine-tune is placed from its trained folder (``build/training``, whose card states
its base_model) when it is there, and its scored values are compared with its stored entry's;
its stored vector, restricted to the texts ``place`` would choose, is always placed too, with
and without its metadata.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import llkl_db  # noqa: E402
from llkl_db.place.place import place, suggest_text_count, texts_to_score  # noqa: E402

FINE_TUNE = "llkl-db/SmolLM2-135M-Instruct-bible"
WITHOUT_FINE_TUNE = ["--where", f"model_id != '{FINE_TUNE}'"]
TRAINED = ROOT / "build" / "training" / "SmolLM2-135M-Instruct-bible"
# (label, model, extra arguments): the GGUFs the embedded entries come from, and a Q4_0 copy of
# SmolLM2 placed against the dataset without its own Q4_0 entry
GGUFS = (
    ("smollm2-135m-instruct", "offline:smollm2-135m-instruct", []),
    ("gemma3-270m", "offline:gemma3-270m", []),
    (
        "smollm2-135m-instruct-q4_0",
        "offline:smollm2-135m-instruct",
        ["--variant", "q4_0", "--where", "entry_id != 'HuggingFaceTB/SmolLM2-135M-Instruct@gguf-q4_1:q4_0'"],
    ),
)


def place_command(label: str, model: str, extra: list[str], out: Path) -> dict | None:
    """Run ``llkl-db place MODEL ... --json`` timed; print and return its answer."""
    save = out / f"save-{label}"
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "llkl_db.cli", "place", model, *extra]
    run = subprocess.run(
        [*cmd, "--device", "cpu", "--save", str(save), "--json", "--quiet"], capture_output=True, text=True, cwd=ROOT
    )
    (out / f"{label}.log").write_text(run.stdout + run.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", run.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr)
    print(f"{label}: exit {run.returncode}, wall {wall and wall[1]}, peak RSS {rss and int(rss[1]) / 1e6:.2f} GB")
    if run.returncode != 0:
        print("  ", run.stderr.strip().splitlines()[0] if run.stderr.strip() else "(no message)")
        return None
    answer = json.loads(run.stdout)
    first = answer["neighbours"][0]
    print(
        f"   {answer['n_texts_used']} texts; nearest {first['entry_id']} {first['kl_bpb']:.3g} ± {first['se_bpb']:.2g}"
    )
    print("  ", answer["verdict"]["text"])
    return answer


def compare_with_stored(save: Path) -> None:
    """How far the trained folder's scores are from the fine-tune's stored entry, on the texts scored."""
    import numpy as np

    from llkl_db.place.shard import read_vector

    ds = llkl_db.open()
    scored = read_vector(save, ds.folder.text_set_key, ds.metadata.n_texts)
    row = ds.entries["entry_id"].to_list().index(f"{FINE_TUNE}@local")
    stored = ds.loglik[row][scored.text_ids]
    diff = np.abs(np.asarray(scored.loglik, dtype=np.float64) - stored)
    print(f"   its {diff.size} scores vs its stored entry: max |difference| {diff.max():.3g} nats")


def place_stored_fine_tune() -> None:
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
        print(
            f"fine-tune's stored vector, {label}: nearest {first['entry_id']} {first['kl_bpb']:.3g} ± {first['se_bpb']:.2g}"
        )
        print("  ", result.verdict.text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the logs and saved shards")
    parser.add_argument("--skip-gguf", action="store_true", help="not the GGUFs (no GGUF scoring)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_gguf:
        for label, model, extra in GGUFS:
            place_command(label, model, extra, args.out)
    if (TRAINED / "config.json").is_file():
        extra = ["--model-id", FINE_TUNE, "--model-revision", "local", *WITHOUT_FINE_TUNE]
        if place_command("bible-fine-tune", str(TRAINED), extra, args.out) is not None:
            compare_with_stored(args.out / "save-bible-fine-tune")
    else:
        print(f"{TRAINED}: not trained here (llkl-db train --only SmolLM2-135M-Instruct-bible)")
    place_stored_fine_tune()


if __name__ == "__main__":
    main()
