"""The rules document kept in an SSM parameter, cached across warm Lambda invocations.

A warm Lambda evaluates every minute; reading the parameter on every run costs API calls
and latency for a value that rarely changes, so it is kept for a short TTL (60s by
default). The clock is passed in, never read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from meshalert.rules.document import RulesError

DEFAULT_TTL_S = 60.0


class SsmClient(Protocol):
    """The one call used from a boto3 SSM client."""

    def get_parameter(self, *, Name: str, WithDecryption: bool) -> Mapping[str, Any]:  # noqa: N803
        ...


@dataclass(frozen=True)
class SsmDocument:
    name: str
    version: int
    text: str
    fetched_at_s: float

    @property
    def source(self) -> str:
        return f"ssm:{self.name}@{self.version}"

    def __repr__(self) -> str:  # a SecureString's text never reaches logs
        return f"SsmDocument(name={self.name!r}, version={self.version}, chars={len(self.text)})"


class SsmCache:
    """Parameter values by name, fresh for ``ttl_s`` seconds after they were fetched."""

    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, SsmDocument] = {}

    def get(self, name: str, now_s: float) -> SsmDocument | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        age = now_s - entry.fetched_at_s
        # A clock that went backwards makes the entry stale rather than fresh forever.
        return entry if 0 <= age < self.ttl_s else None

    def put(self, document: SsmDocument) -> None:
        self._entries[document.name] = document

    def clear(self) -> None:
        self._entries.clear()


DEFAULT_SSM_CACHE = SsmCache()
"""Shared by every load in one process, i.e. across warm runs of one Lambda container."""


def fetch_document(
    client: SsmClient, name: str, *, now_s: float, cache: SsmCache | None
) -> SsmDocument:
    """The parameter's text and version (String or SecureString, decrypted)."""
    if cache is not None and (hit := cache.get(name, now_s)) is not None:
        return hit
    try:
        response = client.get_parameter(Name=name, WithDecryption=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "ClientError")
        raise RulesError(f"ssm:{name}: {code}: {error.get('Message', '')}".rstrip(": ")) from None
    except BotoCoreError as exc:
        raise RulesError(f"ssm:{name}: {exc}") from None
    parameter = response["Parameter"]
    document = SsmDocument(
        name=name,
        version=int(parameter["Version"]),
        text=str(parameter["Value"]),
        fetched_at_s=now_s,
    )
    if cache is not None:
        cache.put(document)
    return document
