"""Wikipedia articles from the test data of the gensim wheel (read from the zip, never installed)."""

from __future__ import annotations

import bz2
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

from .locations import GENSIM_VERSION
from .missing import MissingCorpusError
from .text import n_words, squash

MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LICENSE = "CC-BY-SA-3.0 (Wikipedia)"
MIN_WORDS = 40
_REFS = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.DOTALL | re.IGNORECASE)
_HEADINGS = re.compile(r"^=+[^\n]*=+[ \t]*$", re.MULTILINE)
_MARKUP_LEFT = re.compile(r"[|{}]|\[\[|\]\]")
_MEDIA = ("file:", "image:")
_SENTENCE_END = (".", "!", "?", '"', "\u201d", ")", ":", ";")


def find_wheel(location: Path, version: str = GENSIM_VERSION) -> Path:
    """The gensim wheel at ``location``: the file itself, or the newest-named match in a folder."""
    if location.is_file():
        return location
    wheels = sorted(location.glob(f"gensim-{version}-*.whl")) if location.is_dir() else []
    if not wheels:
        raise MissingCorpusError(
            f"{location}: no gensim-{version} wheel; download it with "
            f"`pip download --no-deps gensim=={version} -d {location}` (or run builders/texts/install_corpora.sh)"
        )
    return wheels[-1]


def _pages(xml_stream) -> Iterator[tuple[str, str]]:
    """(title, wikitext) of the main-namespace, non-redirect pages of a MediaWiki XML dump."""
    title = ns = text = None
    redirect = False
    for _, elem in ElementTree.iterparse(xml_stream, events=("end",)):
        tag = elem.tag.rsplit("}", 1)[-1]
        if tag == "title":
            title = elem.text or ""
        elif tag == "ns":
            ns = elem.text
        elif tag == "redirect":
            redirect = True
        elif tag == "text":
            text = elem.text or ""
        elif tag == "page":
            if ns == "0" and not redirect and text:
                yield title, text
            title = ns = text = None
            redirect = False
            elem.clear()


def paragraphs(wikitext: str, min_words: int = MIN_WORDS) -> list[str]:
    """Prose paragraphs of an article of ``min_words`` or more words: references, headings,
    tables, images and markup stripped, whitespace squashed; paragraphs where markup is left
    (a malformed table or link) and lists (no sentence end) are dropped."""
    import mwparserfromhell

    code = mwparserfromhell.parse(_HEADINGS.sub("\n", _REFS.sub("", wikitext)))
    for node in code.filter_tags(recursive=False, matches=lambda n: n.tag == "table"):
        code.remove(node)
    for link in code.filter_wikilinks(recursive=False):
        if str(link.title).strip().lower().startswith(_MEDIA):
            code.remove(link)
    paras = (squash(p) for p in code.strip_code().split("\n\n"))
    return [p for p in paras if n_words(p) >= min_words and p.endswith(_SENTENCE_END) and not _MARKUP_LEFT.search(p)]


def read_wikipedia(wheel: Path, min_words: int = MIN_WORDS) -> Iterator[tuple[str, str]]:
    """Documents (title, paragraphs joined by blank lines) of the Wikipedia sample in the wheel."""
    with zipfile.ZipFile(wheel) as zf, zf.open(MEMBER) as raw, bz2.open(raw) as xml_stream:
        for title, wikitext in _pages(xml_stream):
            paras = paragraphs(wikitext, min_words)
            if paras:
                yield title, "\n\n".join(paras)
