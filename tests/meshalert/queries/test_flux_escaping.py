"""Flux string literals: the real Flux parser must read back exactly the escaped text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshalert.queries.flux_escaping import flux_string
from tests.meshalert.queries.fluxlsp import FluxLsp, flux_lsp

__all__ = ["flux_lsp"]

# Text that stresses every special case: quotes, backslashes, interpolation openers,
# line breaks, other control characters and non-ASCII.
nasty = st.lists(
    st.one_of(
        st.sampled_from(['"', "\\", "$", "{", "}", "${", "\n", "\r", "\t", "\x00", "\x7f", "é"]),
        st.characters(codec="utf-8"),
    ),
    max_size=20,
).map("".join)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("checkout", '"checkout"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("${token}", '"\\x24{token}"'),
        ('$"', '"\\x24\\""'),
        ("$\\", '"\\x24\\\\"'),
        ("line\nbreak\r\t", '"line\\nbreak\\r\\t"'),
        ("\x01\x7f", '"\\x01\\x7f"'),
    ],
)
def test_known_escapes(value: str, literal: str) -> None:
    assert flux_string(value) == literal


@given(nasty)
@settings(max_examples=200)
def test_literal_never_ends_early_or_opens_interpolation(value: str) -> None:
    literal = flux_string(value)
    body = literal[1:-1]
    assert literal[0] == literal[-1] == '"'
    assert "\n" not in literal and "\r" not in literal
    # Drop escape pairs; whatever remains must hold no quote, backslash or "$".
    rest = re.sub(r"\\(?:[\\\"nrt]|x[0-9a-f]{2})", "", body)
    assert '"' not in rest and "\\" not in rest and "$" not in rest


def test_unencodable_text_is_refused() -> None:
    with pytest.raises(ValueError, match="Flux query"):
        flux_string("bad \udc80 surrogate")


@pytest.mark.node
@given(st.lists(nasty, min_size=1, max_size=8))
@settings(max_examples=25, deadline=None)
def test_flux_parser_reads_back_the_value(flux_lsp: FluxLsp, values: list[str]) -> None:
    program = "".join(f"v{i} = {flux_string(v)}\n" for i, v in enumerate(values))
    [report] = flux_lsp.strings([program])
    assert report.parse_errors == ()
    assert report.interpolations == 0
    assert list(report.strings) == values


# --- what the mutation run (python -m benchmarks.mutation query_escaping) found unpinned ----

_SPECIAL = set('"\\$') | {chr(c) for c in range(0x20)} | {"\x7f"}


@given(st.text(st.characters(codec="utf-8").filter(lambda ch: ch not in _SPECIAL), max_size=20))
def test_ordinary_characters_stay_readable(value: str) -> None:
    # Evidence shows these queries to people: only what must be escaped is escaped.
    assert flux_string(value) == f'"{value}"'


@pytest.mark.parametrize("ch", [" ", "~", "{", "}", "é", "\x80", "\u2028", "☃"])
def test_printable_neighbours_of_the_escaped_range_are_kept(ch: str) -> None:
    assert flux_string(ch) == f'"{ch}"'


@pytest.mark.parametrize(
    ("ch", "escaped"), [("\x00", "\\x00"), ("\x1f", "\\x1f"), ("\x0b", "\\x0b")]
)
def test_control_characters_are_two_digit_byte_escapes(ch: str, escaped: str) -> None:
    assert flux_string(ch) == f'"{escaped}"'


def test_unencodable_text_error_names_the_value() -> None:
    with pytest.raises(ValueError, match=r"cannot put '\\ud800' in a Flux query: surrogates"):
        flux_string("\ud800")
