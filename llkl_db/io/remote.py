"""A remote dataset read by ranged requests: the metadata and the index are downloaded, vector
rows are fetched row group by row group (fsspec: ``HfFileSystem`` for the Hub, the HTTP file
system for an http(s):// base URL).

``hf://datasets/ORG/NAME[@REV]``: the revision is resolved to a commit first; llkl-db.json and
index/* go to the Hub cache (``hf_hub_download``, pinned to that commit); whole-matrix work then
downloads the snapshot of the same commit (as without an index). A Hub dataset without an index
is downloaded whole, as before, and so is any Hub dataset when the Hub cannot be asked for the
commit (offline: the cached snapshot). ``http(s)://BASE``: the small files go to a fresh temporary
folder (removed at exit), nothing is cached; whole-matrix work is refused.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llkl_db.errors import LlklError
from llkl_db.schema import METADATA_FILE

from .folder import INDEX_DIR, INDEX_FILES, DatasetFolder
from .index import Index
from .rowgroups import RowGroupReader
from .source import HF_PREFIX, parse_hub_source

SMALL_FILES = [METADATA_FILE] + [f"{INDEX_DIR}/{name}" for name in INDEX_FILES]
BLOCK = 1 << 16


def is_remote(source: str) -> bool:
    return source.startswith((HF_PREFIX, "http://", "https://"))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return text


@dataclass
class RemoteParts:
    """What a dataset store over a remote source is made of."""

    folder: DatasetFolder  # local: llkl-db.json and index/
    index: Index
    reader: RowGroupReader
    materialize: Callable[[], None]  # make the vector files local (or refuse)


def open_remote(source: str, revision: str | None = None) -> RemoteParts | Path:
    """The parts of a dataset over a remote source, or a local folder when the source has no
    index and was downloaded whole (see the module docstring)."""
    if source.startswith(HF_PREFIX):
        return _open_hub(*parse_hub_source(source, revision))
    if revision:
        raise LlklError(f"{source}: a revision applies to Hub datasets only")
    return _open_http(source.rstrip("/"))


def _store(folder: DatasetFolder, opener, where: str, materialize) -> RemoteParts:
    try:
        index = folder.read_index(check_files=False)
    except LlklError as exc:  # name the remote file, not the local copy
        raise LlklError(str(exc).replace(f"{folder.root}/", where)) from None
    reader = RowGroupReader(opener, folder.metadata.n_texts, where=where)
    return RemoteParts(folder, index, reader, materialize)


def _open_http(base: str):
    import fsspec

    try:
        fs = fsspec.filesystem("http")
    except ImportError as exc:
        raise LlklError(
            f"{base}: reading over HTTP needs aiohttp (pip install 'llkl-db[remote]'): {_short(exc)}"
        ) from None
    tmp = Path(tempfile.mkdtemp(prefix="llkl-db-remote-"))
    atexit.register(shutil.rmtree, tmp, True)
    for rel in SMALL_FILES:
        url = f"{base}/{rel}"
        try:
            data = fs.cat_file(url)
        except FileNotFoundError:
            shutil.rmtree(tmp, ignore_errors=True)
            hint = "; over plain HTTP a dataset needs an index (`llkl-db index DIR` before serving it)"
            raise LlklError(f"{url}: not found{hint if rel != METADATA_FILE else ''}") from None
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LlklError(f"{url}: download failed ({_short(exc)})") from None
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def opener(rel: str):
        return fs.open(f"{base}/{rel}", "rb", block_size=BLOCK, cache_type="none")

    def materialize() -> None:
        raise LlklError(
            f"{base}: whole-matrix work over plain HTTP is not supported (nearest, kl and vector "
            "read rows); download the dataset folder and open it locally"
        )

    return _store(DatasetFolder(tmp), opener, f"{base}/", materialize)


def _open_hub(repo_id: str, revision: str | None):
    import huggingface_hub
    from huggingface_hub import HfApi, HfFileSystem, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from .hub import download_dataset

    where = f"hf://datasets/{repo_id}"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return download_dataset(repo_id, revision)  # the cached snapshot, as without an index
    try:
        commit = HfApi().dataset_info(repo_id, revision=revision).sha
    except (RevisionNotFoundError, RepositoryNotFoundError):
        commit = None  # reported below, as a snapshot download reports them
    except Exception:
        # The Hub cannot be asked (offline, no network): a cached snapshot, as without an index.
        return download_dataset(repo_id, revision)
    try:
        if commit is None:
            return download_dataset(repo_id, revision)
        paths = {}
        for rel in SMALL_FILES:
            try:
                paths[rel] = hf_hub_download(repo_id, rel, repo_type="dataset", revision=commit)
            except EntryNotFoundError:
                if rel == METADATA_FILE:
                    raise LlklError(f"{where}: no {METADATA_FILE} (not a llkl-db dataset?)") from None
                # No index: download the dataset whole, as without one.
                return download_dataset(repo_id, commit)
    except RevisionNotFoundError:
        raise LlklError(f"{where}: revision {revision!r} not found") from None
    except RepositoryNotFoundError:
        raise LlklError(f"{where}: dataset repository not found (or private)") from None
    except LocalEntryNotFoundError:
        raise LlklError(f"{where}: not in the local cache and the Hub cannot be reached (offline?)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise LlklError(f"{where}: download failed ({_short(exc)})") from None
    root = Path(paths[METADATA_FILE]).parent
    fs = HfFileSystem()

    def opener(rel: str):
        return fs.open(f"datasets/{repo_id}@{commit}/{rel}", "rb", block_size=BLOCK, cache_type="none")

    def materialize() -> None:
        got = download_dataset(repo_id, commit)
        if Path(got) != root:
            raise LlklError(f"{where}: the snapshot of {commit} is not where its index is ({got})")

    return _store(DatasetFolder(root), opener, f"{where}@{commit[:12]}/", materialize)
