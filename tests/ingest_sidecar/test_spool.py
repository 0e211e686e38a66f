from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_sidecar.spool import Spool, record_size

MiB = 1024 * 1024


def _drain(spool: Spool) -> list[list[str]]:
    out: list[list[str]] = []
    while (batch := spool.peek()) is not None:
        out.append(batch.lines)
        assert spool.ack(batch.id)
    return out


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("segment-*.spool"))


def test_fifo_order_and_counters(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    assert spool.peek() is None and spool.pending_batches == 0
    spool.append(["a v=1 1", "a v=2 2"])
    spool.append(["b v=1 1"])
    spool.append([])  # ignored
    assert spool.pending_batches == 2 and spool.pending_lines == 3
    assert spool.pending_bytes == record_size(["a v=1 1", "a v=2 2"]) + record_size(["b v=1 1"])
    first = spool.peek()
    assert first is not None and first.lines == ["a v=1 1", "a v=2 2"]
    assert spool.peek() == first  # peek does not consume
    assert spool.ack(first.id) is True
    assert spool.ack(first.id) is False  # already gone: a no-op
    assert _drain(spool) == [["b v=1 1"]]
    assert spool.pending_bytes == 0
    # Nothing pending: only the newest segment stays, holding the floor record.
    assert len(_segments(tmp_path)) == 1


def test_ack_out_of_order_is_refused(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1"])
    spool.append(["b v=1 1"])
    first = spool.peek()
    assert first is not None
    with pytest.raises(ValueError, match="out of order"):
        spool.ack(first.id + 1)
    assert spool.pending_batches == 2


def test_lines_with_newlines_are_refused_before_storing(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    with pytest.raises(ValueError, match="line 1"):
        spool.append(["ok v=1 1", "bad\nline v=1 1"])
    assert spool.pending_batches == 0


def test_restart_sees_unacked_batches_in_order(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    for i in range(5):
        spool.append([f"m v={i} {i}", ""])  # an empty line survives as such
    first = spool.peek()
    assert first is not None
    spool.ack(first.id)
    spool.close()  # a crash leaves the same files: every call fsyncs before returning
    again = Spool(str(tmp_path), MiB)
    assert again.pending_batches == 4
    assert again.torn_records == 0
    assert _drain(again) == [[f"m v={i} {i}", ""] for i in range(1, 5)]
    again.append(["n v=1 1"])
    third = Spool(str(tmp_path), MiB)
    assert _drain(third) == [["n v=1 1"]]


def test_ids_keep_increasing_across_restarts(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1"])
    spool.append(["b v=1 1"])
    old = spool.peek()
    assert old is not None
    reopened = Spool(str(tmp_path), MiB)
    reopened.append(["c v=1 1"])
    ids = []
    while (batch := reopened.peek()) is not None:
        ids.append(batch.id)
        reopened.ack(batch.id)
    assert ids == sorted(ids) and len(set(ids)) == 3 and ids[0] == old.id


@pytest.mark.parametrize("cut", [1, 10, 24, 25, 30])
def test_torn_last_record_is_skipped_and_counted(tmp_path: Path, cut: int) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1"])
    spool.append(["b v=2 2"])
    spool.append(["c v=3 3 with a longer payload"])
    spool.close()
    (segment,) = _segments(tmp_path)
    size = segment.stat().st_size
    last = record_size(["c v=3 3 with a longer payload"])
    with open(segment, "r+b") as handle:  # a crash part way through the last record
        handle.truncate(size - last + cut)
    again = Spool(str(tmp_path), MiB)
    assert again.torn_records == 1
    assert _drain(again) == [["a v=1 1"], ["b v=2 2"]]


def _ten_batches(directory: Path) -> list[list[str]]:
    batches = [[f"m{i},host=h v={j} {j}" for j in range(i + 1)] for i in range(10)]
    spool = Spool(str(directory), MiB)
    for batch in batches:
        spool.append(batch)
    spool.close()
    return batches


def _record_span(directory: Path, index: int) -> tuple[int, int]:
    """Byte range of the ``index``-th record written by :func:`_ten_batches`."""
    batches = [[f"m{i},host=h v={j} {j}" for j in range(i + 1)] for i in range(10)]
    start = sum(record_size(b) for b in batches[:index])
    return start, start + record_size(batches[index])


def _flip(segment: Path, offset: int) -> None:
    data = bytearray(segment.read_bytes())
    data[offset] ^= 0x5A
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize("victim", [0, 3, 9])
def test_a_flipped_byte_anywhere_in_a_record_loses_only_that_batch(
    tmp_path: Path, victim: int
) -> None:
    """Every header byte (each field and both CRCs) and payload bytes at both ends and in
    the middle."""
    start, end = _record_span(tmp_path, victim)
    header_end = start + record_size([])
    for offset in [*range(start, header_end), header_end, (header_end + end) // 2, end - 1]:
        directory = tmp_path / f"at-{offset}"
        batches = _ten_batches(directory)
        (segment,) = _segments(directory)
        _flip(segment, offset)
        again = Spool(str(directory), MiB)
        expected = batches[:victim] + batches[victim + 1 :]
        assert _drain(again) == expected, f"flip at byte {offset}"
        assert again.corrupt_records == 1, f"flip at byte {offset}"
        assert again.corrupt_lines == len(batches[victim]), f"flip at byte {offset}"
        assert again.torn_records == 0
        again.close()
        # Set aside once, counted once: the next open finds a clean segment.
        assert len(list((directory / "damaged").iterdir())) == 1
        reopened = Spool(str(directory), MiB)
        assert reopened.corrupt_lines == len(batches[victim])
        assert reopened.corrupt_records == 1
        reopened.close()


def test_damage_in_an_acknowledged_batch_loses_nothing(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1", "a v=2 2"])
    spool.append(["b v=1 1"])
    first = spool.peek()
    assert first is not None and spool.ack(first.id)
    spool.close()
    (segment,) = _segments(tmp_path)
    _flip(segment, 40)  # inside the first (acknowledged) batch's payload
    again = Spool(str(tmp_path), MiB)
    assert again.corrupt_records == 1 and again.corrupt_lines == 0
    assert _drain(again) == [["b v=1 1"]]


def test_damage_found_while_running_drops_only_that_batch(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1"])
    spool.append(["b v=1 1", "b v=2 2"])
    spool.append(["c v=1 1"])
    (segment,) = _segments(tmp_path)
    _flip(segment, record_size(["a v=1 1"]) + record_size(["b v=1 1", "b v=2 2"]) - 3)
    assert _drain(spool) == [["a v=1 1"], ["c v=1 1"]]
    assert spool.corrupt_lines == 2


def test_previous_format_segments_are_still_read(tmp_path: Path) -> None:
    import struct
    import zlib

    def v1(kind: int, seq: int, lines: list[str]) -> bytes:
        payload = "\n".join(lines).encode()
        crc = zlib.crc32(
            payload, zlib.crc32(struct.pack("<BQII", kind, seq, len(lines), len(payload)))
        )
        return struct.pack("<4sBQIII", b"MSP1", kind, seq, len(lines), len(payload), crc) + payload

    (tmp_path / "segment-000000000001.spool").write_bytes(
        v1(1, 1, ["a v=1 1"]) + v1(1, 2, ["b v=1 1"]) + v1(2, 1, [])
    )
    spool = Spool(str(tmp_path), MiB)
    spool.append(["c v=1 1"])
    assert _drain(spool) == [["b v=1 1"], ["c v=1 1"]]


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        directory = tmp_path / "spool"
        spool = Spool(str(directory), MiB)
        spool.append(["a v=1 1"])
        spool.close()
    finally:
        os.umask(old)
    assert directory.stat().st_mode & 0o777 == 0o700
    for path in directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name


def test_counters_survive_a_restart(tmp_path: Path) -> None:
    batch = [f"m,host=h v={i} {i}" for i in range(10)]
    spool = Spool(str(tmp_path), record_size(batch) * 2)
    for _ in range(5):
        spool.append(batch)
    assert (spool.dropped_batches, spool.dropped_lines) == (3, 30)
    spool.close()
    again = Spool(str(tmp_path), record_size(batch) * 2)
    assert (again.dropped_batches, again.dropped_lines) == (3, 30)
    again.append(batch)
    assert again.dropped_lines == 40


def test_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    batch = [f"m,host=h v={i} {i}" for i in range(10)]
    size = record_size(batch)
    spool = Spool(str(tmp_path), size * 3 + 5)
    for i in range(5):
        spool.append([*batch[:-1], f"last v={i} {i}"])
    assert spool.pending_batches == 3
    assert (spool.dropped_batches, spool.dropped_lines) == (2, 20)
    assert spool.pending_bytes <= spool.max_bytes
    assert [b[-1] for b in _drain(Spool(str(tmp_path), size * 3 + 5))] == [
        f"last v={i} {i}" for i in (2, 3, 4)
    ]


def test_batch_larger_than_the_bound_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 200)
    spool.append(["small v=1 1"])
    spool.append(["x" * 300, "y v=1 1"])
    assert (spool.dropped_batches, spool.dropped_lines) == (1, 2)
    assert _drain(spool) == [["small v=1 1"]]  # the older batch was not sacrificed


def test_ack_of_a_batch_dropped_while_in_flight_is_a_no_op(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), record_size(["a v=1 1"]) * 2)
    spool.append(["a v=1 1"])
    in_flight = spool.peek()
    assert in_flight is not None
    spool.append(["b v=1 1"])
    spool.append(["c v=1 1"])  # drops "a"
    assert spool.ack(in_flight.id) is False
    # "a" was stored after all (acked): counting it dropped too would count it twice.
    assert spool.dropped_lines == 0
    assert _drain(spool) == [["b v=1 1"], ["c v=1 1"]]


def test_a_dropped_in_flight_batch_that_was_not_stored_counts_as_dropped(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), record_size(["a v=1 1"]) * 2)
    spool.append(["a v=1 1"])
    assert spool.peek() is not None  # being sent ...
    spool.append(["b v=1 1"])
    spool.append(["c v=1 1"])  # ... when it is dropped for room
    assert spool.dropped_lines == 0
    again = spool.peek()  # the send failed: the sender moves on without an ack
    assert again is not None and again.lines == ["b v=1 1"]
    assert (spool.dropped_batches, spool.dropped_lines) == (1, 1)


def test_segments_rotate_and_are_removed_when_acked(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), 256 * 1024)  # 64 KiB segments
    line = "m,host=h v=1 " + "1" * 1000
    for _ in range(200):
        spool.append([line])
    assert len(_segments(tmp_path)) >= 3
    disk = sum(p.stat().st_size for p in _segments(tmp_path))
    assert disk <= spool.max_bytes + 64 * 1024 + 4096
    for _ in range(150):
        batch = spool.peek()
        assert batch is not None
        spool.ack(batch.id)
    assert spool.pending_batches == 50
    # Whole segments of acknowledged batches are gone: at most one segment of dead records.
    disk = sum(p.stat().st_size for p in _segments(tmp_path))
    assert disk <= spool.pending_bytes + 64 * 1024 + 4096
    remaining = Spool(str(tmp_path), 256 * 1024)
    assert remaining.pending_batches == spool.pending_batches


_CHILD = textwrap.dedent(
    """
    import sys
    from ingest_sidecar.spool import Spool
    spool = Spool(sys.argv[1], 1 << 30)
    i = 0
    print("ready", flush=True)
    while True:
        spool.append([f"m,host=h v={i}i {i}"] * 50)
        i += 1
    """
)


def test_kill_9_mid_append_never_breaks_recovery(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    spool = Spool(str(tmp_path), 1 << 30)
    assert spool.pending_batches > 0
    expected = 0
    while (batch := spool.peek()) is not None:
        assert batch.lines == [f"m,host=h v={expected}i {expected}"] * 50
        spool.ack(batch.id)
        expected += 1


# --- model-based: random appends, acks, stale acks and restarts vs a list --------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4), st.integers(0, 60)),
        st.tuples(st.just("ack"), st.just(0), st.just(0)),
        st.tuples(st.just("stale_ack"), st.just(0), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops, max_bytes=st.integers(120, 600))
def test_matches_a_list_model(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]], max_bytes: int
) -> None:
    directory = str(tmp_path_factory.mktemp("spool"))
    spool = Spool(directory, max_bytes)
    model: list[list[str]] = []
    dropped_batches = dropped_lines = 0
    counter = 0
    acked_ids: list[int] = []
    for op, nlines, width in ops:
        if op == "append":
            counter += 1
            lines = [f"m{counter} v={j} " + "x" * width for j in range(nlines)]
            size = record_size(lines)
            if size > max_bytes:
                dropped_batches, dropped_lines = dropped_batches + 1, dropped_lines + nlines
            else:
                while model and sum(map(record_size, model)) + size > max_bytes:
                    gone = model.pop(0)
                    dropped_batches, dropped_lines = dropped_batches + 1, dropped_lines + len(gone)
                model.append(lines)
            spool.append(lines)
        elif op == "ack":
            batch = spool.peek()
            if model:
                assert batch is not None and batch.lines == model.pop(0)
                assert spool.ack(batch.id)
                acked_ids.append(batch.id)
            else:
                assert batch is None
        elif op == "stale_ack" and acked_ids:
            assert spool.ack(acked_ids[-1]) is False
        elif op == "reopen":
            spool.close()
            spool = Spool(directory, max_bytes)
        assert spool.pending_batches == len(model)
        assert spool.pending_bytes == sum(map(record_size, model)) <= max_bytes
        assert (spool.dropped_batches, spool.dropped_lines) == (dropped_batches, dropped_lines)
    assert _drain(spool) == model


def test_a_damaged_floor_record_does_not_resurrect_acknowledged_batches(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path), MiB)
    spool.append(["a v=1 1"])
    spool.append(["b v=1 1"])
    first = spool.peek()
    assert first is not None and spool.ack(first.id)  # writes the floor record
    spool.append(["c v=1 1"])  # carries the floor too
    spool.close()
    (segment,) = _segments(tmp_path)
    floor_at = record_size(["a v=1 1"]) + record_size(["b v=1 1"])
    _flip(segment, floor_at + 10)  # inside the floor record
    again = Spool(str(tmp_path), MiB)
    assert _drain(again) == [["b v=1 1"], ["c v=1 1"]]  # "a" stays acknowledged
    assert again.corrupt_records == 1 and again.corrupt_lines == 0
