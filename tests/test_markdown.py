"""Outline parsing: headings, anchors, blocks and their line ranges."""

from sopilot.ingest.markdown import heading_text, parse_outline, slugify


def test_headings_anchors_and_lines() -> None:
    text = "# Title\n\nintro\n\n## Step 1: Check the `queue`\n\n## Step 1: Check the `queue`\n\n### Done {#custom}\n"
    outline = parse_outline(text)
    assert [(h.level, h.text, h.anchor, h.line) for h in outline.headings] == [
        (1, "Title", "title", 0),
        (2, "Step 1: Check the queue", "step-1-check-the-queue", 4),
        (2, "Step 1: Check the queue", "step-1-check-the-queue-1", 6),
        (3, "Done", "custom", 8),
    ]


def test_heading_in_code_fence_is_not_a_heading() -> None:
    outline = parse_outline("## Real\n\n```bash\n# not a heading\n```\n")
    assert [h.text for h in outline.headings] == ["Real"]
    assert [(b.kind, b.start, b.end) for b in outline.blocks] == [("fence", 2, 5)]
    assert outline.unclosed_fence_line is None


def test_unclosed_fence_is_found() -> None:
    outline = parse_outline("## A\n\ntext\n\n```sql\nselect 1;\n\n## B\n")
    assert outline.unclosed_fence_line == 4
    assert [h.text for h in outline.headings] == ["A"]


def test_list_items_and_table_rows_are_split_points() -> None:
    text = "1. one\n2. two\n   - nested\n3. three\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n"
    lst, table = parse_outline(text).blocks
    assert lst.kind == "ordered_list" and lst.unit_starts == (0, 1, 3)
    assert table.kind == "table" and table.unit_starts == (5, 7, 8)


def test_heading_text_drops_markup() -> None:
    assert heading_text("An **important** [link](x.md) and `code`") == "An important link and code"
    assert slugify("SSO: SAML errors (v2)") == "sso-saml-errors-v2"
