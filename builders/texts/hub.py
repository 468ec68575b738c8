"""Pile documents from the Hugging Face Hub (``monology/pile-uncopyrighted``), shard by shard."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llkl_db.errors import LlklError
from llkl_db.install import install_hint

REPO_ID = "monology/pile-uncopyrighted"
N_TRAIN_SHARDS = 30


def shard_names(n_shards: int = N_TRAIN_SHARDS) -> list[str]:
    """The train shards in the order ``datasets`` reads them: ``train/00.jsonl.zst`` ..."""
    return [f"train/{i:02d}.jsonl.zst" for i in range(n_shards)]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` or ``.jsonl.zst`` file, one per line."""
    with open(path, "rb") as raw:
        if str(path).endswith(".zst"):
            try:
                import zstandard
            except ImportError:
                raise LlklError(f"reading .zst shards needs zstandard: {install_hint('build')}") from None
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
        else:
            stream = raw
        for line in io.TextIOWrapper(stream, encoding="utf-8"):
            if line.strip():
                yield json.loads(line)


class HubPile:
    """A re-readable source of Pile documents: shards are downloaded (and cached by
    huggingface_hub) only as far as the documents are read."""

    def __init__(self, repo_id: str = REPO_ID, revision: str | None = None, shards: list[str] | None = None):
        self.repo_id = repo_id
        self.revision = revision
        self.shards = shards or shard_names()
        self.used: list[str] = []

    def _download(self, filename: str) -> Path:
        import huggingface_hub

        try:
            path = huggingface_hub.hf_hub_download(
                repo_id=self.repo_id, filename=filename, repo_type="dataset", revision=self.revision
            )
        except Exception as exc:
            # Offline, no access, a missing file: one line naming the file, not a traceback.
            if type(exc).__module__.split(".")[0] not in (
                "huggingface_hub",
                "httpx",
                "httpcore",
                "requests",
                "urllib3",
            ):
                raise
            text = str(exc).strip()
            detail = text.splitlines()[0][:200] if text else type(exc).__name__
            raise LlklError(
                f"hf://datasets/{self.repo_id}/{filename}: cannot download ({detail}); offline? "
                "a local copy of the documents can be given instead"
            ) from None
        if filename not in self.used:
            self.used.append(filename)
        return Path(path)

    def __call__(self) -> Iterator[dict[str, Any]]:
        for filename in self.shards:
            yield from read_jsonl(self._download(filename))

    def provenance(self) -> dict[str, Any]:
        """What was read, for the sidecar."""
        return {"hub": {"repo_id": self.repo_id, "repo_type": "dataset", "revision": self.revision, "files": self.used}}
