"""Retrieval: a question in, ranked SOP passages and a coverage decision out (hybrid search, fusion, coverage)."""
