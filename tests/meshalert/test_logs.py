from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from meshalert.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    yield None
    structlog.reset_defaults()


def test_terminal_logs_show_names_from_data_escaped() -> None:
    out = io.StringIO()
    configure_logging(json=False, stream=out)
    structlog.get_logger("t").info("notify.sent", dedup_key="latency|x\x1b]0;owned\x07|1|firing")
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "x\\x1b]0;owned\\x07" in text


def test_json_logs_keep_the_exact_value() -> None:
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    structlog.get_logger("t").info("notify.sent", dedup_key="latency|x\x1b|1|firing")
    line = out.getvalue().strip()
    assert "\x1b" not in line  # JSON escapes it
    assert json.loads(line)["dedup_key"] == "latency|x\x1b|1|firing"
