"""Peer pipelines: what a team would build instead, run on the same KB, machine and test set.

- ``llamaindex``: plain LlamaIndex: one Document per file, the default ``SentenceSplitter``, the same
  embedder through ``HuggingFaceEmbedding``, a Chroma vector store, the default retriever.
- ``bm25``: LlamaIndex's ``BM25Retriever`` (bm25s, English stemming) over the same default nodes.

Line ranges come from each node's character offsets, so passages are scored exactly like SOPilot's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sopilot.core.types import Passage
from sopilot.index.embedder import resolve_model_path, set_offline
from sopilot.ingest.discover import discover


class Peer(Protocol):
    name: str

    def search(
        self, question: str, k: int, filters: dict[str, Any] | None = None
    ) -> tuple[list[Passage], bool | None, str, None]: ...


@dataclass(frozen=True, slots=True)
class _FileText:
    rel: str
    text: str


def _documents(kb_dir: Path, ignore: tuple[str, ...]) -> list[Any]:
    from llama_index.core import Document

    docs = []
    for rel in discover(kb_dir, ignore).files:
        try:
            text = (kb_dir / rel).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # the peer, like a plain script, skips what it cannot read
        docs.append(Document(text=text, id_=rel, metadata={"file_path": rel}))
    return docs


def _line_of(text: str, offset: int | None) -> int:
    return text.count("\n", 0, max(offset or 0, 0)) + 1


class _NodePassages:
    """Turns LlamaIndex nodes into SOPilot passages with line ranges from character offsets."""

    def __init__(self, documents: list[Any]) -> None:
        self._texts = {d.id_: d.text for d in documents}

    def to_passages(self, hits: list[Any], name: str) -> list[Passage]:
        out = []
        for hit in hits:
            node = hit.node
            rel = node.metadata.get("file_path", "")
            text = self._texts.get(rel, "")
            content = node.get_content()
            start = node.start_char_idx
            if start is None:  # the vector store may drop offsets: find the text in the file
                start = text.find(content[:200])
            end = node.end_char_idx if node.end_char_idx is not None else start + len(content)
            score = float(hit.score or 0.0)
            out.append(
                Passage(
                    chunk_id=node.node_id,
                    path=rel,
                    title=rel,
                    heading_path=(),
                    anchor="",
                    start_line=_line_of(text, start),
                    end_line=_line_of(text, max(end - 1, start)),
                    text=content,
                    score=score,
                    scores={name: score},
                )
            )
        return out


class LlamaIndexPeer:
    name = "llamaindex"

    def __init__(self, kb_dir: Path, work_dir: Path, embedder_name: str, ignore: tuple[str, ...]) -> None:
        set_offline()
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.vector_stores.chroma import ChromaVectorStore

        documents = _documents(kb_dir, ignore)
        self._nodes = _NodePassages(documents)
        client = chromadb.PersistentClient(
            path=str(work_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        if any(c.name == "peer" for c in client.list_collections()):
            client.delete_collection("peer")
        collection = client.create_collection("peer", embedding_function=None)
        storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=collection))
        embed_model = HuggingFaceEmbedding(model_name=str(resolve_model_path(embedder_name)), device="cpu")
        self._index = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)

    def search(
        self, question: str, k: int, filters: dict[str, Any] | None = None
    ) -> tuple[list[Passage], bool | None, str, None]:
        hits = self._index.as_retriever(similarity_top_k=k).retrieve(question)
        return self._nodes.to_passages(hits, self.name), None, "", None


class Bm25Peer:
    name = "bm25"

    def __init__(self, kb_dir: Path, ignore: tuple[str, ...], max_k: int = 100) -> None:
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.retrievers.bm25 import BM25Retriever

        documents = _documents(kb_dir, ignore)
        self._nodes = _NodePassages(documents)
        nodes = SentenceSplitter().get_nodes_from_documents(documents)
        self._max_k = min(max_k, len(nodes))
        self._retriever = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=self._max_k)

    def search(
        self, question: str, k: int, filters: dict[str, Any] | None = None
    ) -> tuple[list[Passage], bool | None, str, None]:
        hits = self._retriever.retrieve(question)[:k]
        return self._nodes.to_passages(hits, self.name), None, "", None


def build_peer(name: str, kb_dir: Path, work_dir: Path, *, embedder_name: str, ignore: tuple[str, ...]) -> Peer:
    work_dir.mkdir(parents=True, exist_ok=True)
    if name == "llamaindex":
        return LlamaIndexPeer(kb_dir, work_dir, embedder_name, ignore)
    if name == "bm25":
        return Bm25Peer(kb_dir, ignore)
    raise ValueError(f"unknown peer {name!r}: choose llamaindex or bm25")
