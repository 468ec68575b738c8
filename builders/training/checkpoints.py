"""Saving a model as a local folder that from_pretrained loads, atomically (temporary folder, rename)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def save_checkpoint(model, tokenizer, folder: Path, card: str | None = None) -> None:
    """Write ``model`` and ``tokenizer`` (and a model card, README.md) to ``folder`` (replacing it)
    so that a reader sees the old folder or the complete new one."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if card is not None:
        (tmp / "README.md").write_text(card, encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
