"""Fleet-wide circuit breakers: one breaker's state shared by many processes through Redis.

``SharedCircuitBreaker`` is a :class:`~resilience.CircuitBreaker` whose window counts and state
belong to every process that uses the same name and Redis (or Valkey, or a Redis Cluster)::

    import redis
    from resilience import CircuitBreakerConfig
    from resilience.redis import SharedCircuitBreaker

    cb = SharedCircuitBreaker(
        CircuitBreakerConfig(name="payments", volume_threshold=50),
        redis=redis.Redis(host="cache"),
    )
    cb.call(charge, order)          # same API as CircuitBreaker

Design
------
*Fast path.* In CLOSED a call is the Rust core's own ``call`` (stored per instance, as in
``CircuitBreaker``): no Redis round trip, no extra Python frame of ours. The core reports every
counted outcome to the breaker's collector; ``SharedCircuitBreaker`` puts an internal collector
there (it forwards everything to ``config.metrics`` if one is set) that adds one to a success or
failure counter: that is the whole fleet-mode cost of a call in CLOSED.

*Deltas and the OPEN decision.* Each breaker has two daemon threads: a sync thread and a
listener. The sync thread wakes every ``sync_interval``, takes the counters, and runs one Lua
script (one round trip) that adds the deltas to per-bucket hashes
``{prefix}:{<name>}:b:<bucket>`` (bucket = Redis server time // bucket width; each hash expires
``window_size`` after its last write), sums the buckets inside the window, and, if the fleet is
CLOSED and the thresholds of the contract's rule 1 are crossed (or ``failure_threshold``
failures were counted since the last close), moves the fleet to OPEN: the state hash
``{prefix}:{<name>}:state`` gets the new state, a new generation and ``opened_at`` (server
time), and the script PUBLISHes it on ``{prefix}:{<name>}:events``. Every process listens on
that channel (the listener thread) and applies the new state at once through
``Breaker.enter``, so listeners, logs and the collector hear fleet transitions like any other.
The tick's reply carries the state too (a poll), so a lost message is repaired one
``sync_interval`` later. A failure after which this process can already see the fleet crossing
the thresholds (the last tick's fleet counts plus its own unpushed ones) wakes the sync thread
at once instead of waiting for the next tick. Pushes are at-least-once: if the reply of a
script that did run is lost, its counts are pushed again.

*While the fleet is CLOSED* the local core is kept ``force_closed`` internally: it admits and
counts, but never opens on this process's counts alone (the fleet decides). Window buckets are
counted per CLOSED period (field names carry the period's generation), so closing clears the
fleet's window and a late delta from an earlier period never counts in a later one (rule 5).

*OPEN and HALF_OPEN.* Outside CLOSED, ``call`` becomes a thin Python method. OPEN rejects
locally until ``opened_at + sleep_window`` (server time, converted to this host's monotonic
clock at receipt, so clock skew between hosts does not matter). The first call after that runs
a Lua script that moves the fleet to HALF_OPEN and hands out trial slots: at most
``half_open_requests`` trials for the whole fleet per period, each recorded with its admission
time (server time). A trial still running ``sleep_window`` after admission is judged a failure
on the next admission attempt anywhere in the fleet (contract rule 4, counted in ``orphaned``).
A trial's outcome goes to Redis synchronously (a round trip is fine in HALF_OPEN); the script
decides CLOSED or OPEN with the contract's early-decision rule, grows the sleep window on a
failed period, and publishes. While every slot is taken, a process asks Redis again at most
once per ``sync_interval``.

*Faults.* Every Redis command runs on the breaker's own connections, opened with the user
client's address and credentials but with ``timeout`` (default 50 ms) as socket and connect
time-out and without redis-py's retries. Any Redis error, on the background thread or in a
caller's HALF_OPEN round trip, switches the breaker to *local* mode: the local core decides
alone with the same config (an OPEN fleet state keeps its remaining sleep window), one WARNING
is logged per outage, ``metrics()["coordination"]`` is ``"local"``, and the thread reconnects
with exponential backoff (``sync_interval`` doubling up to 5 s, with jitter). No exception from
Redis reaches a caller. Outcomes counted during the outage are kept per time bucket and pushed
when Redis is back, then the fleet's state wins: a process that opened alone closes if the
fleet is CLOSED, unless its pushed outcomes open the fleet in that same script run. Trials
admitted before an outage are dropped.

*Config mismatch.* The state hash stores a hash of the decision-relevant config fields and the
fields themselves. A process whose config differs logs a WARNING naming both hashes and the
differing fields, stays local (``metrics()["coordination_error"]`` says why) and keeps
checking; the stored config stays in force until the state expires (the fleet idle for
``2 x (window_size + max_sleep_window)``) or a process calls ``reset()``, which resets the
fleet and makes its own config the fleet's.

*Local-only operations.* ``force_open()``, ``force_closed()`` and ``clear_force()`` act on this
process only (an operator's override); while forced, fleet transitions are remembered and
applied at ``clear_force()``. ``reset()`` resets the fleet.

*asyncio.* A ``redis.asyncio.Redis`` client is accepted: the breaker reads its connection
settings and opens synchronous connections of its own for the background thread (an asyncio
client cannot be shared across threads or loops). ``call_async`` and ``async with`` never block
the event loop on Redis: their round trips (HALF_OPEN only) run in the loop's default executor.

*Redis Cluster.* All of a breaker's keys share the hash tag ``{<name>}``, so they live in one
slot and the Lua scripts are cluster-safe; names may not contain ``{`` or ``}``.

Call ``close()`` to stop the background threads when a breaker is no longer used (they also
stop by themselves once the breaker is garbage collected). Create breakers after ``fork()``:
threads do not survive it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import inspect
import json
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar

try:
    import redis as _redis
    import redis.asyncio as _aredis
    import redis.connection as _rconn
    from redis.backoff import NoBackoff
    from redis.retry import Retry as _RedisRetry
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "resilience.redis needs redis-py: pip install 'resilience-rs[redis]'"
    ) from _exc

from . import _core
from ._validate import check_duration
from .breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    _pop_block,
    _push_block,
)
from .errors import CircuitBreakerOpenError
from .observe import MetricsCollector

__all__ = ["SharedCircuitBreaker"]

P = ParamSpec("P")
R = TypeVar("R")

_SUCCESS: Final = 0
_FAILURE: Final = 1
_IGNORED: Final = 2
_CLOSED: Final = 0
_OPEN: Final = 1
_HALF_OPEN: Final = 2
_STATES: Final = (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)
_STATE_CODE: Final = {CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2}

FLEET: Final = "fleet"
LOCAL: Final = "local"

#: While the fleet is OPEN the local core is entered OPEN for this much longer than the fleet's
#: remaining sleep window, so a call that slipped past the Python gate (a stale bound method)
#: can never start a local trial period; the gate rejects with the exact ``retry_after``.
_OPEN_MARGIN: Final = 60.0
#: Longest pause between reconnection attempts.
_MAX_BACKOFF: Final = 5.0

_CONFIG_FIELDS: Final = (
    "error_threshold",
    "volume_threshold",
    "sleep_window",
    "half_open_requests",
    "success_threshold",
    "window_size",
    "bucket_count",
    "failure_threshold",
    "sleep_window_multiplier",
    "max_sleep_window",
)

_log = logging.getLogger("resilience.redis")

# ----------------------------------------------------------------------------------------------
# Lua. KEYS[1] = state hash, KEYS[2] = trials hash, KEYS[3..] = bucket hashes (tick only).
# ARGV[1] cfg hash, [2] config json, [3] epoch to use if the state is new, [4] channel,
# [5] state ttl ms, [6] error_threshold, [7] volume_threshold, [8] failure_threshold,
# [9] sleep_window us, [10] half_open_requests, [11] success_threshold, [12] multiplier,
# [13] max_sleep_window us, [14] bucket width us, [15] bucket_count, [16] window ms;
# per script from [17]. Times are microseconds of the server's TIME. Every reply starts with
# code, epoch, gen, state, opened_at, sleep, now, cgen, half-open successes, failures, running
# trials, orphaned, then two script-specific values. Numbers are formatted with %.0f: Lua 5.1's
# tostring would print 1.7e+15.
# ----------------------------------------------------------------------------------------------

_LUA_PRELUDE = r"""
local function fmt(x) return string.format('%.0f', x) end
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local NUM = {'st', 'gen', 'cgen', 'oat', 'sw', 'fsc', 'hk', 'hs', 'hf', 'seq', 'orph'}
local function load()
  local raw = redis.call('HGETALL', KEYS[1])
  if #raw == 0 then
    return {ep = ARGV[3], cfg = ARGV[1], conf = ARGV[2], st = 0, gen = 0, cgen = 0, oat = 0,
            sw = tonumber(ARGV[9]), fsc = 0, hk = 0, hs = 0, hf = 0, seq = 0, orph = 0}
  end
  local S = {}
  for i = 1, #raw, 2 do S[raw[i]] = raw[i + 1] end
  for _, k in ipairs(NUM) do S[k] = tonumber(S[k] or '0') or 0 end
  S.ep = S.ep or ARGV[3]
  S.cfg = S.cfg or ''
  S.conf = S.conf or ''
  return S
end
local function save(S)
  redis.call('HSET', KEYS[1], 'ep', S.ep, 'cfg', S.cfg, 'conf', S.conf, 'st', fmt(S.st),
    'gen', fmt(S.gen), 'cgen', fmt(S.cgen), 'oat', fmt(S.oat), 'sw', fmt(S.sw),
    'fsc', fmt(S.fsc), 'hk', fmt(S.hk), 'hs', fmt(S.hs), 'hf', fmt(S.hf), 'seq', fmt(S.seq),
    'orph', fmt(S.orph))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local function publish(S, now)
  redis.call('PUBLISH', ARGV[4], table.concat({S.ep, fmt(S.gen), fmt(S.st), fmt(S.oat),
    fmt(S.sw), fmt(now), fmt(S.cgen)}, ' '))
end
local function to_open(S, now, grow)
  if grow then
    S.sw = math.min(math.floor(S.sw * tonumber(ARGV[12])), tonumber(ARGV[13]))
  end
  S.gen = S.gen + 1; S.st = 1; S.oat = now
end
local function to_half_open(S)
  S.gen = S.gen + 1; S.st = 2; S.hk = 0; S.hs = 0; S.hf = 0
  redis.call('DEL', KEYS[2])
end
local function to_closed(S)
  S.gen = S.gen + 1; S.st = 0; S.cgen = S.gen; S.sw = tonumber(ARGV[9]); S.fsc = 0
  S.hk = 0; S.hs = 0; S.hf = 0
  redis.call('DEL', KEYS[2])
end
-- The contract's early decision: 0 = close, 1 = re-open, nil = not certain yet.
local function judge(S)
  local n = tonumber(ARGV[10]); local need = tonumber(ARGV[11])
  if S.hs / n >= need then return 0 end
  if (n - S.hf) / n < need then return 1 end
  return nil
end
local function decide(S, now)
  local d = judge(S)
  if d == 0 then to_closed(S); publish(S, now)
  elseif d == 1 then to_open(S, now, true); publish(S, now) end
end
local function reply(code, S, now, a, b)
  local running = 0
  if S.st == 2 then running = redis.call('HLEN', KEYS[2]) end
  return {code, S.ep, fmt(S.gen), fmt(S.st), fmt(S.oat), fmt(S.sw), fmt(now), fmt(S.cgen),
          fmt(S.hs), fmt(S.hf), fmt(running), fmt(S.orph), a or '', b or ''}
end
local function mismatch(S)
  if S.cfg ~= ARGV[1] then return {'mismatch', S.cfg, S.conf} end
  return nil
end
"""

# Push deltas, sum the window, open the fleet if rule 1 says so. ARGV[17] = index of the bucket
# KEYS[3] names, [18] = number of deltas, then (tag, bucket, successes, failures) each.
_LUA_TICK = (
    _LUA_PRELUDE
    + r"""
local now = server_now()
local width = tonumber(ARGV[14]); local bc = tonumber(ARGV[15])
local cur = math.floor(now / width)
local first = tonumber(ARGV[17])
local last = first + #KEYS - 3
if cur - bc + 1 < first or cur > last then return {'resync', fmt(now)} end
local S = load()
local bad = mismatch(S); if bad then return bad end
local sf = 's' .. fmt(S.cgen); local ff = 'f' .. fmt(S.cgen)
local current = S.ep .. ':' .. fmt(S.cgen)
local own_epoch = S.ep .. ':'
local added = 0
local n = tonumber(ARGV[18])
for i = 0, n - 1 do
  local tag = ARGV[19 + 4 * i]
  local idx = tonumber(ARGV[20 + 4 * i])
  local s = tonumber(ARGV[21 + 4 * i]); local f = tonumber(ARGV[22 + 4 * i])
  local ok = tag == current
  if not ok and S.st == 0 then
    ok = tag == '' or string.sub(tag, 1, #own_epoch) ~= own_epoch
  end
  if ok and idx > cur - bc and idx <= cur then
    local key = KEYS[3 + idx - first]
    if s > 0 then redis.call('HINCRBY', key, sf, s) end
    if f > 0 then redis.call('HINCRBY', key, ff, f) end
    redis.call('PEXPIRE', key, ARGV[16])
    if S.st == 0 then added = added + f end
  end
end
local ts = 0; local tf = 0
for idx = cur - bc + 1, cur do
  local v = redis.call('HMGET', KEYS[3 + idx - first], sf, ff)
  ts = ts + (tonumber(v[1]) or 0); tf = tf + (tonumber(v[2]) or 0)
end
if S.st == 0 then
  S.fsc = S.fsc + added
  local total = ts + tf
  local ft = tonumber(ARGV[8])
  local open = ft > 0 and S.fsc >= ft
  if not open and total > 0 and total >= tonumber(ARGV[7]) then
    open = tf / total >= tonumber(ARGV[6])
  end
  if open then to_open(S, now, false); publish(S, now) end
end
save(S)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local r = reply('ok', S, now, fmt(ts), fmt(tf))
table.insert(r, fmt(S.fsc))
return r
"""
)

# An admission attempt outside CLOSED: OPEN -> HALF_OPEN when due, orphan judging, a trial slot.
_LUA_ADMIT = (
    _LUA_PRELUDE
    + r"""
local now = server_now()
local S = load()
local bad = mismatch(S); if bad then return bad end
if S.st == 0 then save(S); return reply('closed', S, now) end
if S.st == 1 then
  local due = S.oat + S.sw
  if now < due then return reply('reject', S, now, fmt(due - now), '0') end
  to_half_open(S); publish(S, now)
end
local orphaned = 0
local raw = redis.call('HGETALL', KEYS[2])
if S.sw > 0 then
  for i = 1, #raw, 2 do
    if now - tonumber(raw[i + 1]) >= S.sw then
      redis.call('HDEL', KEYS[2], raw[i])
      orphaned = orphaned + 1; S.orph = S.orph + 1; S.hf = S.hf + 1
    end
  end
end
if orphaned > 0 then
  decide(S, now)
  if S.st ~= 2 then
    save(S)
    if S.st == 0 then return reply('closed', S, now, '', fmt(orphaned)) end
    return reply('reject', S, now, fmt(S.sw), fmt(orphaned))
  end
  raw = redis.call('HGETALL', KEYS[2])
end
if S.hk < tonumber(ARGV[10]) then
  S.hk = S.hk + 1; S.seq = S.seq + 1
  redis.call('HSET', KEYS[2], fmt(S.seq), fmt(now))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  save(S)
  return reply('trial', S, now, fmt(S.seq), fmt(orphaned))
end
local retry = 0
if S.sw > 0 then
  local earliest = nil
  for i = 2, #raw, 2 do
    local at = tonumber(raw[i])
    if earliest == nil or at < earliest then earliest = at end
  end
  if earliest then retry = math.max(earliest + S.sw - now, 0) end
end
save(S)
return reply('reject', S, now, fmt(retry), fmt(orphaned))
"""
)

# A trial's outcome. ARGV[17] = "epoch:gen" of its period, [18] = slot id ('' for a manual
# record_*() without a slot), [19] = 0 success, 1 failure, 2 ignored (the slot is given back).
_LUA_OUTCOME = (
    _LUA_PRELUDE
    + r"""
local now = server_now()
local S = load()
local bad = mismatch(S); if bad then return bad end
if S.st ~= 2 or ARGV[17] ~= S.ep .. ':' .. fmt(S.gen) then return reply('stale', S, now) end
local freed = false
if ARGV[18] ~= '' then
  if redis.call('HDEL', KEYS[2], ARGV[18]) == 0 then return reply('stale', S, now) end
  freed = true
else
  local ids = redis.call('HKEYS', KEYS[2])
  if #ids > 0 then redis.call('HDEL', KEYS[2], ids[1]); freed = true end
end
local outcome = tonumber(ARGV[19])
if outcome == 2 then
  if freed and S.hk > 0 then S.hk = S.hk - 1 end
  save(S)
  return reply('ignored', S, now)
end
if outcome == 0 then S.hs = S.hs + 1 else S.hf = S.hf + 1 end
decide(S, now)
save(S)
return reply('counted', S, now)
"""
)

# reset(): the fleet back to a fresh CLOSED period, with the caller's config.
_LUA_RESET = (
    _LUA_PRELUDE
    + r"""
local now = server_now()
local S = load()
S.cfg = ARGV[1]; S.conf = ARGV[2]
to_closed(S)
save(S)
publish(S, now)
return reply('ok', S, now)
"""
)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


class _DeltaCollector:
    """The collector the core reports to: counts outcomes for the next push, then forwards
    everything to the user's collector (if any)."""

    __slots__ = ("_lock", "armed", "fail", "known", "ok", "rule", "user", "wake")

    def __init__(self, user: MetricsCollector | None, rule: tuple[int, float, int]) -> None:
        self._lock = threading.Lock()
        self.ok = 0
        self.fail = 0
        self.user = user
        self.wake = threading.Event()
        # Early push: while armed, a failure after which the fleet's window as this process
        # knows it (the last tick's counts plus this process's unpushed ones) crosses the
        # thresholds wakes the sync thread at once instead of at the next tick.
        self.armed = False
        self.known = (0, 0, 0)  # fleet successes, failures, failures since close
        self.rule = rule  # volume_threshold, error_threshold, failure_threshold

    def record_success(self, name: str) -> None:
        with self._lock:
            self.ok += 1
        if self.user is not None:
            self.user.record_success(name)

    def record_failure(self, name: str, error_type: str) -> None:
        with self._lock:
            self.fail += 1
            ok, fail = self.ok, self.fail
        if self.armed:
            known_ok, known_fail, known_fsc = self.known
            volume, rate, limit = self.rule
            failures = known_fail + fail
            total = known_ok + ok + failures
            if (limit and known_fsc + fail >= limit) or (
                total >= volume and failures >= rate * total
            ):
                self.armed = False
                self.wake.set()
        if self.user is not None:
            self.user.record_failure(name, error_type)

    def record_state_change(self, name: str, from_state: str, to_state: str) -> None:
        if self.user is not None:
            self.user.record_state_change(name, from_state, to_state)

    def record_rejection(self, name: str) -> None:
        if self.user is not None:
            self.user.record_rejection(name)

    def take(self) -> tuple[int, int]:
        with self._lock:
            ok, fail = self.ok, self.fail
            self.ok = self.fail = 0
        return ok, fail

    def peek(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, self.fail


@dataclass(slots=True)
class _Fleet:
    """The fleet's state as this process last heard it."""

    epoch: str
    gen: int
    state: int
    cgen: int
    sleep_us: int
    deadline: float  # local monotonic time when OPEN admits a trial
    successes: int = 0  # window (current CLOSED period), as of the last tick
    failures: int = 0
    hs: int = 0
    hf: int = 0
    running: int = 0
    orphaned: int = 0

    @property
    def tag(self) -> str:
        return f"{self.epoch}:{self.cgen}"


@dataclass(slots=True, eq=False)
class _Trial:
    """A fleet HALF_OPEN trial slot held by a call of this process."""

    tag: str  # "epoch:gen" of the period
    slot: str
    episode: int  # the connection episode it was admitted in
    done: bool = False


_Ticket = _core.Permit | _Trial


class _NeedRedis:
    __slots__ = ()


_NEED_REDIS: Final = _NeedRedis()


def _is_redis_error(exc: BaseException) -> bool:
    """Errors of the coordination path (a reply of an unexpected shape included): they switch
    the breaker to local mode and never reach a caller."""
    return isinstance(exc, (_redis.RedisError, OSError, ValueError, IndexError, TypeError))


def _sync_clone(client: Any, timeout: float) -> _redis.Redis:
    """A synchronous client to the same server as ``client`` (sync or asyncio), with ``timeout``
    as socket and connect time-out, no retries, RESP2 and decoded replies."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    cls_name = pool.connection_class.__name__
    classes: dict[str, Any] = {
        "Connection": _rconn.Connection,
        "SSLConnection": _rconn.SSLConnection,
        "UnixDomainSocketConnection": _rconn.UnixDomainSocketConnection,
    }
    if cls_name not in classes:
        raise TypeError(
            f"SharedCircuitBreaker: redis= uses connection class {cls_name}; supported are "
            f"plain TCP, TLS and unix-socket connections of redis.Redis / redis.asyncio.Redis"
        )
    cls = classes[cls_name]
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and klass is not object:
            accepted |= set(inspect.signature(klass.__init__).parameters)
    keep = {
        k: v
        for k, v in kwargs.items()
        if k in accepted
        and k
        in {
            "host",
            "port",
            "path",
            "db",
            "username",
            "password",
            "credential_provider",
            "client_name",
            "socket_keepalive",
            "socket_keepalive_options",
        }
        | {k for k in kwargs if k.startswith("ssl_")}
    }
    keep.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
        encoding="utf-8",
        protocol=2,
        retry=_RedisRetry(NoBackoff(), 0),
        health_check_interval=0,
    )
    keep = {k: v for k, v in keep.items() if k in accepted}
    new_pool = _redis.ConnectionPool(connection_class=cls, **keep)
    return _redis.Redis(connection_pool=new_pool)


def _config_identity(config: CircuitBreakerConfig) -> tuple[str, str]:
    """(hash, json) of the fields that decide fleet transitions."""
    fields = {f: getattr(config, f) for f in _CONFIG_FIELDS}
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


def _differing(ours: str, theirs: str) -> str:
    try:
        mine = json.loads(ours)
        other = json.loads(theirs)
    except ValueError:
        return "unknown fields"
    diffs = [
        f"{k}: this process {mine.get(k)!r}, fleet {other.get(k)!r}"
        for k in sorted(set(mine) | set(other))
        if mine.get(k) != other.get(k)
    ]
    return "; ".join(diffs) or "no field differs (hash scheme changed)"


# ----------------------------------------------------------------------------------------------
# The breaker
# ----------------------------------------------------------------------------------------------


class SharedCircuitBreaker(CircuitBreaker):
    """A circuit breaker whose window counts and state are shared by every process using the
    same ``name``, ``key_prefix`` and Redis.

    Args:
        config: the settings (keywords override fields, as for ``CircuitBreaker``). Every
            process sharing the name must use the same decision fields (see the module docs).
            ``clock`` must be None: the fleet's clock is the Redis server's ``TIME``.
        redis: a ``redis.Redis`` or ``redis.asyncio.Redis`` client; the breaker opens its own
            connections with the same address and credentials.
        key_prefix: first part of every key (no whitespace, no braces).
        sync_interval: seconds between pushes of this process's counts (> 0).
        timeout: socket and connect time-out of every Redis command, in seconds (> 0).

    Raises:
        TypeError: ``redis`` is not a supported redis-py client, or a field has a wrong type.
        ValueError: a bad prefix, interval, time-out, name, or a config with a ``clock``.
    """

    __slots__ = (
        "_backoff",
        "_client",
        "_closed",
        "_collector",
        "_conf_hash",
        "_conf_json",
        "_episode",
        "_fixed_args",
        "_fleet",
        "_full_until",
        "_keys",
        "_lock",
        "_manual",
        "_mismatch",
        "_mode",
        "_next_tick",
        "_offset_us",
        "_orphaned_seen",
        "_pending",
        "_pubsub",
        "_rejected",
        "_retry_at",
        "_running",
        "_scripts",
        "_stop",
        "_sync_interval",
        "_threads",
        "_timeout",
        "_trials",
        "_user_force",
        "_wake",
        "_warned",
        "_width_us",
    )

    def __init__(
        self,
        config: CircuitBreakerConfig | None = None,
        /,
        *,
        redis: Any = None,
        key_prefix: str = "resilience",
        sync_interval: float | timedelta = 0.1,
        timeout: float | timedelta = 0.05,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = CircuitBreakerConfig(**overrides)
        elif not isinstance(config, CircuitBreakerConfig):
            raise TypeError(
                f"SharedCircuitBreaker(config) must be a CircuitBreakerConfig, got {config!r}"
            )
        elif overrides:
            config = config.replace(**overrides)
        if config.clock is not None:
            raise ValueError(
                f"SharedCircuitBreaker {config.name!r}: config.clock must be None (fleet "
                f"decisions use the Redis server's clock), got {config.clock!r}"
            )
        if "{" in config.name or "}" in config.name:
            raise ValueError(
                f"SharedCircuitBreaker: name {config.name!r} may not contain '{{' or '}}' "
                f"(it is the Redis Cluster hash tag of the breaker's keys)"
            )
        if not isinstance(key_prefix, str) or not key_prefix:
            raise (TypeError if not isinstance(key_prefix, str) else ValueError)(
                f"SharedCircuitBreaker.key_prefix must be a non-empty str, got {key_prefix!r}"
            )
        if any(c.isspace() for c in key_prefix) or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(
                f"SharedCircuitBreaker.key_prefix may not contain whitespace or braces, "
                f"got {key_prefix!r}"
            )
        interval = check_duration(
            "SharedCircuitBreaker", "sync_interval", sync_interval, positive=True
        )
        limit = check_duration("SharedCircuitBreaker", "timeout", timeout, positive=True)
        if not isinstance(redis, (_redis.Redis, _aredis.Redis)):
            kind = type(redis).__module__ + "." + type(redis).__qualname__
            raise TypeError(
                f"SharedCircuitBreaker {config.name!r}: redis= must be a redis.Redis or "
                f"redis.asyncio.Redis client, got {redis!r} ({kind})"
            )
        client = _sync_clone(redis, limit)

        collector = _DeltaCollector(
            config.metrics,
            (config.volume_threshold, config.error_threshold, config.failure_threshold),
        )
        super().__init__(config.replace(metrics=collector))
        self._config = config  # the user's config (its own collector), not the internal one
        self._collector = collector
        self._client = client
        self._lock = threading.RLock()
        self._sync_interval = interval
        self._timeout = limit
        tag = f"{key_prefix}:{{{config.name}}}"
        self._keys = (f"{tag}:state", f"{tag}:trials", f"{tag}:b:", f"{tag}:events")
        self._conf_hash, self._conf_json = _config_identity(config)
        self._width_us = max(1, round(config.window_size * 1e6 / config.bucket_count))
        ttl_ms = max(60_000, round(2_000 * (config.window_size + config.max_sleep_window)))
        self._fixed_args: tuple[str | int | float, ...] = (
            self._conf_hash,
            self._conf_json,
            "",  # epoch candidate, filled per call
            self._keys[3],
            ttl_ms,
            repr(config.error_threshold),
            config.volume_threshold,
            config.failure_threshold,
            round(config.sleep_window * 1e6),
            config.half_open_requests,
            repr(config.success_threshold),
            repr(config.sleep_window_multiplier),
            round(config.max_sleep_window * 1e6),
            self._width_us,
            config.bucket_count,
            max(1, math.ceil(config.window_size * 1000)),
        )
        self._scripts = {
            name: client.register_script(lua)
            for name, lua in (
                ("tick", _LUA_TICK),
                ("admit", _LUA_ADMIT),
                ("outcome", _LUA_OUTCOME),
                ("reset", _LUA_RESET),
            )
        }
        self._mode = LOCAL
        self._fleet: _Fleet | None = None
        self._user_force: str | None = None
        self._pending: dict[tuple[str, int], list[int]] = {}
        self._offset_us: float | None = None
        self._episode = 0
        self._backoff = interval
        self._retry_at = 0.0
        self._next_tick = 0.0
        self._warned = False
        self._mismatch: str | None = None
        self._pubsub: Any = None
        self._full_until = 0.0
        self._running = 0
        self._trials = 0
        self._rejected = 0
        self._orphaned_seen = 0
        self._manual: collections.deque[_Trial] = collections.deque()
        self._closed = False
        self._stop = threading.Event()
        self._wake = collector.wake
        self._threads: tuple[threading.Thread, ...] = ()
        # Join the fleet before the first call if Redis answers within the time-out.
        self._connect()
        ref = weakref.ref(self)
        self._threads = (
            threading.Thread(
                target=_background,
                args=(ref, self._stop, self._wake, SharedCircuitBreaker._step),
                name=f"resilience-redis-sync-{config.name}",
                daemon=True,
            ),
            threading.Thread(
                target=_background,
                args=(ref, self._stop, None, SharedCircuitBreaker._listen),
                name=f"resilience-redis-listen-{config.name}",
                daemon=True,
            ),
        )
        for thread in self._threads:
            thread.start()

    # ----- public additions -----

    @property
    def coordination(self) -> str:
        """``"fleet"`` while Redis coordinates this breaker, ``"local"`` otherwise."""
        return self._mode

    def close(self) -> None:
        """Stops the background thread and closes the breaker's Redis connections. The breaker
        keeps working as a local breaker."""
        with self._lock:
            self._closed = True
            self._stop.set()
            self._wake.set()
            self._go_local(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=max(1.5, 3 * self._sync_interval))
        self._close_pubsub()
        with contextlib.suppress(Exception):  # a broken connection may fail to close
            self._client.close()

    def __repr__(self) -> str:
        return (
            f"SharedCircuitBreaker(name={self.name!r}, state={self.state.value!r}, "
            f"coordination={self._mode!r})"
        )

    def metrics(self) -> dict[str, Any]:
        """The contract's keys, where the window counts and the state are the fleet's, plus
        ``coordination`` ("fleet" or "local"), ``fleet_generation`` (None before the first
        contact) and, while a config mismatch keeps the breaker local, ``coordination_error``.
        Lifetime counters (``rejected``, ``total_executions``, ``in_flight``, ``orphaned``) are
        this process's."""
        m = self._core.metrics()
        with self._lock:
            fleet = self._fleet
            mode = self._mode
            pend_ok = sum(v[0] for v in self._pending.values())
            pend_fail = sum(v[1] for v in self._pending.values())
            m["rejected"] += self._rejected
            m["total_executions"] += self._trials
            m["in_flight"] += self._running
            m["orphaned"] += self._orphaned_seen
        m["coordination"] = mode
        m["fleet_generation"] = fleet.gen if fleet is not None else None
        if self._mismatch is not None:
            m["coordination_error"] = self._mismatch
        if mode == FLEET and fleet is not None and self._user_force is None:
            ok, fail = self._collector.peek()
            success = fleet.successes + pend_ok + ok
            failure = fleet.failures + pend_fail + fail
            m["success"] = success
            m["failure"] = failure
            m["total"] = success + failure
            m["error_rate"] = failure / (success + failure) if success + failure else 0.0
            m["sleep_window"] = fleet.sleep_us / 1e6
            if m["state"] is CircuitState.HALF_OPEN:
                m["half_open_in_flight"] = fleet.running
                m["half_open_successes"] = fleet.hs
                m["half_open_failures"] = fleet.hf
        return m

    # ----- running calls -----

    def _guarded_call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``call`` while the fleet is OPEN or HALF_OPEN (in CLOSED ``call`` is the core's)."""
        ticket = self._admit()
        if type(ticket) is not _Trial:
            permit: _core.Permit = ticket  # type: ignore[assignment]
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._core.complete(permit, exc)
                raise
            self._core.complete(permit)
            return result
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._finish_trial(ticket, self._classify(exc), exc)
            raise
        self._finish_trial(ticket, _SUCCESS, None)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Awaits ``fn(*args, **kwargs)`` through the breaker; Redis round trips (HALF_OPEN
        only) run in the loop's default executor."""
        ticket = await self._admit_async()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._finish_async(ticket, exc)
            raise
        await self._finish_async(ticket, None)
        return result

    def _runner(self) -> Callable[..., Any]:
        """Decorated functions go through ``self.call``, which changes with the fleet's state."""
        return self._dispatch

    def _dispatch(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        return self.call(fn, *args, **kwargs)

    async def __aenter__(self) -> SharedCircuitBreaker:
        _push_block(self, await self._admit_async())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        await self._finish_async(_pop_block(self), exc)
        return False

    # ----- manual use -----

    def can_execute(self) -> bool:
        """Admission without running anything (see CircuitBreaker); in the fleet's HALF_OPEN
        it takes a fleet trial slot, completed by the next ``record_*()``."""
        if not self._fleet_gate():
            return self._core.can_execute()
        try:
            ticket = self._admit()
        except CircuitBreakerOpenError:
            return False
        if type(ticket) is _Trial:
            self._manual.append(ticket)
        else:  # the fleet turned out CLOSED (or unreachable): an admission like can_execute's
            self._core.complete_as(ticket, _IGNORED)  # type: ignore[arg-type]
        return True

    def record_success(self) -> None:
        """Reports a success for a call admitted by ``can_execute()``."""
        self._record(_SUCCESS, None)

    def record_failure(self, exc: BaseException | None = None) -> None:
        """Reports a failure for a call admitted by ``can_execute()``; it always counts."""
        self._record(_FAILURE, exc)

    def _record(self, outcome: int, exc: BaseException | None) -> None:
        try:
            trial: _Trial | None = self._manual.popleft()
        except IndexError:
            trial = None
        if trial is not None:
            self._finish_trial(trial, outcome, exc)
            return
        fleet = self._fleet
        if self._fleet_gate() and fleet is not None and fleet.state == _HALF_OPEN:
            self._finish_trial(
                _Trial(f"{fleet.epoch}:{fleet.gen}", "", self._episode), outcome, exc
            )
            return
        self._core.record(outcome, exc)

    # ----- control (local to this process, except reset) -----

    def force_open(self) -> None:
        """Rejects every call of this process until ``clear_force()`` or ``reset()``."""
        with self._lock:
            self._user_force = "open"
            self._core.force_open()
            self.call = self._core.fast_call  # type: ignore[method-assign]

    def force_closed(self) -> None:
        """Admits every call of this process and judges nothing locally until
        ``clear_force()`` or ``reset()``; its outcomes still count for the fleet."""
        with self._lock:
            self._user_force = "closed"
            self._core.force_closed()
            self.call = self._core.fast_call  # type: ignore[method-assign]

    def clear_force(self) -> None:
        """Ends this process's force; the fleet's current state applies again."""
        with self._lock:
            self._user_force = None
            self._core.clear_force()
            if self._mode == FLEET:
                self._sync_core()

    def reset(self) -> None:
        """Resets this process and the fleet: a fresh CLOSED period for everyone, with this
        process's config as the fleet's (the way to end a config mismatch). Without Redis, only
        the local breaker is reset."""
        with self._lock:
            self._user_force = None
            self._core.reset()
            self._collector.take()
            self._pending.clear()
            self._drop_manual()
            self._full_until = 0.0
            if self._closed:
                return
        try:
            reply = self._run_script("reset", ())
            with self._lock:
                self._mismatch = None
                if self._mode == FLEET:
                    self._apply_reply(reply)
                else:  # rejoin now: the sync thread subscribes and ticks
                    self._retry_at = 0.0
                    self._backoff = self._sync_interval
                    self._wake.set()
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._degrade(exc)

    # ----- admission and completion -----

    def _fleet_gate(self) -> bool:
        """True when an admission must consult the fleet's OPEN/HALF_OPEN state."""
        fleet = self._fleet
        return (
            self._mode == FLEET
            and self._user_force is None
            and fleet is not None
            and fleet.state != _CLOSED
        )

    def _admit_local(self) -> _Ticket | _NeedRedis:
        fleet = self._fleet
        if self._mode != FLEET or self._user_force is not None or fleet is None:
            return self._core.acquire()
        if fleet.state == _CLOSED:
            return self._core.acquire()
        now = time.monotonic()
        if fleet.state == _OPEN and now < fleet.deadline:
            raise self._reject(CircuitState.OPEN, fleet.deadline - now)
        if fleet.state == _HALF_OPEN and now < self._full_until:
            raise self._reject(CircuitState.HALF_OPEN, max(self._full_until - now, 0.0))
        return _NEED_REDIS

    def _admit(self) -> _Ticket:
        ticket = self._admit_local()
        if isinstance(ticket, _NeedRedis):
            return self._admit_remote()
        return ticket

    async def _admit_async(self) -> _Ticket:
        ticket = self._admit_local()
        if isinstance(ticket, _NeedRedis):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self._admit_remote)
        return ticket

    def _admit_remote(self) -> _Ticket:
        episode = self._episode
        try:
            reply = self._run_script("admit", ())
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._degrade(exc)
            return self._core.acquire()
        code = reply[0]
        if code == "mismatch":
            self._config_mismatch(reply)
            return self._core.acquire()
        try:
            with self._lock:
                self._apply_reply(reply)
                self._orphaned_seen += int(reply[13] or 0)
                if code == "trial":
                    self._trials += 1
                    self._running += 1
                    return _Trial(f"{reply[1]}:{reply[2]}", reply[12], episode)
                state = _STATES[int(reply[3])]
                retry = int(reply[12] or 0) / 1e6
                if code == "reject" and state is CircuitState.HALF_OPEN:
                    self._full_until = time.monotonic() + min(retry, self._sync_interval)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._degrade(exc)
            return self._core.acquire()
        if code == "reject":
            raise self._reject(state, retry)
        return self._core.acquire()  # the fleet is CLOSED

    def _reject(self, state: CircuitState, retry_after: float) -> CircuitBreakerOpenError:
        with self._lock:
            self._rejected += 1
        user = self._config.metrics
        if user is not None:
            try:
                user.record_rejection(self.name)
            except Exception as exc:
                self._notifier.callback_failed("metrics", exc)
        return CircuitBreakerOpenError(self.name, state, retry_after)

    def _classify(self, exc: BaseException | None) -> int:
        if exc is None:
            return _SUCCESS
        if not isinstance(exc, Exception):
            return _IGNORED
        try:
            verdict = self._config.error_classifier(exc)
        except Exception as err:
            self._notifier.callback_failed("classifier", err)
            return _FAILURE
        return _FAILURE if verdict else _IGNORED

    def _finish(self, ticket: _Ticket, exc: BaseException | None) -> None:
        if type(ticket) is _Trial:
            self._finish_trial(ticket, self._classify(exc), exc)
        else:
            self._core.complete(ticket, exc)  # type: ignore[arg-type]

    def _finish_as(self, ticket: _Ticket, outcome: int, exc: BaseException | None) -> None:
        if type(ticket) is _Trial:
            self._finish_trial(ticket, outcome, exc)
        else:
            self._core.complete_as(ticket, outcome, exc)  # type: ignore[arg-type]

    async def _finish_async(self, ticket: _Ticket, exc: BaseException | None) -> None:
        if type(ticket) is _Trial:
            outcome = self._classify(exc)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._finish_trial, ticket, outcome, exc)
        else:
            self._core.complete(ticket, exc)  # type: ignore[arg-type]

    def _finish_trial(self, trial: _Trial, outcome: int, exc: BaseException | None) -> None:
        with self._lock:
            if trial.done:
                return
            trial.done = True
            if trial.slot:
                self._running -= 1
            current = self._mode == FLEET and trial.episode == self._episode
        if not current:
            return  # admitted before an outage: the fleet forgot it, the local core never knew
        try:
            reply = self._run_script("outcome", (trial.tag, trial.slot, outcome))
        except Exception as err:
            if not _is_redis_error(err):
                raise
            self._degrade(err)
            return
        if reply[0] == "mismatch":
            self._config_mismatch(reply)
            return
        try:
            with self._lock:
                self._apply_reply(reply)
        except Exception as err:
            if not _is_redis_error(err):
                raise
            self._degrade(err)
            return
        if reply[0] == "counted":
            self._report(outcome, exc)

    def _report(self, outcome: int, exc: BaseException | None) -> None:
        user = self._config.metrics
        if user is None:
            return
        try:
            if outcome == _SUCCESS:
                user.record_success(self.name)
            elif outcome == _FAILURE:
                user.record_failure(
                    self.name, type(exc).__qualname__ if exc is not None else "unknown"
                )
        except Exception as err:
            self._notifier.callback_failed("metrics", err)

    # ----- Redis plumbing -----

    def _run_script(self, name: str, extra: Sequence[Any], keys: Sequence[str] = ()) -> list[str]:
        args = list(self._fixed_args)
        args[2] = f"{random.getrandbits(64):016x}"
        args.extend(extra)
        sent = time.monotonic()
        reply: list[str] = self._scripts[name](
            keys=[self._keys[0], self._keys[1], *keys], args=args
        )
        got = time.monotonic()
        if reply and reply[0] not in ("mismatch", "resync") and len(reply) > 6:
            self._offset_us = int(reply[6]) - (sent + got) / 2 * 1e6
        elif reply and reply[0] == "resync":
            self._offset_us = int(reply[1]) - (sent + got) / 2 * 1e6
        return reply

    def _server_now_us(self) -> float:
        if self._offset_us is None:
            return time.time() * 1e6
        return time.monotonic() * 1e6 + self._offset_us

    def _tag(self) -> str:
        fleet = self._fleet
        if self._mode == FLEET and fleet is not None:
            return fleet.tag
        return ""

    def _accumulate(self) -> None:
        """Moves the collector's counts into the pending deltas (called with the lock held)."""
        ok, fail = self._collector.take()
        if ok or fail:
            bucket = int(self._server_now_us() // self._width_us)
            slot = self._pending.setdefault((self._tag(), bucket), [0, 0])
            slot[0] += ok
            slot[1] += fail

    def _tick(self, joining: bool = False) -> None:
        """Pushes the deltas, runs the fleet decision and applies the fleet state. Only
        ``_connect`` (``joining``, with a fresh subscription) may switch local mode back to
        fleet mode; a tick that finds the breaker gone local meanwhile only delivers counts."""
        bc = self._config.bucket_count
        for _ in range(3):
            with self._lock:
                self._accumulate()
                cur = int(self._server_now_us() // self._width_us)
                first = cur - bc
                for key in [k for k in self._pending if k[1] <= cur - bc]:
                    del self._pending[key]
                deltas = [(k, (v[0], v[1])) for k, v in self._pending.items() if k[1] <= cur + 1]
            keys = [f"{self._keys[2]}{i}" for i in range(first, cur + 2)]
            extra: list[Any] = [first, len(deltas)]
            for (tag, bucket), (ok, fail) in deltas:
                extra.extend((tag, bucket, ok, fail))
            reply = self._run_script("tick", extra, keys)
            if reply[0] == "resync":
                continue
            if reply[0] == "mismatch":
                self._config_mismatch(reply)
                return
            with self._lock:
                for key, (ok, fail) in deltas:
                    slot = self._pending.get(key)
                    if slot is not None:
                        slot[0] -= ok
                        slot[1] -= fail
                        if slot[0] <= 0 and slot[1] <= 0:
                            del self._pending[key]
                resumed = self._mode != FLEET
                if resumed and not joining:
                    return
                if resumed:
                    self._go_fleet()
                self._apply_reply(reply, window=(int(reply[12]), int(reply[13])))
                if resumed:
                    self._sync_core()
                fleet = self._fleet
                collector = self._collector
                collector.known = (int(reply[12]), int(reply[13]), int(reply[14]))
                collector.armed = (
                    self._mode == FLEET
                    and self._user_force is None
                    and fleet is not None
                    and fleet.state == _CLOSED
                )
            return
        raise _redis.RedisError("server time keeps moving away from the client's estimate")

    def _connect(self) -> None:
        """One attempt to join the fleet: subscribe, then tick. Failures go local."""
        if self._closed:
            return
        try:
            self._close_pubsub()
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            self._pubsub = pubsub
            pubsub.subscribe(self._keys[3])
            self._tick(joining=True)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._degrade(exc)
            return
        if self._mode == FLEET:
            self._backoff = self._sync_interval
            self._next_tick = time.monotonic() + self._sync_interval

    def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                pubsub.close()

    def _step(self) -> float:
        """One iteration of the ticker thread; returns how long to wait before the next."""
        if self._closed:
            return 0.5
        now = time.monotonic()
        if self._mode != FLEET:
            with self._lock:
                self._accumulate()
            if now < self._retry_at:
                return min(self._retry_at - now, self._sync_interval)
            self._connect()
            return 0.0
        if now < self._next_tick and not self._wake.is_set():
            return self._next_tick - now
        self._wake.clear()
        self._next_tick += self._sync_interval
        if self._next_tick <= now:
            self._next_tick = now + self._sync_interval
        try:
            self._tick()
            with self._lock:
                if self._mode == FLEET:
                    self._sync_core()  # repairs a state the core reached through a race
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._degrade(exc)
        return 0.0

    def _listen(self) -> float:
        """One iteration of the listener thread: applies one published state, if any."""
        pubsub = self._pubsub
        if pubsub is None or self._mode != FLEET or self._closed:
            return min(self._sync_interval, 0.05)
        try:
            message = pubsub.get_message(timeout=0.2)
            if message is not None and message.get("type") == "message":
                data = message["data"]
                if isinstance(data, bytes):
                    data = data.decode()
                self._on_message(str(data), time.monotonic())
        except Exception as exc:
            if pubsub is self._pubsub and _is_redis_error(exc):
                self._degrade(exc)
            return min(self._sync_interval, 0.05)
        return 0.0

    def _on_message(self, data: str, received: float) -> None:
        parts = data.split()
        if len(parts) != 7:
            return
        epoch, gen, st, oat, sw, now, cgen = parts
        with self._lock:
            if self._mode != FLEET:
                return
            self._apply(epoch, int(gen), int(st), int(cgen), int(oat), int(sw), int(now), received)

    # ----- applying the fleet's state -----

    def _apply_reply(self, reply: list[str], window: tuple[int, int] | None = None) -> None:
        """Applies a script reply (lock held)."""
        self._apply(
            reply[1],
            int(reply[2]),
            int(reply[3]),
            int(reply[7]),
            int(reply[4]),
            int(reply[5]),
            int(reply[6]),
            time.monotonic(),
            window=window,
            half_open=(int(reply[8]), int(reply[9]), int(reply[10])),
            orphaned=int(reply[11]),
        )

    def _apply(
        self,
        epoch: str,
        gen: int,
        st: int,
        cgen: int,
        opened_at: int,
        sleep_us: int,
        now_us: int,
        received: float,
        *,
        window: tuple[int, int] | None = None,
        half_open: tuple[int, int, int] | None = None,
        orphaned: int | None = None,
    ) -> None:
        old = self._fleet
        if old is not None and old.epoch == epoch and gen < old.gen:
            return  # older than what we know (a slow reply overtaken by a message)
        deadline = received + max(opened_at + sleep_us - now_us, 0) / 1e6
        changed = old is None or old.epoch != epoch or old.gen != gen
        if changed:
            self._accumulate()  # counts so far belong to the period that just ended
            self._full_until = 0.0
        fleet = _Fleet(epoch, gen, st, cgen, sleep_us, deadline)
        if old is not None and not changed:
            fleet.successes, fleet.failures = old.successes, old.failures
            fleet.hs, fleet.hf, fleet.running = old.hs, old.hf, old.running
            fleet.orphaned = old.orphaned
        elif old is not None and old.epoch == epoch and old.cgen == cgen:
            fleet.successes, fleet.failures = old.successes, old.failures
        if window is not None:
            fleet.successes, fleet.failures = window
        if half_open is not None:
            fleet.hs, fleet.hf, fleet.running = half_open
        if orphaned is not None:
            fleet.orphaned = orphaned
        self._fleet = fleet
        if self._mode == FLEET and (changed or self._core.state is not _STATES[st]):
            self._sync_core()

    def _sync_core(self) -> None:
        """Makes the local core follow the fleet (lock held, fleet mode)."""
        fleet = self._fleet
        core = self._core
        if fleet is None or self._user_force is not None:
            return
        if fleet.state == _CLOSED:
            if core.forced != "closed":
                core.force_closed()
            self.call = core.fast_call  # type: ignore[method-assign]
            return
        self._collector.armed = False
        if core.forced is not None:
            core.clear_force()
        if fleet.state == _OPEN:
            remaining = max(fleet.deadline - time.monotonic(), 0.0)
            core.enter(_OPEN, remaining + _OPEN_MARGIN)
        elif core.state is not CircuitState.HALF_OPEN:
            core.enter(_HALF_OPEN)
        self.call = self._guarded_call  # type: ignore[method-assign]

    def _drop_manual(self) -> None:
        """Forgets the trials taken by ``can_execute()`` (lock held); a later ``record_*()``
        counts like one without a trial."""
        while self._manual:
            trial = self._manual.popleft()
            if trial.slot and not trial.done:
                trial.done = True
                self._running -= 1

    def _go_fleet(self) -> None:
        """Local -> fleet mode (lock held)."""
        self._mode = FLEET
        self._episode += 1
        self._mismatch = None
        if self._warned:
            _log.info(
                "circuit breaker %r: Redis is back; fleet coordination resumed",
                self.name,
                extra={"breaker": self.name, "coordination": FLEET},
            )
        self._warned = False
        self._backoff = self._sync_interval

    def _go_local(self, reason: str | None) -> bool:
        """Fleet -> local mode (lock held); returns True if the mode changed."""
        if self._mode != FLEET:
            return False
        self._mode = LOCAL
        self._episode += 1
        self._collector.armed = False
        self._drop_manual()
        self._full_until = 0.0
        if self._user_force is None:
            core = self._core
            if core.forced == "closed":
                core.clear_force()
            fleet = self._fleet
            if fleet is not None and fleet.state == _OPEN:
                core.enter(_OPEN, max(fleet.deadline - time.monotonic(), 0.0))
        self.call = self._core.fast_call  # type: ignore[method-assign]
        return True

    def _degrade(self, exc: BaseException) -> None:
        """Any Redis failure: local mode, one WARNING per outage, and a reconnection attempt
        after a backoff that doubles with each failed attempt. Only the background thread
        touches the subscription; it replaces it when it reconnects."""
        with self._lock:
            changed = self._go_local(str(exc))
            if self._closed:
                return
            if changed or time.monotonic() >= self._retry_at:
                delay = self._backoff
                self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
                self._retry_at = time.monotonic() + delay * random.uniform(0.5, 1.0)
            first = not self._warned
            self._warned = True
        _log.log(
            logging.WARNING if first else logging.DEBUG,
            "circuit breaker %r: Redis unavailable (%s: %s); deciding locally until it is back",
            self.name,
            type(exc).__qualname__,
            exc,
            extra={"breaker": self.name, "coordination": LOCAL, "error_type": type(exc).__name__},
        )

    def _config_mismatch(self, reply: list[str]) -> None:
        theirs_hash, theirs_json = reply[1], reply[2]
        message = (
            f"config hash {self._conf_hash} of this process differs from the fleet's "
            f"{theirs_hash} (key {self._keys[0]}): {_differing(self._conf_json, theirs_json)}"
        )
        with self._lock:
            self._go_local(message)
            first = self._mismatch != message
            self._mismatch = message
            self._backoff = _MAX_BACKOFF
            self._retry_at = time.monotonic() + _MAX_BACKOFF
        if first:
            _log.warning(
                "circuit breaker %r: %s; this process decides locally until the fleet's "
                "config matches (or a reset() adopts this one)",
                self.name,
                message,
                extra={
                    "breaker": self.name,
                    "coordination": LOCAL,
                    "config_hash": self._conf_hash,
                    "fleet_config_hash": theirs_hash,
                },
            )


def _background(
    ref: weakref.ReferenceType[SharedCircuitBreaker],
    stop: threading.Event,
    wake: threading.Event | None,
    step: Callable[[SharedCircuitBreaker], float],
) -> None:
    """A background thread's loop; it holds the breaker only weakly between iterations, so a
    breaker nobody references any more is collected and its threads end."""
    while not stop.is_set():
        breaker = ref()
        if breaker is None:
            return
        try:
            wait = step(breaker)
        except Exception:
            _log.exception("circuit breaker %r: fleet sync failed unexpectedly", breaker.name)
            wait = breaker._sync_interval
        del breaker
        if wait > 0:
            (wake or stop).wait(wait)
