"""containerd nodes: the limits go where the kubelet's runtime reads them, on nodes that boot
the real systemd.

The nodes are test-bed nodes with systemd 252 as PID 1 and Debian's unchanged containerd.service
(tests/testbed). The results are read independently of the tool: testinfra over its own SSH,
`systemctl show`, containerd's main PID, and the rlimits the runtime wrapper inherits when
containerd starts a container (what a pod gets: the CRI plugin puts none in the spec).

Root here lacks CAP_SYS_RESOURCE: systemd cannot give containerd a hard limit above this
sandbox's own (nofile 20000, memlock 8 MiB), so what containers inherit is compared with the
unit's values capped at the test process's own hard limits. And Debian 12's containerd is
built with Go < 1.21, which raises its soft nofile to the hard one and passes that on.
"""

from __future__ import annotations

import resource

import pytest

from tests.testbed import Debian13Node, SystemdNode

from .cli import json_output, trains_nodeprep
from .limits import WRITTEN_NOFILE

DROPIN = "/etc/systemd/system/containerd.service.d/99-trains.conf"
SITE_DROPIN = "/etc/systemd/system/containerd.service.d/10-site.conf"
KUBELET_CONFIG = {
    "/var/lib/kubelet/config.yaml": (
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
    ),
}
# a site's own drop-in with limits too low for Elasticsearch (the tool keeps it, and overrides it)
LOW_SITE_LIMITS = {SITE_DROPIN: "[Service]\nLimitNOFILE=4096\nLimitMEMLOCK=65536\n"}


def capped(value: int, which: int) -> int:
    """What systemd can really give here: the value, or this sandbox's hard limit if lower."""
    hard = resource.getrlimit(which)[1]
    if value == -1:
        return -1 if hard == resource.RLIM_INFINITY else hard
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


def unit_limits(node) -> dict[str, str]:
    out = node.systemctl(
        "show",
        "containerd.service",
        "-p",
        "LimitNOFILE",
        "-p",
        "LimitNOFILESoft",
        "-p",
        "LimitMEMLOCK",
        "-p",
        "LimitMEMLOCKSoft",
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


SYSTEMD_KINDS = pytest.mark.parametrize(
    "kind", [SystemdNode, Debian13Node], ids=["debian12", "debian13"]
)


@SYSTEMD_KINDS
def test_containerd_node_gets_a_dropin_restarts_containerd_once_and_then_changes_nothing(
    bed, make_node, kind
):
    node = make_node(kind=kind, docker=False, files={**KUBELET_CONFIG, **LOW_SITE_LIMITS})
    before = node.run_containerd_container()["inherited"]
    assert before["RLIMIT_NOFILE"][1] == 4096 and before["RLIMIT_MEMLOCK"] == (65536, 65536)
    pid_before = node.unit_pid("containerd")

    check = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    assert check.returncode == 1
    report = json_output(check)["nodes"][0]
    assert report["runtime"]["kubelet"] == "containerd" and report["runtime"]["targets"] == [
        "containerd"
    ]
    assert "/var/lib/kubelet/config.yaml" in report["runtime"]["evidence"]
    reqs = {r["id"]: r for r in report["requirements"]}
    assert (
        reqs["containerd.limit.nofile"]["actual"] == "4096"
        and not reqs["containerd.limit.nofile"]["ok"]
    )
    assert not any(
        r.startswith("docker.") for r in reqs
    )  # daemon.json would not reach the pods here

    run = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert run.returncode == 0, run.stdout + run.stderr
    result = json_output(run)["nodes"][0]
    assert (
        result["status"] == "changed"
        and result["applied"]["restarted_containerd"]
        and not result["applied"]["restarted_docker"]
    )
    assert {c["path"]: c["restarts_containerd"] for c in result["changes"]}[DROPIN] is True
    assert "/etc/docker/daemon.json" not in {c["path"] for c in result["changes"]}
    host = node.host()
    dropin = host.file(DROPIN)
    assert dropin.mode == 0o644 and dropin.user == "root"
    # the playbook's minimums, raised to what the site already gave (soft nofile 4096 is kept)
    assert "[Service]\nLimitNOFILE=4096:65536\nLimitMEMLOCK=infinity\n" in dropin.content_string
    assert (
        host.file(SITE_DROPIN).content_string == LOW_SITE_LIMITS[SITE_DROPIN]
    )  # the site's file is untouched
    [backup] = [b for b in result["applied"]["backups"] if b.startswith(DROPIN)]
    assert backup.endswith(".absent.bak") and host.file(backup).exists  # it did not exist before
    assert unit_limits(node) == {
        "LimitNOFILE": "65536",
        "LimitNOFILESoft": "4096",
        "LimitMEMLOCK": "infinity",
        "LimitMEMLOCKSoft": "infinity",
    }
    pid_after = node.unit_pid("containerd")
    assert pid_after and pid_after != pid_before
    assert node.max_map_count() == 262144
    after = node.run_containerd_container()["inherited"]
    nofile_hard = capped(65536, resource.RLIMIT_NOFILE)
    assert after["RLIMIT_NOFILE"][1] == nofile_hard > before["RLIMIT_NOFILE"][1]
    assert after["RLIMIT_MEMLOCK"] == (capped(-1, resource.RLIMIT_MEMLOCK),) * 2

    again = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert again.returncode == 0, again.stdout + again.stderr
    second = json_output(again)["nodes"][0]
    assert (
        second["status"] == "unchanged"
        and second["changes"] == []
        and second["remote_commands"] == 1
    )
    assert node.unit_pid("containerd") == pid_after
    assert trains_nodeprep(bed, "check", "--host", node.name).returncode == 0

    restored = trains_nodeprep(bed, "restore", "--host", node.name, "--yes")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert not host.file(DROPIN).exists
    assert unit_limits(node)["LimitNOFILE"] == "4096" and node.unit_pid("containerd") != pid_after


def test_check_text_names_the_runtime_and_where_it_was_read(bed, make_node):
    node = make_node(
        kind=SystemdNode,
        docker=False,
        files={
            "/var/lib/kubelet/kubeadm-flags.env": (
                'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint='
                'unix:///run/containerd/containerd.sock --v=2"\n'
            ),
        },
    )

    result = trains_nodeprep(bed, "check", "--host", node.name)

    assert (
        "runtime  kubelet uses containerd (/var/lib/kubelet/kubeadm-flags.env: --container-runtime-endpoint=unix:///run/containerd/containerd.sock)"
        in result.stdout
    )
    # Debian's unit already has LimitNOFILE=infinity: enough; memlock comes from systemd's default
    assert (
        "ok     containerd.limit.nofile" in result.stdout
        and "drift  containerd.limit.memlock" in result.stdout
    )

    plan = trains_nodeprep(bed, "plan", "--host", node.name)

    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert f"create {DROPIN} (new file)" in plan.stdout
    assert (
        "+LimitNOFILE=infinity" in plan.stdout and "+LimitMEMLOCK=infinity" in plan.stdout
    )  # infinity kept, not lowered
    assert (
        "run    systemctl daemon-reload" in plan.stdout
        and "run    systemctl restart containerd" in plan.stdout
    )
    assert (
        "note   containerd will restart" in plan.stdout
        and "keep their old limits until they are recreated" in plan.stdout
    )
    assert node.read(DROPIN) is None


@SYSTEMD_KINDS
def test_mixed_node_gets_both_each_in_its_own_place(bed, make_node, kind):
    node = make_node(kind=kind, docker=True, files=KUBELET_CONFIG)
    docker_pid, containerd_pid = node.unit_pid("docker"), node.unit_pid("containerd")

    run = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert run.returncode == 0, run.stdout + run.stderr
    result = json_output(run)["nodes"][0]
    assert result["runtime"]["targets"] == ["docker", "containerd"]
    assert result["applied"]["restarted_docker"] and result["applied"]["restarted_containerd"]
    assert {c["path"] for c in result["changes"]} >= {"/etc/docker/daemon.json", DROPIN}
    assert node.unit_pid("docker") != docker_pid and node.unit_pid("containerd") != containerd_pid
    assert unit_limits(node)["LimitMEMLOCK"] == "infinity"
    # what dockerd asks runc for: the minimum raised to what it inherited from containerd
    assert node.run_container()["RLIMIT_NOFILE"] == WRITTEN_NOFILE
    again = json_output(trains_nodeprep(bed, "run", "--host", node.name, "-o", "json"))["nodes"][0]
    assert again["status"] == "unchanged"


@SYSTEMD_KINDS
def test_a_containerd_that_will_not_start_with_the_new_limits_is_rolled_back(bed, make_node, kind):
    # A site check that refuses to start containerd once memlock is unlimited: the restart fails.
    guard = (
        "[Service]\nExecStartPre=/bin/sh -c 'if grep -qs LimitMEMLOCK=infinity "
        + DROPIN
        + "; then echo refusing unlimited memlock >&2; exit 1; fi'\n"
    )
    node = make_node(
        kind=kind,
        docker=False,
        files={**KUBELET_CONFIG, "/etc/systemd/system/containerd.service.d/50-guard.conf": guard},
    )
    pid_before = node.unit_pid("containerd")

    result = trains_nodeprep(
        bed, "run", "--host", node.name, "--yes", "--restart-timeout", "10", "-o", "json"
    )

    assert result.returncode == 1
    outcome = json_output(result)["nodes"][0]
    assert outcome["status"] == "failed" and outcome["applied"]["rolled_back"]
    assert (
        "containerd did not answer" in outcome["error"]
        and "refusing unlimited memlock" in outcome["error"]
    )
    assert node.read(DROPIN) is None and node.read(DROPIN + ".bak") is None
    assert node.systemctl("is-active", "containerd", check=False).stdout.strip() == "active"
    assert node.unit_pid("containerd") not in (None, pid_before)
    assert node.run_containerd_container()["inherited"]  # containerd still starts containers


def test_containerd_without_systemd_is_judged_by_its_process_limits_and_refused_with_the_fix(
    bed, make_node
):
    node = make_node(docker=False, files=KUBELET_CONFIG)  # tini as PID 1: no systemd
    node.sh(
        "ulimit -n 4096; setsid containerd --address /run/containerd/containerd.sock"
        " </dev/null >/var/log/containerd.log 2>&1 &"
    )
    node.sh(
        "for i in $(seq 100); do [ -S /run/containerd/containerd.sock ] && exit 0; sleep 0.1;"
        " done; exit 1"
    )
    before = node.exec("find", "/etc", "-newer", "/etc/hostname").stdout

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert result.returncode == 1
    outcome = json_output(result)["nodes"][0]
    assert outcome["status"] == "refused"
    assert (
        "no systemd" in outcome["error"]
        and "ulimit -H -n 65536; ulimit -S -n 1024" in outcome["error"]
    )
    reqs = {r["id"]: r for r in outcome["requirements"]}
    assert (
        reqs["containerd.limit.nofile"]["actual"] == "4096"
        and "/limits (containerd)" in reqs["containerd.limit.nofile"]["where"]
    )
    assert node.exec("find", "/etc", "-newer", "/etc/hostname").stdout == before  # nothing written
