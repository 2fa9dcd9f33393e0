"""The login throttle on its own, with a clock the test moves: limits per user and per address, the wait it
names, a success clearing the user only, and attempts in flight counted before they are settled."""

from __future__ import annotations

from ovfstore.api.throttle import Attempt, Lockout, LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: LoginThrottle, user: str, address: str, times: int) -> None:
    for _ in range(times):
        assert isinstance(throttle.begin(user, address), Attempt)


def test_a_user_is_locked_after_its_limit_until_the_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(user_limit=3, address_limit=100, window_s=60, clock=clock)
    _fail(throttle, "admin@internal", "10.0.0.1", 2)
    clock.now += 10
    _fail(throttle, "admin@internal", "10.0.0.2", 1)  # another address: the user's count goes on
    refused = throttle.begin("admin@internal", "10.0.0.3")
    assert isinstance(refused, Lockout)
    assert refused.what == "user admin@internal"
    assert refused.wait_s == 50
    assert str(refused) == (
        "too many failed logins for user admin@internal; wait 50 s. Logins are refused until then, "
        "even with the right password"
    )
    assert isinstance(throttle.begin("other@internal", "10.0.0.3"), Attempt)  # other users are not locked
    clock.now += 50
    assert isinstance(throttle.begin("admin@internal", "10.0.0.3"), Attempt)


def test_refusals_do_not_extend_the_lockout() -> None:
    clock = Clock()
    throttle = LoginThrottle(user_limit=2, address_limit=100, window_s=60, clock=clock)
    _fail(throttle, "u", "a", 2)
    for _ in range(10):
        clock.now += 5
        assert isinstance(throttle.begin("u", "a"), Lockout)
    clock.now += 10
    assert isinstance(throttle.begin("u", "a"), Attempt)


def test_an_address_is_locked_across_users() -> None:
    clock = Clock()
    throttle = LoginThrottle(user_limit=100, address_limit=3, window_s=60, clock=clock)
    for user in ("a", "b", "c"):
        _fail(throttle, user, "10.0.0.9", 1)
    refused = throttle.begin("d", "10.0.0.9")
    assert isinstance(refused, Lockout)
    assert refused.what == "address 10.0.0.9"
    assert isinstance(throttle.begin("d", "10.0.0.10"), Attempt)


def test_a_success_clears_the_user_but_not_the_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(user_limit=2, address_limit=2, window_s=60, clock=clock)
    _fail(throttle, "u", "b", 1)
    good = throttle.begin("u", "a")
    assert isinstance(good, Attempt)
    throttle.succeeded(good)
    _fail(throttle, "u", "a", 1)  # the user starts over: one failure, not two
    _fail(throttle, "v", "a", 1)
    assert isinstance(throttle.begin("w", "a"), Lockout)  # the address kept its failures (the success is none)
    assert isinstance(throttle.begin("u", "c"), Attempt)


def test_attempts_in_flight_count_before_they_are_settled() -> None:
    throttle = LoginThrottle(user_limit=2, address_limit=100, window_s=60, clock=Clock())
    first, second = throttle.begin("u", "a"), throttle.begin("u", "a")
    assert isinstance(first, Attempt)
    assert isinstance(second, Attempt)
    assert isinstance(throttle.begin("u", "a"), Lockout)


def test_names_are_counted_by_their_first_characters_and_forgotten_after_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(user_limit=1, address_limit=100, window_s=60, clock=clock)
    _fail(throttle, "x" * 10_000, "a", 1)
    refused = throttle.begin("x" * 20_000, "a")
    assert isinstance(refused, Lockout)
    assert len(str(refused)) < 500
    for n in range(50):
        _fail(throttle, f"sprayed-{n}", f"addr-{n}", 1)
    clock.now += 61
    _fail(throttle, "late", "b", 1)
    assert throttle._users.times.keys() == {"late"}
    assert throttle._addresses.times.keys() == {"b"}
