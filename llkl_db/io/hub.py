"""Hugging Face Hub access for reading datasets: one snapshot into the standard cache."""

from __future__ import annotations

from pathlib import Path

from llkl_db.errors import LlklError

from .folder import CHANGELOG_FILE, PUBLISHED_PATTERNS, TEXTS_DIR

# What a query needs of a published dataset (not the changelog, nor the texts' provenance).
QUERY_PATTERNS = [p for p in PUBLISHED_PATTERNS if p not in (CHANGELOG_FILE, f"{TEXTS_DIR}/*.json")]


def download_dataset(repo_id: str, revision: str | None = None) -> Path:
    """Download (or reuse from the cache) the files of a dataset repository and return its folder.

    Uses ``snapshot_download`` so that a second run, and ``HF_HUB_OFFLINE=1``, read the cache.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        folder = snapshot_download(
            repo_id=repo_id, repo_type="dataset", revision=revision, allow_patterns=QUERY_PATTERNS
        )
    except RevisionNotFoundError:
        raise LlklError(f"hf://datasets/{repo_id}: revision {revision!r} not found") from None
    except RepositoryNotFoundError:
        raise LlklError(f"hf://datasets/{repo_id}: dataset repository not found (or private)") from None
    except LocalEntryNotFoundError:
        raise LlklError(
            f"hf://datasets/{repo_id}: not in the local cache and the Hub cannot be reached (offline?)"
        ) from None
    except (HfHubHTTPError, OSError) as exc:
        raise LlklError(f"hf://datasets/{repo_id}: download failed ({str(exc).splitlines()[0][:200]})") from None
    return Path(folder)
