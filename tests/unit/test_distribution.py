"""Which distribution runs on a node, from the facts, and where that sends the limits: a table of
evidence in, distribution, targets and refusals out (no I/O)."""

from __future__ import annotations

import json

import pytest

from tests.unit.fakes import DESIRED, FakeNode, facts_output, ok
from trains_nodeprep.engine.converge import check_node
from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.engine.types import NodeStatus
from trains_nodeprep.report import outcome_json
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
) -> NodeFacts:
    return NodeFacts(
        user="root",
        init_system="systemd",
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
    )


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


def test_k3s_embedded_containerd_is_refused_with_the_drop_in_to_write_and_docker_untouched():
    """Before, such a node got docker's daemon.json and a restart of a docker that did not run."""
    facts = node({"k3s-server": ("/usr/local/bin/k3s", "server")}, (K3S_UNIT,))

    plan = make_plan(facts, DESIRED)

    assert plan.runtime is not None and plan.runtime.distribution == "k3s-server"
    assert plan.runtime.targets == () and plan.file_changes == () and not plan.restarts
    (blocker,) = plan.blockers
    assert "/etc/systemd/system/k3s.service.d/99-trains.conf" in blocker
    assert "LimitMEMLOCK=infinity" in blocker and "systemctl restart k3s.service" in blocker


def test_microk8s_is_refused_with_its_containerd_env():
    facts = node({"kubelite": ("/snap/microk8s/x/kubelite",)}, (MICROK8S_ARGS,))

    (blocker,) = make_plan(facts, DESIRED).blockers

    assert "/var/snap/microk8s/current/args/containerd-env" in blocker
    assert "-l unlimited" in blocker and "microk8s stop; microk8s start" in blocker


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

    assert outcome.status == NodeStatus.REFUSED
    runtime = json.loads(json.dumps(outcome_json(outcome)))["runtime"]
    assert runtime["distribution"] == "k3s-server" and runtime["targets"] == []
    assert outcome.plan is not None and outcome.plan.runtime is not None
    assert outcome.plan.runtime.describe().startswith("k3s-server (k3s-server running")
