"""The facts script itself, run in a real node: what it tells about time and files."""

from __future__ import annotations

import time

import pytest

from trains_nodeprep.engine.parse import parse_facts
from trains_nodeprep.model import DAEMON_JSON
from trains_nodeprep.playbook import load_playbook
from trains_nodeprep.remote.protocol import LOCK_FILE
from trains_nodeprep.remote.scripts import render_facts_script


def test_file_ages_are_on_the_node_clock_even_after_waiting_for_another_runs_lock(bed, make_node):
    """The node's clock comes from tar's own /proc entry, made when tar first looks at it. The
    script's shell waits for the lock first, while others scan /proc (ps, pidof, monitoring agents):
    an entry made then would put the clock seconds in the past and make every file look younger."""
    node = make_node(docker=False, files={DAEMON_JSON: "{}\n"})
    node.sh(f"touch -d '-30 seconds' {DAEMON_JSON}")
    node.sh(
        f"mkdir -p /run/lock; (flock -x {LOCK_FILE} sleep 3 >/dev/null 2>&1 &); "
        "(for i in 1 2 3 4 5 6 7 8 9 10 11 12;"
        " do cat /proc/[0-9]*/stat >/dev/null 2>&1; sleep 0.2; done >/dev/null 2>&1 &)"
    )
    time.sleep(0.3)  # the lock is held and the scans run before the script starts

    started = time.monotonic()
    done = node.exec("/bin/sh", "-c", render_facts_script(load_playbook()), text=False, check=False)
    waited = time.monotonic() - started
    age_now = float(node.sh(f"echo $(( $(date +%s) - $(stat -c %Y {DAEMON_JSON}) ))").stdout)

    facts = parse_facts(done.stdout)
    assert waited > 2  # it did wait for the lock
    assert facts.file_ages[DAEMON_JSON] == pytest.approx(age_now, abs=1.1)
    assert done.returncode == 0 and facts.file(DAEMON_JSON).content == b"{}\n"


def test_one_grep_finds_the_daemons_by_name_and_reads_the_kernel_value(bed, make_node):
    """The daemons are found by their exact process name; a process whose name starts with a digit
    (the pattern that lets kernel values through) or only begins like a daemon's is not one."""
    node = make_node(docker=True)
    node.sh(
        "cp /bin/sleep /run/0day && cp /bin/sleep /run/dockerd-helper && "
        "(/run/0day 60 >/dev/null 2>&1 &) && (/run/dockerd-helper 60 >/dev/null 2>&1 &)"
    )

    done = node.exec("/bin/sh", "-c", render_facts_script(load_playbook()), text=False, check=False)
    facts = parse_facts(done.stdout)

    assert facts.dockerd_pid == node.docker_pid() and facts.dockerd_argv[0].endswith("dockerd")
    assert facts.sysctl_runtime == {"vm.max_map_count": node.max_map_count()}
    assert (
        b"0day" not in done.stdout.split(b"archive\tall")[0]
        and b"dockerd-helper" not in done.stdout
    )
