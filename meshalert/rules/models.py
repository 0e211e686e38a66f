"""One service's rule for each alert class: validated thresholds that judge observations.

Every rule is frozen and validated once. A rule remembers where each of its fields came
from (``default``, ``file:rules.yaml``, ``env:MESHALERT_RULE__LATENCY__ABOVE_MS``...), so
every :class:`ThresholdInForce` it hands out carries its source into the alert's evidence.

What ``judge(value, samples, detail)`` expects per class (the query layer produces these):

- latency: ``value`` = the window's percentile in ms, ``samples`` = timer samples;
- failures: ``value`` = failures / requests, ``samples`` = requests;
- endpoints: ``value`` = available / load-balancer size on the worst host,
  ``detail["min_available"]`` = the fewest available endpoints on any host (else
  ``detail["available"]``), read by ``available_below``;
- retries: ``value`` = retries / requests, ``samples`` = requests,
  ``detail["budget_exhausted"]`` = retry-budget exhaustions in the window,
  ``detail["baseline"]`` = the median retry ratio over the same window length during the
  previous day (only read when ``anomaly_factor`` is set).

These are the keys :func:`meshalert.alerts.observe.observe` fills in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)

from meshalert.alerts.model import (
    AlertClass,
    NoDataPolicy,
    Severity,
    ThresholdInForce,
    Verdict,
)
from meshalert.durations import DurationError, format_duration_ms, parse_duration_ms

DEFAULT_SOURCE = "default"
DETAIL_EXHAUSTED = "budget_exhausted"
DETAIL_MIN_AVAILABLE = "min_available"
DETAIL_AVAILABLE = "available"
DETAIL_BASELINE = "baseline"
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
    )

    enabled: bool = True
    severity: Severity = Severity.CRITICAL
    no_data: NoDataPolicy = NoDataPolicy.KEEP
    renotify: Duration = "4h"
    """Reminder interval while firing; ``0s`` sends no reminders."""
    runbook_url: RunbookUrl | None = None
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="1m", alias="for")

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    _thresholds: dict[tuple[str, float | None], ThresholdInForce] = PrivateAttr(
        default_factory=dict
    )

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
        copy = self.model_copy()
        copy._sources = dict(sources)
        copy._thresholds = {}
        return copy

    def source_of(self, field: str) -> str:
        return self._sources.get(field, DEFAULT_SOURCE)

    @property
    def sources(self) -> Mapping[str, str]:
        return {name: self.source_of(name) for name in self.model_fields}

    def _threshold(self, field: str, value: float | None = None) -> ThresholdInForce:
        # Rule objects are shared by every service they apply to and read every cycle.
        # ``self._thresholds`` would go through BaseModel.__getattr__ (~2 us, once per
        # service and class); the private values' own mapping is a plain slot.
        private = self.__pydantic_private__
        thresholds = private["_thresholds"] if private is not None else self._thresholds
        cached: ThresholdInForce | None = thresholds.get((field, value))
        if cached is None:
            shown = getattr(self, field) if value is None else value
            cached = ThresholdInForce(
                name=f"{self.alert_class.value}.{field}",
                value=float(shown),
                source=self.source_of(field),
            )
            thresholds[(field, value)] = cached
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
        return (
            self._threshold("rate_above"),
            self._threshold("min_requests"),
            self._recover_threshold(),
        )

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        if value is None:
            return NO_DATA
        if samples < self.min_requests:
            # Too little traffic to trust a rate: healthy, and it lets a firing alert resolve.
            return _verdict(False, True)
        return _verdict(value > self.rate_above, value < self.recover_rate)

    def describe(self) -> str:
        return (
            f"failure rate above {_pct(self.rate_above)} {self._timing()}, "
            f"with at least {self.min_requests} requests; "
            f"recovers below {_pct(self.recover_rate)}"
        )


class EndpointsRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.ENDPOINTS

    available_ratio_below: Ratio | None = 0.7
    available_below: Annotated[int, Field(ge=0)] | None = Field(default=None, validate_default=True)
    window: PositiveDuration = "1m"
    for_: Duration = Field(default="1m", alias="for")

    @field_validator("available_below")
    @classmethod
    def _one_condition(cls, value: int | None, info: ValidationInfo) -> int | None:
        ratio_failed = "available_ratio_below" not in info.data
        ratio = info.data.get("available_ratio_below")
        if value is None and ratio is None and not ratio_failed and not _is_partial(info):
            raise ValueError("set available_ratio_below or available_below (or both)")
        return value

    def primary_threshold(self) -> ThresholdInForce:
        if self.available_ratio_below is not None:
            return self._threshold("available_ratio_below")
        return self._threshold("available_below")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        names = ("available_ratio_below", "available_below")
        return tuple(self._threshold(n) for n in names if getattr(self, n) is not None)

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        extra = detail or {}
        count = _number(extra.get(DETAIL_MIN_AVAILABLE))
        if count is None:
            count = _number(extra.get(DETAIL_AVAILABLE))
        judged = False
        breached = False
        if self.available_ratio_below is not None and value is not None:
            judged, breached = True, value < self.available_ratio_below
        if self.available_below is not None and count is not None:
            judged, breached = True, breached or count < self.available_below
        if not judged:
            return NO_DATA
        return _verdict(breached, not breached)

    def evidence_of(
        self, value: float | None, samples: float, detail: Detail | None = None
    ) -> tuple[float | None, ThresholdInForce]:
        extra = detail or {}
        count = _number(extra.get(DETAIL_MIN_AVAILABLE))
        if count is None:
            count = _number(extra.get(DETAIL_AVAILABLE))
        ratio_breached = (
            self.available_ratio_below is not None
            and value is not None
            and value < self.available_ratio_below
        )
        if self.available_below is None or count is None or ratio_breached:
            return value, self.primary_threshold()
        if self.available_ratio_below is None or count < self.available_below:
            return count, self._threshold("available_below")
        return value, self.primary_threshold()

    def describe(self) -> str:
        parts = []
        if self.available_ratio_below is not None:
            parts.append(f"below {_pct(self.available_ratio_below)} of the load balancer")
        if self.available_below is not None:
            parts.append(f"below {self.available_below}")
        return f"available endpoints {' or '.join(parts)} on any host {self._timing()}"


class RetriesRule(RuleBase):
    alert_class: ClassVar[AlertClass] = AlertClass.RETRIES

    exhausted_above: Annotated[float, Field(ge=0)] = 0
    ratio_above: Annotated[float, Field(ge=0)] = 0.2
    min_requests: Annotated[int, Field(ge=0)] = 20
    """The ratio and anomaly tests need this many requests in the window (an exhausted
    budget counts whatever the traffic): 1 retry of 4 requests is not a retry storm."""
    window: PositiveDuration = "5m"
    for_: Duration = Field(default="1m", alias="for")
    anomaly_factor: Annotated[float, Field(gt=0)] | None = None

    def primary_threshold(self) -> ThresholdInForce:
        return self._threshold("ratio_above")

    def thresholds(self) -> tuple[ThresholdInForce, ...]:
        names = ("exhausted_above", "ratio_above", "min_requests", "anomaly_factor")
        return tuple(self._threshold(n) for n in names if getattr(self, n) is not None)

    def judge(self, value: float | None, samples: float, detail: Detail | None = None) -> Verdict:
        extra = detail or {}
        exhausted = _number(extra.get(DETAIL_EXHAUSTED))
        if value is None and exhausted is None:
            return NO_DATA
        breached = exhausted is not None and exhausted > self.exhausted_above
        if value is not None and samples >= self.min_requests:
            breached = breached or value > self.ratio_above or self._anomalous(value, extra)
        return _verdict(breached, not breached)

    def evidence_of(
        self, value: float | None, samples: float, detail: Detail | None = None
    ) -> tuple[float | None, ThresholdInForce]:
        extra = detail or {}
        exhausted = _number(extra.get(DETAIL_EXHAUSTED))
        ratio_breached = value is not None and value > self.ratio_above
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
        text = (
            f"retry budget exhausted more than {self.exhausted_above:g} times or retries "
            f"above {_pct(self.ratio_above)} of requests (at least {self.min_requests})"
        )
        if self.anomaly_factor is not None:
            text += f" or above {self.anomaly_factor:g}x the previous day's median"
        return f"{text} {self._timing()}"


def _number(value: float | str | None) -> float | None:
    return float(value) if isinstance(value, int | float) else None


ClassRule = LatencyRule | FailuresRule | EndpointsRule | RetriesRule
RULE_TYPES: Mapping[AlertClass, type[ClassRule]] = {
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

    def rule(self, alert_class: AlertClass) -> ClassRule:
        rule: ClassRule = getattr(self, alert_class.value)
        return rule

    def enabled_rules(self) -> tuple[ClassRule, ...]:
        rules = (self.rule(c) for c in AlertClass)
        return tuple(r for r in rules if r.enabled)
