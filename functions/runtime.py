"""The per-container wiring of the Lambda handlers, built once per cold start.

A Lambda container runs one invocation at a time and is reused while warm, so settings,
AWS clients, the store reader, the state store, the router and the rules provider (with its
SSM cache) are built on the first invocation and kept in a module-level :class:`Container`.
Parts only one handler needs (the window reader pulls in a store client) are built on first
use.

Secrets: ``MESHALERT_INFLUXDB_TOKEN``, ``MESHALERT_INFLUXDB_PASSWORD``,
``MESHALERT_SLACK_WEBHOOK_URL`` and ``MESHALERT_WEBHOOK_URL`` come from the environment or,
when ``MESHALERT_SSM_PREFIX`` is set and the variable is not, from the SecureString
parameters ``<prefix>influxdb-token``, ``<prefix>influxdb-password``,
``<prefix>slack-webhook-url`` and ``<prefix>webhook-url`` (one ``GetParameters`` call with
decryption at cold start; a missing parameter means "not configured").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from meshalert.logs import configure_logging
from meshalert.settings import SECRET_PARAMETERS, LambdaSettings, warn_unknown_variables
from meshalert.wiring import build_router, needs_dynamodb, open_state

if TYPE_CHECKING:
    from meshalert.history_sink import HistorySink
    from meshalert.notify.router import Router
    from meshalert.queries.model import WindowReader
    from meshalert.rules import RulesProvider
    from meshalert.state.protocols import StateStore

__all__ = ["SECRET_PARAMETERS"]

SAFETY_MARGIN_MS = 3_000
"""Kept back from the invocation's remaining time: saving state and logging the canonical
line after the last notification must still fit before Lambda kills the run."""


class LambdaContext(Protocol):
    """The two members of the Lambda context object the handlers use."""

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass
class AwsClients:
    """boto3 clients, made on first use (a store-only configuration never makes one)."""

    region: str | None = None
    ssm: Any = None
    sns: Any = None
    dynamodb: Any = None

    def ssm_client(self) -> Any:
        if self.ssm is None:
            self.ssm = _boto3_client("ssm", self.region)
        return self.ssm

    def sns_client(self) -> Any:
        if self.sns is None:
            from meshalert.notify.sns import SNS_CLIENT_CONFIG

            self.sns = _boto3_client("sns", self.region, config=SNS_CLIENT_CONFIG)
        return self.sns

    def dynamodb_client(self) -> Any:
        if self.dynamodb is None:
            self.dynamodb = _boto3_client("dynamodb", self.region)
        return self.dynamodb


def _boto3_client(service: str, region: str | None, **kwargs: Any) -> Any:
    import boto3

    return boto3.client(service, region_name=region, **kwargs)  # type: ignore[call-overload]


@dataclass
class Container:
    settings: LambdaSettings
    """From the environment, with SSM secrets filled in (never logged)."""
    clients: AwsClients
    state: StateStore
    router: Router
    built_ms: float
    """How long building took (cold-start figure)."""
    invocations: int = field(default=0)

    @cached_property
    def rules(self) -> RulesProvider:
        """Built on first use: the heartbeat never loads the rules package (YAML, botocore)."""
        from meshalert.rules import RulesProvider

        needs_ssm = self.settings.rules_ssm_parameter is not None
        ssm = self.clients.ssm_client() if needs_ssm else None
        return RulesProvider(self.settings, ssm_client=ssm)

    @cached_property
    def reader(self) -> WindowReader:
        from meshalert.wiring import open_reader

        return open_reader(self.settings.store)

    @cached_property
    def history_sink(self) -> HistorySink | None:
        from meshalert.wiring import open_history_sink

        return open_history_sink(self.settings)


def build_container(
    env: Mapping[str, str] | None = None,
    *,
    clients: AwsClients | None = None,
    log_stream: TextIO | None = None,
) -> Container:
    """Everything an invocation needs, from the environment (default: this process's) and
    SSM (:class:`meshalert.settings.LambdaSettings`)."""
    started = time.perf_counter()
    aws = clients or AwsClients()

    def ssm_client(region: str | None) -> Any:
        if aws.region is None:
            aws.region = region
        return aws.ssm_client()

    # A bad value raises SettingsError naming the variable (or the SSM prefix).
    settings = LambdaSettings.load(env, ssm_client=ssm_client)
    if aws.region is None:
        aws.region = settings.aws_region
    configure_logging(secrets=settings.secrets(), json=True, stream=log_stream)
    warn_unknown_variables(env)  # a typo in serverless.yml is not silently ignored
    state_config = settings.state_config
    dynamodb = aws.dynamodb_client() if needs_dynamodb(state_config) else None
    sns = aws.sns_client() if settings.sns_topic_arn else None
    return Container(
        settings=settings,
        clients=aws,
        state=open_state(state_config, dynamodb_client=dynamodb),
        router=build_router(settings, sns_client=sns),
        built_ms=(time.perf_counter() - started) * 1000,
    )


@dataclass
class _Slot:
    container: Container | None = None


_lock = threading.Lock()
_slot = _Slot()


def current() -> tuple[Container, bool]:
    """The container of this Lambda instance and whether this invocation built it."""
    with _lock:
        cold = _slot.container is None
        if _slot.container is None:
            _slot.container = build_container()
        _slot.container.invocations += 1
        return _slot.container, cold


def reset() -> None:
    """Forget the container: the next invocation is a cold start (tests, config reloads)."""
    with _lock:
        _slot.container = None


def deadline_s(context: LambdaContext, *, now_s: float, margin_ms: int = SAFETY_MARGIN_MS) -> float:
    """The absolute ``time.monotonic()`` deadline for notifications in this invocation."""
    remaining = context.get_remaining_time_in_millis()
    return now_s + max(remaining - margin_ms, 0) / 1000


def request_id(context: object) -> str:
    return str(getattr(context, "aws_request_id", "") or "")
