"""statsd wire format: one datagram in, parsed samples and bad-line counts out.

The sidecar's hot path, so each line costs a few ``str.partition`` calls and one
``float()``; no regex. Accepted line shape (Linkerd 1.x ``io.l5d.statsd`` plus the common
statsd/DogStatsD forms)::

    <name>:<value>|<type>[|@<rate>][|#<tag>[:<value>],...]

* ``type`` is one of ``c``, ``ms``, ``h``, ``g``, ``s``.
* ``name`` is everything before the LAST ``:`` of the first ``|`` section, so a configured
  prefix containing ``:`` still works; it must not be empty.
* ``value`` is a decimal number (``float()`` syntax without ``_`` digit separators) for every
  type but ``s``, whose value is the set member (kept verbatim in ``set_member``, ``value``
  is 0.0). A gauge value is ABSOLUTE: ``-1|g`` is the value -1 (JVM pools report -1 when
  undefined); Linkerd never means the etsy relative-gauge convention.
* A line longer than :data:`MAX_LINE_CHARS` (2048) is a bad line with reason ``too_long``.
* Non-finite numbers (``NaN``, ``Infinity``, Java's ``∞``/``-∞``, overflow like ``1e999``) are
  bad lines with reason ``non_finite``, whatever the type: nothing downstream can aggregate
  or store them meaningfully.
* ``@rate`` is in (0, 1]; a comma decimal separator (``@0,010000``, JVM comma locales) is
  accepted. Without ``@`` the rate is 1.0. Gauges and sets keep a rate if sent (aggregation
  ignores it for them).
* ``#tags`` are DogStatsD tags, kept in order; empty entries are skipped, ``k`` alone gives
  ``("k", "")``, the first ``:`` splits key and value, an empty key is a bad line.
* Each of ``@`` and ``#`` may appear once; any other section is a bad line.

Datagrams hold lines joined by ``\\n``; ``\\r\\n``, a trailing newline and empty lines are
tolerated (empty lines are skipped, not counted as bad). Invalid UTF-8 spoils only the line
that contains it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest_sidecar.model import MetricKind, StatsdSample

BAD_UTF8 = "bad_utf8"
NO_VALUE = "no_value"
NO_TYPE = "no_type"
EMPTY_NAME = "empty_name"
BAD_TYPE = "bad_type"
BAD_VALUE = "bad_value"
NON_FINITE = "non_finite"
BAD_RATE = "bad_rate"
BAD_TAGS = "bad_tags"
BAD_SECTION = "bad_section"
TOO_LONG = "too_long"
MAX_LINE_CHARS = 2048
"""Longer lines are bad lines: Linkerd's longest names are a few hundred characters, and the
cardinality guard counts series, not bytes (100,000 series of 60 KB names is 6 GB)."""

BAD_LINE_REASONS: frozenset[str] = frozenset(
    {
        BAD_UTF8,  # the line is not valid UTF-8
        NO_VALUE,  # no ':' between name and value
        NO_TYPE,  # no '|<type>' section
        EMPTY_NAME,  # nothing before the ':'
        BAD_TYPE,  # type other than c, ms, h, g, s
        BAD_VALUE,  # value is not a number (or an empty set member)
        NON_FINITE,  # value is NaN or infinite
        BAD_RATE,  # '@' rate not a number in (0, 1]
        BAD_TAGS,  # a '#' tag with an empty key
        BAD_SECTION,  # unknown '|' section, or '@'/'#' repeated
        TOO_LONG,  # longer than MAX_LINE_CHARS
    }
)
"""Every ``BadLine.reason`` this module produces; stable codes for counters and logs."""

_KINDS: dict[str, MetricKind] = {kind.value: kind for kind in MetricKind}
_SET = MetricKind.SET
_INFINITY_WORDS = frozenset({"∞", "+∞", "-∞"})
_RATE_CACHE_MAX = 64
# Rate sections repeat verbatim ("@0.010000"), so a tiny memo skips float() and the checks.
_rate_cache: dict[str, float] = {}
_MAX_REPORTED_LINE = 200


class BadLine(ValueError):  # noqa: N818 -- the name is the sidecar's public API
    """A statsd line that cannot be used; ``reason`` is one of :data:`BAD_LINE_REASONS`."""

    def __init__(self, reason: str, line: str) -> None:
        shown = line if len(line) <= _MAX_REPORTED_LINE else line[:_MAX_REPORTED_LINE] + "..."
        super().__init__(f"bad statsd line ({reason}): {shown!r}")
        self.reason = reason
        self.line = line


@dataclass(slots=True)
class ParsedDatagram:
    samples: list[StatsdSample] = field(default_factory=list)
    bad: dict[str, int] = field(default_factory=dict)
    """reason -> number of bad lines in the datagram."""


def parse_line(line: str) -> StatsdSample:
    """Parse one statsd line (no newline). Raises :class:`BadLine`, never anything else."""
    if len(line) > MAX_LINE_CHARS:
        raise BadLine(TOO_LONG, line)
    head, bar, rest = line.partition("|")
    name, colon, raw = head.rpartition(":")
    if not colon:
        raise BadLine(NO_VALUE, line)
    if not bar:
        raise BadLine(NO_TYPE, line)
    if not name:
        raise BadLine(EMPTY_NAME, line)
    type_code, bar, sections = rest.partition("|")
    kind = _KINDS.get(type_code)
    if kind is None:
        raise BadLine(BAD_TYPE, line)
    rate = 1.0
    tags: tuple[tuple[str, str], ...] = ()
    if bar:
        rate, tags = _parse_sections(sections, line)
    if kind is _SET:
        if not raw:
            raise BadLine(BAD_VALUE, line)
        return StatsdSample(name, 0.0, kind, rate, tags, raw)
    return StatsdSample(name, _number(raw, line), kind, rate, tags)


def parse_datagram(data: bytes) -> ParsedDatagram:
    """Parse every line of one UDP payload. Never raises; bad lines are only counted."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _parse_lines_separately(data)
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    out = ParsedDatagram()
    _parse_into(text.split("\n"), out)
    return out


def format_line(sample: StatsdSample) -> str:
    """The statsd line for ``sample`` (inverse of :func:`parse_line`), e.g. for simulators.

    Raises ``ValueError`` for a sample no line can carry (empty name, a name with ``|`` or a
    newline, a non-finite value, a rate outside (0, 1], a tag with ``,``/``|``/newline or a key
    with ``:``).
    """
    name = sample.name
    if not name or "|" in name or "\n" in name:
        raise ValueError(f"statsd name cannot be sent: {name!r}")
    if sample.kind is _SET:
        member = sample.set_member or ""
        if not member or any(ch in member for ch in "|:\n"):
            raise ValueError(f"set member cannot be sent: {member!r}")
        value = member
    else:
        value = _format_number(sample.value)
    line = f"{name}:{value}|{sample.kind.value}"
    if sample.rate != 1.0:
        # 1.0 never gets here, so `<= 1.0` would answer the same.
        if not 0.0 < sample.rate < 1.0:
            raise ValueError(f"sample rate must be in (0, 1]: {sample.rate!r}")
        line += f"|@{sample.rate!r}"
    if sample.tags:
        line += "|#" + ",".join(_format_tag(key, val) for key, val in sample.tags)
    return line


def _parse_into(lines: list[str], out: ParsedDatagram) -> None:
    append = out.samples.append
    bad = out.bad
    for line in lines:
        if not line:
            continue
        try:
            append(parse_line(line))
        except BadLine as exc:
            bad[exc.reason] = bad.get(exc.reason, 0) + 1


def _parse_lines_separately(data: bytes) -> ParsedDatagram:
    out = ParsedDatagram()
    lines: list[str] = []
    bad_utf8 = 0
    for raw in data.replace(b"\r\n", b"\n").split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad_utf8 += 1
    _parse_into(lines, out)
    if bad_utf8:
        # parse_line never reports bad_utf8 (it gets text), so there is nothing to add to.
        out.bad[BAD_UTF8] = bad_utf8
    return out


def _number(raw: str, line: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        reason = NON_FINITE if raw.strip() in _INFINITY_WORDS else BAD_VALUE
        raise BadLine(reason, line) from None
    if value - value != 0.0:  # true for NaN and both infinities, cheaper than a call
        raise BadLine(NON_FINITE, line)
    if "_" in raw:  # float() accepts "1_000"; statsd does not
        raise BadLine(BAD_VALUE, line)
    return value


def _parse_sections(sections: str, line: str) -> tuple[float, tuple[tuple[str, str], ...]]:
    # A memo only: without it (`cached = None`) every section is parsed, to the same answer.
    cached = _rate_cache.get(sections)
    if cached is not None:
        return cached, ()
    rate: float | None = None
    tags: tuple[tuple[str, str], ...] | None = None
    for section in sections.split("|"):
        if section.startswith("@") and rate is None:
            rate = _rate(section, line)
        elif section.startswith("#") and tags is None:
            tags = _tags(section, line)
        else:
            raise BadLine(BAD_SECTION, line)
    # Memo size and content never change an answer: a cached None reads as a miss, so
    # `rate is None`, `= None` and `<= _RATE_CACHE_MAX` here are equivalent mutants. Sections
    # with tags must not be memoized (the memo holds only the rate).
    if rate is not None and tags is None and len(_rate_cache) < _RATE_CACHE_MAX:
        _rate_cache[sections] = rate
    return (1.0 if rate is None else rate), (tags or ())


def _rate(section: str, line: str) -> float:
    # Only the first comma: replacing all would change no answer either (a number with two
    # commas would get two dots and still fail float()).
    text = section[1:].replace(",", ".", 1)
    try:
        rate = float(text)
    except ValueError:
        raise BadLine(BAD_RATE, line) from None
    # `not (0 < rate <= 1)` also rejects NaN.
    if not 0.0 < rate <= 1.0 or "_" in text:
        raise BadLine(BAD_RATE, line)
    return rate


def _tags(section: str, line: str) -> tuple[tuple[str, str], ...]:
    tags: list[tuple[str, str]] = []
    for item in section[1:].split(","):
        if not item:
            continue
        key, _, value = item.partition(":")
        if not key:
            raise BadLine(BAD_TAGS, line)
        tags.append((key, value))
    return tuple(tags)


def _format_number(value: float) -> str:
    if value - value != 0.0:
        raise ValueError(f"statsd value must be finite: {value!r}")
    if value.is_integer() and abs(value) < 2.0**53:
        return str(int(value))
    return repr(value)


def _format_tag(key: str, value: str) -> str:
    if not key or any(ch in key for ch in ",|:\n") or any(ch in value for ch in ",|\n"):
        raise ValueError(f"tag cannot be sent: {key!r}:{value!r}")
    return f"{key}:{value}" if value else key
