from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshalert.rules.document import RulesError
from meshalert.rules.loading import RulesProvider, load_rules
from meshalert.rules.ssm import SsmCache

SSM_NAME = "/meshalert/rules"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_built_in_defaults_alone() -> None:
    loaded = load_rules({}, now_s=0)
    assert loaded.sources == ("default",)
    assert {t.source for t in loaded.document.defaults.latency.thresholds()} == {
        "default",
        "default (derived from above_ms)",
    }


def test_precedence_across_every_source(tmp_path: Path, ssm: Any) -> None:
    # Each source sets latency fields from its own position onwards; the highest one wins.
    file_path = write(
        tmp_path,
        "rules.yaml",
        "defaults:\n"
        "  latency: {percentile: 95, above_ms: 900, window: 10m, for: 5m, renotify: 2h}\n"
        "  failures: {min_requests: 50}\n",
    )
    ssm.put_parameter(
        Name=SSM_NAME,
        Value=json.dumps(
            {
                "defaults": {
                    "latency": {"above_ms": 800, "window": "9m", "for": "4m", "renotify": "3h"}
                }
            }
        ),
        Type="SecureString",
    )
    flag_path = write(tmp_path, "flag.yaml", "defaults: {latency: {renotify: 1h}}")
    env = {
        "MESHALERT_RULES_FILE": file_path,
        "MESHALERT_RULES_SSM_PARAMETER": SSM_NAME,
        "MESHALERT_RULES": json.dumps(
            {"defaults": {"latency": {"window": "8m", "for": "3m", "renotify": "5h"}}}
        ),
        "MESHALERT_RULE__LATENCY__FOR": "90s",
        "MESHALERT_RULE__LATENCY__RENOTIFY": "6h",
        "MESHALERT_RULE__FAILURES__RATE_ABOVE": "0.1",
    }
    loaded = load_rules(env, ssm_client=ssm, flag_rules_path=flag_path, now_s=0, cache=SsmCache())
    assert loaded.sources == (
        "default",
        f"file:{file_path}",
        f"ssm:{SSM_NAME}@1",
        "env:MESHALERT_RULES",
        "env:MESHALERT_RULE__FAILURES__RATE_ABOVE",
        "env:MESHALERT_RULE__LATENCY__FOR",
        "env:MESHALERT_RULE__LATENCY__RENOTIFY",
        f"flag:--rules {flag_path}",
    )
    lat = loaded.document.defaults.latency
    got = {
        f: (getattr(lat, f), lat.source_of(f))
        for f in ("percentile", "above_ms", "window", "for_", "renotify", "enabled")
    }
    assert got == {
        "percentile": (95, f"file:{file_path}"),
        "above_ms": (800, f"ssm:{SSM_NAME}@1"),
        "window": ("8m", "env:MESHALERT_RULES"),
        "for_": ("90s", "env:MESHALERT_RULE__LATENCY__FOR"),
        "renotify": ("1h", f"flag:--rules {flag_path}"),
        "enabled": (True, "default"),
    }
    failures = loaded.document.defaults.failures
    assert failures.primary_threshold().source == "env:MESHALERT_RULE__FAILURES__RATE_ABOVE"
    assert failures.thresholds()[1].source == f"file:{file_path}"  # min_requests


def test_service_override_in_a_file_beats_a_defaults_env_override(tmp_path: Path) -> None:
    path = write(
        tmp_path, "r.yaml", "services:\n  production/checkout:\n    latency: {above_ms: 250}\n"
    )
    env = {"MESHALERT_RULES_FILE": path, "MESHALERT_RULE__LATENCY__ABOVE_MS": "300"}
    loaded = load_rules(env, now_s=0)
    checkout = loaded.for_service("production/checkout")
    cart = loaded.for_service("production/cart")
    assert checkout is not None and cart is not None
    assert (
        checkout.latency.primary_threshold().source == f"file:{path} services.production/checkout"
    )
    assert checkout.latency.above_ms == 250
    assert (cart.latency.above_ms, cart.latency.source_of("above_ms")) == (
        300,
        "env:MESHALERT_RULE__LATENCY__ABOVE_MS",
    )


def test_json_file(tmp_path: Path) -> None:
    path = write(tmp_path, "r.json", json.dumps({"services": {"web": {"enabled": False}}}))
    loaded = load_rules({"MESHALERT_RULES_FILE": path}, now_s=0)
    assert loaded.for_service("prod/web") is None
    assert loaded.for_service("prod/api") is not None


def test_both_endpoint_conditions_from_two_variables() -> None:
    env = {
        "MESHALERT_RULE__ENDPOINTS__AVAILABLE_BELOW": "7",
        "MESHALERT_RULE__ENDPOINTS__AVAILABLE_RATIO_BELOW": "0.5",
    }
    endpoints = load_rules(env, now_s=0).document.defaults.endpoints
    assert (endpoints.available_below, endpoints.available_ratio_below) == (7, 0.5)
    only = load_rules({"MESHALERT_RULE__ENDPOINTS__AVAILABLE_BELOW": "7"}, now_s=0)
    assert only.document.defaults.endpoints.available_ratio_below is None


def test_env_override_of_common_field_and_null() -> None:
    env = {
        "MESHALERT_RULE__RETRIES__SEVERITY": "warning",
        "MESHALERT_RULE__RETRIES__ANOMALY_FACTOR": "3",
        "MESHALERT_RULE__LATENCY__RUNBOOK_URL": "https://runbooks/latency",
    }
    d = load_rules(env, now_s=0).document.defaults
    assert (d.retries.severity.value, d.retries.anomaly_factor) == ("warning", 3)
    assert d.latency.runbook_url == "https://runbooks/latency"
    assert d.failures.severity.value == "critical"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MESHALERT_RULE__LATENCY__ABOVE_MS": "fast"},
            "env:MESHALERT_RULE__LATENCY__ABOVE_MS: defaults.latency.above_ms: "
            "Input should be a valid number",
        ),
        (
            {"MESHALERT_RULE__LATENCY__ABOVE": "300"},
            "env:MESHALERT_RULE__LATENCY__ABOVE: defaults.latency.above: "
            "Extra inputs are not permitted",
        ),
        (
            {"MESHALERT_RULE__LATENCYY__ABOVE_MS": "3"},
            "env:MESHALERT_RULE__LATENCYY__ABOVE_MS: write",
        ),
        ({"MESHALERT_RULE__ABOVE_MS": "3"}, "env:MESHALERT_RULE__ABOVE_MS: write"),
        (
            {"MESHALERT_RULES": "defaults: {failures: {rate_above: 2}}"},
            "env:MESHALERT_RULES: defaults.failures.rate_above: "
            "Input should be less than or equal to 1",
        ),
        (
            {"MESHALERT_RULES_FILE": "/nonexistent/rules.yaml"},
            "file:/nonexistent/rules.yaml: cannot read:",
        ),
    ],
)
def test_errors_name_the_source_and_field(env: dict[str, str], message: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(env, now_s=0)
    assert str(info.value).startswith(message)


def test_file_error_message_has_source_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "defaults:\n  latency: {above_ms: fast}\n")
    with pytest.raises(RulesError) as info:
        load_rules({"MESHALERT_RULES_FILE": path}, now_s=0)
    assert str(info.value) == (
        f"file:{path}: defaults.latency.above_ms: "
        "Input should be a valid number, unable to parse string as a number"
    )


def test_flag_error_names_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, "f.yaml", "services: {web: {latency: {percentile: 0}}}")
    with pytest.raises(
        RulesError, match=r"^flag:--rules .*f.yaml: services.web.latency.percentile"
    ):
        load_rules({}, flag_rules_path=path, now_s=0)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "defaults:\n  latency: {above_ms: 3\n")
    with pytest.raises(RulesError, match=r"not valid YAML or JSON: .*line 2, column 24"):
        load_rules({"MESHALERT_RULES_FILE": path}, now_s=0)


def test_provider_keeps_last_good_rules_when_a_reload_fails(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("defaults: {latency: {above_ms: 300}}")
    provider = RulesProvider({"MESHALERT_RULES_FILE": str(path)})
    first = provider.current(now_s=100)
    assert (first.error, first.stale, first.loaded_at_s) == (None, False, 100)
    path.write_text("defaults: {latency: {above_ms: [}")
    broken = provider.current(now_s=160)
    assert broken.stale and broken.error is not None
    assert str(broken.error).startswith(f"file:{path}: not valid YAML")
    assert broken.loaded_at_s == 100
    assert broken.rules.document.defaults.latency.above_ms == 300
    path.write_text("defaults: {latency: {above_ms: 350}}")
    fixed = provider.current(now_s=220)
    assert (fixed.stale, fixed.loaded_at_s) == (False, 220)
    assert fixed.rules.document.defaults.latency.above_ms == 350
    assert provider.last_good is fixed
    again = provider.current(now_s=280)
    assert again.rules is fixed.rules and again.loaded_at_s == 280


def test_provider_raises_when_nothing_ever_loaded(tmp_path: Path) -> None:
    provider = RulesProvider({"MESHALERT_RULES": "defaults: {latency: {above_ms: x}}"})
    with pytest.raises(RulesError, match=r"env:MESHALERT_RULES: defaults\.latency\.above_ms"):
        provider.current(now_s=0)
    assert provider.last_good is None


def test_provider_keeps_last_good_when_ssm_fails(ssm: Any) -> None:
    ssm.put_parameter(Name=SSM_NAME, Value="defaults: {severity: warning}", Type="String")
    provider = RulesProvider({"MESHALERT_RULES_SSM_PARAMETER": SSM_NAME}, ssm_client=ssm)
    good = provider.current(now_s=0)
    ssm.delete_parameter(Name=SSM_NAME)
    cached = provider.current(now_s=30)  # within the TTL: no API call, still good
    assert cached.error is None and cached.rules.sources == good.rules.sources
    failed = provider.current(now_s=61)
    assert failed.error is not None and "ParameterNotFound" in str(failed.error)
    assert failed.rules is cached.rules
    assert failed.loaded_at_s == 30
    assert failed.rules.document.defaults.latency.severity.value == "warning"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "defaults:\n  latency: {above_ms: 300}\n  latency: {above_ms: 400}\n",
            "env:MESHALERT_RULES: defaults.latency: duplicate key (line 3, column 3)",
        ),
        (
            "services:\n  prod/a:\n    latency:\n      above_ms: 1\n      above_ms: 2\n",
            "env:MESHALERT_RULES: services.prod/a.latency.above_ms: duplicate key (line 5",
        ),
        (
            '{"defaults": {"latency": {"above_ms": 1, "above_ms": 2}}}',
            "env:MESHALERT_RULES: defaults.latency.above_ms: duplicate key (line 1",
        ),
        (
            "defaults: {latency: {above_ms: 1e999}}",
            "env:MESHALERT_RULES: defaults.latency.above_ms: Input should be a finite number",
        ),
        (
            '{"services": {"a": {"failures": {"rate_above": 1e999}}}}',
            "env:MESHALERT_RULES: services.a.failures.rate_above: Input should be a finite",
        ),
        ("defaults: {retries: {ratio_above: .nan}}", "defaults.retries.ratio_above: Input"),
        ("defaults: " + "[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ],
)
def test_documents_that_would_mislead_are_rejected_with_their_path(text: str, message: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules({"MESHALERT_RULES": text}, now_s=0)
    assert message in str(info.value)


def test_an_anchor_used_twice_is_not_a_duplicate_key() -> None:
    text = "services:\n  a: {latency: &t {above_ms: 700}}\n  b: {latency: *t}\n"
    rules = load_rules({"MESHALERT_RULES": text}, now_s=0)
    b = rules.for_service("b")
    assert b is not None
    assert b.latency.above_ms == 700


def test_provider_keeps_last_good_rules_whatever_the_reload_raises(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("defaults: {latency: {above_ms: 321}}\n")
    calls = 0

    def read_text(name: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise MemoryError("a reader bug")
        return Path(name).read_text()

    provider = RulesProvider({"MESHALERT_RULES_FILE": str(path)}, read_text=read_text)
    first = provider.current(1.0)
    again = provider.current(2.0)
    assert again.stale
    assert again.rules is first.rules
    assert "MemoryError: a reader bug" in str(again.error)
