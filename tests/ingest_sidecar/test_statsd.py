from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_sidecar import statsd
from ingest_sidecar.model import MetricKind, StatsdSample
from ingest_sidecar.statsd import (
    BAD_LINE_REASONS,
    BadLine,
    format_line,
    parse_datagram,
    parse_line,
)

DATA = Path(__file__).parent / "data"
EXAMPLE_LINES = (DATA / "linkerd_example_datagram.txt").read_text().splitlines()
C, MS, H, G, S = (
    MetricKind.COUNTER,
    MetricKind.TIMER,
    MetricKind.HISTOGRAM,
    MetricKind.GAUGE,
    MetricKind.SET,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "linkerd.rt.outgoing.service.svc.nginx.request_latency_ms:12|ms|@0.010000",
            StatsdSample(
                "linkerd.rt.outgoing.service.svc.nginx.request_latency_ms", 12.0, MS, 0.01
            ),
        ),
        (
            "linkerd.rt.outgoing.service.svc.nginx.requests:1|c|@0.010000",
            StatsdSample("linkerd.rt.outgoing.service.svc.nginx.requests", 1.0, C, 0.01),
        ),
        (
            "linkerd.rt.http.service.svc.nginx.requests:1|c|@1.000000",
            StatsdSample("linkerd.rt.http.service.svc.nginx.requests", 1.0, C, 1.0),
        ),
        (
            "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.nginx.received_bytes:1432|c|@0.010000",
            StatsdSample(
                "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.nginx.received_bytes",
                1432.0,
                C,
                0.01,
            ),
        ),
        (
            "linkerd.rt.outgoing.service.svc.nginx.pending:3|g",
            StatsdSample("linkerd.rt.outgoing.service.svc.nginx.pending", 3.0, G),
        ),
        (
            "linkerd.jvm.mem.current.G1_Eden_Space.used:25165824|g",
            StatsdSample("linkerd.jvm.mem.current.G1_Eden_Space.used", 25165824.0, G),
        ),
        # comma-locale sample rate (DataDog/java-dogstatsd-client#24)
        ("a.b:1|c|@0,010000", StatsdSample("a.b", 1.0, C, 0.01)),
        # gauges are absolute: "-1" is the value -1, never a decrement
        ("linkerd.jvm.nonheap.max:-1|g", StatsdSample("linkerd.jvm.nonheap.max", -1.0, G)),
        ("g:+2|g", StatsdSample("g", 2.0, G)),
        ("g:0.5|g", StatsdSample("g", 0.5, G)),
        ("t:3.25|h|@0.5", StatsdSample("t", 3.25, H, 0.5)),
        ("users:alice|s", StatsdSample("users", 0.0, S, set_member="alice")),
        (
            "c:5|c|#env:prod,canary,region:eu:west",
            StatsdSample(
                "c", 5.0, C, tags=(("env", "prod"), ("canary", ""), ("region", "eu:west"))
            ),
        ),
        ("c:5|c|@0.1|#env:prod", StatsdSample("c", 5.0, C, 0.1, (("env", "prod"),))),
        ("c:5|c|#env:prod|@0.1", StatsdSample("c", 5.0, C, 0.1, (("env", "prod"),))),
        ("c:5|c|#a,,b,", StatsdSample("c", 5.0, C, tags=(("a", ""), ("b", "")))),
        # a configured prefix may contain ':'; the value is after the LAST ':'
        ("my:prefix.rt.x:7|c", StatsdSample("my:prefix.rt.x", 7.0, C)),
        ("t:1e3|ms", StatsdSample("t", 1000.0, MS)),
    ],
)
def test_parse_line_accepts(line: str, expected: StatsdSample) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("no_colon_at_all", "no_value"),
        ("name|c", "no_value"),
        ("name:1", "no_type"),
        (":1|c", "empty_name"),
        ("name:1|x", "bad_type"),
        ("name:1|", "bad_type"),
        ("name:1|C", "bad_type"),
        ("name:abc|c", "bad_value"),
        ("name:|g", "bad_value"),
        ("name:1_000|c", "bad_value"),
        ("name:|s", "bad_value"),
        ("name:NaN|g", "non_finite"),
        ("name:∞|g", "non_finite"),
        ("name:-∞|g", "non_finite"),
        ("name:inf|ms", "non_finite"),
        ("name:1e999|c", "non_finite"),
        ("name:1|c|@0", "bad_rate"),
        ("name:1|c|@0.000000", "bad_rate"),
        ("name:1|c|@1.5", "bad_rate"),
        ("name:1|c|@-0.5", "bad_rate"),
        ("name:1|c|@nan", "bad_rate"),
        ("name:1|c|@", "bad_rate"),
        ("name:1|c|@0,0,1", "bad_rate"),
        ("name:1|c|@x", "bad_rate"),
        ("name:1|c|#:v", "bad_tags"),
        ("name:1|c|x", "bad_section"),
        ("name:1|c|@0.1|@0.1", "bad_section"),
        ("name:1|c|#a|#b", "bad_section"),
        ("name:1|c||@0.1", "bad_section"),
    ],
)
def test_parse_line_rejects_with_reason(line: str, reason: str) -> None:
    with pytest.raises(BadLine) as caught:
        parse_line(line)
    assert caught.value.reason == reason
    assert caught.value.line == line
    assert reason in BAD_LINE_REASONS
    assert reason in str(caught.value)


def test_every_reference_example_line_parses() -> None:
    data = "\n".join(EXAMPLE_LINES).encode()
    parsed = parse_datagram(data)
    assert parsed.bad == {}
    assert [s.name for s in parsed.samples] == [line.partition(":")[0] for line in EXAMPLE_LINES]
    for sample, line in zip(parsed.samples, EXAMPLE_LINES, strict=True):
        rate_part = line.partition("|@")[2]
        assert sample.rate == (float(rate_part) if rate_part else 1.0)
        assert sample.kind is (G if "|g" in line else C if "|c|" in line else MS)


def test_datagram_framing_tolerates_crlf_trailing_newline_and_empty_lines() -> None:
    data = b"a:1|c\r\nb:2|g\n\n\r\nc:3|ms|@0.5\n"
    parsed = parse_datagram(data)
    assert parsed.samples == [
        StatsdSample("a", 1.0, C),
        StatsdSample("b", 2.0, G),
        StatsdSample("c", 3.0, MS, 0.5),
    ]
    assert parsed.bad == {}


def test_bad_lines_are_counted_and_do_not_spoil_neighbours() -> None:
    data = b"a:1|c\nbroken\nb:x|g\nc:2|c|@7\nd:4|g"
    parsed = parse_datagram(data)
    assert [s.name for s in parsed.samples] == ["a", "d"]
    assert parsed.bad == {"no_value": 1, "bad_value": 1, "bad_rate": 1}


def test_invalid_utf8_spoils_only_its_own_line() -> None:
    data = b"a:1|c\nbad\xff\xfe.name:1|c\r\nb:\xe2\x88\x9e|g\nc:2|c"
    parsed = parse_datagram(data)
    assert [s.name for s in parsed.samples] == ["a", "c"]
    assert parsed.bad == {"bad_utf8": 1, "non_finite": 1}


def test_empty_datagrams() -> None:
    assert parse_datagram(b"").samples == []
    assert parse_datagram(b"\n\n").bad == {}


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(
        st.sampled_from(
            [
                b"a.b:1|c|@0.01",
                b":",
                b"|",
                b"\n",
                b"\r\n",
                b"@",
                b"#",
                b"\xff",
                b"1",
                b"x",
                b",",
                b"g",
                b"ms",
                b"|#k:v",
                b"\xe2\x88\x9e",
                b"-",
            ]
        ),
        max_size=30,
    ).map(b"".join)
)
def test_parse_datagram_never_raises_and_accounts_for_every_line(data: bytes) -> None:
    parsed = parse_datagram(data)
    nonempty = [line for line in data.replace(b"\r\n", b"\n").split(b"\n") if line]
    assert len(parsed.samples) + sum(parsed.bad.values()) == len(nonempty)
    assert set(parsed.bad) <= BAD_LINE_REASONS
    assert all(count > 0 for count in parsed.bad.values())


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parse_line_raises_only_badline(line: str) -> None:
    try:
        sample = parse_line(line)
    except BadLine as exc:
        assert exc.reason in BAD_LINE_REASONS
    else:
        assert sample.name
        assert 0.0 < sample.rate <= 1.0


def _chars(excluded: str) -> st.SearchStrategy[str]:
    return st.characters(codec="utf-8", exclude_characters=excluded)


_NAME = st.text(_chars("|\n\r"), min_size=1, max_size=40)
_TAG_KEY = st.text(_chars(",|:\n\r"), min_size=1, max_size=10)
_TAG_VALUE = st.text(_chars(",|\n\r"), max_size=10)
_RATE = st.one_of(st.just(1.0), st.floats(min_value=1e-9, max_value=1.0, exclude_min=True))


@st.composite
def _samples(draw: st.DrawFn) -> StatsdSample:
    kind = draw(st.sampled_from(list(MetricKind)))
    name = draw(_NAME)
    rate = draw(_RATE)
    tags = tuple(draw(st.lists(st.tuples(_TAG_KEY, _TAG_VALUE), max_size=3)))
    if kind is S:
        member = draw(st.text(_chars("|:\n\r"), min_size=1, max_size=10))
        return StatsdSample(name, 0.0, kind, rate, tags, member)
    value = draw(
        st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6).map(float)
    )
    return StatsdSample(name, value, kind, rate, tags)


@settings(max_examples=300, deadline=None)
@given(_samples())
def test_format_then_parse_round_trips(sample: StatsdSample) -> None:
    line = format_line(sample)
    assert parse_line(line) == sample
    assert parse_datagram(line.encode()).samples == [sample]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=2.0), st.integers(0, 10**6))
def test_comma_and_dot_sample_rates_are_equivalent(rate: float, value: int) -> None:
    dot = f"x.y:{value}|c|@{rate:.6f}"
    comma = dot.replace(".", ",").replace("x,y", "x.y")
    assert "," in comma
    outcomes: list[StatsdSample | str] = []
    for line in (dot, comma):
        try:
            outcomes.append(parse_line(line))
        except BadLine as exc:
            outcomes.append(exc.reason)
    assert outcomes[0] == outcomes[1]
    expected = round(rate, 6)
    if 0.0 < expected <= 1.0:
        assert outcomes[0] == StatsdSample("x.y", float(value), C, float(f"{rate:.6f}"))
    else:
        assert outcomes[0] == "bad_rate"


def test_format_line_refuses_what_no_line_can_carry() -> None:
    with pytest.raises(ValueError, match="name"):
        format_line(StatsdSample("a|b", 1.0, C))
    with pytest.raises(ValueError, match="finite"):
        format_line(StatsdSample("a", float("nan"), G))
    with pytest.raises(ValueError, match="rate"):
        format_line(StatsdSample("a", 1.0, C, 1.5))
    with pytest.raises(ValueError, match="tag"):
        format_line(StatsdSample("a", 1.0, C, tags=(("k", "a,b"),)))


def test_format_line_writes_linkerd_shapes() -> None:
    assert format_line(StatsdSample("l.x", 3.0, C, 0.01)) == "l.x:3|c|@0.01"
    assert format_line(StatsdSample("l.g", -1.0, G)) == "l.g:-1|g"
    tagged = StatsdSample("l.g", 0.5, G, tags=(("a", ""), ("b", "c")))
    assert format_line(tagged) == "l.g:0.5|g|#a,b:c"


def test_overlong_lines_are_bad_lines_not_series() -> None:
    from ingest_sidecar.statsd import MAX_LINE_CHARS, TOO_LONG

    name = "x" * MAX_LINE_CHARS
    parsed = parse_datagram(f"{name}:1|c\nok:1|c".encode())
    assert parsed.bad == {TOO_LONG: 1}
    assert [s.name for s in parsed.samples] == ["ok"]
    fits = "y" * (MAX_LINE_CHARS - len(":1|c"))
    assert parse_line(f"{fits}:1|c").name == fits


# --- what the mutation run (python -m benchmarks.mutation statsd) found unpinned ------------


def test_a_long_malformed_line_is_counted_and_shown_shortened() -> None:
    line = "n" * 300  # no ':' and longer than the 200 characters a message shows
    parsed = parse_datagram(f"{line}\nok:1|c".encode())
    assert parsed.bad == {"no_value": 1}
    assert [s.name for s in parsed.samples] == ["ok"]
    with pytest.raises(BadLine) as caught:
        parse_line(line)
    assert caught.value.line == line
    assert caught.value.reason == "no_value"
    assert str(caught.value) == f"bad statsd line (no_value): {'n' * 200 + '...'!r}"


def test_a_short_malformed_line_is_shown_whole() -> None:
    line = "m" * 200
    with pytest.raises(BadLine) as caught:
        parse_line(line)
    assert str(caught.value) == f"bad statsd line (no_value): {line!r}"


@pytest.mark.parametrize("member", ["", "a|b", "a:b", "a\nb"])
def test_format_line_refuses_set_members_no_line_can_carry(member: str) -> None:
    with pytest.raises(ValueError, match="set member cannot be sent"):
        format_line(StatsdSample("users", 0.0, S, set_member=member))


def test_format_line_refuses_a_set_without_member() -> None:
    with pytest.raises(ValueError, match="set member cannot be sent"):
        format_line(StatsdSample("users", 0.0, S))


def test_format_line_writes_set_members_verbatim() -> None:
    assert format_line(StatsdSample("users", 0.0, S, set_member="a b#c")) == "users:a b#c|s"


@pytest.mark.parametrize(
    ("key", "value"),
    [("", "v"), ("a,b", ""), ("a|b", ""), ("a:b", ""), ("a\nb", ""), ("k", "a|b"), ("k", "a\nb")],
)
def test_format_line_refuses_tags_no_line_can_carry(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="tag cannot be sent"):
        format_line(StatsdSample("a", 1.0, C, tags=((key, value),)))


def test_format_line_keeps_colons_in_tag_values() -> None:
    line = format_line(StatsdSample("a", 1.0, C, tags=(("k", "x:y"),)))
    assert line == "a:1|c|#k:x:y"
    assert parse_line(line).tags == (("k", "x:y"),)


@pytest.mark.parametrize("rate", [0.0, -0.5, 1.0000001, float("nan")])
def test_format_line_refuses_rates_outside_zero_one(rate: float) -> None:
    with pytest.raises(ValueError, match="sample rate must be in"):
        format_line(StatsdSample("a", 1.0, C, rate))


@pytest.mark.parametrize("name", ["", "a\nb", "a|b"])
def test_format_line_refuses_names_no_line_can_carry(name: str) -> None:
    with pytest.raises(ValueError, match="statsd name cannot be sent"):
        format_line(StatsdSample(name, 1.0, C))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_format_line_refuses_non_finite_values(value: float) -> None:
    with pytest.raises(ValueError, match="statsd value must be finite"):
        format_line(StatsdSample("a", value, G))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (3.0, "3"),
        (-1.0, "-1"),
        (0.5, "0.5"),
        (2.0**53 - 1, "9007199254740991"),
        (-(2.0**53) + 1, "-9007199254740991"),
        (2.0**53, "9007199254740992.0"),
        (-(2.0**53), "-9007199254740992.0"),
        (1e20, "1e+20"),
    ],
)
def test_format_line_number_text(value: float, text: str) -> None:
    # Whole numbers print as integers while every integer is exact (below 2**53); beyond,
    # repr() keeps the float's shortest exact text instead of a long run of made-up digits.
    line = format_line(StatsdSample("a", value, G))
    assert line == f"a:{text}|g"
    assert parse_line(line).value == value


def test_format_line_keeps_ordinary_letters_in_set_members_and_tags() -> None:
    line = format_line(StatsdSample("XX", 0.0, S, tags=(("XkX", "XvX"),), set_member="XX"))
    assert line == "XX:XX|s|#XkX:XvX"
    assert parse_line(line).set_member == "XX"


def test_an_explicit_rate_of_one_is_accepted_and_digit_separators_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(statsd, "_rate_cache", {})  # judge the sections, not the memo
    assert parse_line("one.rate:1|c|@1.000").rate == 1.0
    assert parse_line("one.rate:1|c|@1,000").rate == 1.0
    for section in ("@0.5_0", "@0,2_5"):
        with pytest.raises(BadLine) as caught:
            parse_line(f"sep.rate:1|c|{section}")
        assert caught.value.reason == "bad_rate"


@pytest.mark.parametrize("sections", ["#memo:tag", "@0.25|#memo:rate"])
def test_a_repeated_tagged_section_keeps_its_tags(
    sections: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty memo: a full one (earlier tests) would hide what it must never hold.
    monkeypatch.setattr(statsd, "_rate_cache", {})
    line = f"memo.{len(sections)}:1|c|{sections}"
    first, second = parse_line(line), parse_line(line)
    assert first == second
    assert first.tags == second.tags == (("memo", sections.rpartition(":")[2]),)
