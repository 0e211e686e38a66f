"""rejected_indices against the answers InfluxDB 1.x, 2.x and 3 give for partial writes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from meshalert.stores.partial_write import rejected_indices

LINES = [
    "ok,host=a v=1 1000",
    "m1,host=a count=1 1000",
    "bad line here",
    "ok,host=a v=2 2000",
    "m1,host=b count=2 2000",
    "worse = 1",
    "m1,host=c count=3i 3000",
]


def test_influxdb1_unparsable_lines() -> None:
    # Verbatim from influxd 1.6.7 (see tests/ingest_sidecar/test_partial_write.py).
    body = (
        '{"error":"partial write: unable to parse \'bad line here\': invalid field format\\n'
        "unable to parse 'worse = 1': missing field key dropped=0\"}\n"
    )
    assert rejected_indices(LINES, body) == (2, 5)


def test_influxdb1_field_type_conflict_names_lines_of_that_type_only() -> None:
    body = (
        '{"error":"partial write: field type conflict: input field \\"count\\" on measurement '
        '\\"m1\\" is type float, already exists as type string dropped=2"}\n'
    )
    assert rejected_indices(LINES, body) == (1, 4)  # the integer line is not named


def test_influxdb2_message_and_first_line() -> None:
    body = json.dumps(
        {
            "code": "unprocessable entity",
            "message": "failure writing points to database: partial write: field type "
            'conflict: input field "count" on measurement "m1" is type integer, already '
            "exists as type float dropped=1",
        }
    )
    assert rejected_indices(LINES, body) == (6,)
    body = json.dumps({"code": "invalid", "line": 3, "message": "unable to parse 'bad line"})
    assert rejected_indices(LINES, body) == (2,)


def test_influxdb3_data_list() -> None:
    body = json.dumps(
        {
            "code": "invalid",
            "message": "partial write of line protocol occurred",
            "data": [
                {
                    "error_message": "invalid column type",
                    "line_number": 2,
                    "original_line": LINES[1],
                },
                {"error_message": "no fields", "line_number": 6, "original_line": "worse = 1"},
            ],
        }
    )
    assert rejected_indices(LINES, body) == (1, 5)


def test_unknown_answers_name_nothing() -> None:
    assert rejected_indices(LINES, "") == ()
    assert rejected_indices(LINES, '{"error":"timeout"}') == ()
    assert rejected_indices(LINES, "unable to parse 'not one of ours': x") == ()
    assert rejected_indices(LINES, '{"line": 99}') == ()


@given(
    st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), min_size=1),
        min_size=1,
        max_size=8,
        unique=True,
    ),
    st.data(),
)
def test_quoted_lines_are_found_whatever_they_contain(
    lines: list[str], data: st.DataObject
) -> None:
    """A line may hold quotes and ``': `` itself; the named lines are found exactly."""
    named = data.draw(st.sets(st.integers(0, len(lines) - 1)))
    message = (
        "partial write: "
        + "\n".join(f"unable to parse '{lines[i]}': invalid field format" for i in sorted(named))
        + " dropped=0"
    )
    found = set(rejected_indices(lines, json.dumps({"error": message})))
    assert set(named) <= found
    # Anything else named is a line whose text appears inside the message as a quoted line.
    for extra in found - set(named):
        assert f"unable to parse '{lines[extra]}': " in message
