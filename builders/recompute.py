"""``validate --recompute K``: re-score K random texts with each entry's model and compare.

An entry whose model cannot be loaded here is not recomputed; a check that did not run is not a
pass, so the report fails unless skips are allowed (``allow_skip``).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from llkl_db.errors import LlklError
from llkl_db.textsets import TextSet
from llkl_db.validation import ValidationReport, validate
from llkl_db.variants import DTYPE_NAMES as DTYPES


def tolerance(reference: np.ndarray, exact: bool) -> np.ndarray:
    """Allowed |difference| in nats: float32 forward passes agree to ~1e-4 relative across
    batch shapes and kernels; reduced-precision and quantized variants to about 2%."""
    scale = np.abs(reference)
    return 0.05 + 1e-3 * scale if exact else 0.5 + 2e-2 * scale


def validate_and_recompute(
    path, k: int, *, allow_skip: bool = False, seed: int = 0, device: str = "auto", **validate_args
) -> ValidationReport:
    """:func:`llkl_db.validation.validate`, then re-score ``k`` random texts of every entry."""
    report = validate(path, **validate_args, keep_vectors=True)
    if k > 0 and report.entry_rows and report.texts is not None:
        recompute_check(report, report.texts, report.vectors, k, seed=seed, device=device)
        not_run = [eid for eid in report.entries if eid not in report.recomputed]
        if not_run and not allow_skip:
            report.add(
                report.path,
                f"{len(not_run)} of {len(report.entries)} entries could not be recomputed here "
                f"(first: {not_run[0]}); a check that did not run is not a pass (allow skips to accept)",
            )
    report.vectors = {}
    return report


def recompute_check(
    report: ValidationReport,
    texts: TextSet,
    vectors: dict[str, np.ndarray],
    k: int,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Re-score ``k`` random texts (the same for every entry) and compare with ``vectors``."""
    from llkl_db.builders.models import load_model
    from llkl_db.builders.scoring import score_texts

    n = len(texts.texts)
    picked = np.sort(np.random.default_rng(seed).choice(n, size=min(k, n), replace=False))
    subset = [texts.texts[i] for i in picked]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in report.entry_rows:
        key = (row["model_id"], row["revision"], row.get("variant"), row.get("dtype"), row.get("bos_policy"))
        groups[key].append(row)
    for (model_id, revision, variant, dtype, bos_policy), rows in groups.items():
        # skip-first entries (the 2025 scoring) are re-scored the same way; the others as built.
        policy = "skip-first" if bos_policy == "skip-first" else "auto"
        try:
            loaded = load_model(
                model_id,
                # 'unknown' (imported 2025 vectors) has no revision to pin: the latest is the best guess
                revision=None if revision in ("local", "unknown", None) else revision,
                dtype=dtype if dtype in DTYPES else "auto",
                device=device,
                variant=variant,
            )
            layers = sorted({r["layer"] for r in rows if r.get("layer") is not None})
            result = score_texts(
                loaded.model, loaded.tokenizer, subset, layers=layers, progress=False, bos_policy=policy
            )
        except LlklError as exc:
            for r in rows:
                report.notes.append(f"{r['entry_id']}: not recomputed (model could not be loaded: {exc})")
            continue
        exact = variant is None and (dtype in (None, "float32"))
        for r in rows:
            eid = r["entry_id"]
            stored = vectors[eid][picked]
            fresh = result.loglik.get(r.get("layer"))
            if fresh is None:
                report.notes.append(f"{eid}: not recomputed (layer {r.get('layer')} not produced)")
                continue
            if result.bos_policy != r.get("bos_policy"):
                report.add(
                    r["_file"],
                    f"recomputed with bos_policy {result.bos_policy}, the entry says {r.get('bos_policy')}",
                    eid,
                )
            diff = np.abs(np.asarray(fresh, dtype=np.float64) - stored)
            bad = diff > tolerance(stored, exact)
            if bad.any():
                j = int(np.argmax(diff))
                report.add(
                    r["_file"],
                    f"recomputed log-likelihood differs on {int(bad.sum())} of {len(picked)} texts "
                    f"(text {int(picked[j])}: stored {stored[j]:.4f}, recomputed {float(fresh[j]):.4f} nats)",
                    eid,
                )
                report.recomputed.append(eid)
            else:
                report.notes.append(f"{eid}: recomputed {len(picked)} texts, max |diff| {diff.max():.3g} nats")
            report.recomputed.append(eid)
