"""The pytest fixtures: kube_api, kubeconfig and kubectl."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .api import FakeKubeAPI
from .kubectl import KubectlResult, run_kubectl


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    """A started FakeKubeAPI (a test double of the Kubernetes API), stopped after the test."""
    api = FakeKubeAPI()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubeconfig(kube_api: FakeKubeAPI, tmp_path: Path) -> Path:
    """A kubeconfig in tmp_path pointing kubectl at ``kube_api``. Give kubectl a
    fresh --cache-dir too (the ``kubectl`` fixture does)."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Callable[..., KubectlResult]:
    """``kubectl("get", "nodes", "-o", "json")``: the real kubectl against
    ``kube_api``, with a cache directory of this test's own."""
    cache_dir = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, timeout: float = 60) -> KubectlResult:
        return run_kubectl(kubeconfig, *args, cache_dir=cache_dir, timeout=timeout, check=check)

    return run
