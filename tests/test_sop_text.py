"""The drafter's reading of SOP text: sentences across wrapped lines, steps, what is left out."""

from __future__ import annotations

from sopilot.draft.sop_text import key_facts_of, sentences_of, steps_of, table_rows_of

WRAPPED = """An overturned audit is removed from the quality score in the nightly recompute at 02:00 UTC. The score in
`My quality` changes the next morning, not when the dispute is closed.

The default is 600 requests per minute per key with a burst of 100. Limits, how they are counted and how to ask
for more: [Partner API rate limits](rate-limits.md).
"""


def test_a_sentence_wrapped_over_two_lines_stays_whole() -> None:
    assert sentences_of(WRAPPED) == [
        "An overturned audit is removed from the quality score in the nightly recompute at 02:00 UTC.",
        "The score in `My quality` changes the next morning, not when the dispute is closed.",
        "The default is 600 requests per minute per key with a burst of 100.",
        "Limits, how they are counted and how to ask for more: Partner API rate limits.",
    ]


def test_each_list_item_is_its_own_paragraph_with_its_continuation_lines() -> None:
    text = (
        "- Ask the reviewer to sign out and close all\n"
        "  console tabs before trying again.\n"
        "- Group sync takes up to 15 minutes.\n"
        "1. Open the profile in Okta Admin\n"
        "   and pick `Reset Multifactor`.\n"
    )
    assert sentences_of(text) == [
        "Ask the reviewer to sign out and close all console tabs before trying again.",
        "Group sync takes up to 15 minutes.",
        "Open the profile in Okta Admin and pick `Reset Multifactor`.",
    ]


def test_code_tables_headings_and_quotes_end_a_paragraph_and_are_left_out() -> None:
    text = (
        "Run the query below for the\n"
        "```sql\nSELECT count(*) FROM audits WHERE result = 'disagree';\n```\n"
        "partner's key only.\n"
        "| code | meaning of the code |\n|---|---|\n"
        "## Resolution steps here\n"
        "> A quoted message from the user.\n"
        "Reload the console once the release is out.\n"
    )
    assert sentences_of(text) == [
        "Run the query below for the",
        "partner's key only.",
        "Reload the console once the release is out.",
    ]


def test_steps_fold_their_continuation_lines() -> None:
    text = "1. Open AccessHub and\n   check the `Requests` tab.\n2. Raise a request.\n\nAfter the list."
    assert steps_of(text) == ["Open AccessHub and check the `Requests` tab.", "Raise a request."]


def test_a_steps_sub_items_stay_with_it_on_lines_of_their_own() -> None:
    text = (
        "1. AccessHub request shows `Active`, the tool still behaves as before:\n"
        "   - Ask the user to sign out at the Okta sign-out page and sign in again. Signing out of the\n"
        "     tool only is not enough.\n"
        "   - Check Okta Admin > user > `Groups` for `rc-role-<role>`.\n"
        "2. Urgent: confirm the new range by phone,\n"
        "   then:\n"
        "   1. Post in `#identity-oncall`.\n"
        "   2. Tell the reviewers to sign in again.\n"
    )
    assert steps_of(text) == [
        "AccessHub request shows `Active`, the tool still behaves as before:\n"
        "   - Ask the user to sign out at the Okta sign-out page and sign in again. Signing out of the tool only "
        "is not enough.\n"
        "   - Check Okta Admin > user > `Groups` for `rc-role-<role>`.",
        "Urgent: confirm the new range by phone, then:\n"
        "   1. Post in `#identity-oncall`.\n"
        "   2. Tell the reviewers to sign in again.",
    ]


CODE_STEPS = """1. Lakehouse lags by up to 15 minutes. Confirm the live state first:

```bash
curl -s https://appeals.aegis.example/admin/api/v1/appeals/APL-1
```

2. Was the push sent? Okta Admin > System Log:

   ```text
   eventType eq "system.push.send_factor_verify_push"
   ```

   - No event: Okta didn't send one.
3. Read the history.

```sql
SELECT 1;
```
"""


def test_a_steps_short_code_block_stays_with_it_when_asked_for() -> None:
    assert steps_of(CODE_STEPS, code_lines=8) == [
        "Lakehouse lags by up to 15 minutes. Confirm the live state first:\n"
        "   ```bash\n   curl -s https://appeals.aegis.example/admin/api/v1/appeals/APL-1\n   ```",
        "Was the push sent? Okta Admin > System Log:\n"
        '   ```text\n   eventType eq "system.push.send_factor_verify_push"\n   ```\n'
        "   - No event: Okta didn't send one.",
        "Read the history.",  # the query after it is not the step's: the step does not end with a colon
    ]
    assert steps_of(CODE_STEPS) == [
        "Lakehouse lags by up to 15 minutes. Confirm the live state first:",
        "Was the push sent? Okta Admin > System Log:\n   - No event: Okta didn't send one.",
        "Read the history.",
    ]
    assert steps_of(CODE_STEPS, code_lines=0) == steps_of(CODE_STEPS)
    long_block = "1. Run:\n```\n" + "x\n" * 9 + "```\n2. Done."
    assert steps_of(long_block, code_lines=8) == ["Run:", "Done."]


def test_the_citation_of_a_step_ending_in_code_goes_on_its_first_line() -> None:
    from sopilot.draft.base import cite

    assert cite("Confirm:\n   ```bash\n   curl x\n   ```", 2) == "Confirm: [2]\n   ```bash\n   curl x\n   ```"
    assert cite("Reload the console.", 1) == "Reload the console. [1]"


def test_table_rows_are_read_with_their_header() -> None:
    text = (
        "Who owns what:\n\n"
        "| Area / symptom | Owning team | Channel |\n"
        "|---|:---:|---|\n"
        "| Export Center jobs failing | Data Platform on-call | `#data-platform-oncall` |\n"
        "| Okta SSO \\| SAML errors | Identity on-call | |\n"
        "\n```\n| not | a table |\n|---|---|\n| in | code |\n```\n"
    )
    assert table_rows_of(text) == [
        "Area / symptom: Export Center jobs failing; Owning team: Data Platform on-call; "
        "Channel: `#data-platform-oncall`",
        "Area / symptom: Okta SSO | SAML errors; Owning team: Identity on-call",
    ]
    assert table_rows_of("| just | a line |\nno rule\n") == []


def test_key_facts_are_prose_beside_the_list_that_states_a_limit_duration_or_channel() -> None:
    text = (
        "Links are valid for 24 hours after the job completes.\n"
        "The user sees an AccessDenied page.\n\n"
        "1. Open My exports\n   and wait 5 minutes.\n\n   Jobs are kept 30 days.\n"
        "2. Click Run again.\n\n"
        "Post in #data-platform-oncall if it fails again.\n"
        "At 48 minutes of age:\n"
    )
    assert key_facts_of(text) == [
        "Links are valid for 24 hours after the job completes.",
        "Post in #data-platform-oncall if it fails again.",
    ]


def test_a_draft_states_the_key_facts_before_the_numbered_steps() -> None:
    from sopilot.core.types import Passage
    from sopilot.draft.extractive import ExtractiveDrafter
    from sopilot.retrieval.search import SearchResult

    text = "Links are valid for 24 hours and cannot be extended.\n\n1. Find the job in My exports.\n2. Click Run.\n"
    passage = Passage("c1", "data/exports.md", "Exports", ("Exports", "Resolution"), "resolution", 1, 5, text, 1.0)
    draft = ExtractiveDrafter(tone="internal").draft("link expired", SearchResult("link expired", [passage], True))
    assert draft.text.splitlines()[1:] == [
        "Links are valid for 24 hours and cannot be extended. [1]",
        "1. Find the job in My exports. [1]",
        "2. Click Run. [1]",
    ]
