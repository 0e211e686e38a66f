from __future__ import annotations

import json
from typing import Any

import pytest

from meshalert.rules.document import RulesError
from meshalert.rules.loading import load_rules
from meshalert.rules.ssm import SsmCache, fetch_document

NAME = "/meshalert/rules"


def put(ssm: Any, value: str, kind: str = "String") -> None:
    ssm.put_parameter(Name=NAME, Value=value, Type=kind, Overwrite=True)


@pytest.mark.parametrize("kind", ["String", "SecureString"])
def test_rules_from_ssm_name_the_parameter_and_version(ssm: Any, kind: str) -> None:
    put(ssm, "defaults: {latency: {above_ms: 300}}", kind)
    put(ssm, "defaults: {latency: {above_ms: 350}}", kind)
    env = {"MESHALERT_RULES_SSM_PARAMETER": NAME}
    loaded = load_rules(env, ssm_client=ssm, now_s=0, cache=SsmCache())
    assert loaded.sources == ("default", f"ssm:{NAME}@2")
    latency = loaded.document.defaults.latency
    assert latency.above_ms == 350
    assert latency.primary_threshold().source == f"ssm:{NAME}@2"


def test_cache_hits_the_api_once_within_ttl_then_refreshes(ssm: Any) -> None:
    put(ssm, json.dumps({"defaults": {"failures": {"rate_above": 0.1}}}))
    cache = SsmCache(ttl_s=60)
    env = {"MESHALERT_RULES_SSM_PARAMETER": NAME}
    first = load_rules(env, ssm_client=ssm, now_s=1000, cache=cache)
    put(ssm, json.dumps({"defaults": {"failures": {"rate_above": 0.2}}}))
    within = load_rules(env, ssm_client=ssm, now_s=1059.9, cache=cache)
    assert len(ssm.calls) == 1
    assert within.document.defaults.failures.rate_above == 0.1
    assert within.sources == first.sources == ("default", f"ssm:{NAME}@1")
    after = load_rules(env, ssm_client=ssm, now_s=1060, cache=cache)
    assert len(ssm.calls) == 2
    assert after.document.defaults.failures.rate_above == 0.2
    assert after.sources[-1] == f"ssm:{NAME}@2"


def test_no_cache_reads_every_time(ssm: Any) -> None:
    put(ssm, "{}")
    for now in (0, 1, 2):
        fetch_document(ssm, NAME, now_s=now, cache=None)
    assert len(ssm.calls) == 3


def test_clock_going_backwards_refreshes(ssm: Any) -> None:
    put(ssm, "{}")
    cache = SsmCache(ttl_s=60)
    fetch_document(ssm, NAME, now_s=100, cache=cache)
    fetch_document(ssm, NAME, now_s=50, cache=cache)
    assert len(ssm.calls) == 2


def test_missing_parameter_is_a_rules_error_naming_it(ssm: Any) -> None:
    with pytest.raises(RulesError, match=r"^ssm:/nope: ParameterNotFound"):
        load_rules(
            {"MESHALERT_RULES_SSM_PARAMETER": "/nope"}, ssm_client=ssm, now_s=0, cache=SsmCache()
        )


def test_bad_document_in_ssm_names_parameter_version_and_field(ssm: Any) -> None:
    put(ssm, "defaults: {retries: {ratio_above: -1}}", "SecureString")
    with pytest.raises(RulesError) as info:
        load_rules(
            {"MESHALERT_RULES_SSM_PARAMETER": NAME}, ssm_client=ssm, now_s=0, cache=SsmCache()
        )
    assert str(info.value).startswith(
        f"ssm:{NAME}@1: defaults.retries.ratio_above: Input should be"
    )


def test_secure_string_text_is_not_in_the_repr(ssm: Any) -> None:
    put(ssm, "defaults: {latency: {runbook_url: 'https://wiki/secret-token'}}", "SecureString")
    document = fetch_document(ssm, NAME, now_s=0, cache=None)
    assert "secret-token" in document.text
    assert "secret-token" not in repr(document)
