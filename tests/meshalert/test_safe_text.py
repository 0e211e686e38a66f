from __future__ import annotations

import html
import re
import shlex
import subprocess
import unicodedata
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from meshalert.safe_text import html_text, printable, shell_word, slack_mrkdwn

_DANGEROUS = st.sampled_from(
    ["\x1b", "\x07", "\x00", "\x7f", "\x9b", "\x85", "\u202e", "\u2066", "\u200f", "\u2028", "\n"]
)
_NAMES = st.lists(st.one_of(st.characters(), _DANGEROUS), max_size=40).map("".join)


def _safe_char(ch: str) -> bool:
    return unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@given(_NAMES)
def test_printable_leaves_no_control_format_or_separator_character(text: str) -> None:
    assert all(_safe_char(ch) for ch in printable(text))


_BACK = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|(.))", re.DOTALL)
_SIMPLE = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def _unescape(shown: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1) or match.group(2) or match.group(3)
        return chr(int(code, 16)) if code else _SIMPLE[match.group(4)]

    return _BACK.sub(one, shown)


@given(_NAMES)
def test_printable_is_reversible_so_two_names_never_look_alike(text: str) -> None:
    assert _unescape(printable(text)) == text


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Zs"])))
def test_printable_text_is_unchanged(text: str) -> None:
    if "\\" not in text:
        assert printable(text) == text


def test_examples_of_what_an_operator_sees() -> None:
    assert printable("evil\x1b]0;owned\x07") == "evil\\x1b]0;owned\\x07"
    assert printable("prod/\u202eevil") == "prod/\\u202eevil"
    assert printable("a\\x1b") == "a\\\\x1b"  # a literal backslash cannot forge an escape
    assert printable("ns/caf\u00e9") == "ns/caf\u00e9"


@given(_NAMES)
def test_slack_text_has_no_markup_characters(text: str) -> None:
    shown = slack_mrkdwn(text)
    assert "<" not in shown
    assert ">" not in shown
    assert all(_safe_char(ch) for ch in shown)
    assert html.unescape(shown) == printable(text)


@given(_NAMES)
def test_html_text_has_no_markup_characters(text: str) -> None:
    shown = html_text(text)
    assert not set("<>\"'") & set(shown)
    assert html.unescape(shown) == printable(text)


@given(st.text(alphabet=st.characters(exclude_characters="\x00", codec="utf-8")))
def test_shell_word_reads_back_as_exactly_one_word(text: str) -> None:
    assert shlex.split(f"cmd --service {shell_word(text)}") == ["cmd", "--service", text]


def test_shell_word_runs_nothing_in_a_real_shell(tmp_path: Path) -> None:
    name = "x'$(touch${IFS}pwned)'`touch pwned2`;touch pwned3"
    done = subprocess.run(
        ["/bin/sh", "-c", f"printf %s {shell_word(name)}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == name
    assert list(tmp_path.iterdir()) == []
