"""Runs the engine with the rules in force: rule lookup per service, windows, percentiles.

Kept apart from :mod:`meshalert.engine` so the engine only knows the small ``ClassRule``
protocol, while this module knows the rules document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshalert.alert_classes import AlertClass
from meshalert.engine import ClassRule, CycleReport, Engine
from meshalert.rules import LoadedRules, RetriesRule, ServiceRules


@dataclass
class RulesView:
    """Per-cycle cache of service rule resolution (globs are resolved once per service)."""

    rules: LoadedRules
    _resolved: dict[str, ServiceRules | None] = field(default_factory=dict)

    def service(self, key: str) -> ServiceRules | None:
        try:
            return self._resolved[key]
        except KeyError:
            resolved = self._resolved[key] = self.rules.for_service(key)
            return resolved

    def rule(self, alert_class: AlertClass, key: str) -> ClassRule | None:
        rules = self.service(key)
        if rules is None:
            return None
        rule = rules.rule(alert_class)
        return rule if rule.enabled else None

    def percentile(self, key: str) -> float:
        rules = self.service(key)
        return float(rules.latency.percentile) if rules is not None else 99.0

    def windows(self, alert_class: AlertClass) -> tuple[int, set[int]]:
        """The default window and the distinct windows of per-service overrides."""
        default = self.rules.document.defaults.rule(alert_class).window_ms
        extra: set[int] = set()
        for key in self.rules.document.service_keys:
            is_glob = any(ch in key for ch in "*?[")
            resolved = _glob_probe(self.rules, key) if is_glob else self.service(key)
            if resolved is not None:
                extra.add(resolved.rule(alert_class).window_ms)
        return default, extra - {default}

    def baseline_windows(self, alert_class: AlertClass) -> set[int]:
        """Windows of the retries rules in force that set ``anomaly_factor`` (none by
        default): only these cost the baseline query."""
        if alert_class is not AlertClass.RETRIES:
            return set()
        candidates = [self.rules.document.defaults.rule(alert_class)]
        for key in self.rules.document.service_keys:
            is_glob = any(ch in key for ch in "*?[")
            resolved = _glob_probe(self.rules, key) if is_glob else self.service(key)
            if resolved is not None:
                candidates.append(resolved.rule(alert_class))
        return {
            r.window_ms
            for r in candidates
            if isinstance(r, RetriesRule) and r.enabled and r.anomaly_factor is not None
        }


def _glob_probe(rules: LoadedRules, glob_key: str) -> ServiceRules | None:
    """Rules a service matching ``glob_key`` would get (to learn its window length)."""
    probe = glob_key.replace("*", "x").replace("?", "x").replace("[", "").replace("]", "")
    try:
        return rules.for_service(probe)
    except ValueError:
        return None


def evaluate_class(
    engine: Engine,
    rules: LoadedRules,
    alert_class: AlertClass,
    cycle_ms: int,
    *,
    deadline_s: float | None = None,
    deliver: bool = True,
) -> CycleReport:
    view = RulesView(rules)
    default_window, extra = view.windows(alert_class)
    return engine.evaluate(
        alert_class,
        view.rule,
        default_window,
        cycle_ms,
        extra_windows=extra,
        deadline_s=deadline_s,
        percentile_of=view.percentile,
        baseline_windows=view.baseline_windows(alert_class),
        suppression=rules.suppression,
        deliver=deliver,
    )
