"""Scrubbing credentials out of text bound for a log: the server's and the station's alike.

Nothing in the kiosk logs a request body or a header on purpose. This is the second line: an
exception message or a repr that happens to carry a body (pydantic's `input_value=…`, a dict of
credentials, SQLAlchemy's `[parameters: …]`, an `Authorization: Bearer …` header) is cut down
before it is written. A value is recognised by the name it is given, so a bare number with no name
cannot be told from any other number: code never puts a badge or a PIN in a message without one.

Plain `re`, no imports beyond the standard library: the station loads this on its start path.
"""

from __future__ import annotations

import re

MASK = "[redacted]"

# Names whose values are credentials or keys: a badge and a PIN, the station token, person and
# admin sessions, signing tickets, offline proofs and MACs, idempotency keys.
_NAMES = (
    r"pin|badge|badges|token|tokens|session|sessions|ticket|password|passphrase|secret|"
    r"authorization|key|proof|mac|"
    r"credentials"
)
# `name = value`, `"name": "value"`, `'name': 'value'`, `name: value`, in any case; the value runs
# to the end of its quotes, or else to the next separator.
_NAMED = re.compile(
    rf"""(?ix)
    (?P<name>
        (?<![A-Za-z0-9_-])\\?["']?(?:[A-Za-z0-9_-]*[_-])?(?:{_NAMES})\\?["']?
        # an enrollment code only as a quoted key: "code" alone is too common a word
        | \\?["']code\\?["']
    )
    (?P<sep>\s*[:=]\s*)
    (?P<value>"[^"]*"|'[^']*'|(?!["'\[{{(])[^\s,;&}})\]]+)
    """
)
# Python's repr of `Authorization: Bearer abc`, and the header itself.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
# pydantic: `input_value={'badge': '10001', …}, input_type=dict` shows what was sent.
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]$|$)", re.M)
# SQLAlchemy appends the bound parameters of a failed statement.
_PARAMETERS = re.compile(r"\[parameters: .*?\](?=\n|$)", re.S | re.M)
# A database URL's password: postgresql://user:password@host/db.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s/]*@")
# The secret of a one-use evidence upload link, in a logged request line (kiosk/server/evidence.py).
_UPLOAD_LINK = re.compile(r"(/upload/)[A-Za-z0-9_-]+")


# Every pattern above needs one of these words, so a line with none (most lines: a server writes
# an access line per request) is returned as it is. A case-blind regex of the words costs as much
# as the patterns, so they are looked for as substrings of the casefolded line; casefold, unlike
# lower, folds the long s as the patterns' IGNORECASE does, and the dotless i is the one letter
# IGNORECASE matches that casefold leaves alone.
_WORDS = (*_NAMES.split("|"), "code", "bearer", "input_value=", "[parameters: ", "://", "/upload/")


def redact(text: str) -> str:
    """`text` with every recognisable credential replaced by [redacted]."""
    folded = text.casefold().replace("\u0131", "i")
    if not any(word in folded for word in _WORDS):
        return text
    return scrub(text)


def scrub(text: str) -> str:
    """What `redact` does once a line may hold a credential: every pattern applied."""
    text = _PARAMETERS.sub(f"[parameters: {MASK}]", text)
    text = _INPUT_VALUE.sub(f"input_value={MASK}", text)
    text = _BEARER.sub(rf"\1 {MASK}", text)
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = _UPLOAD_LINK.sub(rf"\1{MASK}", text)
    return _NAMED.sub(_mask_value, text)


def _mask_value(found: re.Match[str]) -> str:
    value = found.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{found.group('name')}{found.group('sep')}{quote}{MASK}{quote}"
