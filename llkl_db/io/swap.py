"""Replacing a whole folder crash-safely: build the new one beside it, then switch with a journal.

A writer stages the new folder as ``.NAME.llkl-staging-XXXX`` beside ``NAME``. The switch writes
a journal (``.NAME.llkl-swap.json``), renames ``NAME`` aside, renames the staging folder to
``NAME``, deletes the old folder and the journal. A process killed at any step leaves the
journal, and :func:`recover` (run before every write and on open) finishes the switch or undoes
it, so a reader finds the old folder or the new one, never none. Only folders named by our own
prefixes are ever deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from llkl_db.errors import LlklError

from .atomic import umask, write_text_atomic

STAGING_TAG = ".llkl-staging-"
OLD_TAG = ".llkl-old-"
JOURNAL_SUFFIX = ".llkl-swap.json"
FAULT_ENV = "LLKL_DB_FAULT"  # tests kill the process at a named step to prove recovery


def fault_point(step: str) -> None:
    """Die here, as a crash would, when the test hook names this step."""
    if os.environ.get(FAULT_ENV) == step:
        os._exit(70)


def journal_path(target: Path) -> Path:
    return target.parent / f".{target.name}{JOURNAL_SUFFIX}"


def make_staging(target: Path) -> Path:
    """A new, empty staging folder beside ``target`` (same file system, so renames are atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}{STAGING_TAG}", dir=target.parent))
    staging.chmod(0o777 & ~umask())  # mkdtemp makes it private; a dataset is an ordinary folder
    return staging


def swap_in(staging: Path, target: Path) -> None:
    """Make the complete folder ``staging`` the folder ``target``, replacing any old one."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.parent / f".{target.name}{OLD_TAG}{staging.name.rsplit('-', 1)[-1]}"
    journal = journal_path(target)
    write_text_atomic(journal, json.dumps({"staging": staging.name, "old": old.name}) + "\n")
    fault_point("swap:journal")
    os.replace(target, old)
    fault_point("swap:aside")
    os.replace(staging, target)
    fault_point("swap:switched")
    shutil.rmtree(old)
    fault_point("swap:removed")
    journal.unlink()


def recover(target: Path) -> str | None:
    """Finish or undo a switch that a killed process left half done; say what was done."""
    journal = journal_path(target)
    if not journal.is_file():
        _remove_stale_staging(target)
        return None
    try:
        record = json.loads(journal.read_text("utf-8"))
        staging, old = target.parent / record["staging"], target.parent / record["old"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LlklError(f"{journal}: unreadable switch journal ({type(exc).__name__}); remove it by hand") from None
    if not (
        staging.name.startswith(f".{target.name}{STAGING_TAG}") and old.name.startswith(f".{target.name}{OLD_TAG}")
    ):
        raise LlklError(f"{journal}: the journal names folders that are not llkl-db's; remove it by hand")
    if target.exists():
        done = "finished" if old.exists() else "undone"
        if old.exists():
            shutil.rmtree(old)  # the new folder is in place: the old one goes
        elif staging.exists():
            shutil.rmtree(staging)  # killed before the switch: the old folder stays
    elif staging.exists():
        os.replace(staging, target)  # killed between the two renames: the new folder goes in
        done = "finished"
        if old.exists():
            shutil.rmtree(old)
    elif old.exists():
        os.replace(old, target)
        done = "undone"
    else:
        raise LlklError(f"{journal}: neither {target} nor its staged or old copy exists; remove the journal by hand")
    journal.unlink()
    _remove_stale_staging(target)
    return f"{target}: an interrupted write was {done}"


def _remove_stale_staging(target: Path) -> None:
    """Staging folders of writers that died before their switch (ours by name; nothing else)."""
    if not target.parent.is_dir():
        return
    for stale in target.parent.glob(f".{target.name}{STAGING_TAG}*"):
        if stale.is_dir() and not stale.is_symlink() and _older_than(stale, 60.0):
            shutil.rmtree(stale, ignore_errors=True)


def _older_than(path: Path, seconds: float) -> bool:
    # A staging folder a live writer is still filling is young: leave it to that writer.
    import time

    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False
