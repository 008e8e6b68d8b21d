"""Which runtime the kubelet uses, from the evidence a node offers (pure)."""

from __future__ import annotations

import pytest

from trains_nodeprep.requirements.runtime import (
    CONTAINERD,
    DOCKER,
    KUBELET_CONFIG,
    choose_runtime,
    config_endpoint,
    flag_file_argv,
    kubelet_flags,
    runtime_of_endpoint,
)

KUBEADM_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"


def choose(argv=(), files=None, sockets=(), docker=False, containerd=False, docker_running=None):
    return choose_runtime(
        kubelet_argv=tuple(argv),
        kubelet_files=files or {},
        sockets=tuple(sockets),
        docker_installed=docker,
        containerd_installed=containerd,
        docker_running=docker if docker_running is None else docker_running,
    )


@pytest.mark.parametrize(
    "endpoint, runtime",
    [
        ("unix:///run/containerd/containerd.sock", CONTAINERD),
        ("unix:///var/run/containerd/containerd.sock", CONTAINERD),
        ("unix:///var/run/cri-dockerd.sock", DOCKER),
        ("unix:///var/run/dockershim.sock", DOCKER),
        ("unix:///var/run/crio/crio.sock", "cri-o"),
        ("unix:///run/k3s/other.sock", "unknown"),
    ],
)
def test_endpoints_name_their_runtime(endpoint, runtime):
    assert runtime_of_endpoint(endpoint) == runtime


def test_kubelet_flags_in_both_spellings():
    flags = kubelet_flags(
        [
            "/usr/bin/kubelet",
            "--config=/etc/k/config.yaml",
            "--container-runtime-endpoint",
            "unix:///x.sock",
            "--v",
            "2",
            "--fail-swap-on",
        ]
    )
    assert flags == {
        "config": "/etc/k/config.yaml",
        "container-runtime-endpoint": "unix:///x.sock",
        "v": "2",
        "fail-swap-on": "true",
    }


def test_kubeadm_flags_file_is_read_like_the_unit_expands_it():
    text = (
        'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock'
        ' --pod-infra-container-image=registry.k8s.io/pause:3.9"\n'
    )
    assert (
        "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock"
        in flag_file_argv(text)
    )
    assert (
        flag_file_argv("# KUBELET_EXTRA_ARGS=--x\nOTHER=--y\nKUBELET_EXTRA_ARGS='--unbalanced\n")
        == []
    )


def test_config_file_endpoint():
    assert (
        config_endpoint(
            'apiVersion: kubelet.config.k8s.io/v1beta1\ncontainerRuntimeEndpoint: "unix:///run/containerd/containerd.sock"\n'
        )
        == "unix:///run/containerd/containerd.sock"
    )
    assert config_endpoint("kind: KubeletConfiguration\n# containerRuntimeEndpoint: x\n") is None


def test_running_kubelet_argv_outranks_files():
    choice = choose(
        argv=["kubelet", "--container-runtime-endpoint=unix:///var/run/cri-dockerd.sock"],
        files={
            KUBELET_CONFIG: "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
        },
        docker=True,
        containerd=True,
    )
    assert choice.kubelet == DOCKER and choice.targets == (DOCKER,)
    assert "the running kubelet" in choice.evidence


def test_containerd_kubelet_without_docker_prepares_containerd_only():
    choice = choose(
        files={
            KUBELET_CONFIG: "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
        },
        containerd=True,
    )
    assert choice.kubelet == CONTAINERD and choice.targets == (CONTAINERD,)
    assert KUBELET_CONFIG in choice.evidence


def test_containerd_kubelet_with_docker_running_prepares_both():
    files = {
        KUBEADM_FLAGS: 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock"\n'
    }
    assert choose(files=files, docker=True, containerd=True).targets == (DOCKER, CONTAINERD)
    # dockerd on disk but not running serves no containers: its daemon.json is not needed
    assert choose(files=files, docker=True, containerd=True, docker_running=False).targets == (
        CONTAINERD,
    )


def test_config_named_by_kubelet_flag_is_used():
    choice = choose(
        argv=["kubelet", "--config", "/etc/kubernetes/kubelet.yaml"],
        files={
            "/etc/kubernetes/kubelet.yaml": "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"
        },
        containerd=True,
    )
    assert choice.kubelet == CONTAINERD


def test_old_kubelet_with_dockershim():
    assert choose(argv=["kubelet", "--container-runtime=docker"], docker=True).targets == (DOCKER,)


def test_kubelet_without_endpoint_falls_back_to_the_only_cri_socket():
    choice = choose(
        argv=["kubelet"], sockets=["/run/containerd/containerd.sock"], docker=True, containerd=True
    )
    assert choice.kubelet == CONTAINERD and "only CRI socket" in choice.evidence


def test_kubelet_without_endpoint_and_several_sockets_prepares_every_runtime_here():
    choice = choose(
        argv=["kubelet"],
        sockets=["/run/containerd/containerd.sock", "/run/cri-dockerd.sock"],
        docker=True,
        containerd=True,
    )
    assert choice.kubelet == "undetermined" and choice.targets == (DOCKER, CONTAINERD)


def test_no_kubelet_uses_the_daemons_installed():
    assert choose(docker=True, containerd=True).targets == (
        DOCKER,
    )  # docker.io pulls containerd in as its backend
    assert choose(containerd=True).targets == (CONTAINERD,)
    assert choose().kubelet is None and choose().targets == (DOCKER,)


def test_cri_o_is_refused_with_what_to_do():
    choice = choose(argv=["kubelet", "--container-runtime-endpoint=unix:///var/run/crio/crio.sock"])
    assert choice.targets == () and "cri-o" in choice.problem and "by hand" in choice.problem
