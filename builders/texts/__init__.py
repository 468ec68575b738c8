"""Text sets: chunking on UTF-8 byte boundaries, the Pile reference set, the 2025 import and the
offline mini set."""

from llkl_db.textsets.chunk import Chunk
from llkl_db.textsets.chunking import chunk_document, split_bytes

__all__ = ["Chunk", "chunk_document", "split_bytes"]
