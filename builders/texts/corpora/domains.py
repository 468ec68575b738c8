"""The domains of the mini text set: how to read each corpus and record what was read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import bible, fortunes, jargon, wikipedia
from .locations import CorpusPaths
from .versions import debian_version
from .wheel import member_sha256, wheel_version

Documents = Iterator[tuple[str, str]]


@dataclass(frozen=True)
class Domain:
    """A corpus: its ``source`` name, licence, document reader and provenance record."""

    source: str
    license: str
    read: Callable[[CorpusPaths], Documents]
    provenance: Callable[[CorpusPaths], dict[str, Any]]


def _debian(packages: tuple[str, ...], path) -> dict[str, Any]:
    return {"debian": {p: debian_version(p) for p in packages}, "path": str(path)}


def _wiki_provenance(paths: CorpusPaths) -> dict[str, Any]:
    wheel = wikipedia.find_wheel(paths.wheel_dir)
    return {
        "pypi": {"gensim": wheel_version(wheel)},
        "wheel": wheel.name,
        "member": wikipedia.MEMBER,
        "member_sha256": member_sha256(wheel, wikipedia.MEMBER),
    }


DOMAINS: dict[str, Domain] = {
    "wikipedia": Domain(
        "wikipedia",
        wikipedia.LICENSE,
        lambda p: wikipedia.read_wikipedia(wikipedia.find_wheel(p.wheel_dir)),
        _wiki_provenance,
    ),
    "bible": Domain(
        "bible",
        bible.LICENSE,
        lambda p: bible.read_bible(p.bible_dir),
        lambda p: _debian((bible.PACKAGE,), p.bible_dir),
    ),
    "jargon": Domain(
        "jargon",
        jargon.LICENSE,
        lambda p: jargon.read_jargon(p.jargon_file),
        lambda p: _debian((jargon.PACKAGE,), p.jargon_file),
    ),
    "fortunes": Domain(
        "fortunes",
        fortunes.LICENSE,
        lambda p: fortunes.read_fortunes(p.fortunes_dir),
        lambda p: _debian((fortunes.PACKAGE, "fortunes-min"), p.fortunes_dir),
    ),
}
