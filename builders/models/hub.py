"""Hub metadata of a model repository: the commit a revision resolves to, and its card's base_model
(on the Hub, or in a local folder's README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubInfo:
    """What the Hub (or the local Hub cache, offline) says about a repository at a revision."""

    sha: str | None
    base_model: str | None = None
    snapshot: Path | None = None


def _base_model(card_data: object) -> str | None:
    """Return the card's base_model (the first one when it lists several), best effort."""
    if card_data is None:
        return None
    value = card_data.get("base_model") if hasattr(card_data, "get") else getattr(card_data, "base_model", None)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


CARD_FILE = "README.md"
MAX_CARD_BYTES = 1_000_000  # model cards are a few kB; a larger file is not read


def folder_base_model(folder: Path) -> str | None:
    """The base_model a local model folder's card states (README.md front matter, as on the Hub,
    and as transformers' Trainer writes it), best effort: None without a card or one that does not parse."""
    from huggingface_hub.repocard import metadata_load

    card = folder / CARD_FILE
    try:
        if not card.is_file() or card.stat().st_size > MAX_CARD_BYTES:
            return None
        return _base_model(metadata_load(card))
    except Exception:  # noqa: BLE001 - a card that does not parse states nothing
        return None


def card_text(base_model: str, title: str, body: str) -> str:
    """A model card (README.md) stating ``base_model`` in its front matter, as the Hub reads it."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(base_model=base_model, library_name="transformers")
    return f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n{body}\n"


def hub_info(repo_id: str, revision: str | None) -> HubInfo:
    """Resolve a revision to its commit sha: online via HfApi.model_info, else from the cached snapshot path.

    Raises the Hub's own errors for a gated, missing or unknown repository or revision;
    returns sha None when neither the Hub nor the cache can tell.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, revision=revision)
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError):
        raise
    except Exception:  # noqa: BLE001 - offline or flaky network: fall back to the cache
        snapshot = cached_snapshot(repo_id, revision)
        return HubInfo(sha=snapshot_sha(snapshot), snapshot=snapshot)
    return HubInfo(sha=info.sha, base_model=_base_model(getattr(info, "card_data", None)))


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """Return the real path of the cached snapshot folder of a revision, or None when it is not cached."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached
        return None
    return Path(folder).resolve()


def snapshot_sha(snapshot: Path | None) -> str | None:
    """Return the commit sha that names a Hub cache snapshot folder (…/snapshots/<sha>)."""
    if snapshot is not None and snapshot.parent.name == "snapshots" and len(snapshot.name) == 40:
        return snapshot.name
    return None
