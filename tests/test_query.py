"""Query clean-up on hand-made messages: greetings, sign-offs and log noise out, meaning kept."""

from __future__ import annotations

import pytest

from sopilot.retrieval.query import focus_query, strip_greeting, strip_noise, strip_sign_off


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("hi, reviewer gets SAML error", "reviewer gets SAML error"),
        ("Hello support,\n\nsince this morning all calls fail", "since this morning all calls fail"),
        ("Hi UOps, I'm TL for the VE team.", "I'm TL for the VE team."),
        ("Good morning team! export is stuck", "export is stuck"),
        # not a greeting: "hey" runs into the sentence, "high" only starts with "hi"
        ("hey since tuesday i cant find HS.3.2", "hey since tuesday i cant find HS.3.2"),
        ("high error rate on the console", "high error rate on the console"),
    ],
)
def test_strip_greeting(message: str, expected: str) -> None:
    assert strip_greeting(message).strip() == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("She knows her password. Thanks, Grace", "She knows her password."),
        ("from home it works. Thx, Carlos (site IT)", "from home it works."),
        ("Is that allowed and how? Regards, Site lead Cebu", "Is that allowed and how?"),
        ("still not closed. Thanks", "still not closed."),
        ("can you check?\n\nKind regards,\nTomasz Nowak (platform team)", "can you check?"),
        ("How do we get someone made admin? - J. Weber, Platform Eng", "How do we get someone made admin?"),
        # kept: thanks that goes on with the problem, a dash before an error code, "best" as a word
        ("thanks, but it still fails", "thanks, but it still fails"),
        ("login fails - AUTH-451", "login fails - AUTH-451"),
        ("what is the best way to rotate keys", "what is the best way to rotate keys"),
    ],
)
def test_strip_sign_off(message: str, expected: str) -> None:
    assert strip_sign_off(message).strip() == expected


def test_strip_noise_removes_ids_times_and_frames_and_keeps_codes() -> None:
    log = "\n".join(
        [
            "2026-11-24T09:00:01.123Z ERROR AUTH-451: Source IP not allowed request_id=req_01JDA2K7M9P1R3T5V7X9Z1B3D5",
            "2026-11-24T09:00:02.456Z ERROR AUTH-451: Source IP not allowed request_id=req_01JDA3M8N0Q2S4U6W8Y0A2C4E6",
            "trace 550e8400-e29b-41d4-a716-446655440000 commit 3fa2c8e1d0b9f7a6c4d2 at 10:42:07",
            "java.lang.IllegalStateException: lease expired (LBL-410-LEASE)",
            "    at com.aegis.console.Lease.check(Lease.java:88)",
            '  File "/srv/app/export.py", line 42, in run',
            "    ... 12 more",
        ]
    )
    assert strip_noise(log).splitlines() == [
        "ERROR AUTH-451: Source IP not allowed request_id=",
        "trace commit at",
        "java.lang.IllegalStateException: lease expired (LBL-410-LEASE)",
    ]


def test_strip_noise_keeps_what_people_write() -> None:
    text = "HTTP/2 403 insufficient_scope appeals:write since 04:40, item 7412300 of 5,000,000; v4.8"
    assert strip_noise(text) == text


def test_focus_query_whole_ticket() -> None:
    ticket = (
        "Hi team,\n\nexport fails with EXPORT_ROW_LIMIT_EXCEEDED:\n"
        "2026-11-24 09:00:00 job 9f8e7d6c5b4a39281706 failed\n"
        "2026-11-24 09:05:00 job 0a1b2c3d4e5f60718293 failed\n\nThanks,\nPriya"
    )
    assert focus_query(ticket) == "export fails with EXPORT_ROW_LIMIT_EXCEEDED:\njob failed"


def test_focus_query_keeps_a_message_that_would_be_emptied() -> None:
    assert focus_query("Hello,") == "Hello,"
    assert focus_query("550e8400-e29b-41d4-a716-446655440000") == "550e8400-e29b-41d4-a716-446655440000"
