"""Chunking on UTF-8 byte boundaries, the recipe of the papers (method.md, section 1)."""

from __future__ import annotations

from collections.abc import Iterator

PILE_MAX_BYTES = 1024
PILE_MIN_BYTES = 256


def _is_continuation(byte: int) -> bool:
    """True for a UTF-8 continuation byte (0b10xxxxxx), which cannot start a character."""
    return byte & 0xC0 == 0x80


def split_bytes(text: str, max_bytes: int) -> Iterator[str]:
    """Split ``text`` into consecutive pieces of at most ``max_bytes`` UTF-8 bytes each.

    A piece ends at the last character boundary at or before ``max_bytes``, so no character is
    split; the pieces joined give ``text`` back exactly."""
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4 (one UTF-8 character)")
    data = text.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        while end < len(data) and _is_continuation(data[end]):
            end -= 1
        yield data[start:end].decode("utf-8")
        start = end


def chunk_document(
    text: str, max_bytes: int = PILE_MAX_BYTES, min_bytes: int = PILE_MIN_BYTES
) -> list[tuple[int, str]]:
    """Chunks of ``text`` as (chunk_idx, chunk), keeping those longer than ``min_bytes`` bytes.

    ``chunk_idx`` is the chunk's position among all pieces of the document (kept or not), so it
    locates the chunk in the document: it starts at byte ``chunk_idx * max_bytes`` or a little
    before (the back-ups to character boundaries)."""
    if min_bytes >= max_bytes:
        raise ValueError("min_bytes must be smaller than max_bytes")
    return [
        (idx, piece) for idx, piece in enumerate(split_bytes(text, max_bytes)) if len(piece.encode("utf-8")) > min_bytes
    ]
