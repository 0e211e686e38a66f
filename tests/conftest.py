"""Fixtures shared by every test package.

Imported here (not via ``pytest_plugins``) so they resolve whichever directory pytest is
pointed at:

- ``influxd`` (session): a real InfluxDB 1.6.7 on a free 127.0.0.1 port, see
  :mod:`tests.fixtures.influxd`; ``influx_db`` (function): a fresh database name on it.
- ``http_server`` (function): a recording, scriptable HTTP server, see
  :mod:`tests.fixtures.http_server`.
"""

from tests.fixtures.http_server import http_server
from tests.fixtures.influxd import influx_db, influxd

__all__ = ["http_server", "influx_db", "influxd"]
