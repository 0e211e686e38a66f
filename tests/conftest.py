"""Fixtures shared by every test package.

Imported here (not via ``pytest_plugins``) so they resolve whichever directory pytest is
pointed at:

- ``influxd`` (session): a real InfluxDB 1.6.7 on a free 127.0.0.1 port, see
  :mod:`tests.fixtures.influxd`; ``influx_db`` (function): a fresh database name on it.
- ``influxd2`` (session): a real InfluxDB 2.7 (Flux) on a free 127.0.0.1 port with a
  throwaway org, bucket and token, see :mod:`tests.fixtures.influxd2`; ``influxd2_bucket``
  (function): a fresh bucket on it.
- ``linkerd_mesh`` (session): a real Linkerd 1.7.5 (two routers, io.l5d.fs, io.l5d.statsd
  to a capture socket), see :mod:`tests.fixtures.linkerd`.
- ``http_server`` (function): a recording, scriptable HTTP server, see
  :mod:`tests.fixtures.http_server`.
"""

from tests.fixtures.http_server import http_server
from tests.fixtures.influxd import influx_db, influxd
from tests.fixtures.influxd2 import influxd2, influxd2_bucket
from tests.fixtures.linkerd import linkerd_mesh

__all__ = ["http_server", "influx_db", "influxd", "influxd2", "influxd2_bucket", "linkerd_mesh"]
