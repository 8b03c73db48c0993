"""The dashboard's HTML: plain strings, every value escaped.

Model names, route reasons, errors, key ids, users and tags reach these pages from
clients and operators; each goes through `esc()` (html.escape, quotes included) and
the chart data goes in a JSON block whose `<`, `>` and `&` are \\u-escaped, so no value
can open a tag or end the block. The pages load only the files under /ui/static/
(no inline script or style: the Content-Security-Policy forbids both).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import orjson

from router.server.ui.data import DIMENSIONS, WINDOWS, Snapshot

__all__ = ["esc", "dashboard", "login", "message", "chart_json"]

_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>{title}</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui/static/uPlot.min.css">
<link rel="stylesheet" href="/ui/static/dashboard.css">
{scripts}</head>
"""
_SCRIPTS = ('<script src="/ui/static/uPlot.iife.min.js" defer></script>\n'
            '<script src="/ui/static/dashboard.js" defer></script>\n')
_LABEL = {"model": "model", "provider": "provider", "key": "key"}


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def chart_json(charts: dict[str, Any]) -> str:
    """The charts' data for the page's JSON block, safe inside <script type=application/json>."""
    raw = orjson.dumps({dim: s.plain() for dim, s in charts.items()}).decode()
    return raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _money(v: Any) -> str:
    if v is None:
        return "-"
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    return "$" + format(d, "f")


def _ts(v: Any) -> str:
    if v is None:
        return "-"
    d = v if isinstance(v, datetime) else datetime.fromtimestamp(float(v), tz=timezone.utc)
    return d.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _until(v: datetime | None, now: datetime) -> str:
    """A future time as 'in 2 h 5 min (2026-...Z)'; '-' when none."""
    if v is None:
        return "-"
    s = int((v - now).total_seconds())
    if s <= 0:
        return f"now ({_ts(v)})"
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    parts = ([f"{d} d"] if d else []) + ([f"{h} h"] if h else []) + ([f"{m} min"] if m and not d else [])
    return f"in {' '.join(parts) or 'under a minute'} ({_ts(v)})"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else esc(v)


def _table(cls: str, head: list[str], rows: list[list[str]], empty: str, nowrap: tuple[int, ...] = ()) -> str:
    """A table of already-escaped cells; columns in `nowrap` (numbers, times) never wrap."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    th = "".join(f'<th{" class=n" if i in nowrap else ""}>{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in nowrap else ""}>{c}</td>' for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _summary(snap: Snapshot) -> str:
    rows = snap.totals.get("model", [])
    req = sum(r["requests"] for r in rows)
    err = sum(r["errors"] for r in rows)
    cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    free_left = sum(1 for p in snap.pools if p.free and p.usable(snap.now))
    tiles = [("spend", _money(cost)), ("requests", f"{req:,}"), ("errors", f"{err:,}"),
             ("fallbacks", f"{snap.fallbacks:,}"),
             ("free pools usable", f"{free_left} of {sum(1 for p in snap.pools if p.free)}")]
    return '<section id="summary" class="tiles">' + "".join(
        f'<div class="tile"><span class="v">{esc(v)}</span><span class="k">{esc(k)}</span></div>'
        for k, v in tiles) + "</section>"


def _spend(snap: Snapshot) -> str:
    if not snap.spend_enabled:
        return '<section id="spend"><h2>Spend over time</h2><p class="empty">The spend log is off ' \
               '(server.spend_db: off).</p></section>'
    out = ['<section id="spend"><h2>Spend over time</h2><div class="charts">']
    for dim in DIMENSIONS:
        rows = [[esc(r[dim]), f"{r['requests']:,}", f"{r['errors']:,}",
                 f"{r['tokens']:,}", esc(_money(r["cost_usd"]))]
                for r in snap.totals.get(dim, [])]
        out.append(f'<div class="panel" id="by-{dim}"><h3>by {_LABEL[dim]}</h3>'
                   f'<div class="chart" data-dim="{dim}"></div>'
                   + _table("totals", [_LABEL[dim], "requests", "errors", "tokens", "cost"], rows,
                            f"No requests in the last {snap.window}.", (1, 2, 3, 4)) + "</div>")
    out.append("</div></section>")
    return "".join(out)


def _pool_state(p: Any, now: datetime) -> str:
    if p.exhausted_until is not None and p.exhausted_until > now:
        return f'<span class="bad">exhausted, {esc(_until(p.exhausted_until, now))}</span>'
    if p.cooldown_until is not None and p.cooldown_until > now:
        return f'<span class="warn">cooling down, {esc(_until(p.cooldown_until, now))}</span>'
    return '<span class="ok">usable</span>' if p.usable(now) else '<span class="bad">empty</span>'


def _pools(snap: Snapshot) -> str:
    rows = [[esc(p.pool_id), esc(p.kind + (" (free)" if p.free else "")), _num(p.remaining_requests),
             _num(p.remaining_tokens), esc(_money(p.remaining_usd) if p.remaining_usd is not None else "-"),
             esc(_until(p.resets_at, snap.now) if p.resets_at else "never"), _pool_state(p, snap.now)]
            for p in snap.pools]
    return ('<section id="pools"><h2>Free pools and quotas</h2>'
            + _table("pools", ["pool", "kind", "requests left", "tokens left", "money left", "next reset", "state"],
                     rows, "No quota pools (no ledger, or no model with a free tier).", (2, 3, 4)) + "</section>")


def _budgets(snap: Snapshot) -> str:
    rows = []
    for b in snap.budgets:
        used = b.spent_usd + b.reserved_usd
        meter = (f'<meter min="0" max="{esc(b.limit_usd)}" value="{esc(min(used, b.limit_usd))}" '
                 f'high="{esc(b.limit_usd * Decimal("0.8"))}"></meter>' if b.limit_usd > 0 else "")
        rows.append([esc(b.budget_id), esc(b.scope), esc(b.match), esc(b.period), esc(_money(b.limit_usd)),
                     esc(_money(b.spent_usd)), esc(_money(b.reserved_usd)), esc(_money(b.headroom())),
                     meter, "hard" if b.hard else "soft", esc(_until(b.resets_at, snap.now))])
    return ('<section id="budgets"><h2>Budgets</h2>'
            + _table("budgets", ["budget", "scope", "match", "period", "limit", "spent", "reserved", "left", "",
                                 "kind", "resets"], rows, "No budgets configured.", (4, 5, 6, 7)) + "</section>")


def _status(s: Any) -> str:
    cls = "ok" if s is not None and int(s) < 400 else "bad"
    return f'<span class="{cls}">{esc(s)}</span>'


def _decisions(snap: Snapshot) -> str:
    rows = [[esc(_ts(r["ts"])), esc(r["key_id"] or "-"), esc(r["endpoint"]) + (" (stream)" if r["stream"] else ""),
             esc(r["requested_model"] or "-"), esc(r["model"] or "-"), esc(r["provider"] or "-"),
             f'<span class="reason">{esc(r["route_reason"] or "-")}</span>', esc(_money(r["cost_usd"])),
             esc(round(r["latency_ms"] or 0.0)), _status(r["status"])] for r in snap.decisions]
    return ('<section id="decisions"><h2>Latest routing decisions</h2>'
            + _table("decisions", ["time", "key", "endpoint", "requested", "model", "provider", "reason", "cost",
                                   "ms", "status"], rows, "No requests recorded yet.", (0, 1, 2, 7, 8, 9)) + "</section>")


def _trouble(snap: Snapshot) -> str:
    rows = [[esc(_ts(r["ts"])), esc(r["key_id"] or "-"), esc(r["requested_model"] or "-"),
             esc(" → ".join((r["fallback_chain"] or "-").split(","))), _status(r["status"]),
             f'<span class="error">{esc(r["error"] or "")}</span>'] for r in snap.trouble]
    bad = [[esc(k["id"]), esc(k.get("reason") or "-"), esc(k.get("until") or "-")] for k in snap.bad_keys]
    out = ('<section id="trouble"><h2>Fallbacks and errors</h2>'
           + _table("trouble", ["time", "key", "requested", "attempts", "status", "error"], rows,
                    f"No fallbacks or errors in the last {snap.window}.", (0, 4)))
    if bad:
        out += "<h3>Upstream keys set aside</h3>" + _table("badkeys", ["key", "reason", "until"], bad, "")
    return out + "</section>"


def dashboard(snap: Snapshot) -> str:
    cur = ' aria-current="page"'
    nav = " ".join(f'<a href="/ui?window={w}"{cur if w == snap.window else ""}>{w}</a>' for w in WINDOWS)
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in snap.notes)
    return (_HEAD.format(title="quotaroute dashboard", scripts=_SCRIPTS)
            + '<body><header><h1>quotaroute</h1>'
            + f'<nav aria-label="window">last {nav}</nav>'
            + f'<span class="asof">as of {esc(_ts(snap.now))}</span>'
            + '<form method="post" action="/ui/logout"><button type="submit">Sign out</button></form></header>'
            + f"<main>{notes}{_summary(snap)}{_spend(snap)}{_pools(snap)}{_budgets(snap)}"
            + f"{_decisions(snap)}{_trouble(snap)}</main>"
            + f'<script type="application/json" id="chart-data">{chart_json(snap.charts)}</script>'
            + "</body></html>\n")


def login(error: str | None = None, *, plain_http_remote: bool = False) -> str:
    err = f'<p class="error" role="alert">{esc(error)}</p>' if error else ""
    warn = ('<p class="note">This page was reached over plain HTTP on a non-loopback address: the session '
            "cookie is Secure, so the browser keeps it only over HTTPS. Put TLS in front of the proxy.</p>"
            if plain_http_remote else "")
    return (_HEAD.format(title="quotaroute dashboard: sign in", scripts="")
            + '<body class="login"><main><h1>quotaroute</h1>'
            + '<form method="post" action="/ui/login" autocomplete="off">'
            + '<label for="key">Admin key</label>'
            + '<input id="key" name="key" type="password" required autofocus spellcheck="false">'
            + f'<button type="submit">Sign in</button></form>{err}{warn}</main></body></html>\n')


def message(title: str, text: str) -> str:
    return (_HEAD.format(title=esc(title), scripts="")
            + f'<body class="login"><main><h1>{esc(title)}</h1><p>{esc(text)}</p></main></body></html>\n')
