from __future__ import annotations

import pytest
import yaml

from meshalert.alerts.model import Severity
from meshalert.rules.document import (
    DEFAULT_RULES_YAML,
    RulesDocument,
    RulesError,
    matching_keys,
)
from meshalert.rules.loading import document_entries
from meshalert.rules.models import EndpointsRule, FailuresRule, LatencyRule, RetriesRule


def doc(*layers: tuple[str, str]) -> RulesDocument:
    """A document from (source, yaml text) layers, lowest precedence first."""
    document = RulesDocument()
    for source, text in layers:
        document = document.merged(document_entries(text, source))
    document.check()
    return document


def test_matching_keys_precedence() -> None:
    keys = [
        "*",
        "production/*",
        "checkout",
        "production/checkout",
        "*-canary",
        "staging/*",
        "check*",
    ]
    assert matching_keys(keys, "production/checkout") == [
        "*",
        "check*",
        "production/*",
        "checkout",
        "production/checkout",
    ]
    assert matching_keys(keys, "checkout") == ["*", "check*", "checkout"]
    assert matching_keys(keys, "staging/web-canary") == ["*", "*-canary", "staging/*"]
    assert matching_keys(keys, "other/web") == ["*"]


def test_glob_specificity_counts_literal_characters() -> None:
    # 'web-*' (4 literal chars) beats '*b*' (1); 'prod/*' (5 with the slash) beats 'web*' (3).
    assert matching_keys(["*b*", "web-*"], "prod/web-1") == ["*b*", "web-*"]
    assert matching_keys(["prod/*", "web*"], "prod/web") == ["web*", "prod/*"]
    # same literal count: the key with a namespace part is more specific
    assert matching_keys(["p/*", "*eb"], "p/web") == ["*eb", "p/*"]
    assert matching_keys(["*eb", "p/*"], "p/web") == ["*eb", "p/*"]


def test_service_override_merges_over_defaults_field_by_field() -> None:
    rules = doc(
        (
            "file:rules.yaml",
            """
defaults:
  latency: {above_ms: 600, window: 10m}
services:
  production/checkout:
    latency: {above_ms: 250}
""",
        )
    )
    checkout = rules.for_service("production/checkout")
    assert checkout is not None
    assert (checkout.latency.above_ms, checkout.latency.window) == (250, "10m")
    assert checkout.latency.source_of("above_ms") == "file:rules.yaml services.production/checkout"
    assert checkout.latency.source_of("window") == "file:rules.yaml"
    assert checkout.latency.source_of("percentile") == "default"
    other = rules.for_service("production/cart")
    assert other is not None and other.latency.above_ms == 600
    assert checkout.matched_keys == ("production/checkout",)


def test_example_document_from_the_architecture() -> None:
    example = DEFAULT_RULES_YAML.replace("# services:", "services:").replace("#   ", "  ")
    rules = doc(("file:example.yaml", example))
    assert rules.for_service("staging/checkout") is None
    checkout = rules.for_service("production/checkout")
    assert checkout is not None
    assert checkout.latency.above_ms == 250
    # recover_below_ms: 400 from defaults is reset because the service set above_ms alone
    assert checkout.latency.recover_ms == 200
    assert checkout.latency.thresholds()[2].source == (
        "file:example.yaml services.production/checkout (derived from above_ms)"
    )


def test_default_yaml_equals_the_built_in_defaults() -> None:
    data = yaml.safe_load(DEFAULT_RULES_YAML)
    assert set(data) == {"defaults"}
    from_yaml = doc(("file:d.yaml", DEFAULT_RULES_YAML)).defaults
    built_in = RulesDocument().defaults
    for cls in ("latency", "failures", "endpoints", "retries"):
        a, b = getattr(from_yaml, cls), getattr(built_in, cls)
        assert a.model_dump() | {"recover_below_ms": None} == b.model_dump() | {
            "recover_below_ms": None
        }
    assert from_yaml.latency.recover_ms == built_in.latency.recover_ms == 400
    assert RulesDocument.default_yaml() == DEFAULT_RULES_YAML


def test_disabled_glob_reenabled_by_an_exact_key() -> None:
    rules = doc(
        (
            "env:MESHALERT_RULES",
            """
services:
  staging/*: {enabled: false}
  staging/payments: {enabled: true, failures: {rate_above: 0.2}}
  "*-canary": {severity: warning, latency: {above_ms: 1000}}
""",
        )
    )
    assert rules.for_service("staging/cart") is None
    payments = rules.for_service("staging/payments")
    assert payments is not None and payments.failures.rate_above == 0.2
    canary = rules.for_service("production/web-canary")
    assert canary is not None
    assert canary.latency.above_ms == 1000
    assert {r.severity for r in canary.enabled_rules()} == {Severity.WARNING}
    assert canary.retries.source_of("severity") == "env:MESHALERT_RULES services.*-canary"
    assert rules.for_service("staging/web-canary") is None


def test_class_can_be_disabled_for_one_service() -> None:
    rules = doc(("file:r.yaml", "services:\n  batch: {latency: {enabled: false}}\n"))
    batch = rules.for_service("jobs/batch")
    assert batch is not None
    assert [r.alert_class.value for r in batch.enabled_rules()] == [
        "failures",
        "endpoints",
        "retries",
    ]


def test_scope_level_common_field_replaces_earlier_class_level_values() -> None:
    rules = doc(
        ("file:r.yaml", "defaults: {latency: {severity: warning}, retries: {severity: info}}"),
        ("env:MESHALERT_RULES", "defaults: {severity: info, latency: {severity: critical}}"),
    )
    d = rules.defaults
    assert d.latency.severity is Severity.CRITICAL  # same layer, class level
    assert d.retries.severity is Severity.INFO
    assert d.failures.severity is Severity.INFO
    assert d.failures.source_of("severity") == "env:MESHALERT_RULES"


def test_service_scope_common_field_beats_defaults_class_level() -> None:
    rules = doc(
        (
            "file:r.yaml",
            """
defaults: {latency: {severity: warning, no_data: alert}}
services: {checkout: {severity: info}}
""",
        )
    )
    checkout = rules.for_service("prod/checkout")
    assert checkout is not None
    assert checkout.latency.severity is Severity.INFO
    assert checkout.latency.no_data.value == "alert"


def test_endpoint_conditions_are_replaced_together() -> None:
    rules = doc(
        (
            "file:r.yaml",
            """
services:
  small: {endpoints: {available_below: 2}}
  big: {endpoints: {available_below: 7, available_ratio_below: 0.5}}
""",
        )
    )
    small = rules.for_service("small")
    big = rules.for_service("big")
    assert small is not None and big is not None
    assert (small.endpoints.available_ratio_below, small.endpoints.available_below) == (None, 2)
    assert (big.endpoints.available_ratio_below, big.endpoints.available_below) == (0.5, 7)


def test_explicit_recovery_survives_when_set_with_its_threshold() -> None:
    rules = doc(
        ("file:r.yaml", "defaults: {latency: {above_ms: 800, recover_below_ms: 500}}"),
        ("env:MESHALERT_RULES", "defaults: {latency: {recover_below_ms: 600}}"),
    )
    lat = rules.defaults.latency
    assert (lat.above_ms, lat.recover_ms) == (800, 600)
    assert lat.source_of("above_ms") == "file:r.yaml"
    assert lat.source_of("recover_below_ms") == "env:MESHALERT_RULES"


def test_cross_field_error_names_the_source_and_path_of_the_bad_value() -> None:
    with pytest.raises(RulesError) as info:
        doc(
            ("file:r.yaml", "defaults: {latency: {above_ms: 300}}"),
            ("env:MESHALERT_RULES", "services: {checkout: {latency: {recover_below_ms: 350}}}"),
        )
    assert str(info.value) == (
        "env:MESHALERT_RULES: services.checkout.latency.recover_below_ms: "
        "recover_below_ms (350) must be <= above_ms (300)"
    )


def test_turning_off_both_endpoint_conditions_is_an_error() -> None:
    with pytest.raises(RulesError, match=r"file:r.yaml: defaults.endpoints.available_below: set"):
        doc(
            (
                "file:r.yaml",
                "defaults: {endpoints: {available_ratio_below: null,"
                " expected_ratio_at_most: null}}",
            )
        )


def test_router_is_a_field_of_a_whole_scope_and_of_each_class() -> None:
    text = "defaults: {router: '*'}\nservices: {web: {retries: {router: outgoing}}}"
    rules = doc(("file:r.yaml", text))
    web = rules.for_service("web")
    assert web is not None
    assert (web.latency.router, web.retries.router) == ("*", "outgoing")
    assert web.retries.source_of("router") == "file:r.yaml services.web"
    assert rules.defaults.failures.router == "*"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "defaults: {latency: {above_ms: fast}}",
            "file:r.yaml: defaults.latency.above_ms: Input should be a valid number",
        ),
        ("defaults: {latncy: {}}", "file:r.yaml: defaults.latncy: Extra inputs are not permitted"),
        (
            "services: {checkout: {latency: {for: soon}}}",
            "file:r.yaml: services.checkout.latency.for: bad duration 'soon'",
        ),
        ("services: {a/b/c: {}}", "file:r.yaml: services.a/b/c.[key]:"),
        (
            "services: {'staging/*': {enabled: maybe}}",
            "file:r.yaml: services.staging/*.enabled: Input should be a valid boolean",
        ),
        ("[1, 2]", "file:r.yaml: the document must be a mapping"),
        ("defaults: {latency: [}", "file:r.yaml: not valid YAML or JSON:"),
    ],
)
def test_layer_errors_name_source_and_field(text: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        doc(("file:r.yaml", text))
    assert str(info.value).startswith(message)


def test_empty_sections_are_allowed() -> None:
    rules = doc(("file:r.yaml", "defaults:\nservices:\n"))
    assert rules.defaults.latency.above_ms == 500


def test_for_service_resolves_any_key_from_data() -> None:
    # Keys come from datagrams: a/b/c is the service c in namespace a/b, never an error.
    rules = doc(("file:r.yaml", "services:\n  c: {latency: {above_ms: 900}}\n"))
    resolved = rules.for_service("a/b/c")
    assert resolved is not None
    assert resolved.latency.above_ms == 900
    assert rules.for_service("") is not None


def test_to_dict_and_leaf_sources_show_what_sources_set() -> None:
    rules = doc(
        (
            "file:r.yaml",
            "defaults: {latency: {above_ms: 300, for: 3m}}\nservices: {x: {severity: info}}",
        )
    )
    assert rules.to_dict() == {
        "defaults": {"latency": {"above_ms": 300, "for": "3m"}},
        "services": {"x": {"severity": "info"}},
    }
    assert rules.leaf_sources() == {
        "defaults.latency.above_ms": "file:r.yaml",
        "defaults.latency.for": "file:r.yaml",
        "services.x.severity": "file:r.yaml services.x",
    }


def test_every_rule_type_is_resolved_with_its_class() -> None:
    d = RulesDocument().defaults
    assert isinstance(d.latency, LatencyRule) and isinstance(d.failures, FailuresRule)
    assert isinstance(d.endpoints, EndpointsRule) and isinstance(d.retries, RetriesRule)
