"""What the Elasticsearch pod sees, as a table: /proc text in, requirements out (no I/O)."""

from __future__ import annotations

import json

import pytest

from trains_nodeprep.cluster.pods import (
    EsPod,
    parse_running_pods,
    pod_requirements,
    read_command,
    running_pods_requirement,
    split_read,
)
from trains_nodeprep.formats.proc_limits import PROC_LIMIT_NAMES, parse_proc_limits
from trains_nodeprep.model import DesiredState, SysctlSetting, Ulimit

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)

# /proc/self/limits of the machine these tests were written on (Linux 6.x, a CI container):
# nofile 20000, memlock 8 MiB (in bytes), core 0:unlimited.
THIS_MACHINE = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""

# A container of a dockerd with default-ulimits nofile=1024:65536 and memlock=-1:-1 (what
# trains-nodeprep writes): Elasticsearch's PID 1 in the pod.
PREPARED_POD = """\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        unlimited            unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             unlimited            unlimited            processes 
Max open files            1024                 65536                files     
Max locked memory         unlimited            unlimited            bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       63431                63431                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
"""


def by_id(reqs) -> dict:
    return {r.id: r for r in reqs}


def test_every_row_maps_to_its_docker_name_with_unlimited_as_minus_one():
    limits = parse_proc_limits(THIS_MACHINE)

    assert limits == {
        "cpu": (-1, -1),
        "fsize": (-1, -1),
        "data": (-1, -1),
        "stack": (8388608, -1),
        "core": (0, -1),
        "rss": (-1, -1),
        "nproc": (96365, 96365),
        "nofile": (20000, 20000),
        "memlock": (8388608, 8388608),
        "as": (-1, -1),
        "locks": (-1, -1),
        "sigpending": (96365, 96365),
        "msgqueue": (819200, 819200),
        "nice": (0, 0),
        "rtprio": (0, 0),
        "rttime": (-1, -1),
    }
    assert set(PROC_LIMIT_NAMES.values()) == set(limits)


def test_memlock_is_bytes_on_both_sides_so_no_conversion():
    # /proc prints the raw rlimit (bytes for RLIMIT_MEMLOCK); docker's memlock ulimit is that
    # same raw number: 8 MiB is 8388608 here, not 8192 (bash's `ulimit -l` KiB).
    assert parse_proc_limits(THIS_MACHINE)["memlock"] == (8 * 1024 * 1024, 8 * 1024 * 1024)


def test_unknown_rows_and_noise_are_skipped():
    text = (
        "Limit  Soft Limit  Hard Limit  Units\n"
        "Max frobs   3   4   things\n"
        "Max open files  10  20  files\n"
        "garbage\n"
    )
    assert parse_proc_limits(text) == {"nofile": (10, 20)}
    assert parse_proc_limits("") == {}


def test_a_prepared_pod_meets_every_requirement():
    reqs = by_id(
        pod_requirements(
            "es-1", PREPARED_POD, {"vm.max_map_count": "262144"}, DESIRED, node="worker-1"
        )
    )

    assert list(reqs) == ["pod.ulimit.nofile", "pod.ulimit.memlock", "pod.sysctl.vm.max_map_count"]
    assert all(r.ok for r in reqs.values())
    assert (
        reqs["pod.ulimit.nofile"].expected == ">= 1024:65536"
        and reqs["pod.ulimit.nofile"].actual == "1024:65536"
    )
    assert reqs["pod.ulimit.memlock"].actual == "unlimited"
    assert reqs["pod.sysctl.vm.max_map_count"].expected == ">= 262144"
    assert reqs["pod.ulimit.nofile"].where == "pod es-1 on worker-1: /proc/1/limits"
    assert (
        reqs["pod.sysctl.vm.max_map_count"].where
        == "pod es-1 on worker-1: /proc/sys/vm/max_map_count"
    )


def test_limits_that_did_not_reach_the_pod_are_reported():
    reqs = by_id(pod_requirements("es-1", THIS_MACHINE, {"vm.max_map_count": "65530"}, DESIRED))

    assert not reqs["pod.ulimit.nofile"].ok and reqs["pod.ulimit.nofile"].actual == "20000"
    assert not reqs["pod.ulimit.memlock"].ok and reqs["pod.ulimit.memlock"].actual == "8388608"
    assert (
        not reqs["pod.sysctl.vm.max_map_count"].ok
        and reqs["pod.sysctl.vm.max_map_count"].actual == "65530"
    )


@pytest.mark.parametrize(
    "soft, hard, ok",
    [
        ("1024", "4096", False),
        ("512", "65536", False),
        ("65536", "65536", True),
        ("unlimited", "unlimited", True),
        ("1024", "unlimited", True),
    ],
)
def test_nofile_soft_and_hard_are_both_minimums(soft, hard, ok):
    text = PREPARED_POD.replace(
        "Max open files            1024                 65536",
        f"Max open files            {soft:<20} {hard:<20}",
    )
    req = by_id(pod_requirements("es-1", text, {"vm.max_map_count": "262144"}, DESIRED))[
        "pod.ulimit.nofile"
    ]
    assert req.ok is ok


def test_higher_sysctl_is_fine_and_odd_values_fail():
    assert by_id(pod_requirements("p", PREPARED_POD, {"vm.max_map_count": "1048576\n"}, DESIRED))[
        "pod.sysctl.vm.max_map_count"
    ].ok
    missing = by_id(pod_requirements("p", PREPARED_POD, {"vm.max_map_count": None}, DESIRED))[
        "pod.sysctl.vm.max_map_count"
    ]
    assert not missing.ok and missing.actual == "missing"
    odd = by_id(pod_requirements("p", PREPARED_POD, {"vm.max_map_count": "lots"}, DESIRED))[
        "pod.sysctl.vm.max_map_count"
    ]
    assert not odd.ok and odd.actual == "lots"
    assert not by_id(pod_requirements("p", PREPARED_POD, {}, DESIRED))[
        "pod.sysctl.vm.max_map_count"
    ].ok


def test_a_failed_read_fails_every_requirement_with_the_error():
    reqs = pod_requirements("es-1", None, {}, DESIRED, error="container not found")

    assert len(reqs) == 3
    assert all(not r.ok and r.actual == "error: container not found" for r in reqs)


def test_unrecognised_limits_text_is_an_error_not_a_pass():
    reqs = by_id(pod_requirements("es-1", "nonsense\n", {"vm.max_map_count": "262144"}, DESIRED))
    assert not reqs["pod.ulimit.nofile"].ok and "no limit rows" in reqs["pod.ulimit.nofile"].actual
    limit_missing = by_id(
        pod_requirements("es-1", "Limit\nMax open files 1 2 files\n", {}, DESIRED)
    )["pod.ulimit.memlock"]
    assert not limit_missing.ok and limit_missing.actual == "not shown in /proc/1/limits"


def test_read_command_is_one_cat_of_limits_then_sysctls():
    assert read_command(["vm.max_map_count", "fs.file-max"]) == [
        "cat",
        "/proc/1/limits",
        "/proc/sys/vm/max_map_count",
        "/proc/sys/fs/file-max",
    ]


def test_split_read_separates_limits_from_sysctl_lines():
    limits, values = split_read(
        PREPARED_POD + "262144\n1048576\n", "", ["vm.max_map_count", "fs.file-max"]
    )

    assert limits == PREPARED_POD
    assert parse_proc_limits(limits) == parse_proc_limits(PREPARED_POD)
    assert values == {"vm.max_map_count": "262144", "fs.file-max": "1048576"}


def test_split_read_maps_a_missing_sysctl_to_none_and_keeps_the_others_in_order():
    stderr = (
        "cat: /proc/sys/vm/max_map_count: No such file or directory\n"
        "command terminated with exit code 1\n"
    )
    _, values = split_read(PREPARED_POD + "1048576\n", stderr, ["vm.max_map_count", "fs.file-max"])
    assert values == {"vm.max_map_count": None, "fs.file-max": "1048576"}


@pytest.mark.parametrize(
    "stdout, stderr, message",
    [
        ("", "cat: /proc/1/limits: No such file or directory\n", "cat: /proc/1/limits"),
        (PREPARED_POD, "cat: /proc/sys/vm/max_map_count: Permission denied\n", "Permission denied"),
        ("262144\n" + PREPARED_POD, "", "header"),
        (PREPARED_POD, "", "expected 1 sysctl value line(s)"),
        (PREPARED_POD + "1\n2\n", "", "got 2"),
    ],
)
def test_split_read_refuses_output_of_another_shape(stdout, stderr, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_read(stdout, stderr, ["vm.max_map_count"])


def test_running_pods_skip_other_phases_and_terminating_ones():
    items = [
        {"metadata": {"name": "es-b"}, "spec": {"nodeName": "n2"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "es-a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}},
        {"metadata": {"name": "es-pending"}, "spec": {}, "status": {"phase": "Pending"}},
        {
            "metadata": {"name": "es-old", "deletionTimestamp": "2025-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running"},
        },
    ]
    assert parse_running_pods(json.dumps({"items": items})) == (
        EsPod("es-a", "n1"),
        EsPod("es-b", "n2"),
    )
    assert parse_running_pods('{"items": []}') == ()


def test_running_pods_requirement():
    ok = running_pods_requirement((EsPod("es-a", "n1"),))
    assert ok.ok and ok.actual == "es-a on n1" and ok.id == "pod.elasticsearch.running"
    none = running_pods_requirement(())
    assert not none.ok and "none running" in none.actual
    failed = running_pods_requirement((), "connection refused")
    assert not failed.ok and failed.actual == "error: connection refused"
