"""The login throttle's rules as one check, run over every store of counts (memory
in tests/imap/test_login_lockout.py, the database in tests/store/test_edge_counters.py).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.intake.smtp.throttle import Lockout, LoginThrottle, ThrottleRules


async def check_throttle_rules(make: Callable[[ThrottleRules], LoginThrottle]) -> None:
    """The rules, whatever store counts the failures (here memory, the database in
    tests/store/test_edge_counters.py)."""
    rules = ThrottleRules(per_pair=3, per_address=5, per_account=2, slowdown_max=8.0)
    throttle = make(rules)
    await throttle.succeeded("user", "10.0.0.1", 0)
    crossed: list[Lockout] = []
    for n in range(3):
        assert not (await throttle.check("user", "10.0.0.9", n)).refuse
        crossed += await throttle.failed("USER", "10.0.0.9", n)
    assert (await throttle.check("user", "10.0.0.9", 3)).refuse  # the pair
    assert not (await throttle.check("other", "10.0.0.9", 3)).refuse  # same address
    assert (await throttle.check("user", "10.0.0.1", 3)).delay == 0.0  # known: no wait
    assert (await throttle.check("user", "10.0.0.2", 3)).delay == 2.0  # 3 failures, 2 allowed
    assert [c.kind for c in crossed] == ["account-slowdown", "account-address"]
    for n in range(10):  # more failures from elsewhere: the delay doubles up to its maximum
        await throttle.failed("user", f"10.1.0.{n}", 4)
    assert (await throttle.check("user", "10.0.0.2", 5)).delay == 8.0
    assert await throttle.check("user", "10.0.0.1", 5) == await throttle.check(
        "nobody", "10.0.0.1", 5
    )
    # The window passes: everything is forgiven.
    assert await throttle.check("user", "10.0.0.9", 10_000) == await throttle.check(
        "x", "10.0.0.3", 10_000
    )
    # 5 failures from one address across accounts: that address is refused for all.
    events = [e for n in range(5) for e in await throttle.failed(f"a{n}", "10.0.0.7", 20_000)]
    assert [e.kind for e in events] == ["address"]
    assert (await throttle.check("someone", "10.0.0.7", 20_000)).refuse
