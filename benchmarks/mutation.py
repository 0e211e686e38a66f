"""``python -m benchmarks.mutation`` (or ``make mutation``): mutation testing of the pure core.

Each module of :data:`MODULES` is mutated by mutmut 3 against only its own tests, one module
at a time, in a work directory outside the repository (``~/.cache/meshalert/mutation/<name>``,
``MESHALERT_CACHE`` moves it), where mutmut keeps its results: a second run re-tests only the
functions that changed. Prints, per module, killed / survived / timeout / other, the share
killed of the non-equivalent mutants, and every survivor as ``file:line`` with its change.

Survivors that cannot change behaviour are listed in :data:`EQUIVALENT` (reviewed, keyed by
file, function and the changed text, never by line or mutant number, which shift with every
edit); they count as equivalent, not as survivors. Every entry should also have a comment at
the code saying why.

Not part of ``make test``: the run takes many CPU minutes. It runs under ``nice`` by default.

    python -m benchmarks.mutation                  # every module
    python -m benchmarks.mutation histogram statsd # some
    python -m benchmarks.mutation --list           # the table
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 90.0
"""Per-module share (%) of non-equivalent mutants the tests must kill."""


@dataclass(frozen=True)
class Module:
    name: str
    sources: tuple[str, ...]
    tests: tuple[str, ...]


# The one table to update when modules move. Per line: a name, the files mutated, ``|``, the
# tests that judge them (paths from the repository root; a directory means every test in it).
_TABLE = """
statsd           ingest_sidecar/statsd.py
               | tests/ingest_sidecar/test_statsd.py
linkerd_names    ingest_sidecar/linkerd_names.py
               | tests/ingest_sidecar/test_linkerd_names.py
                 tests/ingest_sidecar/test_linkerd_corpus.py
aggregate        ingest_sidecar/aggregate.py
               | tests/ingest_sidecar/test_aggregate.py
histogram        meshalert/histogram.py
               | tests/meshalert/test_histogram.py
rules_models     meshalert/rules/models.py
               | tests/meshalert/rules/test_models.py
query_escaping   meshalert/queries/escaping.py meshalert/queries/flux_escaping.py
               | tests/meshalert/queries/test_escaping.py
                 tests/meshalert/queries/test_flux_escaping.py
query_rendering  meshalert/queries/model.py meshalert/queries/sql.py
                 meshalert/queries/influxql.py meshalert/queries/flux.py
               | tests/meshalert/queries/test_model.py tests/meshalert/queries/test_sql.py
                 tests/meshalert/queries/test_influxql.py tests/meshalert/queries/test_flux.py
query_baseline   meshalert/queries/baseline.py meshalert/queries/baseline_text.py
               | tests/meshalert/queries/test_baseline.py
                 tests/meshalert/queries/test_baseline_text.py
state_machine    meshalert/alerts/state_machine.py
               | tests/meshalert/alerts/test_state_machine.py
"""


def _parse_table(text: str) -> tuple[Module, ...]:
    # A line that starts with a name begins a module; indented lines continue it.
    blocks: list[list[str]] = []
    for line in text.strip().splitlines():
        if line[:1].strip():
            blocks.append([])
        blocks[-1].extend(line.split())
    modules = []
    for words in blocks:
        bar = words.index("|")
        modules.append(Module(words[0], tuple(words[1:bar]), tuple(words[bar + 1 :])))
    return tuple(modules)


MODULES = _parse_table(_TABLE)


_GUARD = "placeholder count does not match parameters"
"""The inline SQL renderers' unreachable guard message (see :data:`EQUIVALENT`)."""
_INLINE_RENDERERS = (
    ("meshalert/queries/baseline_text.py", "render_bucket_sql_inline"),
    ("meshalert/queries/sql.py", "render_sql_inline"),
)

_RUNNING = "# running count and sum: a sample that would overflow is refused"
"""The comment on ingest_sidecar/aggregate.py's ``_Timer.weight`` (part of the changed line)."""

# Reviewed equivalent mutants: (file, function, original text -> mutated text), the changed
# lines with whitespace collapsed. Each has a comment at the code saying why it cannot change
# behaviour.
EQUIVALENT: frozenset[tuple[str, str, str]] = frozenset(
    {
        (
            "meshalert/histogram.py",
            "_close",
            "return abs(bound - value) <= _LABEL_TOLERANCE * max(abs(bound), abs(value))"
            " -> return abs(bound - value) < _LABEL_TOLERANCE * max(abs(bound), abs(value))",
        ),
        (
            "meshalert/histogram.py",
            "_lower_bound",
            "return BOUNDS[idx - 1] if idx > 0 else 0.0"
            " -> return BOUNDS[idx - 1] if idx > 1 else 0.0",
        ),
        (
            "meshalert/histogram.py",
            "_lower_bound",
            "if idx > 0 and _close(BOUNDS[idx - 1], le):"
            " -> if idx >= 0 and _close(BOUNDS[idx - 1], le):",
        ),
        (
            "meshalert/histogram.py",
            "_lower_bound",
            "if idx > 0 and _close(BOUNDS[idx - 1], le):"
            " -> if idx > 1 and _close(BOUNDS[idx - 1], le):",
        ),
        ("meshalert/histogram.py", "bucket_index", "if value <= 0.0: -> if value < 0.0:"),
        ("meshalert/histogram.py", "le_index", "idx = LE_INDEX.get(label) -> idx = None"),
        (
            "meshalert/histogram.py",
            "le_index",
            "idx = LE_INDEX.get(label) -> idx = LE_INDEX.get(None)",
        ),
        (
            "meshalert/histogram.py",
            "le_index",
            "if 0 <= cand < len(BOUNDS) and _close(BOUNDS[cand], value):"
            " -> if 1 <= cand < len(BOUNDS) and _close(BOUNDS[cand], value):",
        ),
        (
            "meshalert/histogram.py",
            "le_index",
            "if 0 <= cand < len(BOUNDS) and _close(BOUNDS[cand], value):"
            " -> if 0 < cand < len(BOUNDS) and _close(BOUNDS[cand], value):",
        ),
        (
            "meshalert/histogram.py",
            "percentile_from_buckets",
            "items = sorted((le, c) for le, c in counts.items() if c > 0)"
            " -> items = sorted((le, c) for le, c in counts.items() if c >= 0)",
        ),
        # Codec names are case-insensitive: "UTF-8" is "utf-8".
        (
            "ingest_sidecar/statsd.py",
            "parse_datagram",
            'text = data.decode("utf-8") -> text = data.decode("UTF-8")',
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_lines_separately",
            'lines.append(raw.decode("utf-8")) -> lines.append(raw.decode("UTF-8"))',
        ),
        (
            "meshalert/queries/flux_escaping.py",
            "flux_string",
            'value.encode("utf-8") -> value.encode("UTF-8")',
        ),
        (
            "ingest_sidecar/statsd.py",
            "_rate",
            'text = section[1:].replace(",", ".", 1) -> text = section[1:].replace(",", ".", )',
        ),
        (
            "ingest_sidecar/statsd.py",
            "format_line",
            "if not 0.0 < sample.rate < 1.0: -> if not 0.0 < sample.rate <= 1.0:",
        ),
        (
            "ingest_sidecar/statsd.py",
            "_rate",
            'text = section[1:].replace(",", ".", 1) -> text = section[1:].replace(",", ".", 2)',
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_sections",
            "cached = _rate_cache.get(sections) -> cached = None",
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_sections",
            "cached = _rate_cache.get(sections) -> cached = _rate_cache.get(None)",
        ),
        (
            "meshalert/rules/models.py",
            "_any_duration",
            "return _duration(value, positive=False) -> return _duration(value, positive=None)",
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_sections",
            "if rate is not None and tags is None and len(_rate_cache) < _RATE_CACHE_MAX:"
            " -> if rate is None and tags is None and len(_rate_cache) < _RATE_CACHE_MAX:",
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_sections",
            "if rate is not None and tags is None and len(_rate_cache) < _RATE_CACHE_MAX:"
            " -> if rate is not None and tags is None and len(_rate_cache) <= _RATE_CACHE_MAX:",
        ),
        (
            "ingest_sidecar/statsd.py",
            "_parse_sections",
            "_rate_cache[sections] = rate -> _rate_cache[sections] = None",
        ),
        # RuleBase._threshold's memo (comment at the code).
        (
            "meshalert/rules/models.py",
            "RuleBase._threshold",
            "cached = memo.get(field) -> cached = None",
        ),
        (
            "meshalert/rules/models.py",
            "RuleBase._threshold",
            "cached = memo.get(field) -> cached = memo.get(None)",
        ),
        (
            "meshalert/rules/models.py",
            "RuleBase._threshold",
            "memo[field] = cached -> memo[field] = None",
        ),
        # SQLite keywords and identifiers are case-insensitive: same statement, same rows.
        (
            "meshalert/queries/baseline_text.py",
            "_sql_part",
            "f\" WHERE {' AND '.join(where)} LIMIT -1) AS g\\n\""
            " -> f\" WHERE {' and '.join(where)} LIMIT -1) AS g\\n\"",
        ),
        (
            "meshalert/queries/baseline_text.py",
            "_sql_part",
            "where = [\"s.measurement = ?\", f\"s.scope IN ({', '.join('?' * len(sel.scopes))})\"]"
            ' -> where = ["S.MEASUREMENT = ?",'
            " f\"s.scope IN ({', '.join('?' * len(sel.scopes))})\"]",
        ),
        (
            "meshalert/queries/baseline_text.py",
            "render_bucket_sql",
            '"WITH RECURSIVE buckets(i) AS" -> "with recursive buckets(i) as"',
        ),
        (
            "meshalert/queries/baseline_text.py",
            "render_bucket_sql",
            '"WITH RECURSIVE buckets(i) AS" -> "WITH RECURSIVE BUCKETS(I) AS"',
        ),
        (
            "meshalert/queries/baseline_text.py",
            "render_bucket_sql",
            '" (SELECT 0 UNION ALL SELECT i + 1 FROM buckets WHERE i + 1 < ?)\\n"'
            ' -> " (SELECT 0 UNION ALL SELECT I + 1 FROM BUCKETS WHERE I + 1 < ?)\\n"',
        ),
        # The placeholder guard cannot fire (every value is bound, every identifier is a
        # store column): its message and zip's `strict` are never exercised.
        # meshalert/queries/sql.py's render_sql_inline has the same guard, for the same reason.
        *(
            (
                source,
                function,
                f'raise AssertionError("{_GUARD}") -> raise AssertionError({new})',
            )
            for source, function in _INLINE_RENDERERS
            for new in (f'"XX{_GUARD}XX"', f'"{_GUARD.upper()}"', "None")
        ),
        *(
            (
                source,
                function,
                "for param, piece in zip(params, pieces[1:], strict=True):"
                f" -> for param, piece in zip(params, pieces[1:], {new}):",
            )
            for source, function in _INLINE_RENDERERS
            for new in ("strict=None", "", "strict=False")
        ),
        (
            "ingest_sidecar/linkerd_names.py",
            "NameMapper.map",
            "cache_key: object = (name, extra_tags) if extra_tags else name"
            " -> cache_key: object = (name, extra_tags) if (extra_tags) or True else name",
        ),
        (
            "ingest_sidecar/linkerd_names.py",
            "NameMapper._measure",
            "return _root(t, foreign=False) -> return _root(t, foreign=None)",
        ),
        # aggregate: a bucket exists only once a sample added its weight 1/rate >= 1 to it,
        # so every count is positive and the `> 0.0` filter never drops one.
        ("ingest_sidecar/aggregate.py", "_bucket_points", "if count > 0.0 -> if count >= 0.0"),
        # A series is created with its first sample and its running totals are assigned
        # from that sample at once: the initial values are never read.
        *(
            ("ingest_sidecar/aggregate.py", "_Counter.__init__", f"self.count = 0.0 -> {new}")
            for new in ("self.count = None", "self.count = 1.0")
        ),
        *(
            ("ingest_sidecar/aggregate.py", "_Timer.__init__", f"{old} -> {new}")
            for old, new in (
                (f"self.weight = 0.0 {_RUNNING}", f"self.weight = None {_RUNNING}"),
                (f"self.weight = 0.0 {_RUNNING}", f"self.weight = 1.0 {_RUNNING}"),
                ("self.weighted = 0.0", "self.weighted = None"),
                ("self.weighted = 0.0", "self.weighted = 1.0"),
            )
        ),
        # After the overflow starts, `kept` stays at the cap, so `groups` is never read again.
        (
            "ingest_sidecar/aggregate.py",
            "_Timer.start_overflow",
            "self.groups = {} -> self.groups = None",
        ),
        # popitem's `last` is read for its truth: None pops the oldest key like False.
        (
            "ingest_sidecar/aggregate.py",
            "KindRegistry.claim",
            "self._kinds.popitem(last=False) -> self._kinds.popitem(last=None)",
        ),
        # query model: when every select reads the service scope, the mixed path keeps
        # every row under its own key, exactly like the unmixed one.
        (
            "meshalert/queries/model.py",
            "_attributed",
            "mixed = bool(primary) and len(primary) < len(query.selects)"
            " -> mixed = bool(primary) and len(primary) <= len(query.selects)",
        ),
        # A missing service or namespace tag reads as None instead of "": both are falsy,
        # so the row is dropped (no service) or keyed by its service alone (no namespace).
        *(
            ("meshalert/queries/model.py", "_attributed", f'{tag} = tags.get("{tag}", "") -> {new}')
            for tag in ("service", "namespace")
            for new in (f'{tag} = tags.get("{tag}", None)', f'{tag} = tags.get("{tag}", )')
        ),
        # The failure flag only keys the per-flag totals, whose largest value is all that
        # is read: any default name gives the same maximum.
        *(
            (
                "meshalert/queries/model.py",
                "_failures",
                'flag = row.tags.get("failure_flag", "")'
                f' -> flag = row.tags.get("failure_flag", {new})',
            )
            for new in ("None", "", '"XXXX"')
        ),
        # Letting the excluded select into the sums adds a key nothing reads.
        *(
            (
                "meshalert/queries/model.py",
                function,
                f's = _sums([r for r in rows if r.select != "{name}"])'
                f' -> s = _sums([r for r in rows if r.select != "{new}"])',
            )
            for function, name in (("_failures", "connection_failures"), ("_retries", "budget_min"))
            for new in (f"XX{name}XX", name.upper())
        ),
        # Any fixed default seed makes a run reproducible; its value is no part of the contract.
        (
            "ingest_sidecar/aggregate.py",
            "IntervalAggregator.__init__",
            "seed: int = 0, -> seed: int = 1,",
        ),
    }
)

_CASE_INSENSITIVE_SQL = frozenset({"meshalert/queries/sql.py"})
"""Files whose string literals are SQL text only (keywords, functions, tables, aliases)."""


def _case_only(source: str, change: str) -> bool:
    """A surviving change of letter case alone in SQL text cannot change behaviour.

    SQLite reads keywords, function, table and column names alike in any case. The aliases
    the reader looks up by name (``value``, ``last_ts``, ``g_<tag>``) would change, but
    tests/meshalert/queries/test_sql.py pins them, so such a mutant is killed, not kept.
    """
    old, _, new = change.partition(" -> ")
    return source in _CASE_INSENSITIVE_SQL and old != new and old.lower() == new.lower()


# Unit tests only: a forked run per mutant cannot afford starting influxd, node or a JVM.
_PYTEST_ARGS = (
    "-m",
    "not influxd and not influxd2 and not node and not linkerd and not e2e",
    "-p",
    "benchmarks.mutation_pytest",
)
_COPIED = ("meshalert", "ingest_sidecar", "functions", "tests", "benchmarks", "pyproject.toml")
_NICE = 15


def cache_root() -> Path:
    base = os.environ.get("MESHALERT_CACHE") or str(Path.home() / ".cache" / "meshalert")
    return Path(base) / "mutation"


def _sync(workdir: Path) -> None:
    """Copy the code and tests into ``workdir``, keeping mtimes (mutmut's change detection)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for item in _COPIED:
        src, dst = REPO / item, workdir / item
        if src.is_file():
            shutil.copy2(src, dst)
            continue
        wanted = {p.relative_to(src) for p in src.rglob("*") if p.is_file() and _kept(p)}
        if dst.exists():
            for old in dst.rglob("*"):
                if old.is_file() and old.relative_to(dst) not in wanted:
                    old.unlink()
        for rel in wanted:
            target = dst / rel
            if not target.exists() or target.stat().st_mtime != (src / rel).stat().st_mtime:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, target)


def _kept(path: Path) -> bool:
    return "__pycache__" not in path.parts and ".hypothesis" not in path.parts


def _setup_cfg(module: Module) -> str:
    def lines(values: tuple[str, ...]) -> str:
        return "".join(f"\n    {v}" for v in values)

    return (
        "[mutmut]\n"
        f"source_paths ={lines(('meshalert', 'ingest_sidecar'))}\n"
        f"only_mutate ={lines(module.sources)}\n"
        f"pytest_add_cli_args ={lines(('-p', 'no:cacheprovider', *_PYTEST_ARGS))}\n"
        f"pytest_add_cli_args_test_selection ={lines(module.tests)}\n"
        f"also_copy ={lines(('benchmarks',))}\n"
        # Results come from a fresh work directory, not from git history.
        "use_git_change_detection = false\n"
    )


def run_module(module: Module, max_children: int) -> dict[str, object]:
    workdir = cache_root() / module.name
    _sync(workdir)
    (workdir / "setup.cfg").write_text(_setup_cfg(module))
    cached = (workdir / "mutants").is_dir()
    started = time.monotonic()
    _mutmut(workdir, module, "run", "--max-children", str(max_children))
    result = _collect_in_child(workdir, module)
    # mutmut keeps a result until the function changes, so a survivor stays a survivor after
    # a test was added: re-run the cached survivors by name against the current tests.
    rerun = [str(s["key"]) for s in result["survivors"]]  # type: ignore[attr-defined]
    if cached and rerun:
        _mutmut(workdir, module, "run", "--max-children", str(max_children), *rerun)
        result = _collect_in_child(workdir, module)
    elapsed = time.monotonic() - started
    result["seconds"] = round(elapsed)
    return result


def _mutmut(workdir: Path, module: Module, *args: str) -> None:
    mutmut = Path(sys.executable).with_name("mutmut")
    proc = subprocess.run(
        ["nice", "-n", str(_NICE), str(mutmut), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"mutmut failed for {module.name} (exit {proc.returncode})")


def _collect_in_child(workdir: Path, module: Module) -> dict[str, object]:
    report = subprocess.run(
        [sys.executable, "-m", "benchmarks.mutation", "--collect", str(workdir), *module.sources],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(report.stdout)
    return result


def collect(workdir: Path, sources: list[str]) -> dict[str, object]:
    """Read mutmut's results in ``workdir`` (run in a child: mutmut reads its config from cwd)."""
    os.chdir(workdir)
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    counts: dict[str, int] = {}
    survivors: list[dict[str, object]] = []
    equivalent: list[dict[str, object]] = []
    for source in sources:
        data = SourceFileMutationData(path=Path(source))
        data.load()
        text = (workdir / source).read_text()
        for key, code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[code]
            if status not in {"survived", "no tests"}:
                counts[status] = counts.get(status, 0) + 1
                continue
            diff = get_diff_for_mutant(key, path=source)
            entry = _describe(source, text, key, diff)
            if (source, entry["function"], entry["change"]) in EQUIVALENT or _case_only(
                source, str(entry["change"])
            ):
                equivalent.append(entry)
            else:
                entry["status"] = status
                entry["key"] = key
                survivors.append(entry)
    counts["equivalent"] = len(equivalent)
    counts["survived"] = len(survivors)
    return {"counts": counts, "survivors": survivors, "equivalent": equivalent}


_HUNK = re.compile(r"^@@ -(\d+)")


def _describe(source: str, text: str, key: str, diff: str) -> dict[str, object]:
    """file:line, function and ``old -> new`` of one mutant, from mutmut's per-function diff."""
    func = key.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    # mutmut names a method ``xǁClassǁmethod`` and a function ``x_function``.
    qualname = ".".join(func.split("ǁ")[1:]) if "ǁ" in func else func.removeprefix("x_")
    lines = diff.splitlines()
    removed = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    added = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    change = (
        " ".join(" ".join(removed).split()) + " -> " + " ".join(" ".join(added).split())
    ).strip()
    return {
        "where": f"{source}:{_line_of(text, qualname, lines)}",
        "function": qualname,
        "change": change,
    }


def _line_of(text: str, qualname: str, diff_lines: list[str]) -> int | str:
    start = _def_line(text, qualname)
    offset = None
    for ln in diff_lines:
        match = _HUNK.match(ln)
        if match:
            offset = int(match.group(1)) - 1
            continue
        if offset is None or ln.startswith(("---", "+++")):
            continue
        if ln.startswith("-"):
            break
        if not ln.startswith("+"):
            offset += 1
    if start is None or offset is None:
        return "?"
    # The diff starts at the ``def`` line unless decorators come first.
    return start + offset


def _def_line(text: str, qualname: str) -> int | None:
    parts = qualname.split(".")
    body: list[ast.stmt] = ast.parse(text).body
    node: ast.AST | None = None
    for part in parts:
        node = next(
            (
                n
                for n in body
                if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = node.body  # type: ignore[attr-defined]
    if node is None:
        return None
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return first


def _score(counts: dict[str, int]) -> tuple[int, int, float]:
    """(detected, non-equivalent, %): a timeout counts as detected (the mutant hung a test)."""
    judged = sum(v for k, v in counts.items() if k != "equivalent")
    detected = counts.get("killed", 0) + counts.get("timeout", 0)
    return detected, judged, (100.0 * detected / judged if judged else 100.0)


def _print(module: Module, result: dict[str, object]) -> bool:
    counts: dict[str, int] = result["counts"]  # type: ignore[assignment]
    detected, judged, pct = _score(counts)
    others = ", ".join(
        f"{k} {v}"
        for k, v in sorted(counts.items())
        if k not in {"killed", "survived", "timeout", "equivalent"}
    )
    print(
        f"{module.name:16} killed {counts.get('killed', 0):4} "
        f"survived {counts.get('survived', 0):3} "
        f"timeout {counts.get('timeout', 0):2} equivalent {counts.get('equivalent', 0):2}"
        f"{' ' + others if others else ''}  -> {detected}/{judged} = {pct:5.1f}% "
        f"({result['seconds']} s)"
    )
    for s in result["survivors"]:  # type: ignore[attr-defined]
        print(f"    {s['status']:9} {s['where']}  {s['function']}: {s['change']}")
    return pct >= GOAL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="module names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the module table and exit")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--collect", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.collect:
        print(json.dumps(collect(args.collect, args.modules)))
        return 0
    if args.list:
        for m in MODULES:
            print(f"{m.name:16} {' '.join(m.sources)}\n{'':16} tests: {' '.join(m.tests)}")
        return 0
    by_name = {m.name: m for m in MODULES}
    unknown = [n for n in args.modules if n not in by_name]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {sorted(by_name)}")
    chosen = [by_name[n] for n in args.modules] if args.modules else list(MODULES)
    print(f"mutmut per module, results cached in {cache_root()}; goal {GOAL:.0f}% killed")
    ok = True
    figures = {}
    for module in chosen:
        result = run_module(module, args.max_children)
        figures[module.name] = result
        ok = _print(module, result) and ok
        sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
