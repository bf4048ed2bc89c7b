"""Chunking: the embedder's own token count is never exceeded, blocks stay whole where they fit."""

from __future__ import annotations

from tests.conftest import sop

from sopilot.index.embedder import Embedder
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.sop import parse_sop


def _parse(embedder: Embedder, text: str, max_tokens: int | None = None):
    result = parse_sop(text, "x.md", Chunker(embedder.count_tokens, max_tokens or embedder.max_tokens))
    assert result.sop is not None, result.problems
    return result.sop


def test_chunks_never_exceed_the_model_limit(embedder: Embedder) -> None:
    long_paragraph = " ".join(f"Sentence {i} explains a check the agent makes before replying." for i in range(120))
    long_line = "x" * 3000
    rows = "\n".join(f"| E{i:03d} | message {i} with some words | do step {i} |" for i in range(80))
    code = "\n".join(f"SELECT col_{i} FROM mod.decisions WHERE queue_key = 'q{i}';" for i in range(90))
    items = "\n".join(f"{i}. Step {i}: open the console and check setting number {i} carefully." for i in range(1, 70))
    body = (
        f"## Prose\n\n{long_paragraph}\n\n## Line\n\n{long_line}\n\n## Table\n\n| code | message | fix |\n"
        f"|---|---|---|\n{rows}\n\n## Code\n\n```sql\n{code}\n```\n\n## Steps\n\n{items}\n"
    )
    doc = _parse(embedder, sop("X-1", "Limits", body))
    counts = embedder.count_tokens([c.embed_text for c in doc.chunks])
    assert max(counts) + 2 <= embedder.max_tokens
    assert len(doc.chunks) > 10
    by_section = {c.heading_path[-1]: [] for c in doc.chunks}
    for c in doc.chunks:
        by_section[c.heading_path[-1]].append(c)
    # every table piece keeps the header row
    assert all(c.text.startswith("| code | message | fix |\n|---|---|---|") for c in by_section["Table"])
    assert len(by_section["Table"]) > 1
    # every code piece is a closed fence
    assert all(c.text.startswith("```sql") and c.text.endswith("```") for c in by_section["Code"])
    # list pieces split between items, never inside one
    assert all(c.text.split("\n")[0][0].isdigit() for c in by_section["Steps"])
    # nothing lost: every table row and step appears in some chunk
    joined = "\n".join(c.text for c in doc.chunks)
    assert all(f"| E{i:03d} |" in joined for i in range(80))
    assert all(f"Step {i}:" in joined for i in range(1, 70))


def test_small_blocks_are_kept_whole_and_packed(embedder: Embedder) -> None:
    body = "## Limits\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nAfter the table.\n\n```bash\ncurl x\n```\n"
    doc = _parse(embedder, sop("X-2", "Small", body))
    assert len(doc.chunks) == 1
    chunk = doc.chunks[0]
    assert chunk.text == "| a | b |\n|---|---|\n| 1 | 2 |\n\nAfter the table.\n\n```bash\ncurl x\n```"
    assert chunk.embed_text.startswith("Small > Limits\n")
    assert chunk.heading_path == ("Small", "Limits") and chunk.anchor == "limits"


def test_line_ranges_point_into_the_file(embedder: Embedder) -> None:
    text = sop("X-3", "Ranges", "## One\n\nfirst para\n\n## Two\n\nsecond para\n")
    lines = text.splitlines()
    doc = _parse(embedder, text)
    for chunk in doc.chunks:
        assert "\n".join(lines[chunk.start_line - 1 : chunk.end_line]) == chunk.text
    sections = {s.heading_path[-1]: s for s in doc.sections}
    assert lines[sections["Two"].start_line - 1] == "## Two"


def test_a_smaller_cap_gives_more_chunks(embedder: Embedder) -> None:
    body = "## A\n\n" + "\n\n".join(f"Paragraph {i} about queues and reviewers and SLAs." for i in range(40))
    big = _parse(embedder, sop("X-4", "Cap", body))
    small = _parse(embedder, sop("X-4", "Cap", body), max_tokens=64)
    assert len(small.chunks) > len(big.chunks)
    assert max(embedder.count_tokens([c.embed_text for c in small.chunks])) + 2 <= 64


def test_chunk_ids_are_stable_and_content_addressed(embedder: Embedder) -> None:
    text = sop("X-5", "Ids", "## A\n\nalpha\n\n## B\n\nbeta\n")
    first = _parse(embedder, text)
    again = _parse(embedder, text)
    edited = _parse(embedder, text.replace("beta", "beta two"))
    shifted = _parse(embedder, text.replace("## A\n", "## A\n\nnew intro line\n"))
    assert [c.id for c in first.chunks] == [c.id for c in again.chunks]
    assert first.chunks[0].id == edited.chunks[0].id and first.chunks[1].id != edited.chunks[1].id
    assert first.chunks[1].id in {c.id for c in shifted.chunks}  # moved, same text: same id
    assert all(c.id.startswith("c1-") for c in first.chunks)


def test_text_before_first_heading_and_no_h1(embedder: Embedder) -> None:
    text = "---\ntitle: Front title\n---\nIntro text.\n\n## Section\n\nBody.\n"
    doc = _parse(embedder, text)
    assert [c.heading_path for c in doc.chunks] == [("Front title",), ("Front title", "Section")]
    assert doc.meta.id == "x"  # no id: the path names the SOP
