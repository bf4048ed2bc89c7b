"""Query clean-up: what a pasted message says, without the greeting, the signature and the log noise.

Users paste whole tickets: "Hi team," then the problem, a log with timestamps, request ids and stack frames,
then "Thanks, Grace". Greetings and names match nothing useful, and noise tokens crowd out the words that
matter (the lexical query keeps at most 48 terms). ``focus_query`` keeps the problem: error codes, messages,
HTTP statuses and everything a person wrote stay; pure function, no index needed.
"""

from __future__ import annotations

import re

# "Hi team," / "Hello support," / "Good morning Priya!" at the very start: the greeting and up to three words.
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|dear|greetings|good\s+(?:morning|afternoon|evening|day))\b"
    r"(?:[ \t]+[\w.'-]+){0,3}?[ \t]*(?:[,!:.\n]|$)",
    re.IGNORECASE,
)
# A sign-off at a sentence or line start, then at most a name (capitalised, up to five words, an optional
# "(role)") after a comma or line break, to the end of the message: "Thanks, Grace", "Regards, Tomasz (ops)".
_SIGN_OFF = re.compile(
    r"(?:^|(?<=[.!?\n]))[ \t]*(?i:many\s+thanks|thanks(?:\s+(?:a\s+lot|in\s+advance|again))?|thank\s+you|thx|"
    r"(?:kind(?:est)?\s+|best\s+|warm\s+)?regards|cheers|sincerely|best\s+wishes)[ \t]*[!.]?"
    r"(?:[ \t]*[,\n][ \t\n]*[A-Z][\w.'-]*(?:[ \t]+[\w.'&-]+){0,4}(?:[ \t]*\([^)\n]{0,40}\))?)?[ \t\n.!]*$"
)
# "- J. Weber, Platform Eng" at the end: a dash, then a capitalised name and an optional role.
_DASH_SIGNATURE = re.compile(r"\s[-–—]{1,2}\s*[A-Z][a-z.'-]*(?:\s+[A-Z][a-z.'-]*){0,3}(?:,[^\n?.!]{0,40})?\s*$")

_NOISE = [
    # stack-trace frames: Java/JS "at pkg.Class.method(File.java:12)", Python 'File "x.py", line 3, in f',
    # PHP/Ruby "#3 /app/x.php(12): f()", Go "/src/x.go:12 +0x1f"
    re.compile(r"^[ \t]*at\s+[\w$.<>/\\:@-]+\s*\([^)\n]*\)[ \t]*$", re.MULTILINE),
    re.compile(r'^[ \t]*File\s+"[^"\n]+",\s+line\s+\d+(?:,\s+in\s+\S+)?[ \t]*$', re.MULTILINE),
    re.compile(r"^[ \t]*#\d+\s+\S+\(\d+\):.*$", re.MULTILINE),
    re.compile(r"^[ \t]*\S+\.go:\d+\s+\+0x[0-9a-f]+[ \t]*$", re.MULTILINE),
    re.compile(r"^[ \t]*\.\.\.\s*\d+\s+more[ \t]*$", re.MULTILINE),
    # ISO and log timestamps, clock times
    re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2}|\s?UTC)?)?\b"),
    re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b"),
    # UUIDs, long hex (commit SHAs, hashes, trace ids), 0x addresses
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
    re.compile(r"\b0x[0-9a-f]{4,}\b", re.IGNORECASE),
    re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b", re.IGNORECASE),
    # opaque ids: "req_01JDA2K7M9P1R3T5V7X9Z1B3D5", long base64/base32 tokens with letters and digits mixed
    re.compile(r"\b[a-z]{2,8}_(?=\w*\d)(?=\w*[A-Za-z])[A-Za-z0-9]{16,}\b"),
    re.compile(r"(?<![\w/.-])(?=[A-Za-z0-9+/=_-]*\d)(?=[A-Za-z0-9+/=_-]*[A-Za-z])[A-Za-z0-9+/=_-]{32,}(?![\w/.-])"),
]
_BLANKS = re.compile(r"[ \t]+")


def strip_greeting(text: str) -> str:
    """The message without an opening greeting ("Hi team,", "Hello support,")."""
    return _GREETING.sub("", text, count=1)


def strip_sign_off(text: str) -> str:
    """The message without a closing sign-off and the short signature after it ("Thanks, Grace")."""
    return _DASH_SIGNATURE.sub("", _SIGN_OFF.sub("", text, count=1))


def strip_noise(text: str) -> str:
    """Log noise out (stack frames, timestamps, UUIDs, hashes, opaque ids); repeated lines kept once."""
    for pattern in _NOISE:
        text = pattern.sub(" ", text)
    lines: dict[str, None] = {}
    for line in text.splitlines():
        folded = _BLANKS.sub(" ", line).strip()
        if folded:
            lines.setdefault(folded, None)
    return "\n".join(lines)


def focus_query(text: str) -> str:
    """What the message asks, for retrieval: greeting, sign-off and log noise removed.

    Falls back to the whole message when nothing would be left (a message that is only a greeting).
    """
    focused = strip_noise(strip_sign_off(strip_greeting(text.strip())))
    return focused if focused.strip() else text
