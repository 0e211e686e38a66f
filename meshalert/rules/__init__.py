"""Alert rules: the document, its sources and per-service resolution."""

from meshalert.rules.document import (
    DEFAULT_RULES_YAML,
    RulesDocument,
    RulesError,
    matching_keys,
)
from meshalert.rules.loading import (
    LoadedRules,
    RulesProvider,
    RulesSnapshot,
    RulesSources,
    load_rules,
)
from meshalert.rules.models import (
    EndpointsRule,
    FailuresRule,
    LatencyRule,
    RetriesRule,
    RuleModel,
    ServiceRules,
)
from meshalert.rules.ssm import SsmCache, SsmClient

__all__ = [
    "DEFAULT_RULES_YAML",
    "EndpointsRule",
    "FailuresRule",
    "LatencyRule",
    "LoadedRules",
    "RetriesRule",
    "RuleModel",
    "RulesDocument",
    "RulesError",
    "RulesProvider",
    "RulesSnapshot",
    "RulesSources",
    "ServiceRules",
    "SsmCache",
    "SsmClient",
    "load_rules",
    "matching_keys",
]
