"""model: limit arithmetic where -1 means unlimited, the highest value."""

from __future__ import annotations

import pytest

from trains_nodeprep.model import (
    UNLIMITED,
    SysctlSetting,
    Ulimit,
    format_limit,
    higher_limit,
    limit_at_least,
    limit_key,
)


def test_unlimited_sorts_above_any_number():
    assert limit_key(UNLIMITED) > limit_key(2**63)
    assert sorted([-1, 0, 65536, 1024], key=limit_key) == [0, 1024, 65536, -1]


@pytest.mark.parametrize(
    "a, b, higher",
    [
        (1024, 65536, 65536),
        (65536, 1024, 65536),
        (-1, 65536, -1),
        (65536, -1, -1),
        (-1, -1, -1),
        (0, 0, 0),
    ],
)
def test_higher_limit_treats_minus_one_as_highest(a, b, higher):
    assert higher_limit(a, b) == higher


@pytest.mark.parametrize(
    "actual, minimum, ok",
    [
        (65536, 65536, True),
        (65535, 65536, False),
        (1048576, 65536, True),
        (-1, 65536, True),
        (65536, -1, False),
        (-1, -1, True),
        (0, 0, True),
    ],
)
def test_limit_at_least(actual, minimum, ok):
    assert limit_at_least(actual, minimum) is ok


def test_format_limit_names_unlimited():
    assert format_limit(-1) == "unlimited"
    assert format_limit(1024) == "1024"


def test_ulimit_renders_as_docker_flag_value():
    assert str(Ulimit("nofile", 1024, 65536)) == "nofile=1024:65536"
    assert str(Ulimit("memlock", -1, -1)) == "memlock=-1:-1"


def test_ulimit_display_for_people():
    assert Ulimit("nofile", 1024, 65536).display() == "1024:65536"
    assert Ulimit("memlock", -1, -1).display() == "unlimited"
    assert Ulimit("nofile", 1024, -1).display() == "1024:unlimited"
    assert Ulimit("nofile", 4096, 4096).display() == "4096"


@pytest.mark.parametrize(
    "have, ok",
    [
        ((1024, 65536), True),
        ((4096, 1048576), True),
        ((1024, -1), True),
        ((-1, -1), True),
        ((512, 65536), False),
        ((1024, 4096), False),
        ((2048, 2048), False),
    ],
)
def test_ulimit_satisfies_needs_both_soft_and_hard(have, ok):
    assert Ulimit("nofile", *have).satisfies(Ulimit("nofile", 1024, 65536)) is ok


def test_finite_memlock_does_not_satisfy_unlimited():
    assert not Ulimit("memlock", 2**40, 2**40).satisfies(Ulimit("memlock", -1, -1))


@pytest.mark.parametrize(
    "have, raised",
    [
        ((512, 4096), (1024, 65536)),
        ((4096, 1048576), (4096, 1048576)),
        ((256, 1048576), (1024, 1048576)),
        ((8192, 8192), (8192, 65536)),
        ((-1, -1), (-1, -1)),
        ((1024, -1), (1024, -1)),
    ],
)
def test_raised_to_keeps_what_is_higher_and_meets_the_minimum(have, raised):
    assert Ulimit("nofile", *have).raised_to(Ulimit("nofile", 1024, 65536)) == Ulimit(
        "nofile", *raised
    )


def test_raised_to_unlimited():
    assert Ulimit("memlock", 65536, 65536).raised_to(Ulimit("memlock", -1, -1)) == Ulimit(
        "memlock", -1, -1
    )


def test_sysctl_proc_path():
    assert SysctlSetting("vm.max_map_count", 262144).proc_path == "/proc/sys/vm/max_map_count"
