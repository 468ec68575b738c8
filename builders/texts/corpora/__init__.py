"""Readers of the offline corpora: each yields documents as (doc_id, text)."""
