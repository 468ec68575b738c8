"""The one door to the Hub for writing: an ``HfApi`` and one-line errors. Tokens come from
huggingface_hub's own lookup (``HF_TOKEN`` or ``hf auth login``) and are never printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from llkl_db.errors import LlklError

T = TypeVar("T")
REPO_TYPE = "dataset"


def get_api(api: Any = None, token: str | None = None) -> Any:
    """``api`` when given (tests pass a fake), else a ``huggingface_hub.HfApi``."""
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)


def hub_call(what: str, func: Callable[[], T]) -> T:
    """Run one Hub call, turning its failures into a one-line :class:`LlklError`."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return func()
    except RepositoryNotFoundError:
        raise LlklError(f"{what}: repository not found (or no access: check HF_TOKEN)") from None
    except RevisionNotFoundError:
        raise LlklError(f"{what}: revision not found") from None
    except HfHubHTTPError as exc:
        raise LlklError(f"{what}: Hub request failed ({_first_line(exc)})") from None
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("httpx", "httpcore", "requests", "urllib3"):
            raise LlklError(f"{what}: cannot reach the Hub ({_first_line(exc)}); offline?") from None
        if isinstance(exc, (OSError, ValueError)):
            raise LlklError(f"{what}: {_first_line(exc)}") from None
        raise


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
