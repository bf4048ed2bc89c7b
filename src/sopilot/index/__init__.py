"""The index ingest and retrieval both stand on.

The embedder, the Chroma store, the FTS5 lexical index, the query log, and where each lives in the index folder.
"""
