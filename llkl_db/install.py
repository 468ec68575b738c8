"""Install hints that work however llkl-db was installed: from an index, or from a clone.

An extra named in an error message (``pip install 'llkl-db[plot]'``) only helps someone who
installed from an index. An editable install (``pip install -e .`` in a clone) records its folder
in the distribution's ``direct_url.json``; the hint then names that folder.
"""

from __future__ import annotations

import json
from importlib import metadata


def editable_root() -> str | None:
    """The source folder of an editable install of llkl-db, else None."""
    try:
        text = metadata.distribution("llkl-db").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return None
    url = info.get("url", "")
    if info.get("dir_info", {}).get("editable") and url.startswith("file://"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(url).path)
    return None


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra``: ``pip install -e 'FOLDER[extra]'`` for an
    editable install, else the index form with the clone form beside it."""
    root = editable_root()
    if root:
        return f"pip install -e '{root}[{extra}]'"
    return f"pip install 'llkl-db[{extra}]' (from a clone of llkl-db: pip install -e '.[{extra}]')"
