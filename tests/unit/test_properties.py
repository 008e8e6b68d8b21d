"""Property tests of the merges: idempotent, keep what they do not own, never lower a limit."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trains_nodeprep.formats.docker_config import (
    daemon_json_ulimits,
    merge_daemon_json,
    merge_sysconfig,
    parse_daemon_json,
)
from trains_nodeprep.model import Ulimit, limit_at_least

DJ = "/etc/docker/daemon.json"
SC = "/etc/sysconfig/docker"
NAMES = ("nofile", "memlock", "nproc", "core", "stack")
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies

NUMBER = st.integers(min_value=0, max_value=2**40)


@st.composite
def limit_pairs(draw) -> tuple[int, int]:
    """(soft, hard) that docker accepts: soft <= hard, -1 (unlimited) highest."""
    hard = draw(st.one_of(st.just(-1), NUMBER))
    if hard == -1:
        soft = draw(st.one_of(st.just(-1), NUMBER))
    else:
        soft = draw(st.integers(min_value=0, max_value=hard))
    return soft, hard


@st.composite
def ulimit_tuples(draw, min_size=0) -> tuple[Ulimit, ...]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=min_size, max_size=3))
    return tuple(Ulimit(name, *draw(limit_pairs())) for name in names)


DESIRED = st.one_of(
    st.just((Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1))), ulimit_tuples(min_size=1)
)


def any_case(word: str):
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(word, upper))
    )


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
OTHER_KEYS = st.dictionaries(
    st.text(max_size=12).filter(lambda k: k != "default-ulimits"), JSON_VALUES, max_size=5
)


@st.composite
def ulimit_entries(draw) -> dict:
    entries = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4)):
        soft, hard = draw(limit_pairs())
        entry = {}
        if draw(st.integers(0, 9)):  # now and then no Name: the tool must add one
            entry[draw(any_case("Name"))] = name
        entry[draw(any_case("Soft"))] = soft
        entry[draw(any_case("Hard"))] = hard
        items = list(entry.items())
        order = draw(st.permutations(range(len(items))))
        entries[name] = dict(items[i] for i in order)
    return entries


@st.composite
def daemon_json_files(draw) -> tuple[bytes, dict]:
    """(content, the object it encodes)."""
    config = dict(draw(OTHER_KEYS))
    if draw(st.booleans()):
        config["default-ulimits"] = draw(ulimit_entries())
        keys = list(config)
        order = draw(st.permutations(range(len(keys))))
        config = {keys[i]: config[keys[i]] for i in order}
    indent = draw(st.sampled_from([None, 2, 4, "\t"]))
    text = json.dumps(config, indent=indent, ensure_ascii=draw(st.booleans()))
    return (text + draw(st.sampled_from(["", "\n"]))).encode("utf-8"), config


# ---------------------------------------------------------------- daemon.json properties


@PROPERTY
@given(daemon_json_files(), DESIRED)
def test_daemon_json_merge_is_idempotent_and_keeps_unrelated_keys(file, desired):
    content, config = file
    once = merge_daemon_json(content, desired, DJ)
    assert merge_daemon_json(once, desired, DJ) == once
    result = parse_daemon_json(once, DJ)
    assert {k: v for k, v in result.items() if k != "default-ulimits"} == {
        k: v for k, v in config.items() if k != "default-ulimits"
    }
    assert list(result)[: len(config)] == list(config)  # key order kept too
    before = daemon_json_ulimits(config, DJ)
    named = all(
        any(k.lower() == "name" for k in entry)
        for entry in config.get("default-ulimits", {}).values()
    )
    if named and all(want.name in before and before[want.name].satisfies(want) for want in desired):
        assert once is content  # nothing to do: the very same bytes


@PROPERTY
@given(daemon_json_files(), DESIRED)
def test_daemon_json_merge_meets_the_minimums_never_lowers_and_names_every_entry(file, desired):
    content, config = file
    before = daemon_json_ulimits(config, DJ)
    result = parse_daemon_json(merge_daemon_json(content, desired, DJ), DJ)
    after = daemon_json_ulimits(result, DJ)
    wanted = {want.name for want in desired}
    for want in desired:
        assert after[want.name].satisfies(want)
    for name, old in before.items():
        assert limit_at_least(after[name].soft, old.soft) and limit_at_least(
            after[name].hard, old.hard
        )
        if name not in wanted:
            assert after[name] == old
    assert set(after) == set(before) | wanted
    for key, entry in result["default-ulimits"].items():
        assert [v for k, v in entry.items() if k.lower() == "name"] == [key]


# ---------------------------------------------------------------- sysconfig strategies

OTHER_FLAGS = (
    "--selinux-enabled",
    "--log-driver=journald",
    "--signature-verification=false",
    "--live-restore",
    "--log-opt max-size=10m",
    "-H unix:///var/run/docker.sock",
    "--exec-opt native.cgroupdriver=systemd",
    "--default-ulimits-are-not-this-flag",
)
WORD = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_-./:="), min_size=1, max_size=10
)
VAR_NAME = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "OPTIONS")


@st.composite
def ulimit_flags(draw) -> str:
    name = draw(st.sampled_from(NAMES))
    soft, hard = draw(limit_pairs())
    value = f"{name}={soft}" if soft == hard and draw(st.booleans()) else f"{name}={soft}:{hard}"
    return draw(
        st.sampled_from(
            [f"--default-ulimit {value}", f"--default-ulimit={value}", f"--default-ulimit  {value}"]
        )
    )


@st.composite
def options_lines(draw) -> tuple[str, list[str]]:
    """(an OPTIONS line without newline, its other flags as tokens in order)."""
    flags = draw(st.lists(st.one_of(st.sampled_from(OTHER_FLAGS), ulimit_flags()), max_size=6))
    value = " ".join(flags)
    quote = draw(st.sampled_from(['"', "'", ""]))
    prefix = draw(st.sampled_from(["", "export ", "  "]))
    comment = draw(st.sampled_from(["", "  # set by the installer", " # x"]))
    others = [
        token
        for flag in flags
        if not flag.startswith("--default-ulimit ") and not flag.startswith("--default-ulimit=")
        for token in flag.split()
    ]
    return f"{prefix}OPTIONS={quote}{value}{quote}{comment}", others


OTHER_LINES = st.one_of(
    st.just(""),
    st.builds(
        lambda s: f"# {s}", st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
    ),
    st.builds(
        lambda s: f'#OPTIONS="{s}"',
        st.sampled_from(["--default-ulimit nofile=1:2", "--selinux-enabled", ""]),
    ),
    st.builds(lambda n, v: f"{n}={v}", VAR_NAME, WORD),
    st.builds(lambda n, v: f'{n}="{v} {v}"', VAR_NAME, WORD),
    st.builds(lambda n, v: f"{n}='{v}'", VAR_NAME, WORD),
    st.just("# OPTIONS='--default-ulimit nofile=1:2'"),
)


@st.composite
def sysconfig_files(draw) -> tuple[str, list[str], int | None, list[str]]:
    """(text, its lines, index of the effective OPTIONS line or None, that line's other flags)."""
    lines = draw(st.lists(OTHER_LINES, max_size=8))
    effective, others = None, []
    for _ in range(draw(st.integers(0, 2))):
        line, flags = draw(options_lines())
        position = draw(st.integers(0, len(lines)))
        lines.insert(position, line)
        if effective is not None and position <= effective:
            effective += 1
        if effective is None or position > effective:
            effective, others = position, flags
    text = "\n".join(lines) + draw(st.sampled_from(["\n", ""])) if lines else ""
    return text, lines, effective, others


def effective_value(line: str) -> str:
    """Test-side reading of an OPTIONS line's value (quoted, or unquoted up to a ' #' comment)."""
    value = line.split("OPTIONS=", 1)[1]
    if value and value[0] in "\"'":
        return value[1 : value.index(value[0], 1)]
    return value.split(" #", 1)[0].strip()


def split_flags(value: str) -> tuple[list[str], dict[str, Ulimit]]:
    """(other tokens in order, ulimits with the last flag per name winning), like dockerd reads
    them."""
    tokens, others, limits = value.split(), [], {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "--default-ulimit":
            spec, index = tokens[index + 1], index + 2
        elif token.startswith("--default-ulimit="):
            spec, index = token.split("=", 1)[1], index + 1
        else:
            others.append(token)
            index += 1
            continue
        name, _, numbers = spec.partition("=")
        soft, _, hard = numbers.partition(":")
        limits[name] = Ulimit(name, int(soft), int(hard or soft))
    return others, limits


def last_options_line(text: str) -> str:
    return [
        line
        for line in text.splitlines()
        if line.lstrip().removeprefix("export ").startswith("OPTIONS=")
    ][-1]


# ---------------------------------------------------------------- sysconfig properties


@PROPERTY
@given(sysconfig_files(), DESIRED)
def test_sysconfig_merge_is_idempotent_and_keeps_every_other_line_byte_identical(file, desired):
    text, lines, effective, _ = file
    result = merge_sysconfig(text, desired, SC)
    assert merge_sysconfig(result, desired, SC) == result
    out = result.split("\n")
    if effective is None:
        base = text if not text or text.endswith("\n") else text + "\n"
        assert result == text or (result.startswith(base) and result[len(base) :].count("\n") == 1)
    else:
        assert len(out) == len(text.split("\n"))
        assert [line for i, line in enumerate(out) if i != effective] == [
            line for i, line in enumerate(text.split("\n")) if i != effective
        ]


@PROPERTY
@given(sysconfig_files(), DESIRED)
def test_sysconfig_merge_meets_the_minimums_never_lowers_and_keeps_other_flags_in_order(
    file, desired
):
    text, lines, effective, others = file
    before = split_flags(effective_value(lines[effective]))[1] if effective is not None else {}
    result = merge_sysconfig(text, desired, SC)
    if result == text:
        assert all(want.name in before and before[want.name].satisfies(want) for want in desired)
        return
    line = last_options_line(result)
    after_others, after = split_flags(effective_value(line))
    assert after_others == others
    for want in desired:
        assert after[want.name].satisfies(want)
    for name, old in before.items():
        assert limit_at_least(after[name].soft, old.soft) and limit_at_least(
            after[name].hard, old.hard
        )
    if effective is not None:  # the quote style is kept; an unquoted value gets double quotes
        original = lines[effective].split("OPTIONS=", 1)[1][:1]
        assert line.split("OPTIONS=", 1)[1][:1] == (original if original in ("'", '"') else '"')
