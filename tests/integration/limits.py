"""The nofile limit that `run` writes on a test-bed docker node whose docker sets none.

Never lower: where docker sets no default ulimit, its containers inherit the limits of the
containerd it uses, so `run` writes the playbook's minimum (nofile 1024:65536) raised to those.
Both docker node kinds hand containers about fs.nr_open: the sysvinit node's dockerd starts its
own containerd after the init script's `ulimit -n 1048576`, and the systemd node's docker uses
Debian's containerd.service (`LimitNOFILE=infinity`, that is fs.nr_open, 1048576 by default).
Root here lacks CAP_SYS_RESOURCE, so both get at most the test process's own hard limit
(nofile 20000 in this sandbox), and Debian 12's Go daemons raise their soft nofile to the hard
one: what the tool reads in containerd's /proc/PID/limits is that value, soft and hard.

A limit the node's docker config already sets is judged by that value alone, as before; with
docker stopped there is no containerd to read, and the playbook's minimum is written.
"""

from __future__ import annotations

import resource

PLAYBOOK_NOFILE = (1024, 65536)  # the bundled playbook's minimum
NR_OPEN = 1048576  # the kernel's default fs.nr_open: what `infinity` and the init script give


def _capped(value: int) -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


# what containerd has, and so what containers inherit, on a fresh docker node of the test bed
INHERITED_NOFILE = (_capped(NR_OPEN), _capped(NR_OPEN))
# what `run` writes there: soft and hard each the higher of the playbook's and the inherited
WRITTEN_NOFILE = (
    max(PLAYBOOK_NOFILE[0], INHERITED_NOFILE[0]),
    max(PLAYBOOK_NOFILE[1], INHERITED_NOFILE[1]),
)
WRITTEN_NOFILE_FLAG = f"nofile={WRITTEN_NOFILE[0]}:{WRITTEN_NOFILE[1]}"
# `check` then counts docker.default-ulimit.nofile as met before any run
INHERITED_NOFILE_ENOUGH = WRITTEN_NOFILE == INHERITED_NOFILE
