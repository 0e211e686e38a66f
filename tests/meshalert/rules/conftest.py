from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws


@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real boto3 SSM client against moto, counting GetParameter calls in ``.calls``."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("ssm", region_name="eu-west-1")
        calls: list[str] = []

        def count(params: dict[str, Any], **_: Any) -> None:
            calls.append(
                params["body"].get("Name", "") if isinstance(params.get("body"), dict) else ""
            )

        client.meta.events.register("before-call.ssm.GetParameter", count)
        client.calls = calls
        yield client
