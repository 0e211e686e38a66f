"""One service's rule for each alert class: validated thresholds that judge observations.

Every rule is frozen and validated once. A rule remembers where each of its fields came
from (``default``, ``file:rules.yaml``, ``env:MESHALERT_RULE__LATENCY__ABOVE_MS``...), so
every :class:`ThresholdInForce` it hands out carries its source into the alert's evidence.

What ``judge(value, samples, detail)`` expects per class (the query layer produces these):

- latency: ``value`` = the window's percentile in ms, ``samples`` = timer samples;
- failures: ``value`` = failures / requests, ``samples`` = requests (estimated),
  ``detail["request_lines"]``/``["failure_lines"]`` = statsd lines received (the volume and
  confidence guards);
- endpoints: ``value`` = available / size of the worst load balancer,
  ``detail["min_available"]`` = the fewest available endpoints of any balancer (else
  ``detail["available"]``), read by ``available_below`` and a declared ``expected``;
  ``detail["learned_ratio"]`` = the lowest available / largest recent size of any balancer;
- retries: ``value`` = retries / requests, ``samples`` = requests,
  ``detail["retry_lines"]``/``["request_lines"]`` = lines received,
  ``detail["budget_exhausted"]`` = retry-budget exhaustions in the window,
  ``detail["budget_min"]`` = the retry budget gauge's lowest balance in the window,
  ``detail["baseline"]`` = the median retry ratio over the same window length during the
  previous day (only read when ``anomaly_factor`` is set).

These are the keys :func:`meshalert.alerts.observe.observe` fills in.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, ClassVar, Self, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.confidence import ratio_lower_bound
from meshalert.alerts.model import NoDataPolicy, Severity, ThresholdInForce, Verdict
from meshalert.durations import DurationError, format_duration_ms, parse_duration_ms

DEFAULT_SOURCE = "default"
DETAIL_EXHAUSTED = "budget_exhausted"
DETAIL_MIN_AVAILABLE = "min_available"
DETAIL_AVAILABLE = "available"
DETAIL_BASELINE = "baseline"
DETAIL_BUDGET_MIN = "budget_min"
DETAIL_LEARNED_RATIO = "learned_ratio"
DETAIL_REQUEST_LINES = "request_lines"
PARTIAL_CONTEXT = {"partial": True}
"""Validation context for one layer of a document: cross-field checks wait for the merge."""

Detail = Mapping[str, float | str | None]
NO_DATA = Verdict(breached=None, recovered=False)
_VERDICTS = {
    (breached, recovered): Verdict(breached=breached, recovered=recovered)
    for breached in (False, True)
    for recovered in (False, True)
}


def _verdict(breached: bool, recovered: bool) -> Verdict:
    """A shared verdict: judge runs for every service and class each cycle, and building a
    frozen dataclass each time cost a microsecond of it."""
    return _VERDICTS[breached, recovered]


def _duration(value: object, *, positive: bool) -> str:
    if not isinstance(value, str):
        raise ValueError("write a duration as text such as 500ms, 10s, 5m, 1h")
    try:
        ms = parse_duration_ms(value)
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    if positive and ms <= 0:
        raise ValueError("duration must be longer than 0")
    return format_duration_ms(ms)


def _any_duration(value: object) -> str:
    # `positive=None` would read the same: _duration only tests it for truth.
    return _duration(value, positive=False)


def _positive_duration(value: object) -> str:
    return _duration(value, positive=True)


def _runbook_url(value: object) -> object:
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        raise ValueError("runbook_url must start with http:// or https://")
    return value


Duration = Annotated[str, BeforeValidator(_any_duration)]
PositiveDuration = Annotated[str, BeforeValidator(_positive_duration)]
RunbookUrl = Annotated[str, BeforeValidator(_runbook_url)]


def _router(value: object) -> object:
    if isinstance(value, str) and (not value or any(c.isspace() for c in value)):
        raise ValueError("router must be auto, * or a router label (no spaces)")
    return value


RouterPolicy = Annotated[str, BeforeValidator(_router)]
Confidence = Annotated[float, Field(gt=0, lt=1)]
Ratio = Annotated[float, Field(ge=0, le=1)]


def _is_partial(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get("partial"))


def _pct(ratio: float) -> str:
    return f"{ratio * 100:g}%"


class RuleBase(BaseModel):
    """Fields every class shares; each may also be set once for a whole scope."""

    # A threshold of inf or NaN silently turns its class off: reject it with its path.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        allow_inf_nan=False,
    )
    alert_class: ClassVar[AlertClass]
    COMMON_FIELDS: ClassVar[tuple[str, ...]] = (
        "enabled",
        "severity",
        "no_data",
        "renotify",
        "runbook_url",
        "router",
    )

    enabled: bool = True
    severity: Severity = Severity.CRITICAL
    no_data: NoDataPolicy = NoDataPolicy.KEEP
    renotify: Duration = "4h"
    """Reminder interval while firing; ``0s`` sends no reminders."""
    runbook_url: RunbookUrl | None = None
    router: RouterPolicy = "auto"
    """Whose view is judged: ``auto`` (``outgoing`` if present, else every router apart,
    worst reported), ``*`` (every router apart, worst reported) or one router label.
    Routers are never summed."""
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="1m", alias="for")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def window_ms(self) -> int:
        return parse_duration_ms(self.window)

    @property
    def for_ms(self) -> int:
        return parse_duration_ms(self.for_)

    @property
    def renotify_ms(self) -> int:
        return parse_duration_ms(self.renotify)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def key_of(cls, field: str) -> str:
        """The document's spelling of a field (``for_`` is written ``for``)."""
        return cls.model_fields[field].alias or field

    def with_sources(self, sources: Mapping[str, str]) -> Self:
        """A copy that remembers where each field came from (missing = ``default``)."""
        # model_construct, not model_copy: a copy would share the threshold memo, whose
        # entries carry the old sources. The values were validated when ``self`` was built.
        values = {name: getattr(self, name) for name in type(self).model_fields}
        # (pydantic's mypy plugin types model_construct as returning the declaring class.)
        copy = cast(Self, type(self).model_construct(self.model_fields_set, **values))
        copy._sources = dict(sources)
        return copy

    def source_of(self, field: str) -> str:
        return self._sources.get(field, DEFAULT_SOURCE)

    @property
    def sources(self) -> Mapping[str, str]:
        return {name: self.source_of(name) for name in self.model_fields}

    @cached_property
    def _threshold_memo(self) -> dict[str, ThresholdInForce]:
        """The thresholds handed out so far, by field (filled by ``_threshold``).

        Rule objects are shared by every service they apply to and read every cycle. A
        cached property lives in the instance's own dict, so reading it is a plain attribute
        lookup; a pydantic private attribute would go through ``BaseModel.__getattr__``
        (~2 us, once per service and class). Frozen fields never change, and
        ``with_sources`` builds a new instance, so the memo never goes stale."""
        return {}

    def _threshold(self, field: str) -> ThresholdInForce:
        # A memo only: the mutation run's mutants that skip or spoil it build the same
        # value, so they are reviewed equivalents.
        memo = self._threshold_memo
        cached = memo.get(field)
        if cached is None:
            cached = ThresholdInForce(
                name=f"{self.alert_class.value}.{field}",
                value=float(getattr(self, field)),
                source=self.source_of(field),
            )
            memo[field] = cached
        return cached

    def primary_threshold(self) -> ThresholdInForce:
        raise NotImplementedError

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        """Every threshold in force with its source (for `meshalert rules` and evidence)."""
        raise NotImplementedError

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        raise NotImplementedError

    def evidence_of(
        self, value: float | None, samples: float, detail: Detail | None = None
    ) -> tuple[float | None, ThresholdInForce]:
        """The observed figure and the threshold an alert should show: the condition that
        is breached when one is, so evidence never reads "14.6% vs 20%" for an alert that
        fired on another condition."""
        return value, self.primary_threshold()

    def describe(self) -> str:
        raise NotImplementedError

    def _timing(self) -> str:
        return f"for {self.for_} ({self.window} window)"


class LatencyRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.LATENCY
    RECOVER_FRACTION: ClassVar[float] = 0.8
    """When recover_below_ms is not set with above_ms, recovery is at 80% of it (500 -> 400)."""

    percentile: Annotated[float, Field(gt=0, le=100)] = 99
    above_ms: Annotated[float, Field(gt=0)] = 500
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="2m", alias="for")
    recover_below_ms: Annotated[float, Field(ge=0)] | None = None

    @field_validator("recover_below_ms")
    @classmethod
    def _recover_not_above(cls, value: float | None, info: ValidationInfo) -> float | None:
        above = info.data.get("above_ms")
        if value is not None and above is not None and not _is_partial(info) and value > above:
            raise ValueError(f"recover_below_ms ({value:g}) must be <= above_ms ({above:g})")
        return value

    @property
    def recover_ms(self) -> float:
        if self.recover_below_ms is not None:
            return self.recover_below_ms
        return self.above_ms * self.RECOVER_FRACTION

    def _recover_threshold(self) -> ThresholdInForce:
        if self.recover_below_ms is not None:
            return self._threshold("recover_below_ms")
        return ThresholdInForce(
            name="latency.recover_below_ms",
            value=self.recover_ms,
            source=f"{self.source_of('above_ms')} (derived from above_ms)",
        )

    def primary_threshold(self) -> ThresholdInForce:
        return self._threshold("above_ms")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        return (
            self._threshold("percentile"),
            self._threshold("above_ms"),
            self._recover_threshold(),
        )

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        if value is None:
            return NO_DATA
        return _verdict(value > self.above_ms, value < self.recover_ms)

    def describe(self) -> str:
        return (
            f"p{self.percentile:g} latency above {self.above_ms:g}ms {self._timing()}; "
            f"recovers below {self.recover_ms:g}ms"
        )


class FailuresRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.FAILURES

    rate_above: Ratio = 0.05
    min_requests: Annotated[int, Field(ge=0)] = 20
    min_samples: Annotated[int, Field(ge=0)] = 20
    """Request lines actually received: at sampleRate 0.02 one line counts as 50 requests,
    so ``min_requests`` alone passes on a single line."""
    confidence: Confidence | None = 0.95
    """Fire only when the ratio's lower confidence bound (from the lines) is above
    ``rate_above``; None judges the point estimate alone."""
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="1m", alias="for")
    recover_below: Ratio | None = None

    @field_validator("recover_below")
    @classmethod
    def _recover_not_above(cls, value: float | None, info: ValidationInfo) -> float | None:
        above = info.data.get("rate_above")
        if value is not None and above is not None and not _is_partial(info) and value > above:
            raise ValueError(f"recover_below ({value:g}) must be <= rate_above ({above:g})")
        return value

    RECOVER_FRACTION: ClassVar[float] = 0.8
    """Without recover_below, recovery is at 80% of rate_above (5% -> 4%), so a service
    hovering at the threshold does not resolve and re-fire every cycle."""

    @property
    def recover_rate(self) -> float:
        if self.recover_below is None:
            return self.rate_above * self.RECOVER_FRACTION
        return self.recover_below

    def _recover_threshold(self) -> ThresholdInForce:
        if self.recover_below is not None:
            return self._threshold("recover_below")
        return ThresholdInForce(
            name="failures.recover_below",
            value=self.recover_rate,
            source=f"{self.source_of('rate_above')} (derived from rate_above)",
        )

    def primary_threshold(self) -> ThresholdInForce:
        return self._threshold("rate_above")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        names = ("rate_above", "min_requests", "min_samples", "confidence")
        return (
            *(self._threshold(n) for n in names if getattr(self, n) is not None),
            self._recover_threshold(),
        )

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        if value is None:
            return NO_DATA
        extra = detail or {}
        lines = _lines(extra, DETAIL_REQUEST_LINES, samples)
        if samples < self.min_requests or lines < self.min_samples:
            # Too little traffic to trust a rate: healthy, and it lets a firing alert resolve.
            return _verdict(False, True)
        breached = value > self.rate_above
        if breached and self.confidence is not None:
            events = _lines(extra, "failure_lines", value * samples)
            breached = ratio_lower_bound(events, lines, self.confidence) > self.rate_above
        return _verdict(breached, value < self.recover_rate)

    def describe(self) -> str:
        return (
            f"failure rate above {_pct(self.rate_above)} {self._timing()}, "
            f"with at least {self.min_requests} requests and {self.min_samples} request lines"
            f"{_confidence_text(self.confidence)}; "
            f"recovers below {_pct(self.recover_rate)}"
        )


class EndpointsRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.ENDPOINTS

    expected_ratio_at_most: Ratio | None = 0.7
    """The default test: fire when a balancer's available endpoints are at most this share
    of the expected count: ``expected`` when declared (10 declared: fire at 7 or fewer),
    else the balancer's largest ``size`` over the lookback (learned)."""
    expected: Annotated[int, Field(gt=0)] | None = None
    available_ratio_below: Ratio | None = 0.7
    available_below: Annotated[int, Field(ge=0)] | None = Field(default=None, validate_default=True)
    window: PositiveDuration = "1m"
    for_: Duration = Field(default="1m", alias="for")

    @field_validator("available_below")
    @classmethod
    def _one_condition(cls, value: int | None, info: ValidationInfo) -> int | None:
        failed = not {"available_ratio_below", "expected_ratio_at_most"} <= set(info.data)
        others = (info.data.get("available_ratio_below"), info.data.get("expected_ratio_at_most"))
        if value is None and others == (None, None) and not failed and not _is_partial(info):
            raise ValueError("set expected_ratio_at_most, available_ratio_below or available_below")
        return value

    def primary_threshold(self) -> ThresholdInForce:
        for name in ("expected_ratio_at_most", "available_ratio_below"):
            if getattr(self, name) is not None:
                return self._threshold(name)
        return self._threshold("available_below")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        names = ("expected_ratio_at_most", "expected", "available_ratio_below", "available_below")
        return tuple(self._threshold(n) for n in names if getattr(self, n) is not None)

    def _conditions(
        self, value: float | None, detail: Detail
    ) -> list[tuple[bool, float, ThresholdInForce]]:
        """(breached, observed, threshold) of every test that has data, default test first."""
        out: list[tuple[bool, float, ThresholdInForce]] = []
        count = _number(detail.get(DETAIL_MIN_AVAILABLE))
        if count is None:
            count = _number(detail.get(DETAIL_AVAILABLE))
        if self.expected_ratio_at_most is not None:
            if self.expected is not None and count is not None:
                line = self.expected_ratio_at_most * self.expected
                out.append(
                    (
                        count <= line,
                        count,
                        ThresholdInForce(
                            name="endpoints.expected x expected_ratio_at_most",
                            value=line,
                            source=self.source_of("expected"),
                        ),
                    )
                )
            elif self.expected is None:
                learned = _number(detail.get(DETAIL_LEARNED_RATIO))
                if learned is not None:
                    at_most = self.expected_ratio_at_most
                    threshold = self._threshold("expected_ratio_at_most")
                    out.append((learned <= at_most, learned, threshold))
        if self.available_ratio_below is not None and value is not None:
            threshold = self._threshold("available_ratio_below")
            out.append((value < self.available_ratio_below, value, threshold))
        if self.available_below is not None and count is not None:
            threshold = self._threshold("available_below")
            out.append((count < self.available_below, count, threshold))
        return out

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        conditions = self._conditions(value, detail or {})
        if not conditions:
            return NO_DATA
        breached = any(c[0] for c in conditions)
        return _verdict(breached, not breached)

    def evidence_of(
        self, value: float | None, samples: float, detail: Detail | None = None
    ) -> tuple[float | None, ThresholdInForce]:
        conditions = self._conditions(value, detail or {})
        for breached, observed, threshold in conditions:
            if breached:
                return observed, threshold
        if conditions:
            return conditions[0][1], conditions[0][2]
        return value, self.primary_threshold()

    def describe(self) -> str:
        parts = []
        if self.expected_ratio_at_most is not None:
            of = f"the {self.expected} expected" if self.expected else "the recent largest size"
            parts.append(f"at most {_pct(self.expected_ratio_at_most)} of {of}")
        if self.available_ratio_below is not None:
            parts.append(f"below {_pct(self.available_ratio_below)} of the load balancer")
        if self.available_below is not None:
            parts.append(f"below {self.available_below}")
        return f"available endpoints {' or '.join(parts)} on any load balancer {self._timing()}"


class RetriesRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.RETRIES

    exhausted_above: Annotated[float, Field(ge=0)] = 0
    ratio_above: Annotated[float, Field(ge=0)] = 0.2
    min_requests: Annotated[int, Field(ge=0)] = 20
    """The ratio and anomaly tests need this many requests in the window (an exhausted
    budget counts whatever the traffic): 1 retry of 4 requests is not a retry storm."""
    min_samples: Annotated[int, Field(ge=0)] = 20
    """... and this many request lines actually received (sampling: see failures)."""
    confidence: Confidence | None = 0.95
    """The ratio test needs its lower confidence bound above ``ratio_above``."""
    budget_below: Annotated[float, Field(ge=0)] | None = 1
    """Fire when the retry budget gauge (unsampled: the budget's balance, in retries)
    dropped below this in the window: 1 means "no retry allowed"."""
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="1m", alias="for")
    anomaly_factor: Annotated[float, Field(gt=0)] | None = None

    def primary_threshold(self) -> ThresholdInForce:
        return self._threshold("ratio_above")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        names = (
            "budget_below",
            "exhausted_above",
            "ratio_above",
            "min_requests",
            "min_samples",
            "confidence",
            "anomaly_factor",
        )
        return tuple(self._threshold(n) for n in names if getattr(self, n) is not None)

    def _budget_dry(self, detail: Detail) -> float | None:
        """The budget gauge's low point when it breaches ``budget_below``, else None."""
        low = _number(detail.get(DETAIL_BUDGET_MIN))
        if self.budget_below is not None and low is not None and low < self.budget_below:
            return low
        return None

    def _ratio_breached(self, value: float | None, samples: float, detail: Detail) -> bool:
        if value is None or value <= self.ratio_above or not self._enough(samples, detail):
            return False
        if self.confidence is None:
            return True
        lines = _lines(detail, DETAIL_REQUEST_LINES, samples)
        events = _lines(detail, "retry_lines", value * samples)
        return ratio_lower_bound(events, lines, self.confidence) > self.ratio_above

    def _enough(self, samples: float, detail: Detail) -> bool:
        lines = _lines(detail, DETAIL_REQUEST_LINES, samples)
        return samples >= self.min_requests and lines >= self.min_samples

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        extra = detail or {}
        exhausted = _number(extra.get(DETAIL_EXHAUSTED))
        budget = _number(extra.get(DETAIL_BUDGET_MIN))
        if value is None and exhausted is None and budget is None:
            return NO_DATA
        breached = exhausted is not None and exhausted > self.exhausted_above
        breached = breached or self._budget_dry(extra) is not None
        if value is not None and self._enough(samples, extra):
            breached = (
                breached
                or self._ratio_breached(value, samples, extra)
                or self._anomalous(value, extra)
            )
        return _verdict(breached, not breached)

    def evidence_of(
        self, value: float | None, samples: float, detail: Detail | None = None
    ) -> tuple[float | None, ThresholdInForce]:
        extra = detail or {}
        exhausted = _number(extra.get(DETAIL_EXHAUSTED))
        ratio_breached = self._ratio_breached(value, samples, extra)
        dry = self._budget_dry(extra)
        if dry is not None and not ratio_breached:
            return dry, self._threshold("budget_below")
        if exhausted is not None and exhausted > self.exhausted_above and not ratio_breached:
            return exhausted, self._threshold("exhausted_above")
        baseline = _number(extra.get(DETAIL_BASELINE))
        if (
            value is not None
            and not ratio_breached
            and self.anomaly_factor is not None
            and self._anomalous(value, extra)
            and baseline is not None
        ):
            return value, ThresholdInForce(
                name="retries.anomaly_factor x baseline",
                value=self.anomaly_factor * baseline,
                source=self.source_of("anomaly_factor"),
            )
        return value, self.primary_threshold()

    def _anomalous(self, value: float, detail: Detail) -> bool:
        baseline = _number(detail.get(DETAIL_BASELINE))
        if self.anomaly_factor is None or baseline is None or baseline <= 0:
            return False
        return value > self.anomaly_factor * baseline

    def describe(self) -> str:
        budget = (
            f"retry budget below {self.budget_below:g}, " if self.budget_below is not None else ""
        )
        text = (
            f"{budget}retry budget exhausted more than {self.exhausted_above:g} times or "
            f"retries above {_pct(self.ratio_above)} of requests (at least "
            f"{self.min_requests} requests and {self.min_samples} request lines"
            f"{_confidence_text(self.confidence)})"
        )
        if self.anomaly_factor is not None:
            text += f" or above {self.anomaly_factor:g}x the previous day's median"
        return f"{text} {self._timing()}"


def _number(value: float | str | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _lines(detail: Detail, name: str, fallback: float) -> float:
    """Lines received as the observation reports them; an observation without line counts
    (an exact source) counts its events instead."""
    value = _number(detail.get(name))
    return value if value is not None else fallback


def _confidence_text(confidence: float | None) -> str:
    if confidence is None:
        return ""
    return f", {_pct(confidence)} sure"


RuleModel = LatencyRule | FailuresRule | EndpointsRule | RetriesRule
"""Any one class's validated rule (the engine reads one through its ``ClassRule`` protocol)."""
RULE_TYPES: Mapping[AlertClass, type[RuleModel]] = {
    AlertClass.LATENCY: LatencyRule,
    AlertClass.FAILURES: FailuresRule,
    AlertClass.ENDPOINTS: EndpointsRule,
    AlertClass.RETRIES: RetriesRule,
}


class ServiceRules(BaseModel):
    """The rules in force for one service, one per alert class."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    matched_keys: tuple[str, ...] = ()
    """The document's service keys that apply, least specific first."""
    latency: LatencyRule = LatencyRule()
    failures: FailuresRule = FailuresRule()
    endpoints: EndpointsRule = EndpointsRule()
    retries: RetriesRule = RetriesRule()

    def rule(self, alert_class: AlertClass) -> RuleModel:
        rule: RuleModel = getattr(self, alert_class.value)
        return rule

    def enabled_rules(self) -> tuple[RuleModel, ...]:
        rules = (self.rule(c) for c in SERVICE_CLASSES)
        return tuple(r for r in rules if r.enabled)
