"""``meshalert rules``: the thresholds in force with their sources, or the queries they run."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from meshalert.alerts.model import AlertClass
from meshalert.evaluation import RulesView
from meshalert.queries.model import class_query
from meshalert.rules import LoadedRules, load_rules
from meshalert_cli.views import dumps, table


def register(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("rules", help="print the rules in force (and where each came from)")
    p.add_argument("--rules", dest="rules_file", help="a rules document (highest precedence)")
    p.add_argument("--service", help="resolve the rules of one service key (ns/svc or svc)")
    p.add_argument("--queries", choices=["flux", "influxql", "sql"], help="print the queries")
    p.add_argument("--bucket", default="linkerd", help="bucket named in Flux queries")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=run)


def load(args: argparse.Namespace) -> LoadedRules:
    return load_rules(dict(os.environ), flag_rules_path=args.rules_file, now_s=time.time())


def run(args: argparse.Namespace) -> int:
    rules = load(args)
    if args.queries:
        print(queries_text(rules, args.queries, bucket=args.bucket))
        return 0
    resolved = rules.for_service(args.service) if args.service else rules.document.defaults
    if resolved is None:
        print(f"{args.service}: disabled by the rules")
        return 0
    thresholds = [t for c in AlertClass for t in resolved.rule(c).thresholds()]
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
    for cls in AlertClass:
        rule = resolved.rule(cls)
        state = "" if rule.enabled else " [disabled]"
        print(f"{cls.value}{state}: {rule.describe()}")
    print()
    print(
        table(
            [[t.name, f"{t.value:g}", t.source] for t in thresholds],
            ["THRESHOLD", "VALUE", "SOURCE"],
        )
    )
    return 0


def queries_text(rules: LoadedRules, dialect: str, *, bucket: str) -> str:
    view = RulesView(rules)
    end_ms = int(time.time() * 1000)
    end_ms -= end_ms % 60_000
    blocks: list[str] = []
    for cls in AlertClass:
        default, extra = view.windows(cls)
        for window in sorted({default, *extra}):
            query = class_query(cls, window_ms=window, end_ms=end_ms)
            blocks.append(f"-- {cls.value}, window {window} ms\n{render(query, dialect, bucket)}")
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
