"""RKE2: as k3s, its pods run in its own containerd, a child of its main process `rke2`, which
inherits the limits of RKE2's unit (rke2-server.service or rke2-agent.service, wherever the
install put it: /usr/local/lib/systemd/system for the tarball, /usr/lib/systemd/system for the
RPM). The limits go in a drop-in of that unit in /etc/systemd/system/UNIT.d/, which RKE2's
upgrades never touch; then a daemon-reload and a restart of the unit (KillMode=process: the
pods keep running).
"""

from __future__ import annotations

from ..engine.types import Service
from .unit_limits import DistributionUnit, distribution_concern

UNITS = (
    DistributionUnit("rke2", "rke2-server.service", Service.RKE2_SERVER),
    DistributionUnit("rke2", "rke2-agent.service", Service.RKE2_AGENT),
)

CONCERN = distribution_concern("rke2", UNITS, "rke2.apply.sh")
