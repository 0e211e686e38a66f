"""Record ``/admin/metrics.json?tree=1`` snapshots from a real Linkerd 1.7.5 for pull mode.

    python -m tests.ingest_sidecar.record_admin_corpus   # needs `make deps-linkerd`

Writes ``tests/ingest_sidecar/data/admin_tree/NN.json`` (the trees exactly as served) and
``manifest.json``: for each snapshot, how many requests to service ``web`` this script had
sent through the ``outgoing`` router, and whether Linkerd was restarted before it. The script:
snapshot before any traffic; 20 requests; 10 more spread over a minute and a bit, so that
Linkerd's one-minute histogram snapshot holds them; a restart of Linkerd (same config and
ports) and 7 requests. ``test_admin_poller`` replays the snapshots over HTTP.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.fixtures.http_server import RecordingHttpServer
from tests.fixtures.influxd import free_port
from tests.fixtures.linkerd import Disco, LinkerdConfig, LinkerdProcess

OUT = Path(__file__).resolve().parent / "data" / "admin_tree"
SERVICE = "web"


def tree(linkerd: LinkerdProcess) -> object:
    url = linkerd.admin_url + "/admin/metrics.json?tree=1"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    backend = RecordingHttpServer()
    backend.set_default(200, "ok")
    backend.start()
    snapshots: list[tuple[object, int, bool]] = []
    sent = 0
    with TemporaryDirectory() as tmp:
        disco = Disco(Path(tmp) / "disco")
        disco.set(SERVICE, [backend.port])
        config = LinkerdConfig(disco.root, free_port())

        def send(n: int, spread_s: float = 0.0) -> None:
            nonlocal sent
            for _ in range(n):
                assert linkerd.request(SERVICE) == 200
                sent += 1
                time.sleep(spread_s)

        linkerd = LinkerdProcess(config, Path(tmp) / "run1")
        linkerd.start()
        try:
            snapshots.append((tree(linkerd), sent, False))
            send(20)
            snapshots.append((tree(linkerd), sent, False))
            send(10, spread_s=6.5)
            snapshots.append((tree(linkerd), sent, False))
        finally:
            linkerd.stop()
        linkerd = LinkerdProcess(config, Path(tmp) / "run2")
        linkerd.start()
        try:
            send(7)
            snapshots.append((tree(linkerd), sent, True))
        finally:
            linkerd.stop()
    backend.close()
    manifest = []
    for i, (doc, total, restarted) in enumerate(snapshots):
        name = f"{i:02d}.json"
        (OUT / name).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        manifest.append({"file": name, "sent_total": total, "restarted_before": restarted})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {len(snapshots)} snapshots to {OUT}")


if __name__ == "__main__":
    main()
