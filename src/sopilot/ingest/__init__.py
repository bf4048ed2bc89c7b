"""Ingestion: Markdown SOPs in, validated sections and chunks out, synced incrementally into the index."""
