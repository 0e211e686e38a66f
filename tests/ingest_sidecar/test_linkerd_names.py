from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest_sidecar.linkerd_names import (
    MAX_SERVICE_DEPTH,
    NameMapper,
    parse_service_depths,
    parse_service_namespaces,
)
from ingest_sidecar.model import SeriesKey

DATA = Path(__file__).parent / "data"
K8S_NGINX = "_.io_l5d_k8s.production.http.nginx"
OUT_SVC = {"router": "outgoing", "scope": "service", "service": "nginx"}
OUT_CLIENT = {
    "router": "outgoing",
    "scope": "client",
    "client": K8S_NGINX,
    "namespace": "production",
    "port": "http",
    "service": "nginx",
}


def key(measurement: str, tags: dict[str, str]) -> SeriesKey:
    return SeriesKey(measurement, tuple(sorted(tags.items())))


# Every line of the reference's example datagram (reference section 2.4), in file order.
EXAMPLE_KEYS = [
    key("linkerd_request_latency_ms", OUT_SVC),
    key("linkerd_requests", OUT_SVC),
    key("linkerd_success", OUT_SVC),
    key("linkerd_failures", OUT_SVC),
    key(
        "linkerd_failures",
        {
            **OUT_SVC,
            "exception": "com_twitter_finagle_service_ResponseClassificationSyntheticException",
        },
    ),
    key(
        "linkerd_sourcedfailures",
        {
            **OUT_SVC,
            "source": K8S_NGINX,
            "exception": "com_twitter_finagle_ConnectionFailedException",
        },
    ),
    key("linkerd_pending", OUT_SVC),
    key("linkerd_retries_total", OUT_SVC),
    key("linkerd_retries_per_request", OUT_SVC),
    key("linkerd_retries_budget", OUT_SVC),
    key("linkerd_request_latency_ms", OUT_CLIENT),
    key("linkerd_requests", OUT_CLIENT),
    key(
        "linkerd_failures_chain",
        {
            **OUT_CLIENT,
            "exception": "com_twitter_finagle_ConnectionFailedException",
            "cause": "io_netty_channel_AbstractChannel_AnnotatedConnectException",
        },
    ),
    key(
        "linkerd_failures",
        {**OUT_CLIENT, "failure_flag": "interrupted", "exception": "com_twitter_finagle_Failure"},
    ),
    key("linkerd_connections", OUT_CLIENT),
    key("linkerd_retries_budget", OUT_CLIENT),
    key("linkerd_failfast_unhealthy_for_ms", OUT_CLIENT),
    key("linkerd_failfast_unhealthy_num_tries", OUT_CLIENT),
    key("linkerd_loadbalancer_available", OUT_CLIENT),
    key("linkerd_loadbalancer_removes", OUT_CLIENT),
    key("linkerd_received_bytes", OUT_CLIENT),
    key("linkerd_sent_bytes", OUT_CLIENT),
    key(
        "linkerd_request_latency_ms",
        {"router": "outgoing", "scope": "client_service", "client": K8S_NGINX, "service": "nginx"},
    ),
    key(
        "linkerd_requests",
        {
            "router": "outgoing",
            "scope": "client",
            "via": "daemonset",
            "client": "_.io_l5d_k8s_daemonset.default.incoming.l5d._.io_l5d_k8s"
            ".production.http.frontend",
            "namespace": "production",
            "port": "http",
            "service": "frontend",
        },
    ),
    key(
        "linkerd_request_latency_ms",
        {
            "router": "incoming",
            "scope": "client",
            "via": "localnode",
            "client": "_.io_l5d_k8s_localnode.10_233_96_4._.io_l5d_k8s.production.http.frontend",
            "namespace": "production",
            "port": "http",
            "service": "frontend",
        },
    ),
    key(
        "linkerd_request_latency_ms",
        {
            "router": "incoming",
            "scope": "service",
            "namespace": "production",
            "port": "http",
            "service": "frontend",
        },
    ),
    key("linkerd_requests", {"router": "http", "scope": "service", "service": "nginx"}),
    key(
        "linkerd_connections",
        {
            "router": "http",
            "scope": "client",
            "client": "_.inet.nginx_production_svc_cluster_local.80",
            "service": "nginx_production_svc_cluster_local",
            "port": "80",
        },
    ),
    key("linkerd_requests", {"router": "incoming", "scope": "server", "server": "0.0.0.0:4141"}),
    key("linkerd_jvm_mem_current_G1_Eden_Space_used", {"scope": "jvm"}),
]
EXAMPLE_NAMES = [
    line.partition(":")[0]
    for line in (DATA / "linkerd_example_datagram.txt").read_text().splitlines()
]


@pytest.mark.parametrize(("name", "expected"), list(zip(EXAMPLE_NAMES, EXAMPLE_KEYS, strict=True)))
def test_reference_example_lines(name: str, expected: SeriesKey) -> None:
    # The ingress router ("incoming") is left unconfigured on purpose: the catalogue finds
    # its 3-token service path.
    assert NameMapper().map(name) == expected


def _client(router: str, client: str, **tags: str) -> dict[str, str]:
    return {"router": router, "scope": "client", "client": client, **tags}


@pytest.mark.parametrize(
    ("name", "measurement", "tags"),
    [
        # section 2.2: the StatsDStatsReceiverTest name (fs namer with a residual path)
        (
            "rt.http.client._.io_l5d_fs.default.path.http.1_1.GET.default.request_latency_ms",
            "linkerd_request_latency_ms",
            _client("http", "_.io_l5d_fs.default.path.http.1_1.GET.default", service="default"),
        ),
        # section 2.3 identifiers
        # Host "nginx:8080": sanitising lost the ':' ; lowercase tokens get '-' back
        (
            "rt.http.service.svc.nginx_8080.requests",
            "linkerd_requests",
            {"router": "http", "scope": "service", "service": "nginx-8080"},
        ),
        (
            "rt.http.service.svc.world_v1.requests",
            "linkerd_requests",
            {"router": "http", "scope": "service", "service": "world-v1"},
        ),
        (
            "rt.http.service.svc.1_1.GET.nginx.requests",
            "linkerd_requests",
            {"router": "http", "scope": "service", "service": "nginx"},
        ),
        (
            "rt.h2.service.svc.helloworld_Greeter.request_latency_ms",
            "linkerd_request_latency_ms",
            {"router": "h2", "scope": "service", "service": "helloworld_Greeter"},
        ),
        (
            "rt.incoming.client._.io_l5d_k8s_localnode.10_233_96_4._.io_l5d_k8s.default.http.world_v1"
            ".requests",
            "linkerd_requests",
            _client(
                "incoming",
                "_.io_l5d_k8s_localnode.10_233_96_4._.io_l5d_k8s.default.http.world_v1",
                via="localnode",
                namespace="default",
                port="http",
                service="world-v1",
            ),
        ),
        (
            "rt.outgoing.client._.io_l5d_k8s_daemonset.default.incoming.l5d._.io_l5d_k8s.default"
            ".http.hello.retries.budget_exhausted",
            "linkerd_retries_budget_exhausted",
            _client(
                "outgoing",
                "_.io_l5d_k8s_daemonset.default.incoming.l5d._.io_l5d_k8s.default.http.hello",
                via="daemonset",
                namespace="default",
                port="http",
                service="hello",
            ),
        ),
        (
            "rt.http.client._.io_l5d_fs.nginx.loadbalancer.size",
            "linkerd_loadbalancer_size",
            _client("http", "_.io_l5d_fs.nginx", service="nginx"),
        ),
        (
            "rt.http.client._.inet.127_1.8080.retries.budget",
            "linkerd_retries_budget",
            _client("http", "_.inet.127_1.8080", service="127_1", port="8080"),
        ),
        (
            "rt.http.client._.io_l5d_consul.dc1.web.requests",
            "linkerd_requests",
            _client("http", "_.io_l5d_consul.dc1.web", service="web"),
        ),
        (
            "rt.http.client._.io_l5d_consul.dc1.canary.web.requests",
            "linkerd_requests",
            _client("http", "_.io_l5d_consul.dc1.canary.web", service="web"),
        ),
        # unknown namer (variable depth): the catalogue finds the metric
        (
            "rt.http.client._.io_l5d_marathon.group.app.retries.budget",
            "linkerd_retries_budget",
            _client("http", "_.io_l5d_marathon.group.app", service="app"),
        ),
        (
            "rt.http.client._.io_l5d_marathon.app.failures.interrupted",
            "linkerd_failures",
            _client("http", "_.io_l5d_marathon.app", service="app", failure_flag="interrupted"),
        ),
        (
            "rt.http.client._.io_l5d_marathon.app.service.svc.web.requests",
            "linkerd_requests",
            {
                "router": "http",
                "scope": "client_service",
                "client": "_.io_l5d_marathon.app",
                "service": "web",
            },
        ),
        # k8s labelSelector value: a 4th id token
        (
            "rt.http.client._.io_l5d_k8s.prod.http.web.v2.requests",
            "linkerd_requests",
            _client(
                "http",
                "_.io_l5d_k8s.prod.http.web.v2",
                namespace="prod",
                port="http",
                service="web",
            ),
        ),
        # router scope
        (
            "rt.http.bindcache.path.evicts",
            "linkerd_bindcache_path_evicts",
            {"router": "http", "scope": "router"},
        ),
        ("rt.http.originator", "linkerd_originator", {"router": "http", "scope": "router"}),
        # too short for its scope word: router scope with the remaining tokens
        ("rt.http.service.svc", "linkerd_service_svc", {"router": "http", "scope": "router"}),
        # roots other than rt
        ("namer._.io_l5d_k8s.lookups", "linkerd_namer___io_l5d_k8s_lookups", {"scope": "other"}),
        ("jvm.gc.msec", "linkerd_jvm_gc_msec", {"scope": "jvm"}),
        ("rt.http", "linkerd_rt_http", {"scope": "other"}),
    ],
)
def test_identifier_shapes(name: str, measurement: str, tags: dict[str, str]) -> None:
    assert NameMapper().map("linkerd." + name) == key(measurement, tags)


@pytest.mark.parametrize("word", ["requests", "failures", "service", "status", "retries", "time"])
def test_k8s_names_that_collide_with_metric_words(word: str) -> None:
    mapper = NameMapper(service_depths={"incoming": 3})
    client = f"_.io_l5d_k8s.{word}.{word}.{word}"
    k8s = {"namespace": word, "port": word, "service": word}
    assert mapper.map(f"linkerd.rt.outgoing.client.{client}.requests") == key(
        "linkerd_requests", _client("outgoing", client, **k8s)
    )
    assert mapper.map(f"linkerd.rt.outgoing.client.{client}.failures") == key(
        "linkerd_failures", _client("outgoing", client, **k8s)
    )
    assert mapper.map(f"linkerd.rt.outgoing.client.{client}.service.svc.{word}.requests") == key(
        "linkerd_requests",
        {"router": "outgoing", "scope": "client_service", "client": client, "service": word},
    )
    assert mapper.map(f"linkerd.rt.outgoing.service.svc.{word}.requests") == key(
        "linkerd_requests", {"router": "outgoing", "scope": "service", "service": word}
    )
    assert mapper.map(f"linkerd.rt.incoming.service.svc.{word}.{word}.{word}.pending") == key(
        "linkerd_pending", {"router": "incoming", "scope": "service", **k8s}
    )


def test_client_service_tags_keep_logical_and_concrete_apart() -> None:
    mapper = NameMapper(service_depths={"incoming": 3})
    concrete = "_.io_l5d_k8s.backend.grpc.users_v2"
    row = dict(
        mapper.map(
            f"linkerd.rt.incoming.client.{concrete}.service.svc.front.http.users.requests"
        ).tags
    )
    assert row == {
        "router": "incoming",
        "scope": "client_service",
        "client": concrete,
        "namespace": "front",
        "port": "http",
        "service": "users",
    }
    client_row = dict(mapper.map(f"linkerd.rt.incoming.client.{concrete}.requests").tags)
    assert (client_row["namespace"], client_row["service"]) == ("backend", "users-v2")


def test_logical_and_concrete_names_of_one_k8s_service_match() -> None:
    mapper = NameMapper()
    logical = dict(mapper.map("linkerd.rt.outgoing.service.svc.world_v1.requests").tags)
    concrete = dict(
        mapper.map("linkerd.rt.outgoing.client._.io_l5d_k8s.default.http.world_v1.requests").tags
    )
    assert logical["service"] == concrete["service"] == "world-v1"


def test_configured_service_depth_is_used_exactly() -> None:
    mapper = NameMapper(service_depths={"api": 2, "incoming": 3})
    assert mapper.map("linkerd.rt.api.service.svc.users.v1.requests") == key(
        "linkerd_requests", {"router": "api", "scope": "service", "service": "users.v1"}
    )
    # a configured depth wins even when the tail is not a catalogue metric
    assert mapper.map("linkerd.rt.api.service.svc.users.v1.custom_thing") == key(
        "linkerd_custom_thing", {"router": "api", "scope": "service", "service": "users.v1"}
    )
    # 3 tokens that are not Kubernetes-shaped give no namespace/port
    assert mapper.map("linkerd.rt.incoming.service.svc.Foo.Bar.baz.requests") == key(
        "linkerd_requests", {"router": "incoming", "scope": "service", "service": "Foo.Bar.baz"}
    )


def test_linkerd_0x_scope_names() -> None:
    mapper = NameMapper()
    assert mapper.map("linkerd.rt.http.dst.path.svc.nginx.requests") == key(
        "linkerd_requests", {"router": "http", "scope": "service", "service": "nginx"}
    )
    assert mapper.map("linkerd.rt.http.dst.path.http.1_1.GET.nginx.request_latency_ms") == key(
        "linkerd_request_latency_ms", {"router": "http", "scope": "service", "service": "nginx"}
    )
    assert mapper.map(f"linkerd.rt.http.dst.id.{K8S_NGINX}.connections") == key(
        "linkerd_connections", {**OUT_CLIENT, "router": "http"}
    )
    assert mapper.map(f"linkerd.rt.http.dst.id.{K8S_NGINX}.path.svc.web.requests") == key(
        "linkerd_requests",
        {"router": "http", "scope": "client_service", "client": K8S_NGINX, "service": "web"},
    )
    assert mapper.map("linkerd.rt.http.srv.0_0_0_0.4140.requests") == key(
        "linkerd_requests", {"router": "http", "scope": "server", "server": "0.0.0.0:4140"}
    )


A, B, C = "com_twitter_finagle_Failure", "java_io_IOException", "io_netty_Boom"


def test_one_failure_event_counts_once_per_tag_combination() -> None:
    """Finagle's rollup for one interrupted failure with cause chain A -> B -> C."""
    mapper = NameMapper()
    base = "linkerd.rt.http.service.svc.web."
    rollup = [
        "failures",
        "failures.interrupted",
        f"failures.{A}",
        f"failures.{A}.{B}",
        f"failures.{A}.{B}.{C}",
        f"failures.interrupted.{A}",
        f"failures.interrupted.{A}.{B}",
        f"failures.interrupted.{A}.{B}.{C}",
    ]
    keys = [mapper.map(base + metric) for metric in rollup]
    assert len(set(keys)) == len(keys)
    failures = [dict(k.tags) for k in keys if k.measurement == "linkerd_failures"]
    totals = [t for t in failures if "exception" not in t and "failure_flag" not in t]
    by_exception = [t for t in failures if "exception" in t and "failure_flag" not in t]
    by_flag = [t for t in failures if "failure_flag" in t and "exception" not in t]
    assert len(totals) == len(by_exception) == len(by_flag) == 1
    assert by_exception[0]["exception"] == A
    chain = {
        (dict(k.tags).get("failure_flag"), dict(k.tags)["cause"])
        for k in keys
        if k.measurement == "linkerd_failures_chain"
    }
    assert chain == {(None, B), (None, f"{B}.{C}"), ("interrupted", B), ("interrupted", f"{B}.{C}")}
    assert all(dict(k.tags)["exception"] == A for k in keys if "exception" in dict(k.tags))


@pytest.mark.parametrize(
    ("metric", "measurement", "tags"),
    [
        (f"sourcedfailures.{K8S_NGINX}", "linkerd_sourcedfailures", {"source": K8S_NGINX}),
        (
            f"sourcedfailures.{K8S_NGINX}.{A}",
            "linkerd_sourcedfailures",
            {"source": K8S_NGINX, "exception": A},
        ),
        (
            f"sourcedfailures.{K8S_NGINX}.{A}.{B}",
            "linkerd_sourcedfailures_chain",
            {"source": K8S_NGINX, "exception": A, "cause": B},
        ),
        (
            f"sourcedfailures._.inet.127_1.80.{A}",
            "linkerd_sourcedfailures",
            {"source": "_.inet.127_1.80", "exception": A},
        ),
        (
            f"sourcedfailures._.io_l5d_marathon.a.b.{A}",
            "linkerd_sourcedfailures",
            {"source": "_.io_l5d_marathon.a.b", "exception": A},
        ),
        (
            "sourcedfailures._.io_l5d_k8s.requests.http.failures",
            "linkerd_sourcedfailures",
            {"source": "_.io_l5d_k8s.requests.http.failures"},
        ),
        ("status.200", "linkerd_status", {"status_code": "200"}),
        ("status.5XX", "linkerd_status", {"status_class": "5XX"}),
        ("status.error", "linkerd_status", {"status_class": "error"}),
        ("time.2XX", "linkerd_time", {"status_class": "2XX"}),
        (
            "exn.java_nio_channels_ClosedChannelException",
            "linkerd_exn",
            {"exception": "java_nio_channels_ClosedChannelException"},
        ),
        ("failures.restartable", "linkerd_failures", {"failure_flag": "restartable"}),
        ("retries.budget_exhausted", "linkerd_retries_budget_exhausted", {}),
    ],
)
def test_metric_families(metric: str, measurement: str, tags: dict[str, str]) -> None:
    got = NameMapper().map("linkerd.rt.http.service.svc.web." + metric)
    assert got == key(measurement, {"router": "http", "scope": "service", "service": "web", **tags})


def test_prefix_is_stripped_literally() -> None:
    assert NameMapper(prefix="my.app").map("my.app.rt.http.service.svc.web.requests") == key(
        "linkerd_requests", {"router": "http", "scope": "service", "service": "web"}
    )
    assert NameMapper(prefix="").map("rt.http.service.svc.web.requests") == key(
        "linkerd_requests", {"router": "http", "scope": "service", "service": "web"}
    )
    # without the prefix: scope other, measurement from every token (sanitised)
    assert NameMapper().map("rt.http.service.svc.web.requests") == key(
        "linkerd_rt_http_service_svc_web_requests", {"scope": "other"}
    )
    assert NameMapper().map("other-app.a b") == key("linkerd_other_app_a_b", {"scope": "other"})
    assert NameMapper().map("linkerdx.jvm.uptime").tags == (("scope", "other"),)


def test_empty_tokens_are_kept_and_empty_tags_omitted() -> None:
    mapper = NameMapper()
    assert mapper.map("linkerd.rt.http.service.svc..requests") == key(
        "linkerd_requests", {"router": "http", "scope": "service"}
    )
    assert mapper.map("linkerd.rt.http.client._.io_l5d_k8s..http.web.requests") == key(
        "linkerd_requests", _client("http", "_.io_l5d_k8s..http.web", port="http", service="web")
    )
    assert mapper.map("linkerd.jvm..x") == key("linkerd_jvm__x", {"scope": "jvm"})


def test_extra_tags_are_added_without_overriding_derived_or_sidecar_tags() -> None:
    got = NameMapper().map(
        "linkerd.rt.http.service.svc.web.requests",
        (
            ("env", "prod"),
            ("service", "spoofed"),
            ("host", "h"),
            ("le", "1"),
            ("flag", ""),
            ("", "x"),
        ),
    )
    assert got == key(
        "linkerd_requests", {"router": "http", "scope": "service", "service": "web", "env": "prod"}
    )


def test_cache_is_bounded_and_does_not_change_results() -> None:
    names = [f"linkerd.rt.http.client._.io_l5d_k8s.ns.http.s{i}.requests" for i in range(10)]
    small = NameMapper(cache_size=3)
    first = [small.map(n) for n in names]
    assert small.cached <= 3
    assert [small.map(n) for n in reversed(names)] == list(reversed(first))
    assert first == [NameMapper().map(n) for n in names]
    assert small.map(names[0], (("a", "b"),)) != small.map(names[0])


def test_parse_service_depths() -> None:
    assert parse_service_depths("incoming=3,outgoing=1") == {"incoming": 3, "outgoing": 1}
    assert parse_service_depths(" incoming = 3 , ") == {"incoming": 3}
    assert parse_service_depths("") == {}


@pytest.mark.parametrize(
    "bad", ["incoming", "incoming=x", "=3", "incoming=0", "a=1,a=2", "incoming=-1", "incoming=65"]
)
def test_parse_service_depths_names_the_bad_entry(bad: str) -> None:
    entry = bad.rsplit(",", maxsplit=1)[-1]
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        parse_service_depths(bad)


def test_mapper_rejects_bad_depths() -> None:
    with pytest.raises(ValueError, match="incoming"):
        NameMapper(service_depths={"incoming": 0})


_VOCAB = [
    "rt",
    "jvm",
    "namer",
    "http",
    "service",
    "client",
    "server",
    "srv",
    "dst",
    "path",
    "id",
    "svc",
    "_",
    "io_l5d_k8s",
    "io_l5d_k8s_daemonset",
    "io_l5d_k8s_localnode",
    "inet",
    "io_l5d_fs",
    "io_l5d_consul",
    "failures",
    "sourcedfailures",
    "interrupted",
    "status",
    "time",
    "exn",
    "stream",
    "request",
    "retries",
    "budget",
    "requests",
    "1_1",
    "GET",
    "com_twitter_Exc",
    "200",
    "",
    "prod",
]
_TOKEN = st.sampled_from(_VOCAB) | st.text("abcXYZ019_", max_size=6)
_NAMES = st.lists(_TOKEN, min_size=1, max_size=16).map(".".join)
_SCOPES = {"service", "client", "client_service", "server", "router", "jvm", "other"}
_MEASUREMENT = re.compile(r"linkerd_[A-Za-z0-9_]*")


@settings(max_examples=400, deadline=None)
@given(_NAMES, st.sampled_from(["linkerd", "", "a.b"]), st.booleans())
def test_any_dotted_name_maps_without_raising_and_deterministically(
    rest: str, prefix: str, prefixed: bool
) -> None:
    name = f"{prefix}.{rest}" if prefix and prefixed else rest
    mapper = NameMapper(prefix=prefix, service_depths={"incoming": 3})
    got = mapper.map(name)
    assert mapper.map(name) == got
    assert NameMapper(prefix=prefix, service_depths={"incoming": 3}).map(name) == got
    assert _MEASUREMENT.fullmatch(got.measurement)
    tags = dict(got.tags)
    assert list(got.tags) == sorted(got.tags)
    assert len(tags) == len(got.tags)
    assert all(value for value in tags.values())
    assert "host" not in tags
    assert tags["scope"] in _SCOPES
    if got.measurement in ("linkerd_failures", "linkerd_sourcedfailures") and "exception" in tags:
        assert "." not in tags["exception"] and "cause" not in tags


def test_router_namespace_names_logical_services_like_their_k8s_clients() -> None:
    mapper = NameMapper(service_namespaces={"outgoing": "production"})
    service = mapper.map("linkerd.rt.outgoing.service.svc.checkout.requests")
    client = mapper.map("linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.checkout.requests")
    other_router = mapper.map("linkerd.rt.incoming.service.svc.checkout.requests")
    tags = dict(service.tags)
    assert (tags["namespace"], tags["service"]) == ("production", "checkout")
    assert dict(client.tags)["namespace"] == "production"
    assert "namespace" not in dict(other_router.tags)


def test_router_namespace_never_overrides_a_namespace_from_the_path() -> None:
    mapper = NameMapper(service_depths={"in": 3}, service_namespaces={"in": "default"})
    key = mapper.map("linkerd.rt.in.service.svc.payments.http.ledger.requests")
    assert dict(key.tags)["namespace"] == "payments"


@pytest.mark.parametrize("text", ["outgoing", "=x", "a=", "a=x,a=y"])
def test_bad_service_namespace_entries_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="bad service namespace entry"):
        parse_service_namespaces(text)


def test_service_namespaces_parse() -> None:
    assert parse_service_namespaces(" outgoing=production, incoming=prod ") == {
        "outgoing": "production",
        "incoming": "prod",
    }


_RICH = "com_twitter_finagle_naming_buoyant_RichConnectionFailedException"


@pytest.mark.parametrize(
    ("metric", "measurement", "extra"),
    [
        ("service_creation.failures", "linkerd_service_creation_failures", {}),
        (
            f"service_creation.failures.{_RICH}",
            "linkerd_service_creation_failures",
            {"exception": _RICH},
        ),
        (
            f"service_creation.failures.restartable.{_RICH}.java_net_ConnectException",
            "linkerd_service_creation_failures_chain",
            {
                "exception": _RICH,
                "cause": "java_net_ConnectException",
                "failure_flag": "restartable",
            },
        ),
        ("http.stream.request.pending", "linkerd_http_stream_request_pending", {}),
        ("pending", "linkerd_pending", {}),
    ],
)
def test_session_acquisition_failures_and_stream_gauges_keep_the_client_id(
    metric: str, measurement: str, extra: dict[str, str]
) -> None:
    """As recorded from real Linkerd 1.7.5 (tests/data/linkerd_corpus): a refused connection
    is counted under ``service_creation.failures``, never under ``failures``."""
    client = "_.io_l5d_k8s_daemonset.linkerd.incoming.l5d._.io_l5d_k8s.production.http.checkout"
    key = NameMapper().map(f"linkerd.rt.outgoing.client.{client}.{metric}")
    assert key.measurement == measurement
    assert dict(key.tags) == {
        "router": "outgoing",
        "scope": "client",
        "client": client,
        "via": "daemonset",
        "namespace": "production",
        "port": "http",
        "service": "checkout",
        **extra,
    }


def test_port_transformer_ids_are_part_of_the_client_id() -> None:
    key = NameMapper().map(
        f"linkerd.rt.outgoing.client._.io_l5d_port.4141._.io_l5d_fs.ledger.service_creation.failures.{_RICH}"
    )
    assert key.measurement == "linkerd_service_creation_failures"
    assert dict(key.tags)["client"] == "_.io_l5d_port.4141._.io_l5d_fs.ledger"
    assert (dict(key.tags)["service"], dict(key.tags)["via"]) == ("ledger", "port")


def test_config_lists_skip_empty_entries_and_split_at_the_first_equals() -> None:
    assert parse_service_depths(",a=1,,b=64") == {"a": 1, "b": MAX_SERVICE_DEPTH}
    with pytest.raises(ValueError, match="'a=b=1'"):
        parse_service_depths("a=b=1")
    assert parse_service_namespaces(",a=b=c,,d=e") == {"a": "b=c", "d": "e"}


def _tags(name: str) -> tuple[str, dict[str, str]]:
    mapped = NameMapper().map(name)
    return mapped.measurement, dict(mapped.tags)


def test_a_server_without_its_ip_gets_no_server_tag_and_a_short_one_is_router_scope() -> None:
    assert _tags("linkerd.rt.r.server..4141.requests") == (
        "linkerd_requests",
        {"router": "r", "scope": "server"},
    )
    assert _tags("linkerd.rt.r.server.1_2_3_4") == (
        "linkerd_server_1_2_3_4",
        {"router": "r", "scope": "router"},
    )


def test_family_heads_alone_and_lookalikes_are_plain_metrics() -> None:
    web = {"router": "r", "scope": "service", "service": "web"}
    assert _tags("linkerd.rt.r.service.svc.web.exn.a_B.c_D") == (
        "linkerd_exn",
        {**web, "exception": "a_B.c_D"},
    )
    # A family head with nothing after it must not crash the mapping.
    assert _tags("linkerd.rt.r.service.svc.web.sourcedfailures") == ("linkerd_sourcedfailures", web)
    assert _tags("linkerd.rt.r.service.svc.web.service_creation") == (
        "linkerd_service_creation",
        web,
    )
    # Only service_creation.failures is the connect-failure family.
    assert _tags("linkerd.rt.r.bindcache.failures") == (
        "linkerd_bindcache_failures",
        {"router": "r", "scope": "router"},
    )


def test_a_request_stream_family_ends_an_unknown_client_id() -> None:
    assert _tags("linkerd.rt.r.client.foo.bar.request.stream.x") == (
        "linkerd_request_stream_x",
        {"client": "foo.bar", "router": "r", "scope": "client", "service": "bar"},
    )
    # `response.stream` is the other side; `request.other` is not a stream family.
    assert _tags("linkerd.rt.r.client.foo.bar.response.stream.x")[1]["client"] == "foo.bar"
    assert _tags("linkerd.rt.r.client.foo.bar.request.other.x")[1]["client"] != "foo.bar"


def test_an_unknown_client_id_keeps_at_least_one_token_and_its_namer_is_never_the_metric() -> None:
    router = {"router": "r"}
    assert _tags("linkerd.rt.r.client.foo.bar") == (
        "linkerd_bar",
        {**router, "scope": "client", "client": "foo", "service": "foo"},
    )
    assert _tags("linkerd.rt.r.client.foo") == ("linkerd_client_foo", {**router, "scope": "router"})
    # `_.<namer>.<token>`: the two tokens after `_` belong to the id even when they spell a
    # catalogue metric.
    assert _tags("linkerd.rt.r.client._.retries.total") == (
        "linkerd_total",
        {**router, "scope": "client", "client": "_.retries", "service": "retries"},
    )


def test_an_unknown_source_id_keeps_its_first_tokens_before_the_exception() -> None:
    web = {"router": "r", "scope": "service", "service": "web"}
    prefix = "linkerd.rt.r.service.svc.web.sourcedfailures."
    assert _tags(prefix + "_.my_namer.a_B.c_D") == (
        "linkerd_sourcedfailures",
        {**web, "source": "_.my_namer.a_B", "exception": "c_D"},
    )
    assert _tags(prefix + "foo.a_B") == (
        "linkerd_sourcedfailures",
        {**web, "source": "foo", "exception": "a_B"},
    )
    assert _tags(prefix + "_.io_l5d_fs.web.a_B") == (
        "linkerd_sourcedfailures",
        {**web, "source": "_.io_l5d_fs.web", "exception": "a_B"},
    )


def test_a_logical_path_after_an_unknown_or_consul_client_id() -> None:
    name = "linkerd.rt.r.client.a.b.service.svc.x.y.requests"
    logical = {"router": "r", "scope": "client_service", "client": "a.b", "service": "x.y"}
    # Unconfigured (or configured for another router): the rightmost `service` marker.
    for depths in ({}, {"other": 2}, {"r": 2}):
        assert dict(NameMapper(service_depths=depths).map(name).tags) == logical
    # A configured depth fixes where the marker must be; none there: all of it is the id.
    assert dict(NameMapper(service_depths={"r": 1}).map(name).tags) == {
        "router": "r",
        "scope": "client",
        "client": "a.b.service.svc.x.y",
        "service": "y",
    }
    assert _tags("linkerd.rt.r.client.a.service.svc.x.requests")[1]["client"] == "a"
    assert _tags("linkerd.rt.r.client._.n.a.service.svc.x.requests")[1]["client"] == "_.n.a"
    assert _tags("linkerd.rt.r.client._.io_l5d_consul.dc1.web.service.svc.web.requests") == (
        "linkerd_requests",
        {
            "router": "r",
            "scope": "client_service",
            "client": "_.io_l5d_consul.dc1.web",
            "service": "web",
        },
    )


def test_the_configured_depth_of_the_router_applies_to_every_scope_grammar() -> None:
    one = NameMapper(service_depths={"r": 1})
    assert dict(one.map("linkerd.rt.r.dst.path.svc.a.b.requests").tags)["service"] == "a"
    assert dict(NameMapper().map("linkerd.rt.r.dst.path.svc.a.b.requests").tags)["service"] == (
        "a.b"
    )
    assert dict(one.map("linkerd.rt.r.dst.id._.n.a.path.svc.a.b.requests").tags)["client"] == (
        "_.n.a.path.svc.a.b"
    )
    assert dict(one.map("linkerd.rt.r.client.c.service.svc.a.b.requests").tags)["client"] == (
        "c.service.svc.a.b"
    )


def test_short_and_unknown_dst_names_and_foreign_jvm_names() -> None:
    assert _tags("linkerd.rt.r.dst") == ("linkerd_dst", {"router": "r", "scope": "router"})
    assert _tags("linkerd.rt.r.dst.foo.x.requests") == (
        "linkerd_dst_foo_x_requests",
        {"router": "r", "scope": "router"},
    )
    # Without the prefix, a `jvm.` name is not this Linkerd's JVM.
    assert _tags("jvm.mem") == ("linkerd_jvm_mem", {"scope": "other"})
    assert _tags("linkerd.rt.r.service.svc.web.status.a.b")[1]["status_class"] == "a.b"


def test_depth_and_cache_size_bounds_and_the_cache_returns_the_same_key() -> None:
    for depth in (1, MAX_SERVICE_DEPTH):
        assert NameMapper(service_depths={"r": depth}).map("x") == NameMapper().map("x")
    with pytest.raises(ValueError, match="cache_size must be positive: 0"):
        NameMapper(cache_size=0)
    mapper = NameMapper(cache_size=2)
    first = mapper.map("linkerd.rt.r.service.svc.web.requests")
    assert mapper.map("linkerd.rt.r.service.svc.web.requests") is first
    mapper.map("b")
    assert mapper.cached == 2
    mapper.map("c")  # full: cleared, then this one kept
    assert mapper.cached == 1
    assert NameMapper(cache_size=1).map("x") == NameMapper().map("x")


@pytest.mark.parametrize("name", ["nginx.XX.XX.hits", "a.b", "jvm_gc"])
def test_a_foreign_name_keeps_every_character_but_its_dots(name: str) -> None:
    assert _tags(name) == ("linkerd_" + name.replace(".", "_"), {"scope": "other"})


_GRAMMAR_NAMES = (
    "linkerd.rt.outgoing.client._.io_l5d_k8s.production.http.checkout.service.svc.checkout.requests",
    "linkerd.rt.outgoing.client.$.inet.127_0_0_1.4141.connect_latency_ms",
    "linkerd.rt.outgoing.dst.id._.io_l5d_k8s.production.http.checkout.path.svc.checkout.requests",
    "linkerd.rt.outgoing.dst.path.svc.checkout.failures.com_twitter_Exc",
    "linkerd.rt.incoming.server.0_0_0_0.4141.requests",
    "linkerd.rt.outgoing.service.svc.checkout.retries.budget",
)


@pytest.mark.parametrize("full", _GRAMMAR_NAMES)
def test_every_truncation_of_a_real_name_maps_without_raising(full: str) -> None:
    """A name cut anywhere (``rt.<router>.client`` with nothing after it once raised
    IndexError in the ingest path) still maps: the mapper never raises on wire data."""
    tokens = full.split(".")
    mapper = NameMapper(service_depths={"incoming": 3})
    for end in range(1, len(tokens) + 1):
        name = ".".join(tokens[:end])
        got = mapper.map(name)
        assert _MEASUREMENT.fullmatch(got.measurement), name
        assert dict(got.tags)["scope"] in _SCOPES, name
