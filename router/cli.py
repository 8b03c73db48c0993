"""The `quotaroute` command: a thin dispatcher.

Each subcommand lives in its own module exposing `HELP: str`,
`add_arguments(parser)` and `run(args) -> int`; only the chosen one is imported,
so `quotaroute --help` stays fast and nothing heavy loads at import.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from router.extras import MissingExtra

# name -> (module, one-line help). `bench` has its own second level.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("benchmarks.cmd_demo", "run the offline demo: proxy + replayed models + free quotas, ends with a report"),
    "serve": ("router.server.cli", "run the local OpenAI/Anthropic-compatible proxy"),
    "route": ("router.commands.route", "explain the ranked route plan for a prompt, without calling anything"),
    "models": ("router.commands.models", "list the model catalog with prices and capabilities"),
    "quota": ("router.commands.quota", "show free-quota pools: used/limit, next reset"),
    "budget": ("router.commands.budget", "show spend budgets: spent/limit, next reset"),
    "spend": ("router.commands.spend", "report the proxy's spend log"),
    "keys": ("router.commands.keys", "create, list, rotate and revoke proxy keys on a running proxy"),
}
BENCH: dict[str, tuple[str, str]] = {
    "replay": ("benchmarks.cmd_replay", "evaluate models and routing policies on recorded outcomes (offline)"),
    "live": ("benchmarks.cmd_live", "run a task suite against real providers and record outcomes"),
    "proxy": ("benchmarks.proxy_overhead", "measure the proxy's own latency/throughput overhead"),
    "fuzz": ("benchmarks.fuzz_proxy", "fuzz the proxy's POST endpoints with hostile bodies (5xx, leaks, RSS)"),
    "streams": ("benchmarks.stream_bench", "measure many concurrent streams: TTFT, gaps, starvation, CPU per chunk"),
}


def _epilog(table: dict[str, tuple[str, str]]) -> str:
    return "commands:\n" + "\n".join(f"  {k:<8} {h}" for k, (_, h) in table.items())


def _load(module: str):  # type: ignore[no-untyped-def]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name):
            raise SystemExit(f"quotaroute: this command is not available in this build ({module} missing)")
        raise


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="quotaroute",
        description="Multi-model LLM router and cost optimizer: free quota first, the cheapest model that fits.",
        epilog=_epilog({**COMMANDS, "bench": ("", "benchmarks: replay | live | proxy | fuzz | streams")}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("command", nargs="?", help="one of the commands below")
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    if argv[0] in ("-V", "--version"):
        from importlib.metadata import version  # lazy: import time (`quotaroute --help` stays fast)

        print(version("quotaroute"))
        return 0
    name, rest = argv[0], argv[1:]
    if name == "bench":
        bench = argparse.ArgumentParser(
            prog="quotaroute bench", epilog=_epilog(BENCH), formatter_class=argparse.RawDescriptionHelpFormatter
        )
        bench.add_argument("which", nargs="?")
        if not rest or rest[0] in ("-h", "--help"):
            bench.print_help()
            return 0
        if rest[0] not in BENCH:
            bench.error(f"unknown bench command {rest[0]!r}")
        module, helptext = BENCH[rest[0]]
        prog, rest = f"quotaroute bench {rest[0]}", rest[1:]
    elif name in COMMANDS:
        module, helptext = COMMANDS[name]
        prog = f"quotaroute {name}"
    else:
        top.error(f"unknown command {name!r}")
        return 2
    mod = _load(module)
    parser = argparse.ArgumentParser(prog=prog, description=getattr(mod, "HELP", helptext))
    mod.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(mod.run(args) or 0)
    except MissingExtra as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
