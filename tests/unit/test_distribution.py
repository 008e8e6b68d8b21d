"""Which distribution runs on a node, from the facts, and where that sends the limits: a table of
evidence in, distribution, targets and refusals out (no I/O)."""

from __future__ import annotations

import json

import pytest

from tests.unit.fakes import DESIRED, FakeNode, facts_output, ok
from trains_nodeprep.engine.converge import check_node
from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.engine.types import NodeStatus, Service
from trains_nodeprep.remote.scripts import render_apply_script
from trains_nodeprep.report import outcome_json, plan_commands, restart_warnings
from trains_nodeprep.requirements.distribution import choose_distribution

K3S_UNIT = "/etc/systemd/system/k3s.service"
K3S_AGENT_UNIT = "/etc/systemd/system/k3s-agent.service"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
RKE2_UNIT = "/usr/local/lib/systemd/system/rke2-server.service"
MICROK8S_ARGS = "/var/snap/microk8s/current/args/kubelet"
RKE2_KUBELET = (
    "/var/lib/rancher/rke2/data/v1.31.4-rke2r1/bin/kubelet",
    "--container-runtime-endpoint=unix:///run/k3s/containerd/containerd.sock",
)


def node(
    processes: dict[str, tuple[str, ...]] | None = None,
    paths: tuple[str, ...] = (),
    files: dict[str, bytes] | None = None,
    kubelet: tuple[str, ...] = (),
    docker: bool = True,
    units: dict[str, dict[str, str]] | None = None,
    init: str = "systemd",
    ages: dict[str, float] | None = None,
    process_limits: dict[int, str] | None = None,
) -> NodeFacts:
    return NodeFacts(
        user="root",
        init_system=init,
        docker_installed=docker,
        dockerd_pid=None,
        dockerd_argv=(),
        files={p: FileFact(p, "file", c) for p, c in (files or {}).items()},
        sysctl_runtime={"vm.max_map_count": 262144},
        kubelet_argv=kubelet,
        distribution_processes={
            name: ((100 + i, argv),) for i, (name, argv) in enumerate((processes or {}).items())
        },
        paths_present=paths,
        unit_shows=units or {},
        unit_ages=ages or {},
        file_ages=dict.fromkeys((files or {}), 100.0),
        process_limits=process_limits or {},
    )


def unit_show(active: bool = True, drop_ins: str = "", **limits: str) -> dict[str, str]:
    """`systemctl show` of a k3s-like unit: LimitNOFILE=1048576, no LimitMEMLOCK (systemd's
    8 MiB default)."""
    show = {
        "LoadState": "loaded",
        "ActiveState": "active" if active else "inactive",
        "MainPID": "321" if active else "0",
        "NeedDaemonReload": "no",
        "DropInPaths": drop_ins,
        "LimitNOFILE": "1048576",
        "LimitNOFILESoft": "1048576",
        "LimitMEMLOCK": "8388608",
        "LimitMEMLOCKSoft": "8388608",
    }
    show.update(limits)
    return show


def test_a_node_without_a_distribution_is_kubeadm_style():
    assert choose_distribution(node()) is None
    plan = make_plan(node(), DESIRED)
    assert plan.runtime is not None and plan.runtime.distribution == "none"


@pytest.mark.parametrize(
    ("facts", "label", "running"),
    [
        (node({"k3s-server": ("/usr/local/bin/k3s", "server")}, (K3S_UNIT,)), "k3s server", True),
        (node({"k3s-agent": ("/usr/local/bin/k3s", "agent")}), "k3s agent", True),
        (node(paths=(K3S_AGENT_UNIT, "/var/lib/rancher/k3s")), "k3s agent", False),
        (node({"rke2": ("/usr/local/bin/rke2", "server")}, (RKE2_UNIT,)), "rke2 server", True),
        (node({"rke2": ("rke2", "agent")}, kubelet=RKE2_KUBELET), "rke2 agent", True),
        (node({"kubelite": ("/snap/microk8s/x/kubelite",)}, (MICROK8S_ARGS,)), "microk8s", True),
    ],
)
def test_each_distribution_is_told_by_its_processes_and_files(facts, label, running):
    found = choose_distribution(facts)
    assert found is not None and (found.label, found.running) == (label, running)
    assert found.problem is None


K3S_DROPIN = "/etc/systemd/system/k3s.service.d/99-trains.conf"
RAISED_DROPIN = "[Service]\nLimitNOFILE=1048576\nLimitMEMLOCK=infinity\n"  # k3s's 1048576 is kept


@pytest.mark.parametrize(
    ("processes", "unit", "service"),
    [
        ({"k3s-server": ("/usr/local/bin/k3s", "server")}, "k3s.service", Service.K3S),
        ({"k3s-agent": ("/usr/local/bin/k3s", "agent")}, "k3s-agent.service", Service.K3S_AGENT),
        ({"rke2": ("/usr/local/bin/rke2", "server")}, "rke2-server.service", Service.RKE2_SERVER),
        ({"rke2": ("rke2", "agent")}, "rke2-agent.service", Service.RKE2_AGENT),
    ],
)
def test_k3s_and_rke2_get_a_drop_in_of_their_own_unit_and_its_restart(processes, unit, service):
    """Before, such a node got docker's daemon.json and a restart of a docker that did not run."""
    facts = node(processes, units={unit: unit_show()})

    plan = make_plan(facts, DESIRED)

    assert plan.runtime is not None and plan.runtime.targets == (service,)
    (change,) = [c for c in plan.file_changes if "sysctl" not in c.path]
    assert change.path == f"/etc/systemd/system/{unit}.d/99-trains.conf"
    assert change.new is not None and change.new.decode().endswith(RAISED_DROPIN)
    assert plan.restarts == (service,) and not plan.blockers
    assert "/etc/docker/daemon.json" not in [c.path for c in plan.file_changes]
    nofile = {r.id: r for r in plan.requirements}[f"{service.split('-')[0]}.limit.nofile"]
    assert (nofile.ok, nofile.actual) == (True, "1048576")
    assert plan_commands(plan, "systemd")[-2:] == [
        "systemctl daemon-reload",
        f"systemctl restart {unit}",
    ]
    (warning,) = restart_warnings(plan)
    assert "pods keep running" in warning and "old limits until they are recreated" in warning


def test_a_k3s_unit_already_raised_but_started_before_its_drop_in_is_restarted():
    k3s_show = {"k3s.service": unit_show()}
    written = make_plan(node({"k3s-server": ("k3s", "server")}, units=k3s_show), DESIRED)
    (dropin,) = [c for c in written.file_changes if c.path == K3S_DROPIN]
    assert dropin.new is not None
    raised = unit_show(drop_ins=K3S_DROPIN, LimitMEMLOCK="infinity", LimitMEMLOCKSoft="infinity")
    facts = node(
        {"k3s-server": ("k3s", "server")},
        files={K3S_DROPIN: dropin.new},  # changed 100 s ago
        units={"k3s.service": raised},
        ages={"k3s.service": 500.0},  # started 500 s ago
    )

    plan = make_plan(facts, DESIRED)

    assert K3S_DROPIN not in [c.path for c in plan.file_changes]
    running = {r.id: r for r in plan.requirements}["k3s.running-config"]
    assert not running.ok and "changed after k3s started" in running.actual
    assert plan.restarts == (Service.K3S,)


def test_a_stopped_k3s_gets_its_drop_in_and_is_left_stopped():
    facts = node({}, (K3S_UNIT,), units={"k3s.service": unit_show(active=False)})

    plan = make_plan(facts, DESIRED)

    assert K3S_DROPIN in [c.path for c in plan.file_changes]
    assert plan.restarts == ()
    assert plan.notes == (
        "k3s is not running and is left stopped: the new config applies when it starts",
    )


def test_k3s_without_systemd_is_refused_with_what_to_set_in_its_init_script():
    facts = node({"k3s-server": ("k3s", "server")}, init="sysvinit")

    (blocker,) = make_plan(facts, DESIRED).blockers

    assert "no systemd" in blocker and "ulimit -H -l unlimited" in blocker


MICROK8S_ENV = "/var/snap/microk8s/current/args/containerd-env"
MICROK8S_DEFAULT_ENV = (
    "# Attempt to change the maximum number of open file descriptors\n"
    "ulimit -n 65536 || true\n"
    "\n"
    "# Attempt to change the maximum locked memory limit\n"
    "ulimit -l 16384 || true\n"
)


def test_microk8s_gets_its_containerd_env_raised_and_the_documented_restart():
    facts = node(
        {"kubelite": ("/snap/microk8s/x/kubelite",)},
        (MICROK8S_ARGS,),
        files={MICROK8S_ENV: MICROK8S_DEFAULT_ENV.encode()},
        units={"snap.microk8s.daemon-containerd.service": unit_show()},
    )

    plan = make_plan(facts, DESIRED)

    (change,) = [c for c in plan.file_changes if "sysctl" not in c.path]
    assert (
        change.path == MICROK8S_ENV
        and change.new
        == MICROK8S_DEFAULT_ENV.replace("ulimit -l 16384", "ulimit -l unlimited").encode()
    )  # nofile 65536 (above the playbook's 1024:65536) is kept, every line too
    limits = {r.id: r for r in plan.requirements}
    assert limits["microk8s.limit.memlock"].actual == "16777216"
    assert limits["microk8s.limit.nofile"].ok
    assert plan.restarts == (Service.MICROK8S,)
    assert plan_commands(plan, "systemd")[-2:] == ["microk8s stop", "microk8s start"]
    (warning,) = restart_warnings(plan)
    assert "every pod on this node stops and starts again" in warning


def test_microk8s_without_its_containerd_env_is_refused():
    facts = node({"kubelite": ("/snap/microk8s/x/kubelite",)}, (MICROK8S_ARGS,))

    (blocker,) = make_plan(facts, DESIRED).blockers

    assert MICROK8S_ENV in blocker and "does not exist" in blocker


def test_k3s_with_docker_true_takes_dockers_path():
    facts = node(
        {"k3s-server": ("/usr/local/bin/k3s", "server")},
        (K3S_UNIT,),
        files={K3S_CONFIG: b"docker: true\nwrite-kubeconfig-mode: '0644'\n"},
    )

    plan = make_plan(facts, DESIRED)

    assert plan.runtime is not None and plan.runtime.targets == ("docker",)
    assert "/etc/docker/daemon.json" in [c.path for c in plan.file_changes]


def test_k3s_with_an_external_containerd_takes_its_path():
    config = b"container-runtime-endpoint: unix:///run/containerd/containerd.sock\n"
    facts = node({"k3s-agent": ("k3s", "agent")}, files={K3S_CONFIG: config})

    plan = make_plan(facts, DESIRED)

    assert plan.runtime is not None and plan.runtime.targets == ("containerd",)


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (node({"k3s-server": ("k3s",), "rke2": ("rke2", "server")}), "both run on this node"),
        (node({"k3s-server": ("k3s",)}, kubelet=("/usr/bin/kubelet",)), "a separate kubelet"),
        (node(paths=(K3S_UNIT, RKE2_UNIT)), "both installed and neither runs"),
        (node({"k3s-server": ("k3s",)}, files={K3S_CONFIG: b"docker: [\n"}), "not valid YAML"),
    ],
)
def test_evidence_that_disagrees_refuses_the_node_rather_than_guess(facts, words):
    (blocker,) = make_plan(facts, DESIRED).blockers
    assert words in blocker


def test_check_shows_the_distribution_in_the_runtime_line_and_in_json():
    output = facts_output().replace(
        b"end\tend\tok\t=\n",
        b"proc\tk3s-server\t321\t=/usr/local/bin/k3s\x1fserver\n"
        b"path\t/etc/systemd/system/k3s.service\tok\t=\nend\tend\tok\t=\n",
    )

    outcome = check_node(FakeNode([ok(output)]), DESIRED)

    assert outcome.status == NodeStatus.REFUSED  # k3s.service is not loaded here
    runtime = json.loads(json.dumps(outcome_json(outcome)))["runtime"]
    assert runtime["distribution"] == "k3s-server" and runtime["targets"] == ["k3s"]
    assert outcome.plan is not None and outcome.plan.runtime is not None
    assert outcome.plan.runtime.describe().startswith("k3s-server (k3s-server running")


def test_a_stopped_k3s_whose_drop_in_systemd_has_not_loaded_gets_a_reload_not_a_start():
    written = make_plan(node({}, (K3S_UNIT,), units={"k3s.service": unit_show(False)}), DESIRED)
    (dropin,) = [c for c in written.file_changes if c.path == K3S_DROPIN]
    assert dropin.new is not None
    stale = unit_show(False, LimitMEMLOCK="infinity", LimitMEMLOCKSoft="infinity")
    stale["NeedDaemonReload"] = "yes"
    facts = node({}, (K3S_UNIT,), files={K3S_DROPIN: dropin.new}, units={"k3s.service": stale})

    plan = make_plan(facts, DESIRED)

    assert K3S_DROPIN not in [c.path for c in plan.file_changes]
    assert plan.restarts == () and plan.left_stopped == (Service.K3S,) and not plan.empty
    running = {r.id: r for r in plan.requirements}["k3s.running-config"]
    assert not running.ok
    script = render_apply_script(
        plan, init_system="systemd", stamp="20261203T000000Z", restart_timeout=60, keep_backups=5
    )
    assert "\nreload_units\n" in script and "restart k3s" not in script
