"""Kubernetes manifests: schema-valid offline, and consistent with each other and Linkerd.

Schemas come bundled with the PyPI package kubernetes-validate (strict mode: unknown
fields are errors), so nothing is fetched at test time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (bundled k8s schemas)"
)

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _all() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        yield from _documents(path)


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _all() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _containers() -> dict[str, dict[str, Any]]:
    pod = _one("DaemonSet", "l5d")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def _linkerd_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_one("ConfigMap", "l5d-config")["data"]["config.yaml"])
    return config


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_matches_kubernetes_schema(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path.name} is empty"
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_validator_rejects_a_broken_manifest() -> None:
    daemonset = _one("DaemonSet", "l5d")
    daemonset["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "4140"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES_VERSION, strict=True)
    daemonset = _one("DaemonSet", "l5d")
    daemonset["spec"]["template"]["spec"]["hostNetwrok"] = False
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    assert listed == {p.name for p in MANIFESTS} - {"secret.template.yaml"}
    images = {i["name"] for i in kustomization["images"]}
    assert "meshalert-sidecar" in images
    namespaces = {d["metadata"].get("namespace") for d in _all() if d["kind"] != "Namespace"}
    assert namespaces <= {kustomization["namespace"], None}


def test_statsd_telemeter_points_at_the_sidecar() -> None:
    (statsd,) = [t for t in _linkerd_config()["telemetry"] if t["kind"] == "io.l5d.statsd"]
    assert statsd["experimental"] is True
    assert statsd["prefix"] == "linkerd"
    assert 0 < statsd["sampleRate"] <= 1
    assert statsd["gaugeIntervalMs"] == 10000
    env = {e["name"]: e for e in _containers()["meshalert-sidecar"]["env"]}
    assert env["MESHALERT_STATSD_LISTEN"]["value"] == f"{statsd['hostname']}:{statsd['port']}"
    assert env["MESHALERT_STATSD_PREFIX"]["value"] == statsd["prefix"]
    assert env["MESHALERT_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert statsd["hostname"] == "127.0.0.1"


def test_routers_ports_and_admin() -> None:
    config = _linkerd_config()
    assert config["admin"]["ip"] == "127.0.0.1"
    routers = {r["label"]: r for r in config["routers"]}
    assert routers["outgoing"]["servers"][0]["port"] == 4140
    assert routers["incoming"]["servers"][0]["port"] == 4141
    (daemonset_transformer,) = routers["outgoing"]["interpreter"]["transformers"]
    assert daemonset_transformer["kind"] == "io.l5d.k8s.daemonset"
    service = _one("Service", daemonset_transformer["service"])
    assert daemonset_transformer["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert routers["incoming"]["interpreter"]["transformers"][0]["kind"] == "io.l5d.k8s.localnode"
    (namer,) = config["namers"]
    proxy_args = " ".join(_containers()["kubectl"]["args"])
    assert f"--port={namer['port']}" in proxy_args

    l5d = _containers()["l5d"]
    assert l5d["image"] == "buoyantio/linkerd:1.7.5"
    ports = {p["name"]: p for p in l5d["ports"]}
    assert ports["outgoing"]["hostPort"] == 4140 and ports["incoming"]["hostPort"] == 4141
    exposed = [p for c in _containers().values() for p in c.get("ports", [])]
    assert 9990 not in {p["containerPort"] for p in exposed}
    assert 9990 not in {p["port"] for p in service["spec"]["ports"]}
    assert _one("DaemonSet", "l5d")["spec"]["template"]["spec"]["hostNetwork"] is False


def test_containers_are_bounded_pinned_and_sidecar_locked_down() -> None:
    for name, container in _containers().items():
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), name
        assert {"requests", "limits"} <= set(container["resources"]), name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
    sidecar = _containers()["meshalert-sidecar"]
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True and security["readOnlyRootFilesystem"] is True
    pod = _one("DaemonSet", "l5d")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    spool_mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "spool")
    assert volumes["spool"]["emptyDir"]["sizeLimit"]
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["MESHALERT_SPOOL_DIR"]["value"] == spool_mount["mountPath"]


def test_sidecar_series_budget_fits_its_memory_limit() -> None:
    """The default MAX_SERIES (100000) peaked above 256Mi under a flood of distinct names
    (benchmarks/cardinality.py); 25000 peaked at 174 MiB. A limit the process can exceed
    gets the sidecar OOM-killed with its unflushed interval, so the two move together."""
    sidecar = _containers()["meshalert-sidecar"]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    limit = sidecar["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    max_series = int(env["MESHALERT_MAX_SERIES"])
    assert max_series <= 25_000 * int(limit[:-2]) // 256


def test_secret_refs_match_the_template_and_it_holds_no_real_secret() -> None:
    template = _one("Secret", "meshalert-sidecar")
    keys = set(template["stringData"])
    for entry in _containers()["meshalert-sidecar"]["env"]:
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "meshalert-sidecar" and ref["key"] in keys
    assert all("CHANGE_ME" in value for value in template["stringData"].values())


def test_rbac_grants_only_reads_to_the_linkerd_service_account() -> None:
    role = _one("ClusterRole", "linkerd-l5d-namer")
    (rule,) = role["rules"]
    assert set(rule["resources"]) == {"endpoints", "services", "pods"}
    assert set(rule["verbs"]) == {"get", "list", "watch"}
    binding = _one("ClusterRoleBinding", "linkerd-l5d-namer")
    (subject,) = binding["subjects"]
    pod = _one("DaemonSet", "l5d")["spec"]["template"]["spec"]
    assert (
        subject["name"]
        == pod["serviceAccountName"]
        == _one("ServiceAccount", "l5d")["metadata"]["name"]
    )
