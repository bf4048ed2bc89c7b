"""Retrieval: the embedder, the vector store and search over them."""
