"""Import-time benchmark (not a test): how long does `import router, providers` take?

Runs a fresh interpreter N times for `import router, providers` and for a baseline
`pass`, prints the medians, the import cost (difference) and the ratio. Optionally
prints the top self-time modules from `python -X importtime`.

    python benchmarks/import_time.py            # 15 runs each
    python benchmarks/import_time.py --runs 31 --detail
    python benchmarks/import_time.py --stmt "import providers.openai"

Target: `import router, providers` <= 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

__all__ = ["measure", "main"]


def _time_once(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - t0) * 1000.0


def measure(stmt: str, runs: int = 15) -> tuple[float, float]:
    """(median ms of `stmt`, median ms of the `pass` baseline), interleaved runs."""
    _time_once("pass")  # warm the OS file cache
    _time_once(stmt)
    a, b = [], []
    for _ in range(runs):
        b.append(_time_once("pass"))
        a.append(_time_once(stmt))
    return statistics.median(a), statistics.median(b)


def _detail(stmt: str, top: int = 12) -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", stmt], capture_output=True, text=True, check=True)
    rows = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.split("|")
        try:
            rows.append((int(parts[0].split(":")[1]), int(parts[1]), parts[2].strip()))
        except (ValueError, IndexError):
            continue
    print(f"top {top} modules by self time (-X importtime, one run):")
    for self_us, cum_us, name in sorted(rows, reverse=True)[:top]:
        print(f"  {self_us / 1000:7.2f} ms self  {cum_us / 1000:7.2f} ms cumulative  {name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--stmt", default="import router, providers")
    ap.add_argument("--detail", action="store_true", help="also print -X importtime top modules")
    ap.add_argument("--target-ms", type=float, default=300.0)
    a = ap.parse_args(argv)
    med, base = measure(a.stmt, a.runs)
    cost = med - base
    print(f"python {sys.version.split()[0]}  runs={a.runs}")
    print(f"baseline `python -c pass`          median {base:8.1f} ms")
    print(f"`python -c \"{a.stmt}\"`  median {med:8.1f} ms")
    print(f"import cost (difference)          {cost:8.1f} ms   ratio {med / base:5.2f}x   "
          f"target <= {a.target_ms:.0f} ms: {'OK' if med <= a.target_ms else 'OVER'}")
    if a.detail:
        _detail(a.stmt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
