"""formats.env_file: an environment file as systemd's EnvironmentFile= reads it, and the docker
plan refusing a flag file that systemd and a shell read differently."""

from __future__ import annotations

import pytest

from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.formats.env_file import assignments, environment
from trains_nodeprep.model import SYSCONFIG_DOCKER

from .test_plan import DESIRED, node


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\nB = two words  \n", {"A": "1", "B": "two words"}),
        ("A='x y'\nB=\"p q\"\n", {"A": "x y", "B": "p q"}),
        # text after the closing quote continues the value: no comments after a value
        ("A='x'  # why\n", {"A": "x# why"}),
        ("A=x # why\n", {"A": "x # why"}),
        # a continued line, in double quotes and bare; a raw newline in quotes is kept
        ('A="x \\\n  y"\n', {"A": "x   y"}),
        ("A=x\\\ny\n", {"A": "xy"}),
        ('A="x\ny"\n', {"A": "x\ny"}),
        # inside double quotes only " \\ ` $ are escaped; bare, any character
        ('A="a\\"b\\$c\\d"\n', {"A": 'a"b$c\\d'}),
        ("A=a\\ b\n", {"A": "a b"}),
        # comments are whole lines; export sets nothing; the last assignment wins
        ("# A=1\n; A=2\n  A=3\nexport A=4\n", {"A": "3"}),
        ("A=1\nA=2", {"A": "2"}),
        ("A=\nB='' \n", {"A": "", "B": ""}),
        ("no equals sign\nA=1\n", {"A": "1"}),
    ],
)
def test_values_as_systemd_reads_them(text, expected):
    assert environment(text) == expected


def test_assignments_keep_invalid_names_and_lines():
    found = assignments("# x\n  export OPTIONS='--a'\nOPTIONS=\"--b \\\n --c\"\n")
    assert [(a.name, a.valid, a.line) for a in found] == [
        ("export OPTIONS", False, 2),
        ("OPTIONS", True, 3),
    ]


RHEL_SYSTEMD_UNIT = (
    "[Service]\nEnvironmentFile=-/etc/sysconfig/docker\nExecStart=/usr/bin/dockerd $OPTIONS\n"
)


def rhel_systemd_node(sysconfig: str):
    import dataclasses

    facts = node({SYSCONFIG_DOCKER: sysconfig}, init="systemd")
    return dataclasses.replace(facts, docker_unit=RHEL_SYSTEMD_UNIT)


def test_an_export_line_systemd_ignores_is_refused_on_a_systemd_node():
    facts = rhel_systemd_node("export OPTIONS='--log-level=warn'  # quiet\n")
    plan = make_plan(facts, DESIRED)
    (blocker,) = [b for b in plan.blockers if SYSCONFIG_DOCKER in b]
    assert "line 1 (export OPTIONS=...) is ignored by systemd" in blocker
    assert "without 'export'" in blocker
    assert not plan.file_changes


def test_text_after_the_closing_quote_is_refused_on_a_systemd_node():
    plan = make_plan(rhel_systemd_node("OPTIONS='--log-level=warn'  # quiet\n"), DESIRED)
    (blocker,) = [b for b in plan.blockers if SYSCONFIG_DOCKER in b]
    assert "'--log-level=warn# quiet'" in blocker and "'--log-level=warn'" in blocker
    assert not plan.file_changes


def test_a_continued_line_systemd_reads_alike_is_planned():
    facts = rhel_systemd_node('OPTIONS="--log-level=warn \\\n  --iptables=true"\n')
    plan = make_plan(facts, DESIRED)
    assert not [b for b in plan.blockers if SYSCONFIG_DOCKER in b]
    assert SYSCONFIG_DOCKER in [c.path for c in plan.file_changes]


def test_without_systemd_the_init_script_sources_the_file_as_a_shell():
    import dataclasses

    facts = dataclasses.replace(
        rhel_systemd_node("export OPTIONS='--log-level=warn'  # quiet\n"),
        init_system="sysvinit",
        docker_unit=None,
    )
    plan = make_plan(facts, DESIRED)
    assert not [b for b in plan.blockers if SYSCONFIG_DOCKER in b]
    assert SYSCONFIG_DOCKER in [c.path for c in plan.file_changes]


def test_a_file_the_unit_does_not_read_is_not_judged_by_systemd():
    import dataclasses

    facts = dataclasses.replace(
        rhel_systemd_node("export OPTIONS='--log-level=warn'\n"),
        docker_unit="[Service]\nExecStart=/usr/bin/dockerd\n",
    )
    assert not [b for b in make_plan(facts, DESIRED).blockers if "ignored by systemd" in b]
