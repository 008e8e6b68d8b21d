"""docker.service laid out as RHEL, CentOS and Amazon Linux packages have it, given to Debian's
unit by a drop-in: it reads /etc/sysconfig/docker (EnvironmentFile=) and passes $OPTIONS on its
ExecStart. Used by test_rhel_systemd.py and by the systemd nodes of test_hostile_inputs.py."""

from __future__ import annotations

SYSCONFIG = "/etc/sysconfig/docker"
RHEL_DROPIN_PATH = "/etc/systemd/system/docker.service.d/10-rhel.conf"
# the bed's runtime wrapper still comes in DOCKER_OPTS from /etc/default/docker
RHEL_DROPIN = (
    "[Service]\n"
    "EnvironmentFile=-/etc/sysconfig/docker\n"
    "ExecStart=\n"
    "ExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock"
    " $OPTIONS $DOCKER_OPTS\n"
)
