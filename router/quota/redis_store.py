"""Redis store: several proxy replicas share one ledger.

Check-and-reserve, settle and release are each ONE Lua script (EVALSHA, falling
back to EVAL when the server has not cached it), so they are atomic across
replicas. Counter keys expire with their windows (PEXPIREAT); a reservation is a
hash plus a member of a sorted set by expiry, swept by the next script call after
it expires. The client passes every counter key ready-made (prefixed, RESP-encoded
once and cached) and each check as one short ARGV string, so the scripts do no
string building (docs/quota-ledger.md). The sweep derives reservation keys
from ids, so use a single Redis (or one hash slot), not a cluster.

Redis unreachable (`on_redis_error`):
* `fail_closed` (default): raise `LedgerUnavailable` (a typed error; the proxy
  answers 503) and log one clear line. Nothing is granted that cannot be counted.
* `local_fallback`: keep serving from an in-process store that starts from the last
  usage this replica read or wrote on Redis (a mirror of the totals each reserve and
  read returned) and grants each replica `(limit - last known) // expected_replicas`
  on top of it, so N replicas together stay within the limit; log one warning when
  entering and one when leaving.

Either way, what happens to a call that was already made is never lost: a commit,
release or learned limit that cannot reach Redis is applied from a local journal
(in order, before anything else) once Redis answers again; commits of calls
reserved locally during the outage are copied back the same way. A call the vendor
answered is returned to the client even when Redis died while it ran.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Literal

from router.quota.memory_store import MemoryStore
from router.quota.store import GRACE_S, HOLD_SUFFIX, Acquired, Adjust, Check, LedgerUnavailable

__all__ = ["RedisStore"]

log = logging.getLogger("quotaroute.ledger")

# Every script gets the key prefix as ARGV[1] and takes every key it touches on the
# hot path as a KEY, already prefixed by the client (cached per span), so Lua does no
# parsing and no string building. A reservation is a HASH `rh:<id>`: field = the
# (prefixed) counter it holds an amount on, value = the amount; a check with `hold`
# holds on both `charge` and `charge#h`. The field "_" (value 0) marks an empty one.
_COMMON = """
local P = ARGV[1]
local function sub(k, amount)
  if redis.call('EXISTS', k) == 1 then redis.call('DECRBY', k, string.format('%d', amount)) end
end
local function undo(rec)  -- HGETALL reply: key, amount, key, amount, ... (field "_" is the state)
  for i = 1, #rec, 2 do
    local v = tonumber(rec[i + 1])
    if v ~= 0 and rec[i] ~= '_' then sub(rec[i], v) end
  end
end
-- The crash rule: an expired reservation is charged at its reserved amounts (its call
-- may have reached the vendor). Only the in-flight holds ("#h" fields) end; the hash
-- stays (state "_" = 1) until its own expiry, a day later, for a late commit.
local function sweep(zk, now)
  local ids = redis.call('ZRANGEBYSCORE', zk, '-inf', now, 'LIMIT', 0, 200)
  for _, rid in ipairs(ids) do
    local rk = P .. 'rh:' .. rid
    local rec = redis.call('HGETALL', rk)
    if #rec > 0 then
      local holds = {}
      for i = 1, #rec, 2 do
        local k = rec[i]
        if string.sub(k, -2) == '""" + HOLD_SUFFIX + """' then
          local v = tonumber(rec[i + 1])
          if v ~= 0 then sub(k, v) end
          holds[#holds + 1] = k
        end
      end
      if #holds > 0 then redis.call('HDEL', rk, unpack(holds)) end
      redis.call('HSET', rk, '_', '1')
    else  -- a reservation written by an older version: a JSON list of [key, amount, hold]
      local raw = redis.call('GET', P .. 'res:' .. rid)
      if raw then
        for _, it in ipairs(cjson.decode(raw)) do
          if it[2] ~= 0 and it[3] == 1 then sub(P .. it[1] .. '""" + HOLD_SUFFIX + """', it[2]) end
        end
        redis.call('DEL', P .. 'res:' .. rid)
      end
    end
    redis.call('ZREM', zk, rid)
  end
  return #ids
end
"""

# KEYS: resexp zset, reservation hash, every check's span keys (in check order), then
#       per check: charge, [charge#h if hold]; all spans are read with ONE MGET
# ARGV: prefix, rid, expires_at, now, reservation expiry ms, then one per check:
#       "<span length> <amount> <limit or -1> <charge expiry ms> <hold expiry ms, 0 = no hold>"
# Reply: "ok failed total total ..." (one bulk string: cheaper to parse than nested arrays)
_ACQUIRE = _COMMON + """
local zk, rk = KEYS[1], KEYS[2]
sweep(zk, ARGV[4])
local NS, AM, LI, EX, HX, n, S = {}, {}, {}, {}, {}, 0, 0
for a = 6, #ARGV do
  local ns, amount, limit, exp, hexp = string.match(ARGV[a], '^(%d+) (%-?%d+) (%-?%d+) (%d+) (%d+)$')
  n = n + 1
  NS[n], AM[n], LI[n], EX[n], HX[n] = tonumber(ns), amount, tonumber(limit), exp, hexp
  S = S + NS[n]
end
local vals = S > 0 and redis.call('MGET', unpack(KEYS, 3, 2 + S)) or {}
local totals, vi = {}, 1
for i = 1, n do
  local used = 0
  for j = vi, vi + NS[i] - 1 do local v = vals[j]; if v then used = used + tonumber(v) end end
  vi = vi + NS[i]
  local amt = tonumber(AM[i])
  if LI[i] >= 0 and used + amt > LI[i] then
    totals[i] = string.format('%d', used)
    return '0 ' .. (i - 1) .. ' ' .. table.concat(totals, ' ')
  end
  totals[i] = string.format('%d', used + amt)
end
local rec, pos, ki = {'_', '0'}, {}, 3 + S
local function hold(k, amount, amt, exp)
  if redis.call('INCRBY', k, amount) == amt then redis.call('PEXPIREAT', k, exp) end
  local i = pos[k]
  if i then rec[i] = string.format('%d', tonumber(rec[i]) + amt)
  else rec[#rec + 1] = k; rec[#rec + 1] = amount; pos[k] = #rec end
end
for i = 1, n do
  local amount, hexp = AM[i], HX[i]
  if amount ~= '0' then
    local amt = tonumber(amount)
    hold(KEYS[ki], amount, amt, EX[i])
    if hexp ~= '0' then hold(KEYS[ki + 1], amount, amt, hexp) end
  end
  ki = ki + 1
  if hexp ~= '0' then ki = ki + 1 end
end
redis.call('HSET', rk, unpack(rec))
redis.call('PEXPIREAT', rk, ARGV[5])
redis.call('ZADD', zk, ARGV[3], ARGV[2])
return '1 -1 ' .. table.concat(totals, ' ')
"""

# KEYS: resexp zset, reservation hash, then per adjust: charge, span keys (only with a clamp)
# ARGV: prefix, rid, final (1/0), then one per adjust:
#       "<span length> <actual> <charge expiry ms> <clamp or -1>"
# Reply: "live applied applied ..."
_SETTLE = _COMMON + """
local zk, rk = KEYS[1], KEYS[2]
local raw = redis.call('HGETALL', rk)
local held = {}
for i = 1, #raw, 2 do held[raw[i]] = tonumber(raw[i + 1]) end
local live = #raw > 0 and held['_'] == 0
held['_'] = nil
local applied, done, ki = {live and '1' or '0'}, {}, 3
for a = 4, #ARGV do
  local ns, actual, exp, clamp = string.match(ARGV[a], '^(%d+) (%-?%d+) (%d+) (%-?%d+)$')
  ns, actual, clamp = tonumber(ns), tonumber(actual), tonumber(clamp)
  local ck = KEYS[ki]
  local h = held[ck] or 0
  if held[ck] then held[ck] = nil; done[#done + 1] = ck end
  if clamp >= 0 then
    local others = 0
    local vals
    if ns > 0 then vals = redis.call('MGET', unpack(KEYS, ki + 1, ki + ns)) else vals = {redis.call('GET', ck)} end
    for _, v in ipairs(vals) do if v then others = others + tonumber(v) end end
    actual = math.max(0, math.min(actual, clamp - (others - h)))
  end
  local d = actual - h
  if d ~= 0 and redis.call('INCRBY', ck, string.format('%d', d)) == d then redis.call('PEXPIREAT', ck, exp) end
  local hk = ck .. '""" + HOLD_SUFFIX + """'
  local hv = held[hk]
  if hv then
    held[hk] = nil; done[#done + 1] = hk
    if hv ~= 0 then sub(hk, hv) end
  end
  applied[#applied + 1] = string.format('%d', actual)
  ki = ki + 1 + ns
end
if #raw > 0 then
  if ARGV[3] == '1' then
    for k, v in pairs(held) do if v ~= 0 then sub(k, v) end end
    redis.call('DEL', rk); redis.call('ZREM', zk, ARGV[2])
  elseif #done > 0 then
    redis.call('HDEL', rk, unpack(done))
  end
end
return table.concat(applied, ' ')
"""

# KEYS: resexp zset, reservation hash; ARGV: prefix, rid
_RELEASE = _COMMON + """
local raw = redis.call('HGETALL', KEYS[2])
if #raw == 0 then return 0 end
undo(raw); redis.call('DEL', KEYS[2]); redis.call('ZREM', KEYS[1], ARGV[2])
return 1
"""

_RAISE = """
local k, v, exp = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local cur = tonumber(redis.call('GET', k) or '0')
if v > cur then redis.call('SET', k, ARGV[1], 'KEEPTTL') end
redis.call('PEXPIREAT', k, exp, 'NX'); redis.call('PEXPIREAT', k, exp, 'GT')
return 1
"""

_SWEEP = _COMMON + "return sweep(KEYS[1], ARGV[2])"

# Check and charge without a reservation (request rate windows).
# KEYS: every check's span keys (in check order), then one charge key per check
# ARGV: prefix, then one per check: "<span length> <amount> <limit or -1> <charge expiry ms>"
# Reply: "ok failed total total ..."
_TAKE = """
local NS, AM, LI, EX, n, S = {}, {}, {}, {}, 0, 0
for a = 2, #ARGV do
  local ns, amount, limit, exp = string.match(ARGV[a], '^(%d+) (%-?%d+) (%-?%d+) (%d+)$')
  n = n + 1
  NS[n], AM[n], LI[n], EX[n] = tonumber(ns), amount, tonumber(limit), exp
  S = S + NS[n]
end
local vals = S > 0 and redis.call('MGET', unpack(KEYS, 1, S)) or {}
local totals, vi = {}, 1
for i = 1, n do
  local used = 0
  for j = vi, vi + NS[i] - 1 do local v = vals[j]; if v then used = used + tonumber(v) end end
  vi = vi + NS[i]
  local amt = tonumber(AM[i])
  if LI[i] >= 0 and used + amt > LI[i] then
    totals[i] = string.format('%d', used)
    return '0 ' .. (i - 1) .. ' ' .. table.concat(totals, ' ')
  end
  totals[i] = string.format('%d', used + amt)
end
for i = 1, n do
  if AM[i] ~= '0' then
    local k = KEYS[S + i]
    if redis.call('INCRBY', k, AM[i]) == tonumber(AM[i]) then redis.call('PEXPIREAT', k, EX[i]) end
  end
end
return '1 -1 ' .. table.concat(totals, ' ')
"""
_JOURNAL_MAX = 100_000  # settles waiting for Redis to come back (bounded: oldest dropped, logged)
_MIRROR_MAX = 16_384


def _i(x: float) -> str:
    return repr(x) if isinstance(x, float) else str(x)


def _bulk(s: str) -> bytes:
    b = s.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


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
        self._spans: dict[Any, tuple[tuple[str, ...], bytes, int]] = {}
        self._sha_bulk: dict[str, bytes] = {}
        self._down_since: float | None = None
        self._retry_at = 0.0
        self.fallback = MemoryStore(limit_divisor=self.expected_replicas)
        self._mirror = on_redis_error == "local_fallback"  # remember shared totals for the fallback
        self._journal: deque[tuple[str, tuple[Any, ...]]] = deque()  # settles to apply when Redis is back

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

    def _span(self, span: tuple[str, ...], ck: Any = None) -> tuple[tuple[str, ...], bytes, int]:
        """Prefixed keys, their RESP encoding and count, cached under `ck` (default: the span):
        a check's keys repeat for a whole window slot."""
        ck = span if ck is None else ck
        c = self._spans.get(ck)
        if c is None:
            if len(self._spans) > 8192:
                self._spans.clear()
            ks = tuple(self.prefix + k for k in span)
            c = self._spans[ck] = (ks, b"".join(map(_bulk, ks)), len(ks))
        return c

    async def _eval(self, name: str, script: str, keys: list[Any], argv: list[str]) -> Any:
        """keys: RESP-encoded key chunks (resp transport; each may hold several keys) or key strings."""
        r = self._client()
        if self.transport == "resp":
            from router.quota._resp import RespError

            sha = self._sha.get(name)
            if sha is None:
                sha = (await r.execute("SCRIPT", "LOAD", script)).decode()
                self._sha[name] = sha
                self._sha_bulk[name] = _bulk(sha)
            nkeys, chunks = keys
            n = 3 + nkeys + len(argv)
            body = b"%s%s%s" % (_bulk(str(nkeys)), b"".join(chunks), b"".join(map(_bulk, argv)))
            try:
                return await r.execute_raw(b"*%d\r\n$7\r\nEVALSHA\r\n%s%s" % (n, self._sha_bulk[name], body))
            except RespError as e:
                if not str(e).startswith("NOSCRIPT"):
                    raise
                # server restarted / SCRIPT FLUSH: EVAL caches it again
                return await r.execute_raw(b"*%d\r\n$4\r\nEVAL\r\n%s%s" % (n, _bulk(script), body))
        from redis.exceptions import NoScriptError

        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = await r.script_load(script)
        try:
            return await r.evalsha(sha, len(keys), *keys, *argv)
        except NoScriptError:  # server restarted / SCRIPT FLUSH: EVAL caches it again
            return await r.eval(script, len(keys), *keys, *argv)

    def _keys(self, groups: list[tuple[tuple[str, ...], bytes, int]], rid: str | None = None) -> Any:
        """The KEYS argument for `_eval` in the transport's form: the first group (`resexp`),
        the reservation hash of `rid` (if given), then the other groups' keys."""
        if self.transport == "resp":
            chunks = [g[1] for g in groups]
            n = sum([g[2] for g in groups])
            if rid is not None:
                chunks.insert(1, _bulk(self.prefix + "rh:" + rid))
                n += 1
            return n, chunks
        ks = [k for g in groups for k in g[0]]
        if rid is not None:
            ks.insert(1, self.prefix + "rh:" + rid)
        return ks

    async def _call(self, name: str, script: str, keys: Any, argv: list[str], fallback: Callable[[], Any],
                    *, soft: bool = False) -> Any:
        """Run one script. Redis unreachable: `fallback()` under local_fallback (or when
        `soft`: an operation that records what already happened, journalled by its
        fallback), else raise LedgerUnavailable. The journal is replayed first."""
        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at and (soft or self.on_redis_error == "local_fallback"):
            return fallback()
        try:
            if self._journal:
                await self._replay()
            out = await self._eval(name, script, keys, argv)
        except self._net_errors() as e:
            self._retry_at = now + self.retry_after_s
            first = self._down_since is None
            if first:
                self._down_since = now
            if self.on_redis_error == "fail_closed":
                if first:
                    log.error("ledger: redis at %s unreachable (%s); on_redis_error=fail_closed: refusing requests",
                              self._where(), type(e).__name__)
                if soft:
                    return fallback()
                raise LedgerUnavailable(f"quota ledger unavailable: redis at {self._where()} unreachable "
                                        f"({type(e).__name__}); on_redis_error=fail_closed",
                                        retry_after=self.retry_after_s) from None
            if first:
                log.warning("ledger: redis at %s unreachable (%s); on_redis_error=local_fallback: local limits "
                            "= (limit - last known usage) / %d expected replicas until it is back", self._where(),
                            type(e).__name__, self.expected_replicas)
            return fallback()
        if self._down_since is not None:
            log.warning("ledger: redis at %s reachable again; back on the shared ledger", self._where())
            self._down_since = None
        return out

    # -- the journal: what happened while Redis was away ------------------------
    def _log(self, kind: str, *args: Any) -> None:
        if len(self._journal) >= _JOURNAL_MAX:
            self._journal.popleft()
            log.error("ledger: redis journal full (%d entries); the oldest settle was dropped", _JOURNAL_MAX)
        self._journal.append((kind, args))

    async def _replay(self) -> None:
        """Apply journalled settles in order (a network error leaves the rest queued)."""
        while self._journal:
            kind, args = self._journal[0]
            try:
                if kind == "settle":
                    await self._eval("settle", _SETTLE, *self._settle_args(*args))
                elif kind == "release":
                    await self._eval("release", _RELEASE, *self._release_args(args[0]))
                else:
                    await self._eval("raise", _RAISE, *self._raise_args(*args))
            except self._net_errors():
                raise
            except Exception:  # noqa: BLE001 - an entry Redis refuses must not block the rest forever
                log.exception("ledger: a journalled %s could not be applied to redis; dropped", kind)
            self._journal.popleft()
        log.warning("ledger: journalled usage copied back to redis at %s", self._where())

    @property
    def pending(self) -> int:
        """Settles waiting in the journal for Redis to come back."""
        return len(self._journal)

    def _remember(self, checks: Sequence[Check], totals: Sequence[int]) -> None:
        """Mirror the shared totals a script returned (the fallback's starting point)."""
        base = self.fallback.base
        if len(base) > _MIRROR_MAX:
            base.clear()
        for c, t in zip(checks, totals):
            base[c.span] = t

    # -- Store interface ---------------------------------------------------------
    async def acquire(self, res_id: str, checks: Sequence[Check], expires_at: float, now: float) -> Acquired:
        groups = [self._span(("resexp",))]
        charges = []
        argv = [self.prefix, res_id, _i(expires_at), _i(now), str(int((expires_at + GRACE_S) * 1000))]
        get = self._spans.get
        for c in checks:
            groups.append(get(c.span) or self._span(c.span))
            ck = (c.charge, c.hold)
            charges.append(get(ck) or self._span((c.charge, c.charge + HOLD_SUFFIX) if c.hold else (c.charge,), ck))
            argv.append(f"{len(c.span)} {c.amount} {-1 if c.limit is None else c.limit} {int(c.expire_at * 1000)} "
                        f"{int(max(c.expire_at, expires_at) * 1000) if c.hold else 0}")
        out = await self._call("acquire", _ACQUIRE, self._keys(groups + charges, res_id), argv,
                               lambda: self.fallback.acquire_sync(res_id, checks, expires_at, now))
        if isinstance(out, Acquired):
            return out
        ok, failed, *totals = out.split()  # bytes; str from a redis-py client with decode_responses
        got = Acquired(ok in (b"1", "1"), int(failed), tuple(map(int, totals)))
        if self._mirror:
            self._remember(checks, got.totals)
        return got

    async def take(self, checks: Sequence[Check], now: float) -> Acquired:
        groups = []
        argv = [self.prefix]
        for c in checks:
            groups.append(self._span(c.span))
        for c in checks:
            groups.append(self._span((c.charge,)))
            argv.append(f"{len(c.span)} {c.amount} {-1 if c.limit is None else c.limit} {int(c.expire_at * 1000)}")
        out = await self._call("take", _TAKE, self._keys(groups), argv, lambda: self.fallback.take_sync(checks, now))
        if isinstance(out, Acquired):
            return out
        ok, failed, *totals = out.split()
        return Acquired(ok in (b"1", "1"), int(failed), tuple(map(int, totals)))

    def _settle_args(self, res_id: str, adjusts: Sequence[Adjust], final: bool) -> tuple[Any, list[str]]:
        groups = [self._span(("resexp",))]
        argv = [self.prefix, res_id, "1" if final else "0"]
        for a in adjusts:
            span = a.span if a.clamp is not None else ()
            groups.append(self._span((a.charge, *span), (a.charge, span)))
            argv.append(f"{len(span)} {a.actual} {int(a.expire_at * 1000)} {-1 if a.clamp is None else a.clamp}")
        return self._keys(groups, res_id), argv

    def _release_args(self, res_id: str) -> tuple[Any, list[str]]:
        return self._keys([self._span(("resexp",))], res_id), [self.prefix, res_id]

    def _raise_args(self, key: str, value: int, expire_at: float) -> tuple[Any, list[str]]:
        return self._keys([self._span((key,))]), [str(value), str(int(expire_at * 1000))]

    async def settle(self, res_id: str, adjusts: Sequence[Adjust], now: float, final: bool = True) -> tuple[bool, list[int]]:
        local = None
        if res_id in self.fallback._res:  # reserved while redis was down: settle here, copy the usage back
            local = self.fallback.settle_sync(res_id, adjusts, now, final)

        def journal() -> tuple[bool, list[int]]:
            self._log("settle", res_id, tuple(adjusts), final)
            return local if local is not None else (True, [a.actual for a in adjusts])

        out = await self._call("settle", _SETTLE, *self._settle_args(res_id, adjusts, final), journal, soft=True)
        if isinstance(out, tuple):
            return out
        live, *applied = out.split()
        if local is not None:  # redis never saw this reservation: it added the usage in full
            return local
        return live in (b"1", "1"), list(map(int, applied))

    async def release(self, res_id: str, now: float) -> bool:
        if res_id in self.fallback._res:
            return self.fallback.release_sync(res_id, now)

        def journal() -> bool:
            self._log("release", res_id)
            return True

        out = await self._call("release", _RELEASE, *self._release_args(res_id), journal, soft=True)
        return bool(out)

    async def read(self, keys: Sequence[str], now: float) -> list[int]:
        if not keys:
            return []

        async def _mget() -> list[int]:
            ks = [self.prefix + k for k in keys]
            r = self._client()
            if self._journal:
                await self._replay()
            vals = await (r.execute("MGET", *ks) if self.transport == "resp" else r.mget(ks))
            return [int(v) if v is not None else 0 for v in vals]

        def local() -> list[int]:
            base = self.fallback.base
            return [base.get((k,), 0) + v for k, v in zip(keys, self.fallback.read_sync(keys, now))]

        if self._down_since is not None and time.monotonic() < self._retry_at and self.on_redis_error == "local_fallback":
            return local()
        try:
            out = await _mget()
        except self._net_errors():
            if self.on_redis_error == "fail_closed":
                raise LedgerUnavailable(f"quota ledger unavailable: redis at {self._where()} unreachable",
                                        retry_after=self.retry_after_s) from None
            return local()
        if self._mirror:
            base = self.fallback.base
            if len(base) > _MIRROR_MAX:
                base.clear()
            for k, v in zip(keys, out):
                base[(k,)] = v
        return out

    async def raise_to(self, key: str, value: int, expire_at: float, now: float) -> None:
        def journal() -> None:
            self.fallback.raise_to_sync(key, value, expire_at, now)
            self._log("raise", key, value, expire_at)

        await self._call("raise", _RAISE, *self._raise_args(key, value, expire_at), journal, soft=True)

    async def sweep(self, now: float) -> int:
        return int(await self._call("sweep", _SWEEP, self._keys([self._span(("resexp",))]), [self.prefix, _i(now)],
                                    lambda: self.fallback.sweep_sync(now)) or 0)

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
