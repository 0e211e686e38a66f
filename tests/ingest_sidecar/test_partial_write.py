"""A store that refuses some lines of a batch: only those are dead-lettered, the rest stored.

Real stores: InfluxDB 1.6.7 (tests/fixtures/influxd.py) and, for the 2.x/3 answer formats,
a real HTTP server on 127.0.0.1 speaking them to the real InfluxDB2Writer.
"""

from __future__ import annotations

import json
from pathlib import Path

from ingest_sidecar.spool import Spool
from ingest_sidecar.store_writer import SpoolingWriter
from meshalert.backends.influxdb1.writer import InfluxDB1Writer
from meshalert.backends.influxdb2.writer import InfluxDB2Writer
from meshalert.backends.sqlite.writer import SqliteWriter
from meshalert.backends.urls import parse_store_url
from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import InfluxdServer


def _run(writer: SpoolingWriter, *batches: list[str]) -> None:
    for batch in batches:
        writer.submit(batch)
    writer.start()
    assert writer.stop(30)


def _dead(spool_dir: Path) -> list[str]:
    path = spool_dir / "dead-letter.lp"
    return path.read_text().splitlines() if path.exists() else []


def test_influxdb1_partial_write_dead_letters_only_the_refused_lines(
    tmp_path: Path, influxd: InfluxdServer, influx_db: str
) -> None:
    # An existing string field makes InfluxDB refuse float `count` values for `m1`.
    store = InfluxDB1Writer(parse_store_url(influxd.store_url(influx_db)))  # type: ignore[arg-type]
    store.write(['m1,host=z count="x" 1'])
    good = [f"ok,host=h{i} v={i} {1000 + i}" for i in range(50)]
    refused = ["m1,host=a count=1 1000", "m1,host=b count=2 2000"]
    unparsable = ["bad line here", "worse = 1"]
    batch = good[:20] + refused[:1] + unparsable[:1] + good[20:40] + refused[1:] + unparsable[1:]
    batch += good[40:]
    spool = Spool(str(tmp_path), 1 << 20)
    writer = SpoolingWriter(spool, store)
    _run(writer, batch)
    assert sorted(_dead(tmp_path)) == sorted(refused + unparsable)
    counts = writer.counts()
    assert counts.written_lines == len(good)
    assert counts.dead_letter_lines == len(refused) + len(unparsable)
    rows = influxd.rows('SELECT v FROM "ok"', influx_db)
    assert sorted(r["v"] for r in rows) == list(range(50))
    assert spool.pending_batches == 0
    store.close()


def test_influxdb2_partial_write_422_and_line_number(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    lines = [f"ok,host=h v={i} {i}" for i in range(10)]
    lines[3] = "m1,host=a count=1i 3"
    lines[7] = "broken"
    http_server.respond(
        422,
        json.dumps(
            {
                "code": "unprocessable entity",
                "message": "failure writing points to database: partial write: field type "
                'conflict: input field "count" on measurement "m1" is type integer, already '
                "exists as type float dropped=1",
            }
        ),
    )
    http_server.respond(
        400, json.dumps({"code": "invalid", "line": 7, "message": "unable to parse"})
    )
    store = InfluxDB2Writer(
        parse_store_url(f"influxdb2://127.0.0.1:{http_server.port}?org=o&bucket=b", token="t")  # type: ignore[arg-type]
    )
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    _run(writer, lines)
    assert _dead(tmp_path) == ["m1,host=a count=1i 3", "broken"]
    assert writer.counts().written_lines == 8
    sent = [r.text.splitlines() for r in http_server.requests]
    assert len(sent) == 3
    assert sent[-1] == [line for i, line in enumerate(lines) if i not in (3, 7)]
    store.close()


def test_influxdb3_partial_write_data_list(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    lines = [f"ok,host=h v={i} {i}" for i in range(6)]
    http_server.respond(
        400,
        json.dumps(
            {
                "code": "invalid",
                "message": "partial write of line protocol occurred",
                "data": [
                    {"error_message": "x", "line_number": 2, "original_line": lines[1]},
                    {"error_message": "y", "line_number": 5, "original_line": lines[4]},
                ],
            }
        ),
    )
    store = InfluxDB2Writer(
        parse_store_url(f"influxdb2://127.0.0.1:{http_server.port}?org=o&bucket=b", token="t")  # type: ignore[arg-type]
    )
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    _run(writer, lines)
    assert _dead(tmp_path) == [lines[1], lines[4]]
    assert writer.counts().written_lines == 4
    store.close()


def test_unnamed_refusals_are_narrowed_down_by_halving(
    tmp_path: Path, http_server: RecordingHttpServer
) -> None:
    """A store that never says which line it refuses: the bad ones are still isolated."""
    lines = [f"ok,host=h v={i} {i}" for i in range(32)]
    lines[5] = "poison v=1 5"
    lines[20] = "poison v=1 20"

    class Refusing(InfluxDB2Writer):
        def write(self, batch: object) -> None:
            assert isinstance(batch, list)
            if any(line.startswith("poison") for line in batch):
                http_server.respond(400, '{"code":"invalid","message":"no"}')
            super().write(batch)

    store = Refusing(
        parse_store_url(f"influxdb2://127.0.0.1:{http_server.port}?org=o&bucket=b", token="t")  # type: ignore[arg-type]
    )
    writer = SpoolingWriter(Spool(str(tmp_path), 1 << 20), store)
    _run(writer, lines)
    assert _dead(tmp_path) == ["poison v=1 5", "poison v=1 20"]
    assert writer.counts().written_lines == 30
    stored = [line for r in http_server.requests for line in r.text.splitlines()]
    assert sorted(set(stored) - {"poison v=1 5", "poison v=1 20"}) == sorted(
        line for line in lines if not line.startswith("poison")
    )
    store.close()


def test_sqlite_bad_line_no_longer_takes_the_batch_with_it(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = SqliteWriter.open(str(db))
    lines = [f"ok,host=h v={i} {i}" for i in range(10)]
    lines.insert(4, "not line protocol")
    writer = SpoolingWriter(Spool(str(tmp_path / "spool"), 1 << 20), store)
    _run(writer, lines)
    assert _dead(tmp_path / "spool") == ["not line protocol"]
    assert writer.counts().written_lines == 10
    (n,) = store.connection.execute("SELECT count(*) FROM points").fetchone()
    assert n == 10
    store.close()


def test_dead_letter_file_is_bounded_private_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = SqliteWriter.open(str(db))
    writer = SpoolingWriter(
        Spool(str(tmp_path / "spool"), 1 << 20), store, dead_letter_max_bytes=4096
    )
    hostile = [[f"garbage line number {b}-{i} " + "x" * 40 for i in range(20)] for b in range(40)]
    _run(writer, *hostile)
    spool_dir = tmp_path / "spool"
    files = [spool_dir / "dead-letter.lp", spool_dir / "dead-letter.lp.1"]
    assert sum(p.stat().st_size for p in files if p.exists()) <= 4096
    for path in files:
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600
    counts = writer.counts()
    kept = sum(len(p.read_text().splitlines()) for p in files if p.exists())
    assert counts.dead_letter_lines == 800  # every refused line was dead-lettered ...
    assert counts.dead_letter_lines - counts.dead_letter_discarded_lines == kept  # ... or counted
    store.close()
