"""Router micro-benchmarks: the pure core and the SDK's own overhead.

    python -m benchmarks.router_bench [--repeat 3000] [--json]

Prints medians (microseconds) for
  * `choose()` with 10, 50 and 200 candidate models (bundled catalog cards, the
    catalog's default free tiers in the ledger view), per policy;
  * a two-stage answer-agreement cascade's planning (`router.cascade.plan_cascade`:
    the cascade's `choose()`) at 50 served models: stages listing a few models each,
    and the worst case where both stages may use all 50;
  * `extract_features()` on a ~2k-token prompt;
  * end-to-end `Router.achat()` over a zero-latency FakeProvider vs calling the
    FakeProvider directly (median per call, difference and ratio);
  * planning with explicit routes (`Router.aexplain`): a pinned model alone, with three
    fallbacks, a weighted deployments name, and `auto` plus one fallback.
Targets: choose() <= 50 us at 50 models (a two-stage cascade too); extract_features <= 50 us.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from datetime import datetime, timezone
from typing import Any

from providers.fake import FakeProvider, reply
from router.cards import prepare
from router.cascade import Cascade, Stage, plan_cascade, prepare_cascade
from router.catalog import Catalog, load_catalog
from router.engine import choose
from router.health import HealthBook
from router.policies import Policy
from router.quota.ledger import Ledger
from router.quota.memory_store import MemoryStore
from router.quota.spec import default_pools
from router.sdk import Router
from router.tasks import Features, extract_features, fast_estimate_tokens
from router.types import ChatRequest, Message

__all__ = ["bench_choose", "bench_cascade", "bench_features", "bench_sdk", "main"]

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


_MINS: dict[str, float] = {}


def _median_us(fn: Any, repeat: int, label: str = "") -> float:
    """Median in microseconds; the minimum is kept in _MINS[label] (the cost on a quiet
    machine: medians on shared CI boxes move by tens of percent)."""
    for _ in range(min(200, repeat)):  # warm caches
        fn()
    ts = []
    pc = time.perf_counter
    for _ in range(repeat):
        t0 = pc()
        fn()
        ts.append(pc() - t0)
    if label:
        _MINS[label] = min(ts) * 1e6
    return statistics.median(ts) * 1e6


def _cards(n: int) -> list[Any]:
    base = load_catalog().all()
    out = list(base[:n])
    i = 0
    while len(out) < n:  # more than the catalog: clones with fresh ids
        c = base[i % len(base)]
        out.append(c.model_copy(update={"id": f"{c.id}-clone{i}", "model": f"{c.model}-clone{i}"}))
        i += 1
    return out


def _view(model_ids: list[str]) -> Any:
    ledger = Ledger(MemoryStore(), default_pools())
    return asyncio.run(ledger.view(NOW, model_ids))


def _prompt_2k() -> str:
    rnd = random.Random(7)
    words = ("the quarterly report describes revenue growth across regions while costs rose slightly and the "
             "team expects stable demand next year despite currency headwinds").split()
    body = " ".join(rnd.choice(words) for _ in range(1600))
    return "Please summarize the following report in three bullet points.\n\n" + body


def _prompt_2k_mc() -> str:
    """A ~2k-token 5-shot multiple-choice prompt (RouterBench ARC style)."""
    rnd = random.Random(11)
    words = ("which of these would most likely happen when a student heats water in a closed container over "
             "a flame for several minutes while measuring the temperature").split()
    shots = []
    for i in range(6):
        q = " ".join(rnd.choice(words) for _ in range(190)).capitalize() + "?"
        opts = "\n".join(f"{l}) " + " ".join(rnd.choice(words) for _ in range(6)) for l in "ABCD")
        ans = "" if i == 5 else " " + "ABCD"[i % 4]
        shots.append(f"{q}\n{opts}\nPrint only a single choice from \"A\" or \"B\" or \"C\" or \"D\" without "
                     f"explanation.\nAnswer:{ans}")
    return "\n\n".join(shots)


def bench_choose(repeat: int) -> dict[str, dict[str, float]]:
    f = Features(task="code", input_tokens=2000, expected_output_tokens=700)
    out: dict[str, dict[str, float]] = {}
    for n in (10, 50, 200):
        cards = _cards(n)
        cands = prepare(cards)
        view = _view([c.id for c in cards])
        health = HealthBook()
        row = {}
        for pol in ("free-first", "cheapest", "best", "balanced", "cascade"):
            p = Policy(pol)
            row[pol] = _median_us(lambda: choose(f, cands, view, health, p, NOW), repeat, f"choose-{n}-{pol}")
        row["free-first (plain list)"] = _median_us(lambda: choose(f, cards, view, health, Policy(), NOW), repeat)
        out[str(n)] = row
    return out


def bench_cascade(repeat: int, n: int = 50) -> dict[str, float]:
    """A two-stage cascade's plan at `n` served models: consensus of 2 among 3 listed cheap
    models, then one strong model; and the same with both stages open to every model."""
    f = Features(task="math", input_tokens=2000, expected_output_tokens=700)
    cards = _cards(n)
    cat = Catalog(cards)
    view = _view([c.id for c in cards])
    health = HealthBook()
    ids = [c.id for c in cards]
    listed = Cascade("bench", "number", (Stage("consensus", k=2, m=2, models=tuple(ids[:3]), policy="cheapest"),
                                          Stage("single", models=(ids[3],))))
    open_all = Cascade("bench-all", "number", (Stage("consensus", k=2, m=2, policy="cheapest"), Stage("single",
                                                                                                     policy="best")))
    out = {}
    for label, cas in (("listed", listed), ("all", open_all)):
        prep = prepare_cascade(cas, cards, cat, Policy(), None)
        out[label] = _median_us(lambda: plan_cascade(prep, f, view, health, NOW), repeat, f"cascade-{n}-{label}")
    return out


def bench_features(repeat: int) -> dict[str, float]:
    prompt = _prompt_2k()
    req = ChatRequest(messages=[Message(role="system", content="You are helpful."), Message(role="user", content=prompt)])
    mc = ChatRequest(messages=[Message(role="user", content=_prompt_2k_mc())])
    zh = ChatRequest(messages=[Message(role="user", content="请总结下面的报告。" + "今年收入增长稳定，成本略有上升。" * 300)])
    return {"tokens_estimated": float(fast_estimate_tokens(prompt)),
            "extract_features_2k_en_us": _median_us(lambda: extract_features(req), repeat, "features-en"),
            "extract_features_2k_mc_us": _median_us(lambda: extract_features(mc), repeat, "features-mc"),
            "extract_features_zh_us": _median_us(lambda: extract_features(zh), repeat, "features-zh")}


def bench_sdk(repeat: int, n_models: int = 50) -> dict[str, float]:
    cards = _cards(n_models)
    cat = Catalog(cards)
    providers = {p: FakeProvider(name=p, scripts=[reply("ok")]) for p in {c.provider for c in cards}}
    router = Router(catalog=cat, providers=providers, ledger=Ledger(MemoryStore(), default_pools()),
                    policy="free-first")
    req = ChatRequest(messages=[Message(role="user", content="Write a python function that adds two numbers.")])
    direct = next(iter(providers.values()))

    async def run() -> tuple[float, float, dict[str, float]]:
        async def timed(coro_fn: Any) -> float:
            ts = []
            for _ in range(50):
                await coro_fn()
            for _ in range(repeat):
                t0 = time.perf_counter()
                await coro_fn()
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts) * 1e6

        d = await timed(lambda: direct.complete(req))
        r = await timed(lambda: router.achat(req))
        # breakdown of one routed call
        parts: dict[str, float] = {}
        t0 = time.perf_counter()
        for _ in range(200):
            await router.ledger.view(NOW, router.model_ids)
        parts["ledger_view_us"] = (time.perf_counter() - t0) / 200 * 1e6
        t0 = time.perf_counter()
        for _ in range(200):
            await router.aexplain(req)
        parts["plan_us"] = (time.perf_counter() - t0) / 200 * 1e6
        return d, r, parts

    d, r, parts = asyncio.run(run())
    return {"models": float(n_models), "direct_fake_us": d, "router_achat_us": r, "overhead_us": r - d,
            "ratio": r / d if d else float("nan"), **parts}


def bench_routes(repeat: int, n_models: int = 50) -> dict[str, float]:
    """Median `Router.aexplain` (features + ledger view + plan) per kind of explicit route."""
    cards = _cards(n_models)
    ids = [c.id for c in cards]
    providers = {p: FakeProvider(name=p, scripts=[reply("ok")]) for p in {c.provider for c in cards}}
    router = Router(catalog=Catalog(cards), providers=providers, ledger=Ledger(MemoryStore(), default_pools()),
                    policy="free-first", rng=random.Random(1), fallbacks={ids[0]: ids[1:4], "auto": [ids[5]]},
                    deployments={"pair": [{"model": ids[6], "weight": 3}, {"model": ids[7], "weight": 1}]})
    plain = Router(catalog=Catalog(cards), providers=providers, ledger=Ledger(MemoryStore(), default_pools()),
                   policy="free-first")  # the same without explicit routes
    msgs = [Message(role="user", content="Write a python function that adds two numbers.")]
    cases = {"pinned_alone_us": (router, ids[10]), "pinned_3_fallbacks_us": (router, ids[0]),
             "deployments_2_us": (router, "pair"), "auto_alone_us": (plain, "auto"),
             "auto_plus_fallback_us": (router, "auto")}

    async def run() -> dict[str, float]:
        out = {}
        for label, (r, model) in cases.items():
            req = ChatRequest(model=model, messages=msgs)
            for _ in range(50):
                await r.aexplain(req)
            ts = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                await r.aexplain(req)
                ts.append(time.perf_counter() - t0)
            out[label] = statistics.median(ts) * 1e6
        return out

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.router_bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3000)
    ap.add_argument("--sdk-repeat", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    res = {"choose_median_us": bench_choose(a.repeat), "cascade_median_us": bench_cascade(a.repeat),
           "features": bench_features(a.repeat), "sdk": bench_sdk(a.sdk_repeat), "routes": bench_routes(a.sdk_repeat)}
    res["min_us"] = dict(_MINS)
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print("choose() median, microseconds (prepared candidates; last column: plain list of cards)")
    pols = list(next(iter(res["choose_median_us"].values())))
    print(f"{'models':>6} " + " ".join(f"{p:>12}" for p in pols))
    for n, row in res["choose_median_us"].items():
        print(f"{n:>6} " + " ".join(f"{row[p]:>12.1f}" for p in pols))
    mins = res["min_us"]
    print("min (quiet-machine cost) at 50 models: " + ", ".join(
        f"{p} {mins[f'choose-50-{p}']:.1f}" for p in ("free-first", "cheapest", "best", "balanced", "cascade")))
    cm = res["cascade_median_us"]
    print(f"two-stage cascade plan at 50 models: {cm['listed']:.1f} us (stages list 3 + 1 models; min "
          f"{mins['cascade-50-listed']:.1f}), {cm['all']:.1f} us (both stages open to all 50; min "
          f"{mins['cascade-50-all']:.1f})")
    fe = res["features"]
    print(f"\nextract_features: {fe['extract_features_2k_en_us']:.1f} us (2k-token English prompt, "
          f"~{int(fe['tokens_estimated'])} tokens; min {mins['features-en']:.1f}), "
          f"{fe['extract_features_2k_mc_us']:.1f} us (2k-token 5-shot multiple choice; min {mins['features-mc']:.1f}), "
          f"{fe['extract_features_zh_us']:.1f} us (Chinese prompt; min {mins['features-zh']:.1f})")
    s = res["sdk"]
    print(f"\nSDK over a zero-latency FakeProvider ({int(s['models'])} candidate models):")
    print(f"  direct FakeProvider.complete  {s['direct_fake_us']:8.1f} us")
    print(f"  Router.achat                  {s['router_achat_us']:8.1f} us  (overhead {s['overhead_us']:.1f} us, "
          f"ratio {s['ratio']:.1f}x)")
    print(f"    of which ledger.view {s['ledger_view_us']:.1f} us, plan (features+view+choose) {s['plan_us']:.1f} us")
    print("\nexplicit routes, Router.aexplain median: " + ", ".join(
        f"{k.removesuffix('_us').replace('_', ' ')} {v:.1f} us" for k, v in res["routes"].items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
