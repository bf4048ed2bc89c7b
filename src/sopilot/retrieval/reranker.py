"""The optional reranker: a sentence-transformers ``CrossEncoder`` from a local folder, re-scoring fused candidates.

No cross-encoder ships in a PyPI package that works offline, so this stage runs only when
``SOPILOT_RERANKER`` names a model folder (for example one copied from a model hub by an administrator).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sopilot.core.errors import ConfigError
from sopilot.index.embedder import set_offline

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class CrossEncoderReranker:
    """Scores (question, passage) pairs jointly; slower than the bi-encoder, so only the top candidates."""

    def __init__(self, folder: str, device: str = "cpu", batch_size: int = 16) -> None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"reranker {folder!r} is not a model folder: set SOPILOT_RERANKER to a local CrossEncoder "
                "folder, or unset it to search without reranking (models are never downloaded)"
            )
        set_offline()
        from sentence_transformers import CrossEncoder

        self.name = path.name
        self._batch_size = batch_size
        self._model: CrossEncoder = CrossEncoder(str(path), device=device, local_files_only=True)

    def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        scores = self._model.predict([(query, t) for t in texts], batch_size=self._batch_size)
        return [float(s) for s in scores]


def load_reranker(folder: str | None, device: str = "cpu") -> CrossEncoderReranker | None:
    return CrossEncoderReranker(folder, device=device) if folder else None
