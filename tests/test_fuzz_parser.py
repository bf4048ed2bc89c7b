"""Property tests (hypothesis) for the Markdown parser, the front matter and the chunker.

Any text an author could save: no exception, every chunk within the embedder's token limit (its real
tokenizer), every chunk's line range inside the file, every non-empty line under the front matter in some
chunk's range, and its words in the chunks that cover it. Example counts keep the file under ~60 s;
SOPILOT_FUZZ_EXAMPLES=N runs N random (not fixed) examples per property, to hunt further.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sopilot.index.embedder import Embedder
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.frontmatter import blank_front_matter, front_matter_lines, split_front_matter
from sopilot.ingest.markdown import _parser, parse_outline
from sopilot.ingest.sop import parse_sop

SMALL_LIMIT = 64  # a small window makes the splitting paths (items, rows, lines, sentences, words) run often

FRAGMENTS = [
    "# Title",
    "## Steps",
    "### Deep {#custom-id}",
    "Heading\n=======",
    "Sub\n---",
    "1. Open the console and check the queue.",
    "2) Second step",
    "- item",
    "  - nested item",
    "* star item",
    "> quoted line",
    "| a | b |",
    "|---|---|",
    "| 1 | two |",
    "```",
    "```bash",
    "~~~",
    "    indented code",
    "<div>",
    "</div>",
    "<!-- comment -->",
    "[ref]: https://example.com/x",
    "---",
    "***",
    "title: front",
    "id: X-1",
    "...",
    "\t tabbed",
    "Ünïcödé 日本語 текст 🚀",
    "word " * 40,
    "averyveryveryverylongwordwithoutanyspacesatallthatkeepsgoingandgoing" * 3,
    "Sentence one. Sentence two! Sentence three? Four; five: six.",
    "",
    "",
]

line = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=60))
markdown_text = st.lists(line, max_size=40).map("\n".join)
with_front_matter = st.tuples(
    st.sampled_from(["", "---\nid: F-1\ntitle: Fuzz\n---\n", "---\ntags: [a, b]\n---\n", "---\n: bad\n"]),
    markdown_text,
).map("".join)

EXAMPLES = int(os.environ.get("SOPILOT_FUZZ_EXAMPLES", "600"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize="SOPILOT_FUZZ_EXAMPLES" not in os.environ,
)


def _heading_lines(body: str) -> set[int]:
    """0-based lines that markdown-it reads as headings (ATX, or setext with its underline)."""
    out: set[int] = set()
    for tok in _parser().parse(body):
        if tok.type == "heading_open" and tok.map:
            out.update(range(*tok.map))
    return out


def _check(text: str, chunker: Chunker, embedder: Embedder, limit: int) -> None:
    result = parse_sop(text, "fuzz.md", chunker)
    if result.sop is None:
        assert result.problems, "a file refused without a problem that says why"
        return
    n_lines = len(text.splitlines())
    chunks = result.sop.chunks
    if chunks:
        counts = embedder.count_tokens([c.embed_text for c in chunks])
        assert max(counts) + 2 <= limit
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= n_lines, (c.start_line, c.end_line, n_lines)
    body = blank_front_matter(text)
    lines = body.splitlines()
    skip = set(range(front_matter_lines(text.splitlines()))) | _heading_lines(body)
    for i, raw in enumerate(lines):
        if i in skip or not raw.strip():
            continue
        covering = [c for c in chunks if c.start_line <= i + 1 <= c.end_line]
        assert covering, f"line {i + 1} {raw!r} is in no chunk"
        joined = " ".join(c.text for c in covering)
        # Words too long for one chunk are cut to fit (the model would truncate them anyway).
        lost = [w for w in raw.split() if w not in joined and len(w) < 40]
        assert not lost, f"line {i + 1}: words {lost} are in no chunk that covers it"


@pytest.fixture(scope="module")
def chunkers(embedder: Embedder) -> dict[int, Chunker]:
    return {
        SMALL_LIMIT: Chunker(embedder.count_tokens, SMALL_LIMIT),
        embedder.max_tokens: Chunker(embedder.count_tokens, embedder.max_tokens),
    }


@FUZZ
@given(text=with_front_matter)
def test_markdown_shapes_chunk_within_limits_and_cover_every_line(
    text: str, chunkers: dict[int, Chunker], embedder: Embedder
) -> None:
    _check(text, chunkers[SMALL_LIMIT], embedder, SMALL_LIMIT)


@FUZZ
@given(text=st.text(max_size=400))
def test_any_text_at_the_model_limit(text: str, chunkers: dict[int, Chunker], embedder: Embedder) -> None:
    _check(text, chunkers[embedder.max_tokens], embedder, embedder.max_tokens)


@settings(max_examples=EXAMPLES, deadline=None, derandomize="SOPILOT_FUZZ_EXAMPLES" not in os.environ)
@given(text=st.text(max_size=300))
def test_outline_and_front_matter_never_raise(text: str) -> None:
    body = blank_front_matter(text)
    outline = parse_outline(body)
    n = len(body.splitlines())
    assert all(0 <= b.start < b.end <= max(n, 1) for b in outline.blocks)
    assert all(0 <= h.line < max(n, 1) for h in outline.headings)
    fm, problem = split_front_matter(text, "fuzz.md")
    assert (fm is None) == (problem is not None)
