"""Escaping per dialect, checked against the real parsers: SQLite and influxd 1.x."""

from __future__ import annotations

import sqlite3
import urllib.parse
import urllib.request
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshalert.queries.escaping import (
    influxql_identifier,
    influxql_string,
    sql_identifier,
    sql_literal,
)
from tests.fixtures.influxd import InfluxdServer

AWKWARD = [*"'\"\\\n\t /=,.*+?()[]{}|^$#-;", "é", "☃"]
texts = st.text(
    alphabet=st.sampled_from(AWKWARD) | st.characters(blacklist_categories=("Cs", "Cc")),
    max_size=16,
)


def test_influxql_string_escapes_quote_backslash_and_newline() -> None:
    assert influxql_string("it's") == "'it\\'s'"
    assert influxql_string("a\\b") == "'a\\\\b'"
    assert influxql_string("l1\nl2") == "'l1\\nl2'"
    assert influxql_string('say "hi" /x/') == "'say \"hi\" /x/'"


def test_influxql_identifier_escapes_double_quote() -> None:
    assert influxql_identifier('my "m"') == '"my \\"m\\""'


def test_sql_identifier_doubles_quotes_and_rejects_nul() -> None:
    assert sql_identifier('a"b') == '"a""b"'
    with pytest.raises(ValueError, match="NUL"):
        sql_identifier("a\x00")


@settings(max_examples=200)
@given(value=texts | st.text(max_size=8))
def test_sql_literal_round_trips_through_sqlite(value: str) -> None:
    with sqlite3.connect(":memory:") as conn:
        assert conn.execute(f"SELECT {sql_literal(value)}").fetchone() == (value,)
        name = "c" + value.replace("\x00", "")
        conn.execute(f"CREATE TABLE t ({sql_identifier(name)} TEXT)")
        conn.execute("INSERT INTO t VALUES (?)", (value,))
        rows = conn.execute(
            f"SELECT {sql_identifier(name)} FROM t WHERE {sql_identifier(name)} = "
            + sql_literal(value)
        ).fetchall()
        assert rows == [(value,)]


def test_sql_literal_numbers_and_null() -> None:
    with sqlite3.connect(":memory:") as conn:
        row = conn.execute(
            f"SELECT {sql_literal(3)}, {sql_literal(2.5)}, {sql_literal(None)}"
        ).fetchone()
    assert row == (3, 2.5, None)
    with pytest.raises(ValueError):
        sql_literal(float("nan"))


def _influx(server: InfluxdServer, db: str, path: str, body: str, **params: str) -> str:
    query = urllib.parse.urlencode({"db": db, **params})
    req = urllib.request.Request(f"{server.url}{path}?{query}", data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def _lp_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.mark.influxd
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=texts)
def test_influxql_string_matches_exactly_in_real_influxd(
    influxd: InfluxdServer, influx_db: str, value: str
) -> None:
    # A string field holds any text, so it checks the literal scanner on the full alphabet.
    key = uuid.uuid4().hex
    _influx(influxd, influx_db, "/write", f"m,k={key} f={_lp_string(value)} 1000", precision="ms")
    stored = influxd.rows(f'SELECT "f" FROM "m" WHERE "k" = \'{key}\'', influx_db)
    assert [r["f"] for r in stored] == [value]  # what the store holds is the value itself

    q = (
        f"SELECT count({influxql_identifier('f')}) FROM {influxql_identifier('m')}"
        f" WHERE {influxql_identifier('k')} = {influxql_string(key)}"
        f" AND {influxql_identifier('f')} = {influxql_string(value)}"
    )
    assert [r["count"] for r in influxd.rows(q, influx_db)] == [1]
    near = influxql_string(value + "x")
    miss = q.replace(influxql_string(value), near)
    assert influxd.rows(miss, influx_db) == []


@pytest.mark.influxd
def test_influxql_identifier_names_an_awkward_measurement(
    influxd: InfluxdServer, influx_db: str
) -> None:
    name = 'odd "m" with\\back'
    line = 'odd\\ "m"\\ with\\back v=1 1000'
    _influx(influxd, influx_db, "/write", line, precision="ms")
    rows = influxd.rows(f'SELECT "v" FROM {influxql_identifier(name)}', influx_db)
    assert [r["_measurement"] for r in rows] == [name]


# --- what the mutation run (python -m benchmarks.mutation query_escaping) found unpinned ----


def test_sql_literal_of_booleans_is_one_and_zero() -> None:
    assert sql_literal(True) == "1"
    assert sql_literal(False) == "0"
    with sqlite3.connect(":memory:") as conn:
        assert conn.execute(f"SELECT {sql_literal(True)}, {sql_literal(False)}").fetchone() == (
            1,
            0,
        )


def test_sql_literal_texts() -> None:
    assert sql_literal(7) == "7"
    assert sql_literal(-2.5) == "-2.5"
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal("a\x00b") == "CAST(X'610062' AS TEXT)"
    with pytest.raises(ValueError, match="has no SQL literal"):
        sql_literal(float("inf"))


def test_influxql_identifier_escapes_backslash_and_newline() -> None:
    assert influxql_identifier("a\nb") == '"a\\nb"'
    assert influxql_identifier("a\\b") == '"a\\\\b"'
    assert influxql_identifier("it's") == '"it\'s"'


def test_sql_literal_of_none_reads_null() -> None:
    assert sql_literal(None) == "NULL"
