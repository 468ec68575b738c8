"""Turn the many ways a model fails to load into one-line LlklErrors."""

from __future__ import annotations

from llkl_db.errors import LlklError


def _first_line(exc: BaseException) -> str:
    """Return the first non-empty line of an exception message, shortened."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(exc).__name__


def load_failure(source: str, exc: BaseException) -> LlklError:
    """Return an LlklError that names the model and the reason it did not load (gated, not found, ...)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    text = str(exc)
    if isinstance(exc, LlklError):
        return exc
    if isinstance(exc, GatedRepoError) or "gated repo" in text.lower():
        return LlklError(f"{source}: gated repository (accept its licence on the Hub and log in with a token)")
    if isinstance(exc, RevisionNotFoundError):
        return LlklError(f"{source}: revision not found")
    if isinstance(exc, RepositoryNotFoundError):
        return LlklError(f"{source}: model repository not found (or private)")
    if isinstance(exc, LocalEntryNotFoundError):
        return LlklError(f"{source}: not in the local cache and the Hub cannot be reached (offline?)")
    if "trust_remote_code" in text:
        return LlklError(f"{source}: needs custom code from its repository; pass trust_remote_code if you trust it")
    if "does not recognize this architecture" in text or "Unrecognized configuration class" in text:
        return LlklError(f"{source}: unsupported architecture ({_first_line(exc)})")
    if isinstance(exc, OSError) and ("does not appear to have" in text or "is not a valid model identifier" in text):
        return LlklError(f"{source}: not found ({_first_line(exc)})")
    if isinstance(exc, ImportError):
        return LlklError(f"{source}: a package is missing ({_first_line(exc)})")
    return LlklError(f"{source}: cannot load ({type(exc).__name__}: {_first_line(exc)})")
