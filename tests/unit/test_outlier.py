"""Outlier ejection, panic mode and active health, with Envoy's defaults, from plain calls."""

from __future__ import annotations

import pytest

from routing.active_health import ActiveHealth
from routing.outlier import OutlierConfig, OutlierDetector

POOL = ["a", "b", "c", "d"]


def fail(detector: OutlierDetector, worker: str, now: float, times: int = 5) -> list[bool]:
    return [detector.record_failure(worker, now) for _ in range(times)]


def test_five_consecutive_failures_eject() -> None:
    detector = OutlierDetector()
    assert fail(detector, "a", 0.0) == [False, False, False, False, True]
    assert detector.is_ejected("a", 1.0)
    assert detector.eligible(POOL, 1.0) == (["b", "c", "d"], False)
    assert not detector.is_ejected("a", 30.0)  # the first ejection lasts 30 s
    assert detector.eligible(POOL, 30.0) == (POOL, False)


def test_a_success_resets_the_count() -> None:
    detector = OutlierDetector()
    fail(detector, "a", 0.0, times=4)
    detector.record_success("a", 0.0)
    assert fail(detector, "a", 0.0, times=4) == [False] * 4
    assert not detector.is_ejected("a", 0.0)
    assert detector.record_failure("a", 0.0)


def test_ejection_time_grows_with_each_ejection_up_to_the_cap() -> None:
    detector = OutlierDetector()
    now = 0.0
    lengths = []
    for _ in range(12):
        assert fail(detector, "a", now)[-1]
        until = detector.snapshot(now)["a"]["ejected_until"]
        assert isinstance(until, float)
        lengths.append(until - now)
        now = until  # fails again the moment it returns
    assert lengths == [30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0, 270.0, 300.0, 300.0, 300.0]
    assert detector.snapshot(now)["a"]["ejections"] == 12


def test_the_multiplier_decays_while_the_worker_stays_healthy() -> None:
    detector = OutlierDetector()
    fail(detector, "a", 0.0)  # 30 s
    fail(detector, "a", 30.0)  # 60 s, until 90
    fail(detector, "a", 90.0 + 300.0)  # one decay period later: back to 60 s, not 90 s
    assert detector.snapshot(390.0)["a"]["ejected_until"] == 450.0
    no_decay = OutlierDetector(OutlierConfig(ejection_decay_s=0))
    for start in (0.0, 30.0, 10_000.0):
        fail(no_decay, "a", start)
    assert no_decay.snapshot(10_000.0)["a"]["ejected_until"] == 10_090.0


def test_failures_while_ejected_do_not_extend_the_ejection() -> None:
    detector = OutlierDetector()
    fail(detector, "a", 0.0)
    assert fail(detector, "a", 5.0) == [False] * 5
    assert not detector.is_ejected("a", 30.0)


def test_never_ejects_beyond_the_max_percent_earliest_first() -> None:
    detector = OutlierDetector()
    fail(detector, "c", 0.0)
    fail(detector, "a", 1.0)
    fail(detector, "b", 2.0)
    # All three are ejected, but at most 50 % of 4 is held out: the two ejected first.
    assert detector.eligible(POOL, 3.0) == (["b", "d"], False)
    strict = OutlierDetector(OutlierConfig(max_ejection_percent=25))
    fail(strict, "a", 0.0)
    fail(strict, "b", 0.0)
    assert strict.eligible(POOL, 1.0) == (["b", "c", "d"], False)


def test_never_ejects_the_last_worker() -> None:
    detector = OutlierDetector(OutlierConfig(max_ejection_percent=100))
    assert fail(detector, "solo", 0.0)[-1]  # ejected as a worker...
    assert detector.eligible(["solo"], 1.0) == (["solo"], False)  # ...but a pool of one keeps it
    fail(detector, "a", 0.0)
    assert detector.eligible(["a", "b"], 1.0, down={"b"}) == (["a"], False)  # the last one up stays
    no_panic = OutlierDetector(OutlierConfig(max_ejection_percent=100, panic_threshold_percent=0))
    for at, worker in enumerate("abc"):
        fail(no_panic, worker, float(at))
    assert no_panic.eligible(["a", "b", "c"], 4.0) == (["c"], False)  # the latest ejected stays


def test_down_workers_are_excluded() -> None:
    detector = OutlierDetector()
    assert detector.eligible(POOL, 0.0, down={"b"}) == (["a", "c", "d"], False)
    assert detector.eligible(POOL, 0.0, down={"b", "c"}) == (["a", "d"], False)  # 50 % healthy: no panic


def test_panic_mode_returns_the_whole_pool() -> None:
    detector = OutlierDetector()
    assert detector.eligible(POOL, 0.0, down={"a", "b", "c"}) == (POOL, True)
    fail(detector, "d", 0.0)
    assert detector.eligible(POOL, 1.0, down={"a", "b"}) == (POOL, True)  # 1 of 4 healthy
    assert detector.eligible(POOL, 1.0, down=set(POOL)) == (POOL, True)
    assert detector.eligible([], 1.0) == ([], False)
    calm = OutlierDetector(OutlierConfig(panic_threshold_percent=0))
    assert calm.eligible(POOL, 0.0, down={"a", "b", "c"}) == (["d"], False)


def test_forget_and_snapshot() -> None:
    detector = OutlierDetector()
    fail(detector, "a", 0.0, times=2)
    fail(detector, "b", 0.0)
    assert detector.snapshot(1.0) == {
        "a": {"ejected": False, "ejections": 0, "multiplier": 0, "consecutive_failures": 2, "ejected_until": None},
        "b": {"ejected": True, "ejections": 1, "multiplier": 1, "consecutive_failures": 0, "ejected_until": 30.0},
    }
    detector.forget("b")
    assert not detector.is_ejected("b", 1.0)
    assert set(detector.snapshot(1.0)) == {"a"}


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        OutlierConfig(consecutive_failures=0)
    with pytest.raises(ValueError):
        OutlierConfig(base_ejection_s=400.0)
    with pytest.raises(ValueError):
        OutlierConfig(max_ejection_percent=150)


def test_active_health_flips_on_thresholds() -> None:
    health = ActiveHealth()
    assert not health.is_down("a")  # workers start healthy
    assert health.record("a", False) is True  # one failed probe is not enough
    assert health.record("a", True) is True  # and a pass clears the streak
    assert health.record("a", False) is True
    assert health.record("a", False) is False  # two in a row: down
    assert health.down() == {"a"}
    assert health.record("a", True) is True  # healthy_threshold=1: one pass brings it back
    assert health.down() == set()


def test_active_health_with_larger_thresholds_and_forget() -> None:
    health = ActiveHealth(unhealthy_threshold=3, healthy_threshold=2)
    assert [health.record("a", False) for _ in range(3)] == [True, True, False]
    assert [health.record("a", True) for _ in range(2)] == [False, True]
    health.record("b", False)
    health.record("b", False)
    health.record("b", False)
    assert health.is_down("b")
    health.forget("b")
    assert not health.is_down("b")
    with pytest.raises(ValueError):
        ActiveHealth(unhealthy_threshold=0)
