"""The engine's and the command line's settings, from ``MESHALERT_*`` variables and flags.

Precedence: a command-line flag > the environment > the defaults here. Empty variables count
as unset (deployment templates often pass ``""`` for an option not used). Secrets are
``SecretStr`` and never appear in ``repr`` or in error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
)

from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import (
    DEFAULT_STATE,
    DEFAULT_STORE,
    StateConfig,
    StoreConfig,
    parse_state_url,
    parse_store_url,
)
from meshalert.durations import parse_duration_ms
from meshalert.rules.models import Duration, PositiveDuration

_SNS_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")

ENV_NAMES: Mapping[str, str] = {
    "store_url": "MESHALERT_STORE",
    "influxdb_token": "MESHALERT_INFLUXDB_TOKEN",
    "influxdb_username": "MESHALERT_INFLUXDB_USERNAME",
    "influxdb_password": "MESHALERT_INFLUXDB_PASSWORD",
    "eval_interval": "MESHALERT_EVAL_INTERVAL",
    "state": "MESHALERT_STATE",
    "slack_webhook_url": "MESHALERT_SLACK_WEBHOOK_URL",
    "sns_topic_arn": "MESHALERT_SNS_TOPIC_ARN",
    "webhook_url": "MESHALERT_WEBHOOK_URL",
    "rules": "MESHALERT_RULES",
    "rules_file": "MESHALERT_RULES_FILE",
    "rules_ssm_parameter": "MESHALERT_RULES_SSM_PARAMETER",
    "retention": "MESHALERT_RETENTION",
    "renotify": "MESHALERT_RENOTIFY",
    "flush_interval": "MESHALERT_FLUSH_INTERVAL",
    "window_grace": "MESHALERT_WINDOW_GRACE",
    "endpoints_lookback": "MESHALERT_ENDPOINTS_LOOKBACK",
}
"""Setting -> environment variable."""


class SettingsError(ValueError):
    """A bad setting; the message names the variable (or flag) and never echoes a secret."""


def _check_store(url: SecretStr) -> SecretStr:
    try:
        parse_store_url(url.get_secret_value())
    except StoreUrlError as exc:  # its messages redact passwords
        raise ValueError(str(exc)) from None
    return url


def _check_state(url: str) -> str:
    parse_state_url(url)
    return url


def _check_http_secret(url: SecretStr) -> SecretStr:
    if not url.get_secret_value().startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


def _check_sns_arn(arn: str) -> str:
    if not _SNS_ARN.fullmatch(arn):
        raise ValueError("write an SNS topic ARN: arn:aws:sns:REGION:ACCOUNT:TOPIC")
    return arn


class Settings(BaseModel):
    """Validated once; build with :meth:`from_env`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    store_url: Annotated[SecretStr, AfterValidator(_check_store)] = SecretStr(DEFAULT_STORE)
    """Secret: influxdb1 URLs may carry user:password (see ``store`` and ``store_display``)."""
    influxdb_token: SecretStr | None = None
    influxdb_username: SecretStr | None = None
    influxdb_password: SecretStr | None = None
    eval_interval: PositiveDuration = "1m"
    state: Annotated[str, AfterValidator(_check_state)] = DEFAULT_STATE
    slack_webhook_url: Annotated[SecretStr, AfterValidator(_check_http_secret)] | None = None
    sns_topic_arn: Annotated[str, AfterValidator(_check_sns_arn)] | None = None
    webhook_url: Annotated[SecretStr, AfterValidator(_check_http_secret)] | None = None
    rules: str | None = Field(default=None, repr=False)
    rules_file: str | None = None
    rules_ssm_parameter: str | None = None
    retention: PositiveDuration = "7d"
    renotify: PositiveDuration = "4h"
    flush_interval: PositiveDuration = "10s"
    """The sidecar's flush interval (the same variable it reads)."""
    window_grace: Duration = "5s"
    """How long after an interval's end its flush may still be on its way to the store."""
    endpoints_lookback: PositiveDuration = "30m"
    """How far back the endpoints class learns each load balancer's largest size."""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], flags: Mapping[str, str | None] | None = None
    ) -> Settings:
        """Settings from ``env`` with ``flags`` (setting name -> value, None = not given) on top."""
        values: dict[str, str] = {}
        origin: dict[str, str] = {}
        for name, variable in ENV_NAMES.items():
            if env.get(variable, "").strip():
                values[name], origin[name] = env[variable].strip(), variable
        for name, value in (flags or {}).items():
            if name not in ENV_NAMES:
                raise SettingsError(f"unknown setting {name!r}")
            if value is not None:
                values[name], origin[name] = value, flag_name(name)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise _settings_error(exc, origin) from None

    @property
    def store(self) -> StoreConfig:
        """The store with its credentials (never printed: the store types hide them)."""
        return parse_store_url(
            self.store_url.get_secret_value(),
            token=_reveal(self.influxdb_token),
            username=_reveal(self.influxdb_username),
            password=_reveal(self.influxdb_password),
        )

    @property
    def store_display(self) -> str:
        """The store URL with any password masked, for logs and ``status`` output."""
        url = self.store_url.get_secret_value()
        password = urlsplit(url).password
        # Replace the text rather than rebuild the URL: urlunsplit drops sqlite's empty host.
        return url if password is None else url.replace(f":{password}@", ":***@", 1)

    @property
    def state_config(self) -> StateConfig:
        return parse_state_url(self.state)

    @property
    def eval_interval_ms(self) -> int:
        return parse_duration_ms(self.eval_interval)

    @property
    def window_settle_ms(self) -> int:
        """Windows end this long before the cycle time: the newest flush interval and the
        grace, so no window reads an interval the sidecar is still writing."""
        return parse_duration_ms(self.flush_interval) + parse_duration_ms(self.window_grace)

    @property
    def endpoints_lookback_ms(self) -> int:
        return parse_duration_ms(self.endpoints_lookback)

    @property
    def retention_ms(self) -> int:
        return parse_duration_ms(self.retention)

    @property
    def renotify_ms(self) -> int:
        return parse_duration_ms(self.renotify)


def flag_name(setting: str) -> str:
    return "--" + setting.removesuffix("_url" if setting == "store_url" else "").replace("_", "-")


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _settings_error(exc: ValidationError, origin: Mapping[str, str]) -> SettingsError:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        where = origin.get(name, ENV_NAMES.get(name, name))
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return SettingsError("; ".join(problems))


# Every MESHALERT_* name any component reads (engine, sidecar, CLI, Lambda handlers, tests),
# so a typo in one is reported instead of silently falling back to a default.
OTHER_VARIABLES = (
    "MESHALERT_STATSD_LISTEN",
    "MESHALERT_STATSD_PREFIX",
    "MESHALERT_FLUSH_INTERVAL",
    "MESHALERT_SPOOL_DIR",
    "MESHALERT_SPOOL_MAX_BYTES",
    "MESHALERT_HOST",
    "MESHALERT_MAX_SERIES",
    "MESHALERT_SERVICE_DEPTH",
    "MESHALERT_SERVICE_NAMESPACE",
    "MESHALERT_WRITE_BATCH_LINES",
    "MESHALERT_ROUTES",
    "MESHALERT_RUNBOOK_URL",
    "MESHALERT_LOG_LEVEL",
    "MESHALERT_SSM_PREFIX",
    "MESHALERT_HEARTBEAT_INGEST_STALE",
    "MESHALERT_HEARTBEAT_EVALUATION_STALE",
    "MESHALERT_DEAD_LETTER_MAX_BYTES",
    "MESHALERT_LINKERD_ADMIN_URL",
    "MESHALERT_STATUS_LISTEN",
    "MESHALERT_AUTHOR",  # meshalert silence: who adds or expires a silence
    "MESHALERT_GROUP_THRESHOLD",
    "MESHALERT_GROUP_BY",
    "MESHALERT_STATUS_URL",
    "MESHALERT_HISTORY_TO_STORE",  # meshalert.history_sink: transitions as meshalert_alert
    # make test and the tools it builds: these must be there (no skip), or live elsewhere
    "MESHALERT_REQUIRE_NODE",
    "MESHALERT_REQUIRE_BROWSER",
    "MESHALERT_REQUIRE_INFLUXDB2",
    "MESHALERT_CACHE",
    "MESHALERT_INFLUXD2",
    "MESHALERT_LINKERD_HOME",
)
VARIABLE_PREFIXES = (
    "MESHALERT_RULE__",
    "MESHALERT_TEST_",
    "MESHALERT_BENCH_",
    "MESHALERT_FUZZ_",
)
"""Rule overrides are validated by the rules loader; tests and benchmarks have their own."""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def known_variables() -> tuple[str, ...]:
    return tuple(sorted({*ENV_NAMES.values(), *OTHER_VARIABLES}))


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One warning per ``MESHALERT_*`` name nothing reads, naming the closest known one."""
    import difflib

    known = known_variables()
    warnings = []
    for name in sorted(env):
        if not name.startswith("MESHALERT_") or name in known:
            continue
        if name.startswith(VARIABLE_PREFIXES):
            continue
        # Compared without the shared prefix, which would make every name look close.
        suffixes = [k.removeprefix("MESHALERT_") for k in known]
        close = difflib.get_close_matches(name.removeprefix("MESHALERT_"), suffixes, n=1)
        hint = f"; did you mean MESHALERT_{close[0]}?" if close else " (see README: Configuration)"
        warnings.append(f"unknown variable {name} is ignored{hint}")
    return warnings


def parse_log_level(text: str | None) -> str:
    """``MESHALERT_LOG_LEVEL`` -> an upper-case logging level name; unknown names are errors."""
    value = (text or "").strip().lower() or "info"
    if value not in LOG_LEVELS:
        raise SettingsError(
            f"MESHALERT_LOG_LEVEL: unknown level {text!r}; use one of {', '.join(LOG_LEVELS)}"
        )
    return value.upper()
