"""Linkerd 1.x statsd names -> the series schema (measurement + tags).

A name looks like ``<prefix>.rt.<router>.<scope>.<id tokens>.<metric tokens>``; the statsd
receiver joined Finagle scopes with ``.`` and turned every other character into ``_``, so
element boundaries are lost and are recovered here from the grammar of each scope.

Measurement: ``linkerd_`` + the metric tokens joined with ``_`` (``linkerd_requests``,
``linkerd_request_latency_ms``, ``linkerd_retries_budget_exhausted``, ...). Names outside
``rt`` (``jvm.*``, ``namer.*``) and names without the prefix keep all their tokens
(``linkerd_jvm_mem_current_G1_Eden_Space_used``), scope ``jvm`` or ``other``. Characters
outside ``[A-Za-z0-9_]`` in a measurement become ``_``.

Tags (only when known and non-empty; never ``host``, which the sidecar adds):

* ``router``; ``scope``: ``service``, ``client``, ``client_service``, ``server``, ``router``,
  ``jvm``, ``other``. Linkerd 0.x ``dst.path``/``dst.id``/``srv`` (and ``path`` inside
  ``dst.id``) map to ``service``/``client``/``server`` (and ``client_service``).
* service scope: the path after the dstPrefix token (``svc``) has ``service_depths[router]``
  tokens (default 1). Unconfigured routers take 1 token unless the tail after it is not a
  known metric, in which case the metric catalogue finds the split (so an ``io.l5d.ingress``
  router works unconfigured), and ``<version>.<METHOD>.<host>`` (methodAndHost, Linkerd 0.8
  ``http.1_1.GET.<host>``) takes 3. A 3-token path of Kubernetes-shaped tokens (lowercase)
  gives ``namespace``, ``port``, ``service`` (``_`` -> ``-``); methodAndHost gives
  ``service`` = host; any other path gives ``service`` = its tokens joined with ``.``.
  Lowercase (DNS-shaped) path tokens get ``_`` -> ``-`` too: in a Kubernetes mesh the logical
  name (Host header) is the k8s service name, and ``world-v1`` at scope=service must equal
  ``world-v1`` at scope=client for the engine's (namespace, service) key and the rules' keys.
  Tokens with other characters (``helloworld_Greeter``) stay as sent.
* client scope: ``client`` = the client id tokens as sent, joined with ``.``. The id grammar:
  ``_.io_l5d_k8s.<ns>.<port>.<svc>`` gives namespace/port/service with ``_`` -> ``-``;
  ``_.io_l5d_k8s_daemonset.<ns>.<port>.<svc>.<id>`` and
  ``_.io_l5d_k8s_localnode.<node>.<id>`` and ``_.io_l5d_port.<port>.<id>`` set ``via``
  (``daemonset``/``localnode``/``port``, the outermost transformer) and take
  namespace/port/service from the innermost id;
  ``_.inet.<host>.<port>`` gives service=host (as sent), port; ``_.io_l5d_fs.<name>`` and
  ``_.io_l5d_consul.<dc>[.<tag>].<svc>`` give service. When the tokens after a known id are
  not a known metric (a labelSelector value, a residual path), the id extends to where the
  metric catalogue (right-anchored, longest entry first) finds the metric; the tags still
  come from the grammar. Unknown namers: the metric is found the same way and ``service`` is
  the last id token.
* client_service scope (``client.<id>.service.<path>``, per-client per-logical-service
  request stats): ``client`` and ``via`` describe the concrete client as at client scope, and
  ``namespace``/``port``/``service`` describe the LOGICAL service exactly as at service scope.
  So grouping by (namespace, service) gives logical names at scope=service and
  client_service, and concrete names at scope=client; the concrete side of a
  client_service row is its ``client`` tag.
* server scope (``server.<ip>.<port>``): ``server`` = ``<ip with _ -> .>:<port>``.
* router scope (``bindcache``, ``interpreter``, anything else): just router and scope.

Failure families and Finagle's rollup. One failed request increments ``failures``,
``failures.<flag>`` for each flag, and every prefix of its exception cause chain, with and
without each flag: ``failures.A``, ``failures.A.B``, ``failures.interrupted.A``, ... The
mapping keeps each event counted once per tag combination:

* ``failures`` -> ``linkerd_failures`` with neither ``exception`` nor ``failure_flag``:
  the TOTAL.
* ``failures.<flag>`` -> ``linkerd_failures{failure_flag}`` (an event with two flags is in
  two flag series, by nature).
* ``failures[.<flag>].<Exc>`` (exactly one chain level) -> ``linkerd_failures{exception,
  [failure_flag]}``: ``exception`` is only ever the OUTERMOST exception.
* ``failures[.<flag>].<Exc1>.<Exc2>[...]`` (deeper lines) -> ``linkerd_failures_chain
  {exception=<Exc1>, cause=<Exc2>[.<Exc3>...], [failure_flag]}``, kept out of
  ``linkerd_failures`` so no sum over it is inflated. Within the chain measurement, rows
  whose ``cause`` has one token count each event with at least two levels once; longer causes
  are refinements of those (rollup again).

So: total = ``linkerd_failures`` rows without exception and failure_flag; by exception = rows
with exception and without failure_flag; by flag = rows with failure_flag and without
exception. ``service_creation.failures[.<flag>][.<Exc>...]`` (client scope: no session
could be acquired, e.g. a refused connection, which real Linkerd 1.7.5 records here and never
under ``failures``) follows the same rule in ``linkerd_service_creation_failures`` /
``linkerd_service_creation_failures_chain``. ``sourcedfailures.<source client id>[.<Exc>...]``
follows the same rule in
``linkerd_sourcedfailures`` / ``linkerd_sourcedfailures_chain``, with the source's client id
(as sent) in tag ``source``; the source id's length comes from the client id grammar (unknown
namers: the first Java-class-shaped token starts the exception chain). Also: ``exn.<Exc>`` ->
``linkerd_exn{exception}``; ``status.<code>`` -> ``linkerd_status{status_code}`` for numeric
codes and ``linkerd_status{status_class}`` for ``2XX``/``error`` (Finagle counts both for one
response, so the two tags keep them apart); ``time.<class>`` -> ``linkerd_time{status_class}``.

DogStatsD tags from the line are added last; a tag the mapping derived wins over a sent
tag of the same key, and sent ``host``/``le`` tags (owned by the sidecar's output) and empty
keys or values are dropped.

Empty tokens (``..``) are kept. Mapping never raises: anything that does not fit a grammar
falls back to a coarser scope (client -> router -> other).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from ingest_sidecar.model import SeriesKey

DEFAULT_CACHE_SIZE = 100_000
MAX_SERVICE_DEPTH = 64

_FAILURE_FLAGS = frozenset(
    {
        "interrupted",
        "restartable",
        "wrapped",
        "rejected",
        "naming",
        "nonretryable",
        "ignorable",
        "deadline_exceeded",
    }
)

_CATALOGUE_TEXT = """
requests success failures pending request_latency_ms load transit_latency_ms deadline_budget_ms
stream_duration_ms data_bytes stream_success stream_failures
retries.total retries.per_request retries.budget retries.budget_exhausted retries.requeues
retries.requeues_per_request retries.request_limit retries.cannot_retry retries.not_open
connections connects closes received_bytes sent_bytes connect_latency_ms
failed_connect_latency_ms cancelled_connects connection_duration connection_received_bytes
connection_sent_bytes connection_requests socket_writable_ms socket_unwritable_ms
tls.connections pending_io_events
loadbalancer.size loadbalancer.available loadbalancer.busy loadbalancer.closed
loadbalancer.load loadbalancer.meanweight loadbalancer.adds loadbalancer.removes
loadbalancer.rebuilds loadbalancer.updates loadbalancer.max_effort_exhausted loadbalancer.p2c
failfast.marked_dead failfast.marked_available failfast.unhealthy_for_ms
failfast.unhealthy_num_tries failfast.is_marked_dead
failure_accrual.removals failure_accrual.removed_for_ms failure_accrual.revivals
failure_accrual.probes
available pool_size pool_waiters pool_cached pool_num_waited pool_num_too_many_waiters
dispatcher.serial.queue_size service_creation.service_acquisition_latency_ms dtab.size
request_payload_bytes response_payload_bytes handletime_us read_timeout write_timeout
service_creation.failures http.stream.request.pending http.stream.response.pending
http.stream.request.opened http.stream.request.closed http.stream.response.opened
http.stream.response.closed loadbalancer.algorithm.p2c_least_loaded tcp_retransmits
tcp_send_window_size nack_admission_control.ema_value retries.requeues_per_request
"""
_CATALOGUE: frozenset[tuple[str, ...]] = frozenset(
    tuple(entry.split(".")) for entry in _CATALOGUE_TEXT.split()
)
_CATALOGUE_LENGTHS = tuple(sorted({len(entry) for entry in _CATALOGUE}, reverse=True))
# Variable families: the head token followed by at least one more token.
_FAMILY_HEADS = frozenset({"failures", "sourcedfailures", "exn", "status", "time", "stream"})
# ``service_creation.failures[.<flag>].<Exc>...``: session acquisition (connect) failures.
_SERVICE_CREATION = "service_creation"
_STREAM_SIDES = frozenset({"request", "response"})

_K8S_TOKEN = re.compile(r"[a-z0-9_]+")
_HTTP_VERSION = re.compile(r"[0-9]+(?:_[0-9]+)?")
_HTTP_METHOD = re.compile(r"[A-Z]+")
# A sanitised Java class name: lowercase package segments, then a capitalised class.
_JAVA_CLASS = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*_[A-Z][A-Za-z0-9_]*")
_NOT_MEASUREMENT = re.compile(r"[^A-Za-z0-9_]")
_RESERVED_EXTRA_TAGS = frozenset({"host", "le"})

Tags = dict[str, str]
Tokens = Sequence[str]


def parse_service_depths(text: str) -> dict[str, int]:
    """Parse ``"incoming=3,outgoing=1"`` (router label -> service path tokens after the
    dstPrefix). Blank text gives ``{}``; a bad entry raises ``ValueError`` naming it."""
    depths: dict[str, int] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        router, eq, number = (part.strip() for part in entry.partition("="))
        if not eq or not router or not number.isdigit():
            raise ValueError(
                f"bad service depth entry {entry!r}: expected <router>=<tokens>, e.g. incoming=3"
            )
        depth = int(number)
        if not 1 <= depth <= MAX_SERVICE_DEPTH:
            raise ValueError(
                f"bad service depth entry {entry!r}: depth must be 1..{MAX_SERVICE_DEPTH}"
            )
        if router in depths:
            raise ValueError(f"bad service depth entry {entry!r}: router {router!r} repeated")
        depths[router] = depth
    return depths


_LOGICAL_SCOPES = frozenset({"service", "client_service"})


def parse_service_namespaces(text: str) -> dict[str, str]:
    """``"outgoing=production,incoming=production"`` -> {router: namespace}."""
    result: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        router, sep, namespace = (part.strip() for part in entry.partition("="))
        if not sep or not router or not namespace:
            raise ValueError(f"bad service namespace entry {entry!r}: write router=namespace")
        if router in result:
            raise ValueError(f"bad service namespace entry {entry!r}: router {router!r} repeated")
        result[router] = namespace
    return result


class NameMapper:
    """Maps statsd names to :class:`SeriesKey`; pure, deterministic, with a bounded cache."""

    def __init__(
        self,
        prefix: str = "linkerd",
        service_depths: Mapping[str, int] | None = None,
        *,
        service_namespaces: Mapping[str, str] | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        """``service_namespaces``: router -> the Kubernetes namespace its logical names live
        in (what the router's dtab says, e.g. ``/svc => /#/io.l5d.k8s/production/http``).
        Logical names carry no namespace of their own with the Host-header identifier, so
        without it ``svc/checkout`` is keyed ``checkout`` while its k8s client is keyed
        ``production/checkout``."""
        depths = dict(service_depths or {})
        for router, depth in depths.items():
            if not 1 <= depth <= MAX_SERVICE_DEPTH:
                raise ValueError(
                    f"service depth for router {router!r} must be 1..{MAX_SERVICE_DEPTH}: {depth}"
                )
        if cache_size < 1:
            raise ValueError(f"cache_size must be positive: {cache_size}")
        self._dotted_prefix = prefix + "." if prefix else ""
        self._depths = depths
        self._namespaces = dict(service_namespaces or {})
        self._cache_size = cache_size
        self._cache: dict[object, SeriesKey] = {}

    @property
    def cached(self) -> int:
        """Names currently in the cache (at most ``cache_size``)."""
        return len(self._cache)

    def map(self, name: str, extra_tags: tuple[tuple[str, str], ...] = ()) -> SeriesKey:
        # A bare name saves a tuple per sample; keying every name as (name, ()) would map the
        # same (an equivalent mutant in the mutation run).
        cache_key: object = (name, extra_tags) if extra_tags else name
        key = self._cache.get(cache_key)
        if key is None:
            key = self._map(name, extra_tags)
            if len(self._cache) >= self._cache_size:
                # Clearing beats LRU bookkeeping on the hot path; names repeat, so it refills.
                self._cache.clear()
            self._cache[cache_key] = key
        return key

    def _map(self, name: str, extra_tags: tuple[tuple[str, str], ...]) -> SeriesKey:
        measurement, tags = self._measure(name)
        for key, value in extra_tags:
            if key and value and key not in tags and key not in _RESERVED_EXTRA_TAGS:
                tags[key] = value
        return SeriesKey(
            _NOT_MEASUREMENT.sub("_", measurement),
            tuple(sorted((k, v) for k, v in tags.items() if v)),
        )

    def _measure(self, name: str) -> tuple[str, Tags]:
        prefix = self._dotted_prefix
        if prefix and not name.startswith(prefix):
            return _root(name.split("."), foreign=True)
        t = name[len(prefix) :].split(".")
        if t[0] != "rt" or len(t) < 3:
            # foreign=None would read the same (falsy): an equivalent mutant.
            return _root(t, foreign=False)
        router, word = t[1], t[2]
        found: tuple[str, Tags] | None = None
        if word == "service":
            found = self._service(t, router, 3)
        elif word == "client":
            found = self._client(t, router, 3, "service")
        elif word in ("server", "srv"):
            found = _server(t, 3)
        elif word == "dst" and len(t) > 3 and t[3] == "path":
            found = self._service(t, router, 4)
        elif word == "dst" and len(t) > 3 and t[3] == "id":
            found = self._client(t, router, 4, "path")
        if found is None:
            found = _metric(t[2:], {"scope": "router"})
        tags = found[1]
        tags["router"] = router
        namespace = self._namespaces.get(router)
        if namespace and tags.get("scope") in _LOGICAL_SCOPES and not tags.get("namespace"):
            tags["namespace"] = namespace
        return found

    # -- service scope -------------------------------------------------------------------

    def _service(self, t: Tokens, router: str, start: int) -> tuple[str, Tags] | None:
        depth = self._path_depth(t, start, router)
        if depth is None:
            return None
        end = start + 1 + depth
        return _metric(t[end:], {"scope": "service", **_service_tags(t[start + 1 : end])})

    def _path_depth(self, t: Tokens, start: int, router: str) -> int | None:
        """Service path tokens after the dstPrefix at ``t[start]``; at least one metric
        token must remain. None when there is no room for a path."""
        room = len(t) - start - 2
        if room < 1:
            return None
        configured = self._depths.get(router)
        if configured is not None:
            return min(configured, room)
        if room >= 3 and _is_method_host(t[start + 1], t[start + 2]):
            return 3
        if _is_metric(t, start + 2):
            return 1
        found = _find_metric_start(t, start + 2)
        return 1 if found is None else found - start - 1

    # -- client and client_service scopes ------------------------------------------------

    def _client(self, t: Tokens, router: str, start: int, marker: str) -> tuple[str, Tags] | None:
        n = len(t)

        def metric_follows(j: int) -> bool:
            return j < n and (t[j] == marker or _is_metric(t, j))

        parsed = _client_id(t, start, metric_follows)
        if parsed is not None and parsed[0] < n:
            end, id_tags = parsed
            if not metric_follows(end):
                # A residual path or a labelSelector value after the id: the catalogue says
                # where the metric starts.
                end = _find_metric_start(t, end + 1) or end
            path_at = end
        else:
            unknown = _unknown_client_split(t, start)
            if unknown is None:
                return None
            end = unknown
            id_tags = {"service": t[end - 1]}
            path_at = self._unknown_path_marker(t, start, end, router, marker)
        client_tags: Tags = {"client": ".".join(t[start:path_at])}
        if "via" in id_tags:
            client_tags["via"] = id_tags["via"]
        if path_at < end or (t[path_at] == marker and path_at + 1 < n):
            svc = self._service(t, router, path_at + 1)
            if svc is not None:
                svc[1].update(client_tags, scope="client_service")
                return svc
        return _metric(t[end:], {"scope": "client", **id_tags, **client_tags})

    def _unknown_path_marker(
        self, t: Tokens, start: int, end: int, router: str, marker: str
    ) -> int:
        """Where an unknown-namer id ends when a ``service.<path>`` sits before the metric
        at ``end``; ``end`` itself when there is none."""
        lowest = start + (3 if t[start] == "_" else 1)
        configured = self._depths.get(router)
        # Configured depth fixes the marker's place; otherwise the rightmost marker wins.
        candidates = (
            [end - 2 - configured] if configured is not None else range(end - 3, lowest - 1, -1)
        )
        for p in candidates:
            if p >= lowest and t[p] == marker:
                return p
        return end


def _root(t: list[str], *, foreign: bool) -> tuple[str, Tags]:
    scope = "jvm" if t[0] == "jvm" and not foreign else "other"
    return "linkerd_" + "_".join(t), {"scope": scope}


def _server(t: Tokens, start: int) -> tuple[str, Tags] | None:
    if len(t) < start + 3:
        return None
    ip, port = t[start], t[start + 1]
    tags: Tags = {"scope": "server"}
    if ip and port:
        tags["server"] = f"{ip.replace('_', '.')}:{port}"
    return _metric(t[start + 2 :], tags)


def _k8s(token: str) -> str:
    return token.replace("_", "-")


def _is_method_host(version: str, method: str) -> bool:
    return bool(_HTTP_VERSION.fullmatch(version) and _HTTP_METHOD.fullmatch(method))


def _logical(token: str) -> str:
    """A logical service token: DNS-shaped (lowercase) ones get their ``-`` back, so the
    name matches the concrete k8s client's; others (``helloworld_Greeter``) stay as sent."""
    return token.replace("_", "-") if _K8S_TOKEN.fullmatch(token) else token


def _service_tags(path: Tokens) -> Tags:
    if len(path) == 3:
        first, second, third = path
        if _is_method_host(first, second):
            return {"service": _logical(third)}
        if all(_K8S_TOKEN.fullmatch(token) for token in path):
            return {"namespace": _k8s(first), "port": _k8s(second), "service": _k8s(third)}
    return {"service": ".".join(_logical(token) for token in path)}


def _client_id(t: Tokens, i: int, metric_follows: Callable[[int], bool]) -> tuple[int, Tags] | None:
    """Parse a client id at ``t[i]`` with the namer grammar: (index after it, tags), or None
    for an unknown namer or a truncated id. Iterative: transformers nest ids."""
    n = len(t)
    via: str | None = None
    while i + 2 < n and t[i] == "_":
        namer = t[i + 1]
        if namer == "io_l5d_k8s_daemonset" and i + 5 < n:
            via = via or "daemonset"
            i += 5
            continue
        if namer == "io_l5d_k8s_localnode" and i + 3 < n:
            via = via or "localnode"
            i += 3
            continue
        if namer == "io_l5d_port" and i + 3 < n:
            # ``/%/io.l5d.port/<port>/<id>``: endpoints rewritten to one port (a per-node
            # Linkerd, as the daemonset transformer does without Kubernetes).
            via = via or "port"
            i += 3
            continue
        parsed = _leaf_id(t, i, namer, metric_follows)
        if parsed is None:
            return None
        if via is not None:
            parsed[1]["via"] = via
        return parsed
    return None


def _leaf_id(
    t: Tokens, i: int, namer: str, metric_follows: Callable[[int], bool]
) -> tuple[int, Tags] | None:
    n = len(t)
    if namer == "io_l5d_k8s" and i + 5 <= n:
        return i + 5, {
            "namespace": _k8s(t[i + 2]),
            "port": _k8s(t[i + 3]),
            "service": _k8s(t[i + 4]),
        }
    if namer == "inet" and i + 4 <= n:
        return i + 4, {"service": t[i + 2], "port": t[i + 3]}
    if namer == "io_l5d_fs" and i + 3 <= n:
        return i + 3, {"service": t[i + 2]}
    if namer == "io_l5d_consul" and i + 4 <= n:
        end = i + 5 if i + 5 <= n and not metric_follows(i + 4) and metric_follows(i + 5) else i + 4
        return end, {"service": t[end - 1]}
    return None


def _unknown_client_split(t: Tokens, start: int) -> int | None:
    """Metric start for a client id the grammar does not know (catalogue fallback, else the
    last token); None when no id token would remain."""
    n = len(t)
    if start >= n:  # `rt.<router>.client` with nothing after it
        return None
    lowest = start + (3 if t[start] == "_" else 1)
    found = _find_metric_start(t, lowest)
    if found is not None:
        return found
    return n - 1 if n - 1 >= start + 1 else None


def _is_metric(t: Tokens, j: int) -> bool:
    n = len(t)
    if j >= n:
        return False
    if n - j <= _CATALOGUE_LENGTHS[0] and tuple(t[j:]) in _CATALOGUE:
        return True
    return _is_family(t, j)


def _is_family(t: Tokens, j: int) -> bool:
    n = len(t)
    head = t[j]
    if head in _FAMILY_HEADS:
        return j + 1 < n
    if head == _SERVICE_CREATION:
        return j + 2 < n and t[j + 1] == "failures"
    return head in _STREAM_SIDES and j + 2 < n and t[j + 1] == "stream"


def _find_metric_start(t: Tokens, lowest: int) -> int | None:
    """Right-anchored catalogue match (longest entry first), then the leftmost variable
    family head; never before ``lowest``."""
    n = len(t)
    for length in _CATALOGUE_LENGTHS:
        j = n - length
        if j >= lowest and tuple(t[j:]) in _CATALOGUE:
            return j
    for j in range(max(lowest, 0), n):
        if _is_family(t, j):
            return j
    return None


# -- metric tokens -> measurement and family tags ----------------------------------------


def _metric(m: Tokens, tags: Tags) -> tuple[str, Tags]:
    head = m[0]
    if len(m) > 1:
        if head == "failures":
            return _failures(m, tags)
        if head == _SERVICE_CREATION and m[1] == "failures":
            return _failures(m[1:], tags, "linkerd_service_creation_failures")
        if head == "sourcedfailures":
            return _sourced(m, tags)
        if head == "exn":
            tags["exception"] = ".".join(m[1:])
            return "linkerd_exn", tags
        if head in ("status", "time"):
            code = ".".join(m[1:])
            tags["status_code" if code.isdigit() else "status_class"] = code
            return "linkerd_" + head, tags
    return "linkerd_" + "_".join(m), tags


def _failures(m: Tokens, tags: Tags, measurement: str = "linkerd_failures") -> tuple[str, Tags]:
    chain = m[1:]
    if chain and chain[0] in _FAILURE_FLAGS:
        tags["failure_flag"] = chain[0]
        chain = chain[1:]
    return _chain(measurement, chain, tags)


def _sourced(m: Tokens, tags: Tags) -> tuple[str, Tags]:
    n = len(m)

    def exception_follows(j: int) -> bool:
        return j == n or bool(_JAVA_CLASS.fullmatch(m[j]))

    parsed = _client_id(m, 1, exception_follows)
    # Unknown namers, residual paths: the first Java-class-shaped token starts the chain.
    lowest = parsed[0] if parsed is not None else (4 if m[1] == "_" else 2)
    end = next(j for j in range(lowest, n + 1) if exception_follows(j))
    tags["source"] = ".".join(m[1:end])
    return _chain("linkerd_sourcedfailures", m[end:], tags)


def _chain(measurement: str, chain: Tokens, tags: Tags) -> tuple[str, Tags]:
    if chain:
        tags["exception"] = chain[0]
        if len(chain) > 1:
            tags["cause"] = ".".join(chain[1:])
            return measurement + "_chain", tags
    return measurement, tags
