"""The log scrubber's quick pass: a line it returns untouched, without running the patterns, is one
the patterns would have left untouched too, whatever its case or letters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kiosk.redact import _NAMES, MASK, redact, scrub

# Names as the patterns know them, then in any case, with the letters IGNORECASE matches beyond
# ASCII: the long s, the dotless i, the Kelvin sign.
WORDS = [*_NAMES.split("|"), "code", "bearer", "input_value", "parameters", "upload", "http"]
ODD_LETTERS = {"s": "\u017f", "i": "\u0131", "k": "\u212a"}


def spellings(word: str) -> list[str]:
    odd = "".join(ODD_LETTERS.get(letter, letter) for letter in word)
    return [word, word.upper(), word.capitalize(), odd]


SEPARATORS = ["=", ": ", " ", '"', "'", "_", "-", "[", "]", "://", "/", "@", ", ", '": "']
VALUES = ["1234", "abc.def", "u:pw@host", "10001", "x", '"q"', "'q'"]
AROUND = [("", ""), ('"', ""), ("[", "]"), ("/", ""), ("see ", "\n")]


def test_every_name_in_every_spelling_with_every_separator_is_scrubbed_as_the_patterns_say() -> None:
    for word in WORDS:
        for spelling in spellings(word):
            for separator in SEPARATORS:
                for value in VALUES:
                    for before, after in AROUND:
                        text = before + spelling + separator + value + after
                        assert redact(text) == scrub(text), text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(WORDS).flatmap(lambda word: st.sampled_from(spellings(word))),
            st.sampled_from(SEPARATORS + VALUES),
            st.text(max_size=4),
        ),
        max_size=12,
    ).map("".join)
)
def test_redact_answers_as_every_pattern_would_on_any_line(text: str) -> None:
    assert redact(text) == scrub(text)


def test_an_access_line_is_written_as_it_came_and_a_credential_is_not() -> None:
    access = '127.0.0.1:50000 - "POST /api/v1/actions/batch HTTP/1.1" 200'
    assert redact(access) == access
    assert redact("login: \u017fecret=hunter2") == f"login: \u017fecret={MASK}"
    assert redact("P\u0131N=1234") == f"P\u0131N={MASK}"
