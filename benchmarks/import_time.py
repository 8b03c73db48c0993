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
import os
import resource
import statistics
import subprocess
import sys
import time

__all__ = ["measure", "main"]


def _time_once(code: str) -> tuple[float, float]:
    """(wall ms, child CPU ms = user + sys) of one fresh interpreter running `code`."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    wall = (time.perf_counter() - t0) * 1000.0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1000.0
    return wall, cpu


def measure(stmt: str, runs: int = 15) -> dict[str, float]:
    """Medians (ms) of wall and CPU time for `stmt` and for the `pass` baseline, interleaved runs.

    CPU time (user+sys of the child) is the steadier figure on a shared, loaded machine."""
    _time_once("pass")  # warm the OS file cache
    _time_once(stmt)
    sw, sc, bw, bc = [], [], [], []
    for _ in range(runs):
        w, c = _time_once("pass")
        bw.append(w)
        bc.append(c)
        w, c = _time_once(stmt)
        sw.append(w)
        sc.append(c)
    med = statistics.median
    return {"wall": med(sw), "base_wall": med(bw), "cpu": med(sc), "base_cpu": med(bc)}


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
    m = measure(a.stmt, a.runs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"python {sys.version.split()[0]}  runs={a.runs}  load avg (1 min) {load:.2f}")
    print(f"{'':36s}{'wall median':>14s}{'CPU median':>14s}")
    print(f"{'baseline: python -c pass':36s}{m['base_wall']:11.1f} ms{m['base_cpu']:11.1f} ms")
    print(f"{a.stmt[:36]:36s}{m['wall']:11.1f} ms{m['cpu']:11.1f} ms")
    print(f"{'import cost (difference)':36s}{m['wall'] - m['base_wall']:11.1f} ms{m['cpu'] - m['base_cpu']:11.1f} ms")
    print(f"{'ratio to baseline':36s}{m['wall'] / m['base_wall']:12.2f}x{m['cpu'] / max(m['base_cpu'], 1e-9):13.2f}x")
    verdict = {k: "OK" if m[k] <= a.target_ms else "OVER" for k in ("wall", "cpu")}
    print(f"target: median <= {a.target_ms:.0f} ms -> wall {verdict['wall']}, CPU {verdict['cpu']} "
          f"(on a loaded machine trust CPU time and the ratio)")
    if a.detail:
        _detail(a.stmt)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
