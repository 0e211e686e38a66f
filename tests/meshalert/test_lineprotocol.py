from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshalert.lineprotocol import LineProtocolError, Point, decode, encode, sanitize

names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: not s.startswith("#") and s.strip() == s
)
tag_values = names
field_values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
)


@given(
    measurement=names,
    tags=st.dictionaries(names, tag_values, max_size=4),
    fields=st.dictionaries(names, field_values, min_size=1, max_size=4),
    ts=st.integers(min_value=0, max_value=2**62),
)
def test_encode_decode_round_trip(
    measurement: str, tags: dict[str, str], fields: dict[str, float], ts: int
) -> None:
    point = Point.make(measurement, tags, fields, ts)
    back = decode(encode(point))
    assert back.measurement == sanitize(point.measurement)
    assert back.tags == tuple(sorted((sanitize(k), sanitize(v)) for k, v in point.tags))
    assert back.timestamp_ms == ts
    for (k1, v1), (k2, v2) in zip(point.fields, back.fields, strict=True):
        assert sanitize(k1) == k2
        assert type(v1) is type(v2)
        assert v1 == v2 or (isinstance(v1, float) and math.isclose(v1, v2))


def test_escaping_matches_influx_rules() -> None:
    point = Point.make(
        "linkerd requests,x", {"service": "a b,c=d"}, {"count": 1.5, "samples": 2}, 1000
    )
    assert encode(point) == r"linkerd\ requests\,x,service=a\ b\,c\=d count=1.5,samples=2i 1000"


def test_empty_tag_values_are_omitted() -> None:
    point = Point.make("m", {"a": "", "b": "x"}, {"v": 1.0}, 5)
    assert encode(point) == "m,b=x v=1.0 5"


def test_non_finite_fields_are_rejected_naming_the_value() -> None:
    with pytest.raises(LineProtocolError, match="inf"):
        encode(Point.make("m", {}, {"v": math.inf}, 1))


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("m v=1", "series fields timestamp"),
        ("m v=abc 1", "bad field value"),
        ("m,t v=1 1", "bad tag"),
    ],
)
def test_decode_errors_name_the_line(line: str, needle: str) -> None:
    with pytest.raises(LineProtocolError, match=needle) as err:
        decode(line)
    assert repr(line) in str(err.value)


def test_backslashes_and_newlines_are_sanitized_for_every_influx_version() -> None:
    point = Point.make("m", {"path": "C:\\dir\\", "msg": "a\nb"}, {"v": 1.0}, 1)
    assert encode(point) == r"m,msg=a\ b,path=C:/dir/ v=1.0 1"


def test_quotes_in_tags_are_plain_characters() -> None:
    point = Point.make('m"x', {"t": 'say "hi", ok'}, {"s": 'q"uote\\'}, 1)
    back = decode(encode(point))
    assert back.tags == (("t", 'say "hi", ok'),)
    assert back.measurement == 'm"x'
    assert back.fields == (("s", 'q"uote\\'),)


def test_a_tag_value_starting_with_a_quote_stays_in_the_series_section() -> None:
    point = Point.make("m", {"t": '"', "u": 'a="b'}, {"s": 'x " y', "v": 1.0}, 7)
    assert decode(encode(point)) == point
