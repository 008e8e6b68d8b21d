"""What the running Elasticsearch pod sees: Kubectl finds the pod and execs `cat` in it.

The cluster is tests/kubefake.FakeKubeAPI, a TEST DOUBLE of the Kubernetes API (no real API
server can run here) driven by the real kubectl binary: `kubectl exec` runs nothing there, the
fake serves the pod files given to add_pod over kubectl's WebSocket exec protocol.
"""

from __future__ import annotations

import pytest

from trains_nodeprep.cluster.kubectl import Kubectl
from trains_nodeprep.cluster.pods import EsPod
from trains_nodeprep.model import DesiredState, SysctlSetting, Ulimit

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)
ES = {"app": "elasticsearch", "pod-template-hash": "5d8f"}
HEADER = "Limit                     Soft Limit           Hard Limit           Units     \n"


def limits(
    nofile: tuple[str, str] = ("1024", "65536"),
    memlock: tuple[str, str] = ("unlimited", "unlimited"),
) -> str:
    rows = [
        ("Max cpu time", "unlimited", "unlimited", "seconds"),
        ("Max stack size", "8388608", "unlimited", "bytes"),
        ("Max processes", "unlimited", "unlimited", "processes"),
        ("Max open files", *nofile, "files"),
        ("Max locked memory", *memlock, "bytes"),
        ("Max nice priority", "0", "0", ""),
    ]
    return HEADER + "".join(
        f"{name:<25} {soft:<20} {hard:<20} {unit:<10}\n" for name, soft, hard, unit in rows
    )


def files(limits_text: str, max_map_count: str | None = "262144\n") -> dict[str, str]:
    found = {"/proc/1/limits": limits_text}
    if max_map_count is not None:
        found["/proc/sys/vm/max_map_count"] = max_map_count
    return found


@pytest.fixture
def kube(kubeconfig):
    client = Kubectl(kubeconfig=str(kubeconfig))
    yield client
    client.close()


def by_id(reqs) -> dict:
    return {r.id: r for r in reqs}


def test_a_pod_with_good_limits_meets_every_requirement(kube_api, kube):
    kube_api.add_pod(
        "trains", "elasticsearch-5d8f-x1", labels=ES, node_name="worker-1", files=files(limits())
    )

    assert kube.elasticsearch_pods() == ((EsPod("elasticsearch-5d8f-x1", "worker-1"),), None)
    reqs = by_id(kube.elasticsearch_pod_requirements(DESIRED))

    assert list(reqs) == [
        "pod.elasticsearch.running",
        "pod.ulimit.nofile",
        "pod.ulimit.memlock",
        "pod.sysctl.vm.max_map_count",
    ]
    assert all(r.ok for r in reqs.values()), reqs
    assert reqs["pod.elasticsearch.running"].actual == "elasticsearch-5d8f-x1 on worker-1"
    assert reqs["pod.ulimit.nofile"].actual == "1024:65536"
    assert reqs["pod.ulimit.memlock"].actual == "unlimited"
    assert reqs["pod.sysctl.vm.max_map_count"].actual == "262144"
    assert (
        reqs["pod.ulimit.nofile"].where == "pod elasticsearch-5d8f-x1 on worker-1: /proc/1/limits"
    )
    # One exec per pod, of cat only, in the elasticsearch container.
    assert kube_api.execs == [
        (
            "trains",
            "elasticsearch-5d8f-x1",
            "elasticsearch",
            ("cat", "/proc/1/limits", "/proc/sys/vm/max_map_count"),
            "v5.channel.k8s.io",
        )
    ]


def test_a_pod_whose_nofile_hard_limit_is_4096_is_reported(kube_api, kube):
    kube_api.add_pod(
        "trains",
        "elasticsearch-5d8f-x1",
        labels=ES,
        node_name="worker-1",
        files=files(limits(nofile=("1024", "4096"), memlock=("65536", "65536")), "65530\n"),
    )

    reqs = by_id(kube.elasticsearch_pod_requirements(DESIRED))

    assert reqs["pod.elasticsearch.running"].ok
    nofile = reqs["pod.ulimit.nofile"]
    assert not nofile.ok and nofile.expected == ">= 1024:65536" and nofile.actual == "1024:4096"
    assert not reqs["pod.ulimit.memlock"].ok and reqs["pod.ulimit.memlock"].actual == "65536"
    assert (
        not reqs["pod.sysctl.vm.max_map_count"].ok
        and reqs["pod.sysctl.vm.max_map_count"].actual == "65530"
    )


def test_no_running_pod_is_reported_clearly(kube_api, kube):
    kube_api.add_pod(
        "trains", "elasticsearch-5d8f-x1", labels=ES, phase="Pending", files=files(limits())
    )
    kube_api.add_pod("trains", "mongo-1", labels={"app": "mongo"}, containers=("mongo",))
    kube_api.add_pod("default", "elasticsearch-elsewhere", labels=ES, files=files(limits()))

    assert kube.elasticsearch_pods() == ((), None)
    reqs = kube.elasticsearch_pod_requirements(DESIRED)

    assert len(reqs) == 1
    [running] = reqs
    assert running.id == "pod.elasticsearch.running" and not running.ok
    assert (
        running.expected == "a Running pod with app=elasticsearch"
        and running.where == "namespace trains"
    )
    assert running.actual == "none running: deploy trains-server first, then check again"
    assert kube_api.execs == []


def test_no_namespace_at_all_is_no_pod_too(kube):
    assert kube.elasticsearch_pods() == ((), None)


def test_every_running_pod_is_read(kube_api, kube):
    kube_api.add_pod("trains", "es-a", labels=ES, node_name="worker-1", files=files(limits()))
    kube_api.add_pod(
        "trains",
        "es-b",
        labels=ES,
        node_name="worker-2",
        files=files(limits(nofile=("1024", "4096"))),
    )

    reqs = kube.elasticsearch_pod_requirements(DESIRED)

    nofile = [(r.where, r.ok) for r in reqs if r.id == "pod.ulimit.nofile"]
    assert nofile == [
        ("pod es-a on worker-1: /proc/1/limits", True),
        ("pod es-b on worker-2: /proc/1/limits", False),
    ]


def test_a_sysctl_missing_in_the_pod_is_reported_not_an_error(kube_api, kube):
    kube_api.add_pod("trains", "es-1", labels=ES, files=files(limits(), max_map_count=None))

    reading = kube.read_pod(EsPod("es-1"), ["vm.max_map_count"])
    assert reading.error is None and reading.sysctl_values == {"vm.max_map_count": None}
    reqs = by_id(kube.elasticsearch_pod_requirements(DESIRED))
    assert reqs["pod.ulimit.nofile"].ok
    assert (
        not reqs["pod.sysctl.vm.max_map_count"].ok
        and reqs["pod.sysctl.vm.max_map_count"].actual == "missing"
    )


def test_exec_failures_become_short_errors(kube_api, kube):
    kube_api.add_pod(
        "trains", "es-no-limits", labels=ES, files={"/proc/sys/vm/max_map_count": "262144\n"}
    )

    no_limits = kube.read_pod(EsPod("es-no-limits"), ["vm.max_map_count"])
    assert no_limits.error == "cat: /proc/1/limits: No such file or directory"
    gone = kube.read_pod(EsPod("es-gone"), ["vm.max_map_count"])
    assert (
        gone.error == 'Error from server (NotFound): pods "es-gone" not found'
        and gone.limits_text is None
    )

    reqs = by_id(kube.elasticsearch_pod_requirements(DESIRED))
    assert not reqs["pod.ulimit.nofile"].ok
    assert (
        reqs["pod.ulimit.nofile"].actual == "error: cat: /proc/1/limits: No such file or directory"
    )
    assert all(not r.ok for r in reqs.values() if r.id != "pod.elasticsearch.running")


def test_an_unreachable_cluster_is_an_error_not_no_pod(kube_api, kube):
    kube_api.stop()

    pods, error = kube.elasticsearch_pods()
    assert pods == () and error
    [running] = kube.elasticsearch_pod_requirements(DESIRED)
    assert not running.ok and running.actual.startswith("error: ")
