"""`run` restarts the workload whose Elasticsearch pod still runs with the limits it started
with (a container's limits are fixed when it starts: preparing the node does not reach it).

The nodes are real test-bed nodes; the cluster is tests/kubefake.FakeKubeAPI, a TEST DOUBLE of
the Kubernetes API (no real API server can run here) driven by the real kubectl binary. Its
stand-in for the Deployment controller replaces the pod when `kubectl rollout restart` patches
the template; the new pod "sees" the files set_new_pod_files gave it: nothing runs in any pod.
"""

from __future__ import annotations

import pytest

from tests.kubefake import run_kubectl
from trains_nodeprep.cluster.kubectl import bundled_kustomization

from .cli import json_output, trains_nodeprep
from .standins import StandIns
from .test_deploy import TRAINS, proc_limits, writes

OVERLAY = bundled_kustomization()
RESTART_PATCH = ("PATCH", "/apis/apps/v1/namespaces/trains/deployments/elasticsearch")
COMMAND = "kubectl rollout restart deployment/elasticsearch -n trains"


def pod_files(nofile: str, memlock: str) -> dict[str, str]:
    return {
        "/proc/1/limits": proc_limits(nofile, memlock),
        "/proc/sys/vm/max_map_count": "262144\n",
    }


OLD_LIMITS = pod_files("1024:65536", "8388608:8388608")  # k3s's memlock: 8 MiB
NEW_LIMITS = pod_files("1024:65536", "unlimited:unlimited")


@pytest.fixture
def deployed(make_node, kube_api, kubeconfig, tmp_path):
    """A labeled node, and trains-server already applied (so `run`'s apply -k is unchanged)
    with an Elasticsearch pod that started before the node was prepared."""
    node = make_node()
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=node.address)
    run_kubectl(kubeconfig, "apply", "-k", str(OVERLAY), cache_dir=tmp_path / "kube-cache")
    old_pod = kube_api.add_deployment_pod(
        "trains", "elasticsearch", node_name="worker-1", files=OLD_LIMITS
    )
    kube_api.set_new_pod_files(NEW_LIMITS)
    StandIns(node).start()  # trains-server's servers answer: check's service.* pass
    kube_api.clear_requests()
    return node, old_pod


def elasticsearch_pods(kube_api) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in kube_api.objects("Pod", "trains")
        if p["metadata"]["labels"].get("app") == "elasticsearch"
    ]


def test_run_yes_restarts_the_deployment_and_check_pods_passes_afterwards(
    bed, kube_api, kubeconfig, deployed
):
    _node, old_pod = deployed

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--wait", "30", "-o", "json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)
    assert report["nodes"][0]["status"] == "changed"
    [new_pod] = elasticsearch_pods(kube_api)
    assert new_pod != old_pod
    assert report["cluster"]["pod_restarts"] == [
        {
            "workload": "deployment/elasticsearch",
            "namespace": "trains",
            "reason": "its pod runs with memlock 8 MiB < unlimited",
            "done": True,
            "pods": [old_pod],
            "command": COMMAND,
            "error": None,
            "after": [f"pod {new_pod}: nofile 1024:65536, memlock unlimited"],
        }
    ]
    # exactly one rollout restart, and no other write: apply -k found the tree unchanged
    assert [(m, p.split("?")[0]) for m, p in writes(kube_api)] == [RESTART_PATCH]
    assert "restarted deployment/elasticsearch" in result.stderr

    checked = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig), "--pods")
    assert checked.returncode == 0, checked.stdout
    assert "ok     pod.ulimit.memlock" in checked.stdout

    # the pod is fine now: a second run offers no restart
    kube_api.clear_requests()
    again = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "-o", "json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json_output(again)["cluster"]["pod_restarts"] == []
    assert writes(kube_api) == [] and elasticsearch_pods(kube_api) == [new_pod]


def test_without_yes_and_without_a_terminal_nothing_is_restarted_and_the_command_is_shown(
    bed, kube_api, kubeconfig, deployed
):
    node, old_pod = deployed
    prepared = trains_nodeprep(bed, "run", "--host", node.address, "--yes", "--no-deploy")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr

    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig))

    # as for a runtime restart that was not confirmed: not done, exit 1, rerun with --yes
    assert result.returncode == 1, result.stdout + result.stderr
    assert not any(method == "PATCH" for method, _ in kube_api.requests)
    assert elasticsearch_pods(kube_api) == [old_pod]
    assert "unchanged" in result.stdout  # the node was ready already
    line = next(line for line in result.stdout.splitlines() if "not confirmed" in line)
    assert line.startswith("refused")
    assert "its pod runs with memlock 8 MiB < unlimited" in line
    assert f"run `{COMMAND}`, or rerun with --yes; check --pods fails until then" in line


def test_plan_lists_the_restart_it_would_make_and_writes_nothing(
    bed, kube_api, kubeconfig, deployed
):
    node, old_pod = deployed

    result = trains_nodeprep(bed, "plan", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    [restart] = json_output(result)["cluster"]["pod_restarts"]
    assert (restart["workload"], restart["done"], restart["error"]) == (
        "deployment/elasticsearch",
        False,
        None,
    )
    assert (
        "would restart deployment/elasticsearch (namespace trains): its pod runs with"
        " memlock 8 MiB < unlimited" in result.stderr
    )
    assert writes(kube_api) == []  # no PATCH, nothing created
    assert elasticsearch_pods(kube_api) == [old_pod] and node.max_map_count() == 65530


def test_a_new_pod_still_low_after_the_wait_blames_the_node(bed, kube_api, kubeconfig, deployed):
    kube_api.set_new_pod_files(OLD_LIMITS)  # as when the node's runtime still gives 8 MiB

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--wait", "30", "-o", "json"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    [restart] = json_output(result)["cluster"]["pod_restarts"]
    assert restart["done"] is True
    assert "still runs with memlock 8 MiB < unlimited" in restart["error"]
    assert "the node is the problem, not the pod" in restart["error"]
    assert [m for m, _ in writes(kube_api)] == ["PATCH"]


def test_a_pod_no_workload_owns_is_left_to_the_user(bed, kube_api, kubeconfig, deployed):
    node, old_pod = deployed
    kube_api.add_pod(
        "trains", "elasticsearch-by-hand", labels={"app": "elasticsearch"}, files=OLD_LIMITS
    )

    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr
    restarts = {r["workload"]: r for r in json_output(result)["cluster"]["pod_restarts"]}
    assert restarts["deployment/elasticsearch"]["done"] is True
    bare = restarts["pod/elasticsearch-by-hand"]
    assert bare["done"] is False and "delete it and create it again by hand" in bare["error"]
    assert bare["command"] == "kubectl delete pod elasticsearch-by-hand -n trains"
    assert "elasticsearch-by-hand" in elasticsearch_pods(kube_api)  # not deleted by the tool
