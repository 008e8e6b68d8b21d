"""k3s: its pods run in k3s's own containerd, a child of k3s's main process, which inherits the
limits of k3s's unit (k3s.service on a server, k3s-agent.service on an agent). The limits go
in a drop-in of that unit, /etc/systemd/system/UNIT.d/, which k3s's install.sh never touches
when it upgrades k3s; then a daemon-reload and a restart of the unit (KillMode=process: the
pods keep running). With `docker: true` the pods run in docker instead, whose module then
plans them (requirements/runtime.py says where the limits go).
"""

from __future__ import annotations

from ..engine.types import Service
from .unit_limits import DistributionUnit, distribution_concern

UNITS = (
    DistributionUnit("k3s", "k3s.service", Service.K3S),
    DistributionUnit("k3s", "k3s-agent.service", Service.K3S_AGENT),
)

CONCERN = distribution_concern("k3s", UNITS, "k3s.apply.sh")
