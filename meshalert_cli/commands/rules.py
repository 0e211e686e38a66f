"""``meshalert rules``: the thresholds in force with their sources, or the queries they run."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from meshalert.alert_classes import SERVICE_CLASSES
from meshalert.backends.influxdb2.url import InfluxDB2Store
from meshalert.durations import format_duration_ms
from meshalert.units import format_value
from meshalert_cli.arguments import add_command
from meshalert_cli.views import dumps, table

if TYPE_CHECKING:
    from meshalert.rules import LoadedRules

DEFAULT_BUCKET = "linkerd"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "rules",
        "show the rules in force, where each threshold came from, or the queries they run",
        [
            "meshalert rules",
            "meshalert rules --service production/checkout",
            "meshalert rules --rules my-rules.yaml --json",
            "meshalert rules --queries flux --bucket linkerd",
        ],
    )
    p.add_argument(
        "--rules", dest="rules_file", metavar="FILE", help="a rules document (highest precedence)"
    )
    p.add_argument("--service", metavar="KEY", help="the rules of one service key (ns/svc or svc)")
    p.add_argument(
        "--queries", choices=["flux", "influxql", "sql"], help="print the queries instead"
    )
    p.add_argument(
        "--bucket",
        help="bucket named in Flux queries (default: the bucket of MESHALERT_STORE when it is "
        f"an influxdb2:// URL, else {DEFAULT_BUCKET})",
    )
    p.add_argument("--json", action="store_true", help="the thresholds and document as JSON")
    p.set_defaults(handler=run)


def configured_bucket() -> str:
    """The bucket of the configured InfluxDB 2 store, so printed queries run as printed."""
    from meshalert.settings import MeshalertSettings

    store = MeshalertSettings.from_env().store
    return store.bucket if isinstance(store, InfluxDB2Store) else DEFAULT_BUCKET


def load(args: argparse.Namespace) -> LoadedRules:
    from meshalert.rules import load_rules
    from meshalert.settings import Settings

    return load_rules(Settings.from_env(), flag_rules_path=args.rules_file, now_s=time.time())


def run(args: argparse.Namespace) -> int:
    rules = load(args)
    if args.queries:
        print(queries_text(rules, args.queries, bucket=args.bucket or configured_bucket()))
        return 0
    resolved = rules.for_service(args.service) if args.service else rules.document.defaults
    if resolved is None:
        print(f"{args.service}: disabled by the rules")
        return 0
    thresholds = [t for c in SERVICE_CLASSES for t in resolved.rule(c).thresholds()]
    if args.json:
        print(
            dumps(
                {
                    "sources": list(rules.sources),
                    "service": args.service or "*",
                    "thresholds": [
                        {"name": t.name, "value": t.value, "source": t.source} for t in thresholds
                    ],
                    "document": rules.document.to_dict(),
                }
            )
        )
        return 0
    print(f"sources (lowest precedence first): {', '.join(rules.sources)}")
    print(f"service: {args.service or '* (defaults)'}\n")
    for cls in SERVICE_CLASSES:
        rule = resolved.rule(cls)
        state = "" if rule.enabled else " [disabled]"
        print(f"{cls.value}{state}: {rule.describe()}")
    print()
    print(
        table(
            [[t.name, format_value(t.value, t.name), t.source] for t in thresholds],
            ["THRESHOLD", "VALUE", "SOURCE"],
        )
    )
    return 0


def queries_text(rules: LoadedRules, dialect: str, *, bucket: str) -> str:
    from meshalert.evaluation import RulesView
    from meshalert.queries.model import class_query

    view = RulesView(rules)
    end_ms = int(time.time() * 1000)
    end_ms -= end_ms % 60_000
    blocks: list[str] = []
    for cls in SERVICE_CLASSES:
        default, extra = view.windows(cls)
        for window in sorted({default, *extra}):
            query = class_query(cls, window_ms=window, end_ms=end_ms)
            comment = "//" if dialect == "flux" else "--"
            heading = f"{comment} {cls.value}, window {format_duration_ms(window)}"
            blocks.append(f"{heading}\n{render(query, dialect, bucket)}")
    return "\n\n".join(blocks)


def render(query: Any, dialect: str, bucket: str) -> str:
    if dialect == "flux":
        from meshalert.queries.flux import render_flux

        return render_flux(query, bucket=bucket)[0]
    if dialect == "influxql":
        from meshalert.queries.influxql import render_influxql

        return render_influxql(query)
    from meshalert.queries.sql import render_sql_inline

    return render_sql_inline(query)
