"""Load the rules from every source, in precedence order, remembering each value's source.

built-in defaults < MESHALERT_RULES_FILE < SSM parameter MESHALERT_RULES_SSM_PARAMETER
< MESHALERT_RULES < MESHALERT_RULE__<CLASS>__<FIELD> < the command line's ``--rules PATH``.

Sources are named ``default``, ``file:<path>``, ``ssm:<name>@<version>``,
``env:MESHALERT_RULES``, ``env:MESHALERT_RULE__LATENCY__ABOVE_MS`` and
``flag:--rules <path>``; a per-service value's source adds the service key
(``file:rules.yaml services.production/checkout``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.rules.document import (
    DocumentSpec,
    LeafEntry,
    RulesDocument,
    RulesError,
    spec_entries,
    validation_error,
)
from meshalert.rules.models import DEFAULT_SOURCE, PARTIAL_CONTEXT, ServiceRules
from meshalert.rules.ssm import DEFAULT_SSM_CACHE, SsmCache, SsmClient, fetch_document
from meshalert.rules.suppression import SuppressionConfig

ENV_RULES = "MESHALERT_RULES"
ENV_RULES_FILE = "MESHALERT_RULES_FILE"
ENV_RULES_SSM_PARAMETER = "MESHALERT_RULES_SSM_PARAMETER"
ENV_RULE_PREFIX = "MESHALERT_RULE__"
FLAG_RULES = "--rules"

if TYPE_CHECKING:
    from meshalert.settings import Settings


@dataclass(frozen=True)
class RulesSources:
    """Where the rules come from, as the settings validated them (the loader never reads
    the environment itself)."""

    rules_file: str | None = None
    ssm_parameter: str | None = None
    text: str | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)
    """``MESHALERT_RULE__<CLASS>__<FIELD>`` variable -> value."""

    @classmethod
    def of(cls, settings: Settings) -> RulesSources:
        return cls(
            rules_file=settings.rules_file,
            ssm_parameter=settings.rules_ssm_parameter,
            text=settings.rules,
            overrides=dict(settings.rule_overrides),
        )


def _sources(given: RulesSources | Settings | Mapping[str, str]) -> RulesSources:
    """A mapping of ``MESHALERT_*`` variables (tests, tools) goes through the settings too:
    they alone know the variable names."""
    if isinstance(given, RulesSources):
        return given
    if isinstance(given, Mapping):
        from meshalert.settings import Settings

        return RulesSources.of(Settings.from_env(given))
    return RulesSources.of(given)


@dataclass(frozen=True)
class LoadedRules:
    document: RulesDocument
    sources: tuple[str, ...]
    """Every source that contributed, lowest precedence first (always starts with default)."""

    suppression: SuppressionConfig = field(default_factory=SuppressionConfig)
    """Maintenance windows and inhibition rules (``maintenance``, ``inhibit``)."""

    def for_service(self, key: str) -> ServiceRules | None:
        return self.document.for_service(key)


def parse_text(text: str, source: str) -> dict[str, Any]:
    """A document's JSON or YAML text as a mapping (empty text is an empty document).

    A key written twice in one mapping is an error naming its path (YAML and JSON would
    otherwise keep the last one silently), and so is nesting too deep to parse.
    """
    stripped = text.strip()
    if not stripped:
        return {}
    data: object
    try:
        try:
            data = json.loads(stripped, object_pairs_hook=_unique_json_object)
        except json.JSONDecodeError:
            data = _strict_yaml(stripped)
        except _DuplicateKeyError:
            # JSON is YAML: the YAML walk names the duplicate's path and line.
            _strict_yaml(stripped)
            raise
    except _DuplicateKeyError as exc:
        raise RulesError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML or JSON: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise RulesError(f"{source}: the document is nested too deeply to read") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RulesError(f"{source}: the document must be a mapping with defaults and/or services")
    return data


class _DuplicateKeyError(ValueError):
    pass


def _unique_json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # JSON objects are built innermost first, so the path is not known here.
            raise _DuplicateKeyError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _strict_yaml(text: str) -> object:
    """``yaml.safe_load`` that first checks every mapping of the document for a key written
    twice, naming its path and line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_unique_keys(root: yaml.Node) -> None:
    # Iterative: the composer already bounded the depth, and this walk adds no recursion.
    pending: list[tuple[yaml.Node, str]] = [(root, "")]
    seen_nodes: set[int] = set()
    while pending:
        node, path = pending.pop()
        if id(node) in seen_nodes:  # anchors and aliases share nodes
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                ident = (key_node.tag, key_node.value)
                where = f"{path}.{key_node.value}" if path else str(key_node.value)
                if ident in keys:
                    mark = key_node.start_mark
                    raise _DuplicateKeyError(
                        f"{where}: duplicate key (line {mark.line + 1}, column {mark.column + 1})"
                    )
                keys.add(ident)
                pending.append((value_node, where))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc)


def document_entries(text: str, source: str) -> list[LeafEntry]:
    """Parse and validate one source's whole document."""
    return spec_entries(document_spec(text, source), source)


def document_spec(text: str, source: str) -> DocumentSpec:
    data = parse_text(text, source)
    try:
        return DocumentSpec.model_validate(data, context=PARTIAL_CONTEXT)
    except ValidationError as exc:
        raise validation_error(exc, source) from None


def env_override_entries(overrides: Mapping[str, str]) -> list[LeafEntry]:
    """``MESHALERT_RULE__<CLASS>__<FIELD>=value`` overrides of the defaults, one per variable.

    Values are read as YAML scalars (``300``, ``0.05``, ``5m``, ``true``; ``null`` turns an
    optional threshold off).
    """
    entries: list[LeafEntry] = []
    for name in sorted(overrides):
        if name.startswith(ENV_RULE_PREFIX):
            entries.extend(_override_entries(name, overrides[name]))
    return entries


def _override_entries(name: str, text: str) -> list[LeafEntry]:
    source = f"env:{name}"
    parts = name[len(ENV_RULE_PREFIX) :].lower().split("__")
    classes = ", ".join(c.value.upper() for c in SERVICE_CLASSES)
    if len(parts) != 2 or parts[0] not in {c.value for c in SERVICE_CLASSES}:
        raise RulesError(
            f"{source}: write MESHALERT_RULE__<CLASS>__<FIELD> with CLASS one of {classes}"
        )
    section, field = parts
    data = {"defaults": {section: {field: _scalar(text)}}}
    try:
        spec = DocumentSpec.model_validate(data, context=PARTIAL_CONTEXT)
    except ValidationError as exc:
        raise validation_error(exc, source) from None
    return spec_entries(spec, source)


def _scalar(text: str) -> object:
    try:
        value: object = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value


def _read_file(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _file_entries(path: str, source: str, read_text: Callable[[str], str]) -> list[LeafEntry]:
    return spec_entries(_file_spec(path, source, read_text), source)


def _file_spec(path: str, source: str, read_text: Callable[[str], str]) -> DocumentSpec:
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError(f"{source}: cannot read: {reason}") from None
    return document_spec(text, source)


def _default_ssm_client() -> SsmClient:
    import boto3

    try:
        client: SsmClient = boto3.client("ssm")
    except Exception as exc:  # botocore raises several unrelated types here
        raise RulesError(f"ssm: cannot create a client: {exc}") from None
    return client


def load_rules(
    given: RulesSources | Settings | Mapping[str, str],
    *,
    ssm_client: SsmClient | None = None,
    flag_rules_path: str | None = None,
    now_s: float,
    cache: SsmCache | None = DEFAULT_SSM_CACHE,
    read_text: Callable[[str], str] = _read_file,
) -> LoadedRules:
    """Merge every configured source over the built-in defaults and validate the result.

    Raises :class:`RulesError` naming the source and the field path of the first bad source.
    """
    src = _sources(given)
    document = RulesDocument()
    suppression = SuppressionConfig()
    sources = [DEFAULT_SOURCE]

    def add(entries: list[LeafEntry], *names: str) -> None:
        nonlocal document
        document = document.merged(entries)
        sources.extend(names)

    def add_spec(spec: DocumentSpec, source: str) -> None:
        nonlocal suppression
        add(spec_entries(spec, source), source)
        suppression = suppression.over(spec.maintenance, spec.inhibit)

    if path := (src.rules_file or "").strip():
        add_spec(_file_spec(path, f"file:{path}", read_text), f"file:{path}")
    if name := (src.ssm_parameter or "").strip():
        client = ssm_client if ssm_client is not None else _default_ssm_client()
        ssm_doc = fetch_document(client, name, now_s=now_s, cache=cache)
        add_spec(document_spec(ssm_doc.text, ssm_doc.source), ssm_doc.source)
    if text := src.text or "":
        add_spec(document_spec(text, f"env:{ENV_RULES}"), f"env:{ENV_RULES}")
    if overrides := env_override_entries(src.overrides):
        # One layer, so setting both endpoint conditions by two variables keeps both.
        add(overrides, *dict.fromkeys(e.origin for e in overrides))
    if flag_rules_path:
        source = f"flag:{FLAG_RULES} {flag_rules_path}"
        add_spec(_file_spec(flag_rules_path, source, read_text), source)
    document.check()
    return LoadedRules(document=document, sources=tuple(sources), suppression=suppression)


@dataclass(frozen=True)
class RulesSnapshot:
    """The rules to evaluate with, when they were loaded, and the last reload's failure."""

    rules: LoadedRules
    loaded_at_s: float
    error: RulesError | None = None

    @property
    def stale(self) -> bool:
        """True when the last reload failed and these are the last good rules."""
        return self.error is not None


class RulesProvider:
    """Reloads the rules on each call and keeps the last good ones when a reload fails."""

    def __init__(
        self,
        sources: RulesSources | Settings | Mapping[str, str],
        *,
        ssm_client: SsmClient | None = None,
        flag_rules_path: str | None = None,
        cache: SsmCache | None = None,
        read_text: Callable[[str], str] = _read_file,
    ) -> None:
        self._sources = _sources(sources)
        self._ssm_client = ssm_client
        self._flag_rules_path = flag_rules_path
        self._cache = SsmCache() if cache is None else cache
        self._read_text = read_text
        self._last_good: RulesSnapshot | None = None

    @property
    def last_good(self) -> RulesSnapshot | None:
        return self._last_good

    def current(self, now_s: float) -> RulesSnapshot:
        """Fresh rules, or the last good ones plus the error; raises if none ever loaded."""
        try:
            rules = load_rules(
                self._sources,
                ssm_client=self._ssm_client,
                flag_rules_path=self._flag_rules_path,
                now_s=now_s,
                cache=self._cache,
                read_text=self._read_text,
            )
        except Exception as exc:
            error = exc if isinstance(exc, RulesError) else _unexpected(exc)
            if self._last_good is None:
                raise error from None
            return RulesSnapshot(self._last_good.rules, self._last_good.loaded_at_s, error)
        if self._last_good is not None and rules == self._last_good.rules:
            rules = self._last_good.rules  # unchanged: keep its per-service resolutions
        self._last_good = RulesSnapshot(rules, now_s)
        return self._last_good


def _unexpected(exc: Exception) -> RulesError:
    return RulesError(f"rules could not be loaded: {type(exc).__name__}: {exc}")
