"""RetryPolicy: which errors retry, Retry-After honoured up to a cap, stream retry before first event."""

import pytest

from providers.retry import RetryPolicy
from router.errors import (AuthFailed, MalformedResponse, QuotaExhausted, RateLimited, Timeout, Unavailable)
from router.types import TextDelta


class Sleeps(list):
    async def __call__(self, s):
        self.append(s)


def policy(**kw):
    sl = Sleeps()
    return RetryPolicy(sleep=sl, rand=lambda: 1.0, **kw), sl


def flaky(errors, result="ok"):
    calls = []

    async def f():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result
    return f, calls


@pytest.mark.parametrize("err", [RateLimited("x"), Unavailable("x")])
async def test_transient_errors_retry(err):
    p, sl = policy()
    f, calls = flaky([err])
    assert await p.run(f) == "ok"
    assert len(calls) == 2 and sl == [0.5]


# A Timeout already spent the attempt's limit: the router fails over at once instead.
@pytest.mark.parametrize("err", [QuotaExhausted("x"), AuthFailed("x"), MalformedResponse("x"), Timeout("x"),
                                 Timeout("x", code="first_byte_timeout")])
async def test_non_transient_errors_do_not_retry(err):
    p, sl = policy()
    f, calls = flaky([err])
    with pytest.raises(type(err)):
        await p.run(f)
    assert len(calls) == 1 and sl == []


async def test_retry_after_honoured_and_backoff_grows():
    p, sl = policy(max_attempts=4)
    f, calls = flaky([RateLimited("x", retry_after=2.0), Unavailable("x"), Unavailable("x")])
    assert await p.run(f) == "ok"
    assert sl == [2.0, 1.0, 2.0]


async def test_retry_after_beyond_cap_is_not_retried():
    p, sl = policy(max_wait_s=10)
    f, calls = flaky([RateLimited("x", retry_after=60.0)])
    with pytest.raises(RateLimited):
        await p.run(f)
    assert len(calls) == 1 and sl == []


async def test_gives_up_after_max_attempts():
    p, sl = policy(max_attempts=3)
    f, calls = flaky([Unavailable("a"), Unavailable("b"), Unavailable("c"), Unavailable("d")])
    with pytest.raises(Unavailable, match="c"):
        await p.run(f)
    assert len(calls) == 3


async def test_jitter_and_cap():
    p = RetryPolicy(base_s=1.0, max_wait_s=5.0, rand=lambda: 0.0)
    assert p.backoff(1) == 0.5 and p.backoff(2) == 1.0
    assert RetryPolicy(base_s=1.0, max_wait_s=5.0, rand=lambda: 1.0).backoff(10) == 5.0


async def test_instance_retryable_false_is_respected():
    e = Unavailable("x")
    e.retryable = False
    p, sl = policy()
    f, calls = flaky([e])
    with pytest.raises(Unavailable):
        await p.run(f)
    assert len(calls) == 1


async def test_stream_retries_only_before_first_event():
    p, sl = policy()
    n = []

    def factory():
        n.append(1)

        async def gen():
            if len(n) == 1:
                raise Unavailable("before first")
            yield TextDelta(text="a")
            raise Unavailable("mid-stream")
        return gen()

    got = []
    with pytest.raises(Unavailable, match="mid-stream"):
        async for ev in p.stream(factory):
            got.append(ev.text)
    assert got == ["a"] and len(n) == 2 and sl == [0.5]


async def test_a_probe_is_one_attempt_run_and_stream():
    from router.health import set_single_attempt

    p, sl = policy()
    f, calls = flaky([Unavailable("x")])
    set_single_attempt(True)
    with pytest.raises(Unavailable):
        await p.run(f)
    assert len(calls) == 1 and sl == []
    f, calls = flaky([Unavailable("x")])
    assert await p.run(f) == "ok" and len(calls) == 2  # the flag is used up by one call

    made = []

    async def failing():
        made.append(1)
        raise Unavailable("x")
        yield  # pragma: no cover

    set_single_attempt(True)
    with pytest.raises(Unavailable):
        async for _ in p.stream(failing):
            pass
    assert len(made) == 1
