"""Every process's settings, from ``MESHALERT_*`` variables and flags (pydantic-settings).

One model per process kind over a shared base (:class:`MeshalertSettings`: the store, its
credentials and the log level): :class:`Settings` for the engine (``meshalert run``,
``backtest``), :class:`LambdaSettings` for the Lambda handlers, :class:`CliSettings` for the
command line's own variables and ``ingest_sidecar.settings.SidecarSettings`` for the sidecar.
Nothing else in the project reads the environment.

Sources, highest first: keyword values (command-line flags, tests), the environment, and for
the Lambda handlers the SecureString parameters under ``MESHALERT_SSM_PREFIX`` (secrets only;
the rules document's SSM parameter is read by the rules loader, cached 60 s), then the
defaults here. Empty variables count as unset (deployment templates often pass ``""`` for an
option not used). Values are parsed once: durations are whole milliseconds, sizes bytes.
Errors name the variable (or flag); secrets are ``SecretStr`` and never appear in ``repr``
or in error messages.

Import cost: this module loads pydantic and pydantic-settings, never botocore or YAML (a
Lambda cold start imports it); those load only when a setting that needs them is given.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from meshalert.backends.sqlite.url import SqliteStore
from meshalert.backends.url_parts import StoreUrlError
from meshalert.backends.urls import (
    DEFAULT_STATE,
    DEFAULT_STORE,
    StateConfig,
    StoreConfig,
    parse_state_url,
    parse_store_url,
)
from meshalert.durations import DurationError, parse_duration_ms

if TYPE_CHECKING:
    from meshalert.notify.grouping import GroupingConfig
    from meshalert.notify.router import RoutingConfig

PREFIX = "MESHALERT_"
RULE_PREFIX = "MESHALERT_RULE__"
_SNS_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class SettingsError(ValueError):
    """A bad setting; the message names the variable (or flag) and never echoes a secret."""


# -- typed values, parsed once ------------------------------------------------------------


def _duration(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_duration_ms(value)
        except DurationError as exc:
            raise ValueError(str(exc)) from None
    return value


def _positive(ms: int) -> int:
    if ms <= 0:
        raise ValueError(f"duration must be longer than 0, got {ms}ms")
    return ms


DurationMs = Annotated[int, BeforeValidator(_duration), Field(ge=0)]
"""A duration (``500ms``, ``10s``, ``5m``, ``1h``, ``7d``) as whole milliseconds."""
PositiveDurationMs = Annotated[int, BeforeValidator(_duration), AfterValidator(_positive)]

_SIZE_TEXT = re.compile(r"\s*\d*\.?\d+\s*[A-Za-z]*\s*")
_K8S_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt])\s*", re.IGNORECASE)


def _size(value: object) -> object:
    """``512M`` has meant 512 MiB here (the Kubernetes reading); pydantic's ``ByteSize``
    reads the rest (``512MiB``, ``64MB`` decimal, a plain number of bytes)."""
    if isinstance(value, str):
        if match := _K8S_SIZE.fullmatch(value):
            return f"{match.group(1)}{match.group(2)}iB"
        if not _SIZE_TEXT.fullmatch(value):
            raise ValueError(f"bad size {value!r}; write e.g. 512MiB, 64MB or a number of bytes")
    return value


Bytes = Annotated[ByteSize, BeforeValidator(_size)]


def min_bytes(least: int, text: str) -> Callable[[ByteSize], ByteSize]:
    def check(size: ByteSize) -> ByteSize:
        if size < least:
            raise ValueError(f"must be at least {text}, got {size.human_readable()}")
        return size

    return check


def _check_store(url: SecretStr) -> SecretStr:
    try:
        parse_store_url(url.get_secret_value())
    except StoreUrlError as exc:  # its messages redact passwords
        raise ValueError(str(exc)) from None
    return url


def _check_state(url: str) -> str:
    parse_state_url(url)
    return url


def _check_http(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return url


def _check_http_secret(url: SecretStr) -> SecretStr:
    _check_http(url.get_secret_value())
    return url


def _check_sns_arn(arn: str) -> str:
    if not _SNS_ARN.fullmatch(arn):
        raise ValueError("write an SNS topic ARN: arn:aws:sns:REGION:ACCOUNT:TOPIC")
    return arn


def _check_log_level(text: str) -> str:
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise ValueError(f"unknown level {text!r}; use one of {', '.join(LOG_LEVELS)}")
    return value


def parse_log_level(text: str | None) -> str:
    """``MESHALERT_LOG_LEVEL`` -> an upper-case logging level name; unknown names are errors."""
    try:
        return _check_log_level(text or "info").upper()
    except ValueError as exc:
        raise SettingsError(f"MESHALERT_LOG_LEVEL: {exc}") from None


def _check_routes(text: str) -> str:
    _parse_routes(text)  # loads YAML, only when routes are given
    return text


def _parse_routes(text: str) -> RoutingConfig:
    from meshalert.notify.router import RoutingConfig

    try:
        return RoutingConfig.from_text(text)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            path = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"{path}: unknown key{_closest_route_key(str(error['loc'][-1]))}")
            else:
                problems.append(f"{path}: {error['msg'].removeprefix('Value error, ')}")
        raise ValueError("; ".join(problems)) from None
    except ValueError as exc:
        raise ValueError(" ".join(str(exc).split()).removeprefix("MESHALERT_ROUTES: ")) from None


_ROUTE_KEYS = ("routes", "match", "channels", "severity", "class", "service")


def _closest_route_key(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, _ROUTE_KEYS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(_ROUTE_KEYS)})"


_GROUP_KEYS = ("severity", "class", "state")


def _group_by(value: object) -> object:
    if not isinstance(value, str):
        return value
    keys = tuple(part.strip().lower() for part in value.split(",") if part.strip())
    unknown = [k for k in keys if k not in _GROUP_KEYS]
    if unknown or not keys or len(set(keys)) != len(keys):
        raise ValueError(
            f"write a comma-separated list of distinct keys from {', '.join(_GROUP_KEYS)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    return keys


def _whole_number(value: object) -> object:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError(f"{value.strip()!r} is not a whole number") from None
    return value


def _at_least_one(n: int) -> int:
    if n < 1:
        raise ValueError(f"must be at least 1, not {n}")
    return n


_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off"}


def _switch(value: object) -> object:
    if isinstance(value, str):
        raw = value.strip().lower()
        if raw in ("", "auto"):
            return "auto"
        if raw in _ON:
            return "on"
        if raw in _OFF:
            return "off"
        raise ValueError(f"write on, off or auto, not {raw[:40]!r}")
    return value


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


# -- sources --------------------------------------------------------------------------------

_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("meshalert_env", default=None)
"""The environment :meth:`MeshalertSettings.from_env` reads instead of ``os.environ``."""
_SSM_CLIENT: ContextVar[Callable[[str | None], Any] | None] = ContextVar(
    "meshalert_ssm", default=None
)


def process_environment() -> dict[str, str]:
    """A copy of this process's environment: the one place the project reads it."""
    return dict(os.environ)


def _current_environment() -> Mapping[str, str]:
    env = _ENVIRONMENT.get()
    return os.environ if env is None else env


class _EnvSource(EnvSettingsSource):
    """The environment (or the mapping given to ``from_env``); empty values count as unset
    except for the variables a model names in ``empty_means_off``."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        keep: frozenset[str] = getattr(self.settings_cls, "empty_means_off", frozenset())
        env = _current_environment()
        return {
            name.lower(): value
            for name, value in env.items()
            if name.startswith(PREFIX) and (value.strip() or name in keep)
        } | {
            # AWS_REGION and friends (LambdaSettings reads them without the prefix).
            name.lower(): value
            for name, value in env.items()
            if not name.startswith(PREFIX) and value.strip()
        }

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        # Values keep surrounding blanks out (templates quote with a trailing space).
        values = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        if "rule_overrides" in self.settings_cls.model_fields:
            env = _current_environment()
            values["rule_overrides"] = {n: env[n] for n in sorted(env) if n.startswith(RULE_PREFIX)}
        return values


class _SsmSecretsSource(PydanticBaseSettingsSource):
    """Secrets from SecureString parameters ``<MESHALERT_SSM_PREFIX><name>`` (one
    ``GetParameters`` call with decryption; a missing parameter means "not configured")."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ reads all parameters at once

    def __call__(self) -> dict[str, Any]:
        env = _current_environment()
        prefix = env.get("MESHALERT_SSM_PREFIX", "").strip()
        if not prefix:
            return {}
        factory = _SSM_CLIENT.get()
        if factory is None:
            raise SettingsError("MESHALERT_SSM_PREFIX: no SSM client to read the secrets with")
        # Keyed by the variable as the fields' aliases spell it.
        return dict(read_ssm_secrets(factory(_region(env)), prefix))


def _region(env: Mapping[str, str]) -> str | None:
    return env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip() or None


SECRET_PARAMETERS: Mapping[str, str] = {
    "influxdb-token": "MESHALERT_INFLUXDB_TOKEN",
    "influxdb-password": "MESHALERT_INFLUXDB_PASSWORD",
    "slack-webhook-url": "MESHALERT_SLACK_WEBHOOK_URL",
    "webhook-url": "MESHALERT_WEBHOOK_URL",
}
"""SSM parameter name (after the prefix) -> the variable it stands in for."""


def read_ssm_secrets(ssm: Any, prefix: str) -> dict[str, str]:
    """Variables for the secret parameters that exist under ``prefix`` (decrypted)."""
    names = {prefix + name: variable for name, variable in SECRET_PARAMETERS.items()}
    try:
        answer = ssm.get_parameters(Names=list(names), WithDecryption=True)
    except Exception as exc:  # botocore raises several unrelated types
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise SettingsError(
            f"MESHALERT_SSM_PREFIX={prefix}: cannot read the secret parameters ({code})"
        ) from None
    return {names[p["Name"]]: str(p["Value"]) for p in answer.get("Parameters", [])}


def _var(name: str, *more: str) -> Any:
    """The field's variable (``MESHALERT_<NAME>``), also settable by field name (flags)."""
    return AliasChoices(PREFIX + name, *more)


# -- the models -----------------------------------------------------------------------------


class _EnvSettings(BaseSettings):
    """Keywords, then the environment (through :class:`_EnvSource`); no dotenv or secret
    files. Every model shares the log level."""

    log_level: Annotated[str, AfterValidator(_check_log_level)] = Field(
        "info", validation_alias=_var("LOG_LEVEL")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvSource(settings_cls))


class MeshalertSettings(_EnvSettings):
    """What every process shares: the store, its credentials, the log level."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",  # a misspelt keyword is an error; other variables are not read
        validate_by_name=True,
        validate_by_alias=True,
        case_sensitive=False,
        env_nested_delimiter=None,
    )
    empty_means_off: ClassVar[frozenset[str]] = frozenset()

    store_url: Annotated[SecretStr, AfterValidator(_check_store)] = Field(
        SecretStr(DEFAULT_STORE), validation_alias=_var("STORE")
    )
    """Secret: influxdb1 URLs may carry user:password (see ``store`` and ``store_display``)."""
    influxdb_token: SecretStr | None = Field(None, validation_alias=_var("INFLUXDB_TOKEN"))
    influxdb_username: SecretStr | None = Field(None, validation_alias=_var("INFLUXDB_USERNAME"))
    influxdb_password: SecretStr | None = Field(None, validation_alias=_var("INFLUXDB_PASSWORD"))

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        flags: Mapping[str, object | None] | None = None,
        **overrides: object,
    ) -> Self:
        """Settings from ``env`` (default: this process's environment) with ``flags`` (a
        setting or field name -> value; None = not given) and ``overrides`` on top.
        Raises :class:`SettingsError` naming the variable or flag of each bad value."""
        given: dict[str, Any] = {}
        for name, value in {**(flags or {}), **overrides}.items():
            if value is not None:
                given[cls.field_for(name)] = value
        token = _ENVIRONMENT.set(env)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise _settings_error(cls, exc) from None
        finally:
            _ENVIRONMENT.reset(token)

    @classmethod
    def field_for(cls, name: str) -> str:
        """The field a flag or setting name sets (``eval_interval`` -> ``eval_interval_ms``)."""
        if name in cls.model_fields:
            return name
        for field, variable in cls.variables().items():
            if variable == PREFIX + name.upper():
                return field
        raise SettingsError(f"unknown setting {name!r}")

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field -> its ``MESHALERT_*`` variable (the first name of its alias)."""
        out = {}
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            first = alias.choices[0] if isinstance(alias, AliasChoices) else None
            if isinstance(first, str) and first.startswith(PREFIX):
                out[name] = first
        return out

    @cached_property
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

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction processor."""
        url = self.store_url.get_secret_value()
        found = [url if "@" in url else None, *map(_reveal, self._secret_fields())]
        return [v for v in found if v]

    def _secret_fields(self) -> tuple[SecretStr | None, ...]:
        return (self.influxdb_token, self.influxdb_password)


class Settings(MeshalertSettings):
    """The engine's settings (``meshalert run``, ``backtest``; the base of the Lambdas')."""

    eval_interval_ms: PositiveDurationMs = Field(60_000, validation_alias=_var("EVAL_INTERVAL"))
    state: Annotated[str, AfterValidator(_check_state)] = Field(
        DEFAULT_STATE, validation_alias=_var("STATE")
    )
    slack_webhook_url: Annotated[SecretStr, AfterValidator(_check_http_secret)] | None = Field(
        None, validation_alias=_var("SLACK_WEBHOOK_URL")
    )
    sns_topic_arn: Annotated[str, AfterValidator(_check_sns_arn)] | None = Field(
        None, validation_alias=_var("SNS_TOPIC_ARN")
    )
    webhook_url: Annotated[SecretStr, AfterValidator(_check_http_secret)] | None = Field(
        None, validation_alias=_var("WEBHOOK_URL")
    )
    rules: str | None = Field(None, repr=False, validation_alias=_var("RULES"))
    rules_file: str | None = Field(None, validation_alias=_var("RULES_FILE"))
    rules_ssm_parameter: str | None = Field(None, validation_alias=_var("RULES_SSM_PARAMETER"))
    rule_overrides: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    """``MESHALERT_RULE__<CLASS>__<FIELD>`` variables (validated by the rules loader)."""
    retention_ms: PositiveDurationMs = Field(7 * 86_400_000, validation_alias=_var("RETENTION"))
    renotify_ms: PositiveDurationMs = Field(4 * 3_600_000, validation_alias=_var("RENOTIFY"))
    flush_interval_ms: PositiveDurationMs = Field(10_000, validation_alias=_var("FLUSH_INTERVAL"))
    """The sidecar's flush interval (the same variable it reads)."""
    window_grace_ms: DurationMs = Field(5_000, validation_alias=_var("WINDOW_GRACE"))
    """How long after an interval's end its flush may still be on its way to the store."""
    endpoints_lookback_ms: PositiveDurationMs = Field(
        30 * 60_000, validation_alias=_var("ENDPOINTS_LOOKBACK")
    )
    """How far back the endpoints class learns each load balancer's largest size."""
    routes: Annotated[str, AfterValidator(_check_routes)] | None = Field(
        None, validation_alias=_var("ROUTES")
    )
    """Routing by severity/class/service, JSON or YAML (see :mod:`meshalert.notify.router`)."""
    runbook_url: str | None = Field(None, validation_alias=_var("RUNBOOK_URL"))
    group_threshold: Annotated[
        int, BeforeValidator(_whole_number), AfterValidator(_at_least_one)
    ] = Field(5, validation_alias=_var("GROUP_THRESHOLD"))
    group_by: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_group_by)] = Field(
        ("severity",), validation_alias=_var("GROUP_BY")
    )
    status_url: Annotated[str, AfterValidator(_check_http)] | None = Field(
        None, validation_alias=_var("STATUS_URL")
    )
    history_to_store: Annotated[Literal["on", "off", "auto"], BeforeValidator(_switch)] = Field(
        "auto", validation_alias=_var("HISTORY_TO_STORE")
    )

    def _secret_fields(self) -> tuple[SecretStr | None, ...]:
        return (*super()._secret_fields(), self.slack_webhook_url, self.webhook_url)

    @cached_property
    def state_config(self) -> StateConfig:
        return parse_state_url(self.state)

    @property
    def window_settle_ms(self) -> int:
        """Windows end this long before the cycle time: the newest flush interval and the
        grace, so no window reads an interval the sidecar is still writing."""
        return self.flush_interval_ms + self.window_grace_ms

    @cached_property
    def routing(self) -> RoutingConfig:
        if self.routes is None:
            from meshalert.notify.router import RoutingConfig

            return RoutingConfig()
        return _parse_routes(self.routes)

    @property
    def grouping(self) -> GroupingConfig:
        from meshalert.notify.grouping import DEFAULT_SEE_ALL, GroupingConfig

        return GroupingConfig(
            threshold=self.group_threshold,
            group_by=self.group_by,
            see_all=self.status_url or DEFAULT_SEE_ALL,
        )

    def history_enabled(self) -> bool:
        """``auto`` means on for the embedded SQLite store (local, nothing to grant) and off
        for InfluxDB, whose token or user must then be allowed to write."""
        if self.history_to_store == "auto":
            return isinstance(self.store, SqliteStore)
        return self.history_to_store == "on"


class LambdaSettings(Settings):
    """The Lambda handlers' settings: the engine's, the heartbeat's thresholds, and secrets
    from SSM Parameter Store (a variable set in the function's environment wins)."""

    ssm_prefix: str | None = Field(None, validation_alias=_var("SSM_PREFIX"))
    heartbeat_ingest_stale_ms: PositiveDurationMs | None = Field(
        None, validation_alias=_var("HEARTBEAT_INGEST_STALE")
    )
    heartbeat_evaluation_stale_ms: PositiveDurationMs | None = Field(
        None, validation_alias=_var("HEARTBEAT_EVALUATION_STALE")
    )
    aws_region: str | None = Field(
        None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _EnvSource(settings_cls), _SsmSecretsSource(settings_cls))

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, *, ssm_client: Callable[[str | None], Any]
    ) -> LambdaSettings:
        """Settings from ``env`` then SSM (``ssm_client(region)`` is called only when
        ``MESHALERT_SSM_PREFIX`` is set)."""
        token = _SSM_CLIENT.set(ssm_client)
        try:
            return cls.from_env(env)
        finally:
            _SSM_CLIENT.reset(token)


class CliSettings(MeshalertSettings):
    """The command line's own variables (beside the engine's and the sidecar's)."""

    empty_means_off: ClassVar[frozenset[str]] = frozenset({"MESHALERT_STATUS_LISTEN"})

    status_listen: str = Field("127.0.0.1:9464", validation_alias=_var("STATUS_LISTEN"))
    """The status page of ``meshalert run`` (empty: off; checked where it is bound)."""
    author: str | None = Field(None, validation_alias=_var("AUTHOR", "USER", "LOGNAME"))
    """Who adds or expires a silence: ``MESHALERT_AUTHOR``, else the login name."""
    state: str | None = Field(None, validation_alias=_var("STATE"))
    """The state store ``status`` and ``silence`` open (validated where opened)."""


class LoggingSettings(_EnvSettings):
    """What :func:`meshalert.logs.configure_logging` needs when not told."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    lambda_function: str = Field("", validation_alias=AliasChoices("AWS_LAMBDA_FUNCTION_NAME"))
    """Set by the Lambda runtime: logs are JSON there."""

    @classmethod
    def read(cls) -> LoggingSettings:
        try:
            return cls()
        except ValidationError as exc:
            raise _settings_error(cls, exc) from None


def flag_name(setting: str) -> str:
    """``store_url`` / ``eval_interval_ms`` -> ``--store`` / ``--eval-interval``."""
    variable = {**Settings.variables(), **CliSettings.variables()}.get(setting)
    name = variable.removeprefix(PREFIX).lower() if variable else setting
    return "--" + name.replace("_", "-")


def _settings_error(model: type[BaseSettings], exc: ValidationError) -> SettingsError:
    variables = model.variables() if issubclass(model, MeshalertSettings) else {}
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in model.model_fields:  # given by name: a flag
            where = flag_name(name)
        else:  # read from the environment: loc is the variable (lower-cased by the source)
            where = name.upper() if name.upper().startswith(PREFIX) else variables.get(name, name)
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return SettingsError("; ".join(problems))


# -- unknown variables ----------------------------------------------------------------------

SIDECAR_VARIABLES = (
    "MESHALERT_STATSD_LISTEN",
    "MESHALERT_STATSD_PREFIX",
    "MESHALERT_SPOOL_DIR",
    "MESHALERT_SPOOL_MAX_BYTES",
    "MESHALERT_DEAD_LETTER_MAX_BYTES",
    "MESHALERT_HOST",
    "MESHALERT_MAX_SERIES",
    "MESHALERT_SERVICE_DEPTH",
    "MESHALERT_SERVICE_NAMESPACE",
    "MESHALERT_WRITE_BATCH_LINES",
    "MESHALERT_LINKERD_ADMIN_URL",
)
"""The sidecar's own variables (``ingest_sidecar.settings.SidecarSettings``; a test keeps
the two lists equal): named here so this package does not import the sidecar."""
TOOL_VARIABLES = (
    # make test and the tools it builds: these must be there (no skip), or live elsewhere
    "MESHALERT_REQUIRE_NODE",
    "MESHALERT_REQUIRE_BROWSER",
    "MESHALERT_REQUIRE_INFLUXDB2",
    "MESHALERT_CACHE",
    "MESHALERT_INFLUXD2",
    "MESHALERT_LINKERD_HOME",
)
VARIABLE_PREFIXES = (
    RULE_PREFIX,
    "MESHALERT_TEST_",
    "MESHALERT_BENCH_",
    "MESHALERT_FUZZ_",
)
"""Rule overrides are validated by the rules loader; tests and benchmarks have their own."""


def known_variables() -> tuple[str, ...]:
    models = (LambdaSettings, CliSettings)
    names = {v for m in models for v in m.variables().values()}
    return tuple(sorted({*names, *SIDECAR_VARIABLES, *TOOL_VARIABLES}))


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``MESHALERT_*`` name nothing reads, naming the closest known one."""
    import difflib

    known = known_variables()
    # Compared without the shared prefix, which would make every name look close.
    suffixes = [k.removeprefix(PREFIX) for k in known]
    warnings = []
    for name in sorted(_current_environment() if env is None else env):
        if not name.startswith(PREFIX) or name in known or name.startswith(VARIABLE_PREFIXES):
            continue
        close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else " (see README: Configuration)"
        warnings.append(f"unknown variable {name} is ignored{hint}")
    return warnings


def warn_unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """Log each unknown ``MESHALERT_*`` variable (structlog ``settings.unknown_variable``)."""
    import structlog

    warnings = unknown_variables(env)
    log = structlog.get_logger("meshalert.settings")
    for warning in warnings:
        log.warning("settings.unknown_variable", detail=warning)
    return warnings
