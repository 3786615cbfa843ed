"""Failed-authentication throttling."""

from nuage.pbx.throttle import FailureThrottle


def test_blocks_after_too_many_failures_then_recovers() -> None:
    throttle = FailureThrottle(max_failures=3, window=10, block_for=30)
    for second in range(2):
        throttle.failure("10.0.0.1", now=float(second))
    assert not throttle.is_blocked("10.0.0.1", now=2.0)
    throttle.failure("10.0.0.1", now=2.0)
    assert throttle.is_blocked("10.0.0.1", now=3.0)
    assert not throttle.is_blocked("10.0.0.2", now=3.0)
    throttle.success("10.0.0.1")  # a success does not lift a block
    assert throttle.is_blocked("10.0.0.1", now=31.0)
    assert not throttle.is_blocked("10.0.0.1", now=33.0)


def test_failures_outside_the_window_do_not_add_up() -> None:
    throttle = FailureThrottle(max_failures=2, window=5, block_for=30)
    throttle.failure("a", now=0.0)
    throttle.failure("a", now=10.0)
    assert not throttle.is_blocked("a", now=10.5)


def test_table_is_bounded() -> None:
    throttle = FailureThrottle(max_failures=1, window=5, block_for=30, max_keys=10)
    for index in range(100):
        throttle.failure(f"k{index}", now=0.0)
    assert not throttle.is_blocked("k0", now=1.0)
    assert throttle.is_blocked("k99", now=1.0)
