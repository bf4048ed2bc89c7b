"""Questions embedded by the int8 copy of the question model (SOPILOT_QUERY_PRECISION=int8): near the fp32
vectors, documents untouched, the copy cached beside the export and made again when damaged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from sopilot.core.settings import Settings
from sopilot.index.embedder import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["hi"] + [
    json.loads(line)["question"] for line in (ROOT / "eval/testsets/kb.jsonl").read_text().splitlines()
][:8]


@pytest.fixture
def models(shipped_index, tmp_path: Path) -> Path:
    """A models folder holding only the packaged embedder's fp32 export (made by the shipped index)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for export in (shipped_index.index_dir / "models").glob("*.onnx"):
        if not export.name.endswith("-int8.onnx"):
            shutil.copy(export, folder / export.name)
    return folder


def test_int8_questions_agree_with_fp32_and_documents_do_not_change(models: Path) -> None:
    fp32 = SentenceTransformerEmbedder(onnx_cache=models)
    expected = [fp32.embed_query(q) for q in QUESTIONS]  # the fp32 export is in models/ from here on
    int8 = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8")
    cosines = np.array([float(np.dot(int8.embed_query(q), e)) for q, e in zip(QUESTIONS, expected, strict=True)])
    assert cosines.min() >= 0.98, cosines
    assert cosines.max() < 0.99999, "the int8 copy answered the fp32 vectors: it was not used"
    assert [p.name for p in models.glob("*-int8.onnx")], "the int8 copy was not cached beside the export"
    assert not int8.loaded, "the int8 copy is made from the cached export, without PyTorch"
    texts = ["Reset a reviewer's two-factor authentication.", "Export queue returns 429."]
    assert np.array_equal(int8.embed_documents(texts), fp32.embed_documents(texts))


def test_a_damaged_int8_copy_is_made_again(models: Path) -> None:
    SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8").embed_query(QUESTIONS[1])
    (copy,) = models.glob("*-int8.onnx")
    good = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8").embed_query(QUESTIONS[1])
    copy.write_bytes(b"not an onnx graph")
    again = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8").embed_query(QUESTIONS[1])
    assert np.array_equal(again, good)
    assert copy.stat().st_size > 1_000_000


def test_an_unknown_precision_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="query_precision"):
        Settings(query_precision="int4")  # type: ignore[arg-type]


@pytest.mark.slow
def test_torch_int8_fallback_stays_near_fp32(models: Path) -> None:
    fp32 = SentenceTransformerEmbedder(runtime="torch")
    int8 = SentenceTransformerEmbedder(runtime="torch", query_precision="int8")
    cosines = [float(np.dot(int8.embed_query(q), fp32.embed_query(q))) for q in QUESTIONS]
    assert min(cosines) >= 0.9 and max(cosines) < 0.99999, cosines
    assert np.array_equal(int8.embed_documents(QUESTIONS[:2]), fp32.embed_documents(QUESTIONS[:2]))
