"""The apply script's encodings: file contents for printf %b, step records as they come back."""

from __future__ import annotations

import base64
import random
import shutil
import subprocess

import pytest

from trains_nodeprep.engine.apply import parse_apply_output
from trains_nodeprep.remote.scripts import printf_escaped

SHELLS = [shell for shell in ("dash", "bash", "busybox") if shutil.which(shell)]


@pytest.mark.parametrize("shell", SHELLS)
def test_every_byte_but_nul_survives_the_shells_printf(shell):
    """The real shells (dash is Debian's sh, bash is RHEL's) print exactly the bytes encoded."""
    rng = random.Random(7)
    samples = [
        bytes(range(1, 256)),
        b'{\n  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 1024}}\n}\n',
        b"OPTIONS='--selinux-enabled \\\n  --log-driver=journald'\r\n"
        b"\\c\\0101 %s %b $HOME `id` \"q\" 'q'",
        "vm.max_map_count = 262144 # ünïcödé\n".encode(),
        b"",
        bytes(rng.randrange(1, 256) for _ in range(3000)),
    ]
    argv = (
        [shell, "sh", "-c", 'printf %b "$1"', "sh"]
        if shell == "busybox"
        else [shell, "-c", 'printf %b "$1"', "sh"]
    )
    for content in samples:
        done = subprocess.run([*argv, printf_escaped(content)], capture_output=True, check=True)
        assert done.stdout == content


def test_step_messages_come_raw_or_base64_and_only_newline_ends_a_record():
    output = "\n".join(
        [
            "motd noise",
            "step\twrite\t/etc/docker/daemon.json\tok\t=/etc/docker/daemon.json.20261129T054500.bak",
            "step\terror\tdocker\tfail\t"
            f"{base64.b64encode(b'line one' + bytes([10]) + b'line two').decode()}",
            "step\tsysctl\tvm.max_map_count\tok\t=vm.max_map_count = 262144\r",
            "step\tdone\t-\tok\t=",
        ]
    )

    applied = parse_apply_output(0, output)

    assert [(s.kind, s.subject, s.status) for s in applied.steps] == [
        ("write", "/etc/docker/daemon.json", "ok"),
        ("error", "docker", "fail"),
        ("sysctl", "vm.max_map_count", "ok"),
        ("done", "-", "ok"),
    ]
    assert applied.backups == ("/etc/docker/daemon.json.20261129T054500.bak",)
    assert applied.steps[1].message == "line one\nline two"
    assert applied.steps[2].message == "vm.max_map_count = 262144"
