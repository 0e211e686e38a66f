"""The rules document: defaults plus per-service overrides, merged field by field.

A document has ``defaults`` (one section per alert class, plus the common fields
``enabled``, ``severity``, ``no_data``, ``renotify``, ``runbook_url`` for every class) and
``services`` keyed ``"<namespace>/<service>"``, ``"<service>"`` or a glob (``"staging/*"``,
``"*-canary"``). Each source (built-in defaults, file, SSM, environment, flag) is validated on
its own, then merged over the previous ones leaf by leaf; every leaf remembers its source.

Which service keys apply to a service, least to most specific (all of them apply, the more
specific ones win field by field):

1. globs: a glob with a ``/`` is matched against ``namespace/service``, one without against
   the service name alone; among globs the one with more literal (non-wildcard) characters
   is more specific, then one with a namespace part, then the alphabetically later key;
2. the exact ``"<service>"`` key;
3. the exact ``"<namespace>/<service>"`` key.

Merge rules, applied to each layer in order (sources in precedence order, then the scopes
above for one service):

- a common field set for a whole scope (e.g. ``severity``) applies to every class, replacing
  class-level values of that field from earlier layers (not those the same layer sets);
- a layer that sets ``latency.above_ms`` without ``recover_below_ms`` resets the recovery
  threshold to its derived default (80% of above_ms); likewise ``failures.rate_above``
  resets ``recover_below`` to its derived default (80% of rate_above);
- the endpoint conditions are one choice: a layer that sets ``available_ratio_below`` or
  ``available_below`` without the other turns the other off (set both to use both);
- ``enabled: false`` for a whole scope disables the service (``for_service`` returns None).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import ErrorDetails

from meshalert.alert_classes import SERVICE_CLASSES, AlertClass
from meshalert.alerts.model import NoDataPolicy, Severity
from meshalert.rules.models import (
    DEFAULT_SOURCE,
    RULE_TYPES,
    Duration,
    EndpointsRule,
    FailuresRule,
    LatencyRule,
    RetriesRule,
    RouterPolicy,
    RuleBase,
    RuleModel,
    RunbookUrl,
    ServiceRules,
)
from meshalert.rules.suppression import InhibitSpec, MaintenanceSpec

DEFAULT_RULES_YAML = """\
# meshalert rules. Precedence: command-line flag > MESHALERT_RULE__<CLASS>__<FIELD>
# > MESHALERT_RULES > SSM (MESHALERT_RULES_SSM_PARAMETER) > MESHALERT_RULES_FILE > these defaults.
defaults:
  latency:   {percentile: 99, above_ms: 500, window: 5m, for: 2m, recover_below_ms: 400}
  failures:  {rate_above: 0.05, min_requests: 20, min_samples: 20, confidence: 0.95,
              window: 5m, for: 1m}                   # recover_below: 0.04
  endpoints: {expected_ratio_at_most: 0.7, available_ratio_below: 0.7, window: 1m, for: 1m}
  # endpoints also: expected: 10 (declared; default: learned), available_below: 7
  retries:   {budget_below: 1, exhausted_above: 0, ratio_above: 0.2, min_requests: 20,
              min_samples: 20, confidence: 0.95, window: 5m, for: 1m}
  router:    auto            # auto (outgoing, else the worst router) | * | a router label
  no_data:   keep            # keep | alert | ok
  severity:  critical
# services:                  # keys: "<namespace>/<service>", "<service>" or a glob
#   production/checkout:
#     latency: {above_ms: 250}
#   staging/*:
#     enabled: false
"""

_R = TypeVar("_R", LatencyRule, FailuresRule, EndpointsRule, RetriesRule)
_GLOB_CHARS = frozenset("*?[]")
Leaf = tuple[str, str]
"""(section, field): section is an alert class name, or "" for a field of the whole scope."""

_COUPLED: Mapping[Leaf, tuple[Leaf, ...]] = {
    ("latency", "above_ms"): (("latency", "recover_below_ms"),),
    ("failures", "rate_above"): (("failures", "recover_below"),),
    ("endpoints", "available_ratio_below"): (("endpoints", "available_below"),),
    ("endpoints", "available_below"): (("endpoints", "available_ratio_below"),),
}


class RulesError(ValueError):
    """A rules document that cannot be used; the message names the source and field path."""


def _check_service_key(key: str) -> str:
    parts = key.split("/")
    if not key or key != key.strip() or any(c.isspace() for c in key):
        raise ValueError(f"service key {key!r} must be non-empty without spaces")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"service key {key!r} must be '<namespace>/<service>' or '<service>'")
    return key


def _none_as_empty(value: object) -> object:
    return {} if value is None else value


class ScopeSpec(BaseModel):
    """One scope of a document as written (``defaults`` or one service key); all optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool | None = None
    severity: Severity | None = None
    no_data: NoDataPolicy | None = None
    renotify: Duration | None = None
    runbook_url: RunbookUrl | None = None
    router: RouterPolicy | None = None
    latency: LatencyRule | None = None
    failures: FailuresRule | None = None
    endpoints: EndpointsRule | None = None
    retries: RetriesRule | None = None


ServiceKey = Annotated[str, AfterValidator(_check_service_key)]


class DocumentSpec(BaseModel):
    """One source's document; validate with ``context=PARTIAL_CONTEXT``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: Annotated[ScopeSpec, BeforeValidator(_none_as_empty)] = ScopeSpec()
    services: Annotated[dict[ServiceKey, ScopeSpec], BeforeValidator(_none_as_empty)] = {}
    # Lists, replaced whole by a later source (meshalert.rules.suppression).
    maintenance: list[MaintenanceSpec] | None = None
    inhibit: list[InhibitSpec] | None = None


@dataclass(frozen=True)
class Sourced:
    """One leaf value and where it came from."""

    value: object
    origin: str
    """The source: ``default``, ``file:rules.yaml``, ``env:MESHALERT_RULES``..."""
    scope: str | None
    """None for ``defaults``, else the service key."""
    path: str
    """Where in the document, e.g. ``services.production/checkout.latency.above_ms``."""
    implied: bool = False
    """Set by a merge rule (a reset recovery threshold), not written in any source."""

    @property
    def source(self) -> str:
        return self.origin if self.scope is None else f"{self.origin} services.{self.scope}"


@dataclass(frozen=True)
class LeafEntry:
    """One value set by one source, before merging."""

    scope: str | None
    section: str
    field: str
    value: object
    origin: str

    def sourced(self) -> Sourced:
        path = leaf_path(self.scope, self.section, self.field)
        return Sourced(self.value, self.origin, self.scope, path)


def leaf_path(scope: str | None, section: str, field_name: str) -> str:
    head = "defaults" if scope is None else f"services.{scope}"
    if section:
        key = RULE_TYPES[AlertClass(section)].key_of(field_name)
        return f"{head}.{section}.{key}"
    return f"{head}.{field_name}"


def spec_entries(spec: DocumentSpec, origin: str) -> list[LeafEntry]:
    """Every leaf one validated document sets (explicit nulls included)."""
    entries = _scope_entries(spec.defaults, None, origin)
    for key, scope in spec.services.items():
        entries.extend(_scope_entries(scope, key, origin))
    return entries


def _scope_entries(scope: ScopeSpec, key: str | None, origin: str) -> list[LeafEntry]:
    entries: list[LeafEntry] = []
    for name in sorted(scope.model_fields_set):
        value = getattr(scope, name)
        if isinstance(value, RuleBase):
            section = value.alert_class.value
            entries.extend(
                LeafEntry(key, section, f, getattr(value, f), origin)
                for f in sorted(value.model_fields_set)
            )
        elif value is not None:
            entries.append(LeafEntry(key, "", name, value, origin))
    return entries


ScopeValues = Mapping[Leaf, Sourced]


def apply_layer(base: ScopeValues, batch: ScopeValues) -> dict[Leaf, Sourced]:
    """Merge one layer over ``base`` (see the module docstring for the rules)."""
    merged = dict(base)
    for (section, name), value in batch.items():
        if not section:
            merged[("", name)] = value
            for cls in SERVICE_CLASSES:
                if (cls.value, name) not in batch:
                    merged.pop((cls.value, name), None)
    merged.update({leaf: value for leaf, value in batch.items() if leaf[0]})
    for primary, partners in _COUPLED.items():
        if primary not in batch:
            continue
        for partner in partners:
            if partner not in batch:
                setter = batch[primary]
                path = leaf_path(setter.scope, *partner)
                merged[partner] = replace(setter, value=None, path=path, implied=True)
    return merged


def _is_glob(key: str) -> bool:
    return any(c in _GLOB_CHARS for c in key)


def _glob_matches(key: str, namespace: str, name: str) -> bool:
    if "/" in key:
        return bool(namespace) and fnmatchcase(f"{namespace}/{name}", key)
    return fnmatchcase(name, key)


def _glob_rank(key: str) -> tuple[int, int, str]:
    literal = sum(1 for c in key if c not in _GLOB_CHARS)
    return (literal, int("/" in key), key)


def matching_keys(keys: Iterable[str], service: str) -> list[str]:
    """The keys that apply to ``service`` ("ns/svc" or "svc"), least specific first."""
    namespace, _, name = service.rpartition("/")
    globs: list[str] = []
    exact: list[str] = []
    for key in keys:
        if _is_glob(key):
            if _glob_matches(key, namespace, name):
                globs.append(key)
        elif key == name:
            exact.insert(0, key)
        elif namespace and key == service:
            exact.append(key)
    return sorted(globs, key=_glob_rank) + exact


@dataclass(frozen=True)
class RulesDocument:
    """Merged rules from every source; ``for_service`` resolves one service's rules."""

    defaults_values: Mapping[Leaf, Sourced] = field(default_factory=dict)
    services_values: Mapping[str, Mapping[Leaf, Sourced]] = field(default_factory=dict)
    _resolved: dict[str, ServiceRules | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Resolution is pure, so each service is folded once per document (per reload)."""
    _by_keys: dict[tuple[str, ...], ServiceRules | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Services matching the same keys share rule objects: only the name differs, so
    10,000 services under the defaults cost one validation, not 10,000."""

    @staticmethod
    def default_yaml() -> str:
        return DEFAULT_RULES_YAML

    @property
    def service_keys(self) -> tuple[str, ...]:
        return tuple(self.services_values)

    def merged(self, entries: Iterable[LeafEntry]) -> RulesDocument:
        """A new document with one source's (or one batch of sources') entries on top."""
        batches: dict[str | None, dict[Leaf, Sourced]] = {}
        for entry in entries:
            batches.setdefault(entry.scope, {})[(entry.section, entry.field)] = entry.sourced()
        defaults = apply_layer(self.defaults_values, batches.pop(None, {}))
        services = dict(self.services_values)
        for key, batch in batches.items():
            assert key is not None
            services[key] = apply_layer(services.get(key, {}), batch)
        return RulesDocument(defaults, services)

    @property
    def defaults(self) -> ServiceRules:
        resolved = self._resolve("*", ())
        if resolved is None:  # defaults disabled: still show what they say
            return _build_service_rules("*", (), {**self.defaults_values})
        return resolved

    def for_service(self, key: str) -> ServiceRules | None:
        """The rules for ``"ns/svc"`` or ``"svc"``; None when the service is disabled.

        Keys come from data, so any string resolves: the text after the last ``/`` is the
        name and everything before it the namespace (``a/b/c`` is ``c`` in ``a/b``)."""
        if key not in self._resolved:
            self._resolved[key] = self._resolve(key, matching_keys(self.services_values, key))
        return self._resolved[key]

    def check(self) -> None:
        """Resolve the defaults and every service key once, so bad combinations fail early."""
        self._resolve("*", ())
        for key in self.services_values:
            keys = [key] if _is_glob(key) else matching_keys(self.services_values, key)
            self._resolve(key, keys)

    def _resolve(self, service: str, keys: Sequence[str]) -> ServiceRules | None:
        matched = tuple(keys)
        if matched not in self._by_keys:
            values = dict(self.defaults_values)
            for key in matched:
                values = apply_layer(values, self.services_values[key])
            enabled = values.get(("", "enabled"))
            disabled = enabled is not None and enabled.value is False
            self._by_keys[matched] = (
                None if disabled else _build_service_rules(service, matched, values)
            )
        shared = self._by_keys[matched]
        if shared is None or shared.service == service:
            return shared
        # Already validated: a copy that only renames the service skips validation.
        return shared.model_copy(update={"service": service})

    def to_dict(self) -> dict[str, Any]:
        """The merged document as written (only values some source set), e.g. to print."""
        return {
            "defaults": _scope_dict(self.defaults_values),
            "services": {k: _scope_dict(v) for k, v in self.services_values.items()},
        }

    def leaf_sources(self) -> dict[str, str]:
        """Document path -> source of every value some source set."""
        scopes = [self.defaults_values, *self.services_values.values()]
        return {v.path: v.source for scope in scopes for v in scope.values() if not v.implied}


def _scope_dict(values: ScopeValues) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (section, name), sourced in values.items():
        if sourced.implied:
            continue
        shown = sourced.value.value if hasattr(sourced.value, "value") else sourced.value
        if section:
            key = RULE_TYPES[AlertClass(section)].key_of(name)
            out.setdefault(section, {})[key] = shown
        else:
            out[name] = shown
    return out


def _build_service_rules(service: str, keys: tuple[str, ...], values: ScopeValues) -> ServiceRules:
    return ServiceRules(
        service=service,
        matched_keys=keys,
        latency=_build_rule(LatencyRule, values),
        failures=_build_rule(FailuresRule, values),
        endpoints=_build_rule(EndpointsRule, values),
        retries=_build_rule(RetriesRule, values),
    )


def _build_rule(rule_type: type[_R], values: ScopeValues) -> _R:
    section = rule_type.alert_class.value
    chosen: dict[str, Sourced] = {}
    for name in rule_type.model_fields:
        sourced = values.get((section, name))
        if sourced is None and name in RuleBase.COMMON_FIELDS:
            sourced = values.get(("", name))
        if sourced is not None:
            chosen[name] = sourced
    try:
        rule = rule_type.model_validate({name: s.value for name, s in chosen.items()})
    except ValidationError as exc:
        raise _resolution_error(exc, rule_type, chosen) from None
    return rule.with_sources({name: s.source for name, s in chosen.items()})


def _resolution_error(
    exc: ValidationError, rule_type: type[RuleModel], chosen: Mapping[str, Sourced]
) -> RulesError:
    problems = []
    for error in exc.errors():
        name = _field_of(rule_type, error)
        sourced = chosen.get(name)
        origin = sourced.origin if sourced else DEFAULT_SOURCE
        path = sourced.path if sourced else leaf_path(None, rule_type.alert_class.value, name)
        problems.append(f"{origin}: {path}: {error_message(error)}")
    return RulesError("; ".join(problems))


def _field_of(rule_type: type[RuleModel], error: ErrorDetails) -> str:
    head = str(error["loc"][0]) if error["loc"] else ""
    for name, info in rule_type.model_fields.items():
        if head in (name, info.alias):
            return name
    return head


def error_message(error: ErrorDetails) -> str:
    return error["msg"].removeprefix("Value error, ")


def validation_error(exc: ValidationError, source: str, prefix: str = "") -> RulesError:
    """A RulesError naming the source and each bad field's document path."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(f"{source}: {path or '(document)'}: {error_message(error)}")
    return RulesError("; ".join(problems))
