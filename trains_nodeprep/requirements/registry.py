"""The requirement modules, in the order they read, plan and restart; and the files they manage."""

from __future__ import annotations

from ..engine.types import Service
from ..model import DesiredState
from . import containerd, distribution, docker, k3s, microk8s, rke2, runtime, server, sysctl
from .base import Concern, ManagedFile, ServiceSpec

# runtime first (with the distribution's evidence): it says where the limits go (docker,
# containerd), which those modules read
CONCERNS: tuple[Concern, ...] = (
    distribution.CONCERN,
    runtime.CONCERN,
    docker.CONCERN,
    containerd.CONCERN,
    k3s.CONCERN,
    rke2.CONCERN,
    microk8s.CONCERN,
    sysctl.CONCERN,
    server.CONCERN,
)


def managed_files(desired: DesiredState) -> tuple[ManagedFile, ...]:
    """Every file `run` may write and `restore` may put back, with what a change restarts."""
    return tuple(f for concern in CONCERNS for f in concern.managed_files(desired))


def services() -> dict[Service, ServiceSpec]:
    return {spec.service: spec for concern in CONCERNS for spec in concern.services}
