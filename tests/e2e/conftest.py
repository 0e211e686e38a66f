"""End-to-end tests of ``meshalert run`` as a subprocess (select them with ``-m e2e``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.http_server import RecordingHttpServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: runs `meshalert run` as a subprocess for about a minute"
    )


@pytest.fixture
def slack_server() -> Iterator[RecordingHttpServer]:
    """A second recording server standing in for Slack (``http_server`` is the webhook)."""
    server = RecordingHttpServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
