"""Pure: which workloads to restart so that their Elasticsearch pods get the node's limits."""

from __future__ import annotations

import json

import pytest

from trains_nodeprep.cluster.pods import EsPod, Owner, PodReading, parse_running_pods
from trains_nodeprep.cluster.restarts import (
    PodRestart,
    Workload,
    human_limit,
    limits_seen,
    low_limits,
    needs_replicasets,
    parse_replicaset_owners,
    plan_restarts,
    rollout_restart_argv,
    rollout_status_argv,
    workload_of,
)
from trains_nodeprep.model import DesiredState, SysctlSetting, Ulimit

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)
HEADER = "Limit                     Soft Limit           Hard Limit           Units     \n"


def limits_text(nofile: str = "1024 65536", memlock: str = "unlimited unlimited") -> str:
    return (
        HEADER
        + f"Max open files            {nofile.split()[0]:<21}{nofile.split()[1]:<21}files     \n"
        + f"Max locked memory         {memlock.split()[0]:<21}{memlock.split()[1]:<21}bytes     \n"
    )


def reading(pod: str, text: str | None = None, error: str | None = None) -> PodReading:
    return PodReading(pod, "n1", text if text is not None or error else limits_text(), {}, error)


LOW_MEMLOCK = limits_text(memlock="8388608 8388608")
IN_RS = Owner("ReplicaSet", "elasticsearch-5d8f")
RS_OWNERS = {"elasticsearch-5d8f": Owner("Deployment", "elasticsearch")}


def pod_json(name: str, owners: list[dict] | None = None, phase: str = "Running") -> dict:
    meta: dict = {"name": name}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def test_the_pods_controller_is_read_from_its_owner_references() -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "es-5d8f", "controller": True}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}
    items = [
        pod_json("a", [other, rs]),
        pod_json("b"),
        pod_json("c", [{"kind": "StatefulSet", "name": "es"}]),  # no controller flag: the first
        pod_json("d", [{"kind": "ReplicaSet"}]),  # no name: nothing usable
    ]

    pods = parse_running_pods(json.dumps({"items": items}))

    assert [(p.name, p.owner) for p in pods] == [
        ("a", Owner("ReplicaSet", "es-5d8f")),
        ("b", None),
        ("c", Owner("StatefulSet", "es")),
        ("d", None),
    ]


def test_replicaset_owners() -> None:
    text = json.dumps(
        {
            "items": [
                {
                    "metadata": {
                        "name": "elasticsearch-5d8f",
                        "ownerReferences": [
                            {"kind": "Deployment", "name": "elasticsearch", "controller": True}
                        ],
                    }
                },
                {"metadata": {"name": "loose"}},
            ]
        }
    )
    assert parse_replicaset_owners(text) == {
        "elasticsearch-5d8f": Owner("Deployment", "elasticsearch"),
        "loose": None,
    }


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (IN_RS, Workload("deployment", "elasticsearch")),
        (Owner("ReplicaSet", "loose-rs"), Workload("replicaset", "loose-rs")),
        (Owner("StatefulSet", "es"), Workload("statefulset", "es")),
        (Owner("DaemonSet", "es"), Workload("daemonset", "es")),
        (Owner("Job", "once"), Workload("job", "once")),
        (None, Workload("pod", "es-1")),
    ],
)
def test_the_workload_of_a_pod(owner: Owner | None, expected: Workload) -> None:
    owners = {**RS_OWNERS, "loose-rs": None}
    workload = workload_of(EsPod("es-1", "n1", owner), owners)
    assert workload == expected
    assert workload.restartable == (expected.kind in ("deployment", "statefulset", "daemonset"))


def test_a_pod_below_the_playbooks_limits_restarts_its_deployment() -> None:
    pods = (EsPod("es-1", "n1", IN_RS),)

    [restart] = plan_restarts(pods, [reading("es-1", LOW_MEMLOCK)], DESIRED, RS_OWNERS)

    assert restart.workload == Workload("deployment", "elasticsearch", "trains")
    assert restart.reason == "its pod runs with memlock 8 MiB < unlimited"
    assert restart.pods == ("es-1",) and not restart.done and restart.error is None
    assert restart.command == "kubectl rollout restart deployment/elasticsearch -n trains"


def test_pods_already_fine_or_not_read_restart_nothing() -> None:
    pods = (EsPod("es-1", "n1", IN_RS), EsPod("es-2", "n1", IN_RS))
    readings = [reading("es-1"), reading("es-2", error="cat: /proc/1/limits: Permission denied")]

    assert plan_restarts(pods, readings, DESIRED, RS_OWNERS) == []
    assert not needs_replicasets(readings, pods, DESIRED)


def test_several_low_pods_of_one_workload_are_one_restart() -> None:
    pods = (EsPod("es-1", "n1", IN_RS), EsPod("es-2", "n2", IN_RS), EsPod("bare"))
    readings = [
        reading("es-1", LOW_MEMLOCK),
        reading("es-2", limits_text(nofile="1024 4096", memlock="8388608 8388608")),
        reading("bare", limits_text(nofile="1024 4096")),
    ]

    restarts = plan_restarts(pods, readings, DESIRED, RS_OWNERS)

    assert [(r.workload.ref, r.pods, r.reason) for r in restarts] == [
        (
            "deployment/elasticsearch",
            ("es-1", "es-2"),
            "its 2 pods run with memlock 8 MiB < unlimited, nofile 1024:4096 < 1024:65536",
        ),
        ("pod/bare", ("bare",), "its pod runs with nofile 1024:4096 < 1024:65536"),
    ]
    bare = restarts[1]
    assert not bare.workload.restartable
    assert bare.command == "kubectl delete pod bare -n trains"
    assert "belongs to no workload: delete it and create it again by hand" in bare.manual


def test_the_replicasets_are_read_only_for_a_low_pod_in_one() -> None:
    in_rs, bare = EsPod("es-1", "n1", IN_RS), EsPod("bare")
    assert needs_replicasets([reading("es-1", LOW_MEMLOCK)], [in_rs], DESIRED)
    assert not needs_replicasets([reading("bare", LOW_MEMLOCK)], [bare], DESIRED)
    assert not needs_replicasets([reading("es-1")], [in_rs], DESIRED)


def test_a_limit_the_pod_does_not_show_is_no_reason_to_restart() -> None:
    only_nofile = HEADER + "Max open files            1024     65536    files\n"
    assert low_limits(reading("es-1", only_nofile), DESIRED) == []
    assert limits_seen(reading("es-1", only_nofile), DESIRED) == (
        "nofile 1024:65536, memlock not shown"
    )


def test_limits_seen() -> None:
    assert limits_seen(reading("es-1"), DESIRED) == "nofile 1024:65536, memlock unlimited"
    assert limits_seen(reading("es-1", error="gone"), DESIRED) == "not read: gone"


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (Ulimit("memlock", 8388608, 8388608), "8 MiB"),
        (Ulimit("memlock", 65536, 16777216), "64 KiB:16 MiB"),
        (Ulimit("memlock", -1, -1), "unlimited"),
        (Ulimit("memlock", 1000, 1000), "1000 bytes"),
        (Ulimit("stack", 8388608, -1), "8 MiB:unlimited"),
        (Ulimit("fsize", 1 << 31, 1 << 31), "2 GiB"),
        (Ulimit("nofile", 1048576, 1048576), "1048576"),
        (Ulimit("nofile", 1024, 65536), "1024:65536"),
    ],
)
def test_human_limits(limit: Ulimit, text: str) -> None:
    assert human_limit(limit) == text


def test_the_kubectl_argv() -> None:
    workload = Workload("statefulset", "es", "trains")
    assert rollout_restart_argv(workload) == [
        "kubectl",
        "rollout",
        "restart",
        "statefulset/es",
        "-n",
        "trains",
    ]
    assert rollout_status_argv(workload, 30)[-1] == "--timeout=30s"
    assert PodRestart(workload, "r", ("es-0",)).command == (
        "kubectl rollout restart statefulset/es -n trains"
    )
    loose = PodRestart(Workload("replicaset", "rs-1"), "r", ("p",))
    assert loose.manual == (
        "delete pod p by hand, its replicaset/rs-1 makes a new one: kubectl delete pod p -n trains"
    )


class _Session:
    """What the confirmer uses of a workflows.Session: where human text goes, the output."""

    def __init__(self) -> None:
        import io

        from rich.console import Console

        self.buffer = io.StringIO()
        self.human = Console(file=self.buffer, width=200)
        self.output = "text"


@pytest.mark.parametrize(
    ("yes", "terminal", "answer", "expected", "asked"),
    [
        (True, False, False, True, False),  # --yes: restarted, nobody asked
        (False, False, True, False, False),  # no terminal, no --yes: not done
        (False, True, True, True, True),  # a terminal: the answer decides
        (False, True, False, False, True),
    ],
)
def test_a_pod_restart_is_confirmed_like_a_runtime_restart(
    monkeypatch: pytest.MonkeyPatch,
    yes: bool,
    terminal: bool,
    answer: bool,
    expected: bool,
    asked: bool,
) -> None:
    from trains_nodeprep import workflows

    questions: list[str] = []
    monkeypatch.setattr(workflows.sys.stdin, "isatty", lambda: terminal, raising=False)
    session = _Session()

    def ask(question: str, on_stderr: bool) -> bool:
        questions.append(question)
        return answer

    confirm = workflows._pod_restart_confirmer(session, yes=yes, ask=ask)  # type: ignore[arg-type]
    restart = PodRestart(
        Workload("deployment", "elasticsearch"), "its pod runs with memlock 8 MiB < unlimited", ()
    )

    assert confirm(restart) is expected
    assert questions == (["Restart deployment/elasticsearch in namespace trains?"] if asked else [])
    assert "a rollout restart replaces its pods" in session.buffer.getvalue()
