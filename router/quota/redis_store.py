"""Redis store: several proxy replicas share one ledger.

Check-and-reserve, settle and release are each ONE Lua script (EVALSHA, falling
back to EVAL when the server has not cached it), so they are atomic across
replicas. Counter keys expire with their windows (PEXPIREAT); reservations sit in
a sorted set by expiry and are swept by the next script call after they expire.
Scripts compute key names, so use a single Redis (or one hash slot), not a cluster.

Redis unreachable (`on_redis_error`):
* `fail_closed` (default): raise `LedgerUnavailable` (a typed error; the proxy
  answers 503) and log one clear line. Nothing is granted that cannot be counted.
* `local_fallback`: keep serving from an in-process store whose limits are the
  configured limits divided by `expected_replicas` (so N replicas together stay
  within the limit), log one warning when entering and one when leaving. Usage
  counted locally during the outage is not copied back to Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

from router.quota.memory_store import MemoryStore
from router.quota.store import HOLD_SUFFIX, Acquired, Adjust, Check, LedgerUnavailable

__all__ = ["RedisStore"]

log = logging.getLogger("quotaroute.ledger")

_COMMON = """
local P = ARGV[1]
local function num(k) local v = redis.call('GET', P .. k); if v then return tonumber(v) end; return 0 end
local function fields(rec)
  local f = {}
  for x in string.gmatch(rec, '[^\\30]+') do f[#f + 1] = x end
  return f
end
local function total(joined)  -- joined: counter keys separated by \31
  local ks = {}
  for k in string.gmatch(joined, '[^\\31]+') do ks[#ks + 1] = P .. k end
  if #ks == 0 then return 0 end
  local sum = 0
  for _, v in ipairs(redis.call('MGET', unpack(ks))) do if v then sum = sum + tonumber(v) end end
  return sum
end
local function int(x) return string.format('%d', x) end
local function expire(k, ms)
  redis.call('PEXPIREAT', k, int(ms), 'NX'); redis.call('PEXPIREAT', k, int(ms), 'GT')
end
local function add(k, amount, exp_ms)  -- a counter's expiry is fixed by its window: set it once, on creation
  if amount ~= 0 and redis.call('INCRBY', P .. k, int(amount)) == amount then
    redis.call('PEXPIREAT', P .. k, int(exp_ms))
  end
end
local function sub(k, amount)
  if amount ~= 0 and redis.call('EXISTS', P .. k) == 1 then redis.call('DECRBY', P .. k, int(amount)) end
end
local function undo(items)
  for _, it in ipairs(items) do
    sub(it[1], it[2])
    if it[3] == 1 then sub(it[1] .. '""" + HOLD_SUFFIX + """', it[2]) end
  end
end
local function sweep(now)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'resexp', '-inf', now, 'LIMIT', 0, 200)
  for _, rid in ipairs(ids) do
    local raw = redis.call('GET', P .. 'res:' .. rid)
    if raw then undo(cjson.decode(raw)); redis.call('DEL', P .. 'res:' .. rid) end
    redis.call('ZREM', P .. 'resexp', rid)
  end
  return #ids
end
"""

# ARGV: prefix, rid, expires_at, now, checks; checks = records joined by \x1d, each record's fields
# (span, charge, amount, limit or -1, expire_at, hold) joined by \x1e; a span's keys are joined by \x1f.
_ACQUIRE = _COMMON + """
local rid, expires, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
sweep(now)
local checks, totals, c = {}, {}, 0
for rec in string.gmatch(ARGV[5], '[^\\29]+') do
  c = c + 1
  local f = fields(rec)
  local used = total(f[1])
  local ch = {f[2], tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6])}
  if ch[3] >= 0 and used + ch[2] > ch[3] then
    totals[#totals + 1] = used
    return {0, c - 1, totals}
  end
  totals[#totals + 1] = used + ch[2]
  checks[#checks + 1] = ch
end
local items = {}
for _, ch in ipairs(checks) do
  if ch[2] ~= 0 then
    add(ch[1], ch[2], math.floor(ch[4] * 1000))
    if ch[5] == 1 then add(ch[1] .. '""" + HOLD_SUFFIX + """', ch[2], math.floor(math.max(ch[4], expires) * 1000)) end
    items[#items + 1] = {ch[1], ch[2], ch[5]}
  end
end
redis.call('SET', P .. 'res:' .. rid, cjson.encode(items), 'PXAT', int(math.floor((expires + 86400) * 1000)))
redis.call('ZADD', P .. 'resexp', expires, rid)
return {1, -1, totals}
"""

# ARGV: prefix, rid, now, final, adjusts; records joined by \x1d, fields (charge, actual, expire_at,
# clamp or -1, span or "-") joined by \x1e
_SETTLE = _COMMON + """
local rid, now, final = ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
local raw = redis.call('GET', P .. 'res:' .. rid)
local held, order = {}, {}
if raw then
  for _, it in ipairs(cjson.decode(raw)) do held[it[1]] = {it[2], it[3]}; order[#order + 1] = it[1] end
end
local applied = {}
for rec in string.gmatch(ARGV[5], '[^\\29]+') do
  local f = fields(rec)
  local charge, actual, exp, clamp, span = f[1], tonumber(f[2]), tonumber(f[3]), tonumber(f[4]), f[5]
  local h = held[charge] or {0, 0}
  held[charge] = nil
  if clamp >= 0 then
    local others
    if span == '-' then others = num(charge) else others = total(span) end
    others = others - h[1]
    actual = math.max(0, math.min(actual, clamp - others))
  end
  add(charge, actual - h[1], math.floor(exp * 1000))
  if h[2] == 1 then sub(charge .. '""" + HOLD_SUFFIX + """', h[1]) end
  applied[#applied + 1] = actual
end
if raw then
  local rest = {}
  for _, k in ipairs(order) do if held[k] then rest[#rest + 1] = {k, held[k][1], held[k][2]} end end
  if final then
    undo(rest); redis.call('DEL', P .. 'res:' .. rid); redis.call('ZREM', P .. 'resexp', rid)
  else
    redis.call('SET', P .. 'res:' .. rid, cjson.encode(rest), 'KEEPTTL')
  end
end
return {raw and 1 or 0, applied}
"""

_RELEASE = _COMMON + """
local raw = redis.call('GET', P .. 'res:' .. ARGV[2])
if not raw then return 0 end
undo(cjson.decode(raw)); redis.call('DEL', P .. 'res:' .. ARGV[2]); redis.call('ZREM', P .. 'resexp', ARGV[2])
return 1
"""

_RAISE = """
local k, v, exp, now = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local cur = tonumber(redis.call('GET', k) or '0')
if v > cur then redis.call('SET', k, ARGV[2], 'KEEPTTL') end
redis.call('PEXPIREAT', k, exp, 'NX'); redis.call('PEXPIREAT', k, exp, 'GT')
return 1
"""

_SWEEP = _COMMON + "return sweep(tonumber(ARGV[2]))"


_SEP = "\x1f"  # joins a span's counter keys into one script argument


def _i(x: float) -> str:
    return repr(x) if isinstance(x, float) else str(x)


class RedisStore:
    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "quotaroute:",
        on_redis_error: Literal["fail_closed", "local_fallback"] = "fail_closed",
        expected_replicas: int = 1,
        retry_after_s: float = 5.0,
        socket_timeout_s: float = 2.0,
        client: Any = None,
        transport: Literal["resp", "redis-py"] = "resp",
    ) -> None:
        if on_redis_error not in ("fail_closed", "local_fallback"):
            raise ValueError("on_redis_error must be fail_closed or local_fallback")
        if transport not in ("resp", "redis-py"):
            raise ValueError("transport must be resp or redis-py")
        self.transport = "redis-py" if client is not None else transport
        self._errs: tuple[type[BaseException], ...] | None = None
        self.url, self.prefix, self.on_redis_error = url, prefix, on_redis_error
        self.expected_replicas = max(1, int(expected_replicas))
        self.retry_after_s, self.socket_timeout_s = retry_after_s, socket_timeout_s
        self._r = client
        self._sha: dict[str, str] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self.fallback = MemoryStore(limit_divisor=self.expected_replicas)

    def _client(self) -> Any:
        if self._r is None and self.transport == "resp":
            from router.quota._resp import RespClient

            self._r = RespClient(self.url, timeout_s=self.socket_timeout_s)
        if self._r is None:
            import redis.asyncio as aioredis  # lazy: nothing heavy at import

            self._r = aioredis.from_url(self.url, socket_timeout=self.socket_timeout_s,
                                        socket_connect_timeout=self.socket_timeout_s, max_connections=64)
        return self._r

    def _where(self) -> str:
        from router.errors import redact

        return redact(self.url.split("@")[-1])  # never log a password in the URL

    def _net_errors(self) -> tuple[type[BaseException], ...]:
        if self._errs is None:
            errs: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
            if self.transport == "redis-py":
                from redis.exceptions import ConnectionError as RConnErr, TimeoutError as RTimeout

                errs += (RConnErr, RTimeout)
            self._errs = errs
        return self._errs

    async def _eval(self, name: str, script: str, args: Sequence[Any]) -> Any:
        r = self._client()
        if self.transport == "resp":
            from router.quota._resp import RespError

            sha = self._sha.get(name)
            if sha is None:
                sha = self._sha[name] = (await r.execute("SCRIPT", "LOAD", script)).decode()
            try:
                return await r.execute("EVALSHA", sha, 0, *args)
            except RespError as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                return await r.execute("EVAL", script, 0, *args)  # server restarted / SCRIPT FLUSH
        from redis.exceptions import NoScriptError

        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = await r.script_load(script)
        try:
            return await r.evalsha(sha, 0, *args)
        except NoScriptError:  # server restarted / SCRIPT FLUSH: EVAL caches it again
            return await r.eval(script, 0, *args)

    async def _call(self, name: str, script: str, args: Sequence[Any], fallback: Any) -> Any:
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at and self.on_redis_error == "local_fallback":
            return fallback()
        try:
            out = await self._eval(name, script, args)
        except self._net_errors() as e:
            self._retry_at = now + self.retry_after_s
            first = self._down_since is None
            if first:
                self._down_since = now
            if self.on_redis_error == "fail_closed":
                if first:
                    log.error("ledger: redis at %s unreachable (%s); on_redis_error=fail_closed: refusing requests",
                              self._where(), type(e).__name__)
                raise LedgerUnavailable(f"quota ledger unavailable: redis at {self._where()} unreachable "
                                        f"({type(e).__name__}); on_redis_error=fail_closed") from None
            if first:
                log.warning("ledger: redis at %s unreachable (%s); on_redis_error=local_fallback: using local limits "
                            "= limit / %d expected replicas until it is back", self._where(), type(e).__name__,
                            self.expected_replicas)
            return fallback()
        if self._down_since is not None:
            log.warning("ledger: redis at %s reachable again; back on the shared ledger", self._where())
            self._down_since = None
        return out

    # -- Store interface ---------------------------------------------------------
    async def acquire(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        payload = "\x1d".join(
            f"{_SEP.join(c.span)}\x1e{c.charge}\x1e{c.amount}\x1e{-1 if c.limit is None else c.limit}"
            f"\x1e{_i(c.expire_at)}\x1e{int(c.hold)}" for c in checks)
        args = (self.prefix, res_id, _i(expires_at), _i(now), payload)
        out = await self._call("acquire", _ACQUIRE, args,
                               lambda: self.fallback.acquire_sync(res_id, checks, expires_at, now))
        if isinstance(out, Acquired):
            return out
        ok, failed, totals = out
        return Acquired(bool(ok), int(failed), tuple(int(t) for t in totals))

    async def settle(self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True) -> tuple[bool, list[int]]:
        if res_id in self.fallback._res:  # reserved while redis was down
            return self.fallback.settle_sync(res_id, adjusts, now, final)
        payload = "\x1d".join(
            f"{a.charge}\x1e{a.actual}\x1e{_i(a.expire_at)}\x1e{-1 if a.clamp is None else a.clamp}"
            f"\x1e{_SEP.join(a.span) or '-'}" for a in adjusts)
        args = (self.prefix, res_id, _i(now), "1" if final else "0", payload)
        out = await self._call("settle", _SETTLE, args, lambda: self.fallback.settle_sync(res_id, adjusts, now, final))
        if isinstance(out, tuple):
            return out
        return bool(out[0]), [int(x) for x in out[1]]

    async def release(self, res_id: str, now: float) -> bool:
        if res_id in self.fallback._res:
            return self.fallback.release_sync(res_id, now)
        out = await self._call("release", _RELEASE, [self.prefix, res_id], lambda: False)
        return bool(out)

    async def read(self, keys: Sequence[str], now: float) -> list[int]:
        if not keys:
            return []

        async def _mget() -> list[int]:
            ks = [self.prefix + k for k in keys]
            r = self._client()
            vals = await (r.execute("MGET", *ks) if self.transport == "resp" else r.mget(ks))
            return [int(v) if v is not None else 0 for v in vals]

        if self._down_since is not None and time.monotonic() < self._retry_at and self.on_redis_error == "local_fallback":
            return self.fallback.read_sync(keys, now)
        try:
            return await _mget()
        except self._net_errors():
            if self.on_redis_error == "fail_closed":
                raise LedgerUnavailable(f"quota ledger unavailable: redis at {self._where()} unreachable") from None
            return self.fallback.read_sync(keys, now)

    async def raise_to(self, key: str, value: int, expire_at: float, now: float) -> None:
        await self._call("raise", _RAISE, [self.prefix + key, value, int(expire_at * 1000), _i(now)],
                         lambda: self.fallback.raise_to_sync(key, value, expire_at, now))

    async def sweep(self, now: float) -> int:
        return int(await self._call("sweep", _SWEEP, [self.prefix, _i(now)], lambda: self.fallback.sweep_sync(now)) or 0)

    async def aclose(self) -> None:
        if self._r is not None:
            try:
                if self.transport == "resp":
                    self._r.close()
                else:
                    await self._r.aclose()
            except Exception:  # closing a dead connection must not raise
                pass
            self._r = None
