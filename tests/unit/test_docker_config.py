"""docker_config: daemon.json merge, sysconfig OPTIONS rewrite, flag parsing. Plain data only."""

from __future__ import annotations

import json

import pytest

from trains_nodeprep.errors import ConfigError
from trains_nodeprep.formats.docker_config import (
    cmdline_ulimits,
    daemon_json_ulimits,
    merge_daemon_json,
    merge_sysconfig,
    parse_daemon_json,
    parse_ulimit_value,
    sysconfig_ulimits,
)
from trains_nodeprep.model import Ulimit

DESIRED = (Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1))
DJ = "/etc/docker/daemon.json"
SC = "/etc/sysconfig/docker"
FLAGS = "--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"


def merged(config) -> dict:
    """Merge a daemon.json given as a dict (or raw bytes / None) and return the parsed result."""
    content = (
        config
        if config is None or isinstance(config, bytes)
        else json.dumps(config, indent=2).encode()
    )
    return json.loads(merge_daemon_json(content, DESIRED, DJ))


def limits_of(config: dict) -> dict[str, Ulimit]:
    return daemon_json_ulimits(config, DJ)


def entry(name="nofile", soft=1024, hard=65536, keys=("Name", "Soft", "Hard")) -> dict:
    return {keys[0]: name, keys[1]: soft, keys[2]: hard}


# ---------------------------------------------------------------- parse_ulimit_value


def test_ulimit_value_with_soft_and_hard():
    assert parse_ulimit_value("nofile=1024:65536", "x") == Ulimit("nofile", 1024, 65536)


def test_ulimit_value_without_hard_uses_soft_for_both():
    assert parse_ulimit_value("memlock=-1", "x") == Ulimit("memlock", -1, -1)


def test_ulimit_value_unlimited_hard_is_above_any_soft():
    assert parse_ulimit_value("nofile=1024:-1", "x") == Ulimit("nofile", 1024, -1)


@pytest.mark.parametrize(
    "value",
    [
        "nofile",
        "nofile=",
        "=1024:2048",
        "nofile=lots",
        "nofile=1024:lots",
        "nofile=1:2:3",
        "nofile=1_024:65536",
        "nofile= 1024",
    ],
)
def test_unparsable_ulimit_value_is_a_config_error_naming_the_value(value):
    with pytest.raises(ConfigError) as err:
        parse_ulimit_value(value, "/etc/sysconfig/docker")
    assert repr(value) in str(err.value)
    assert str(err.value).startswith("/etc/sysconfig/docker: ")
    assert "NAME=SOFT:HARD" in str(err.value)


@pytest.mark.parametrize("value", ["nofile=65536:1024", "nofile=-1:1024"])
def test_ulimit_value_with_soft_above_hard_is_refused(value):
    with pytest.raises(ConfigError, match="soft .* above hard"):
        parse_ulimit_value(value, "x")


# ---------------------------------------------------------------- parse_daemon_json


def test_parse_daemon_json_returns_the_object():
    assert parse_daemon_json(b'{"a": 1}', DJ) == {"a": 1}


def test_invalid_json_error_names_line_and_column():
    content = b'{\n  "log-driver": "journald",\n  "debug": tru\n}\n'
    with pytest.raises(ConfigError) as err:
        parse_daemon_json(content, DJ)
    message = str(err.value)
    assert message.startswith(f"{DJ}: invalid JSON at line 3 column ")
    assert "\n" not in message
    assert "; fix the JSON" in message


def test_trailing_comma_is_invalid_json():
    with pytest.raises(ConfigError, match=r"line 1 column \d+"):
        parse_daemon_json(b'{"a": 1,}', DJ)


@pytest.mark.parametrize("content", [b"", b"   \n\t\n"])
def test_empty_or_whitespace_only_file_is_refused_with_a_fix(content):
    with pytest.raises(ConfigError, match=r"is empty.*write \{\} into it or delete it"):
        parse_daemon_json(content, DJ)


def test_byte_order_mark_is_refused():
    with pytest.raises(ConfigError, match="byte-order mark"):
        parse_daemon_json(b'\xef\xbb\xbf{"a": 1}', DJ)


def test_non_utf8_file_is_refused():
    with pytest.raises(ConfigError, match="not UTF-8"):
        parse_daemon_json(b'{"a": "\xff"}', DJ)


@pytest.mark.parametrize("content", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_nan_and_infinity_are_refused_like_dockerd_does(content):
    with pytest.raises(ConfigError, match="invalid JSON"):
        parse_daemon_json(content, DJ)


@pytest.mark.parametrize(
    "content, kind", [(b"[]", "array"), (b'"x"', "string"), (b"1", "number"), (b"null", "null")]
)
def test_top_level_that_is_not_an_object_is_refused(content, kind):
    with pytest.raises(ConfigError, match=f"top level is a JSON {kind}, not an object"):
        parse_daemon_json(content, DJ)


# ---------------------------------------------------------------- daemon_json_ulimits


def test_no_default_ulimits_key_means_no_limits():
    assert limits_of({"debug": True}) == {}


def test_limits_are_read_by_entry_name():
    config = {"default-ulimits": {"nofile": entry(), "memlock": entry("memlock", -1, -1)}}
    assert limits_of(config) == {
        "nofile": Ulimit("nofile", 1024, 65536),
        "memlock": Ulimit("memlock", -1, -1),
    }


@pytest.mark.parametrize(
    "keys",
    [
        ("Name", "Soft", "Hard"),
        ("name", "soft", "hard"),
        ("NAME", "SOFT", "HARD"),
        ("nAmE", "sOfT", "hArD"),
    ],
)
def test_entry_fields_are_recognised_in_any_case(keys):
    config = {"default-ulimits": {"nofile": entry(keys=keys)}}
    assert limits_of(config) == {"nofile": Ulimit("nofile", 1024, 65536)}


def test_limit_name_comes_from_the_entry_name_not_the_key():
    config = {"default-ulimits": {"files": entry("nofile")}}
    assert limits_of(config) == {"nofile": Ulimit("nofile", 1024, 65536)}


def test_default_ulimits_that_is_a_list_is_refused():
    with pytest.raises(ConfigError, match="default-ulimits is a JSON array, not an object"):
        limits_of({"default-ulimits": [entry()]})


def test_default_ulimits_entry_that_is_not_an_object_is_refused():
    with pytest.raises(ConfigError, match="default-ulimits.nofile is not an object"):
        limits_of({"default-ulimits": {"nofile": "1024:65536"}})


@pytest.mark.parametrize("hard", ["65536", 65536.0, True, [65536]])
def test_hard_that_is_not_an_integer_is_refused(hard):
    with pytest.raises(ConfigError, match=r"default-ulimits\.nofile\.hard is .*, not an integer"):
        limits_of({"default-ulimits": {"nofile": entry(hard=hard)}})


def test_soft_that_is_a_string_is_refused():
    with pytest.raises(
        ConfigError, match=r"default-ulimits\.nofile\.soft is '1024', not an integer"
    ):
        limits_of({"default-ulimits": {"nofile": entry(soft="1024")}})


def test_name_that_is_not_a_string_is_refused():
    with pytest.raises(ConfigError, match="Name is not a string"):
        limits_of({"default-ulimits": {"nofile": entry(name=7)}})


def test_entry_with_soft_above_hard_is_refused():
    with pytest.raises(ConfigError, match="ulimit nofile has soft 65536 above hard 1024"):
        limits_of({"default-ulimits": {"nofile": entry(soft=65536, hard=1024)}})


def test_entry_with_unlimited_soft_and_finite_hard_is_refused():
    with pytest.raises(ConfigError, match="soft -1 above hard 65536"):
        limits_of({"default-ulimits": {"nofile": entry(soft=-1, hard=65536)}})


def test_missing_soft_counts_as_zero_like_dockerd():
    config = {"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536}}}
    assert limits_of(config) == {"nofile": Ulimit("nofile", 0, 65536)}


# ---------------------------------------------------------------- merge_daemon_json


def test_absent_file_is_created_with_both_limits():
    assert merged(None) == {
        "default-ulimits": {
            "nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536},
            "memlock": {"Name": "memlock", "Soft": -1, "Hard": -1},
        }
    }


def test_created_file_ends_with_a_newline():
    assert merge_daemon_json(None, DESIRED, DJ).endswith(b"}\n")


def test_empty_object_gets_both_limits():
    assert limits_of(merged(b"{}")) == {"nofile": DESIRED[0], "memlock": DESIRED[1]}


def test_other_top_level_keys_are_kept():
    config = {
        "log-driver": "journald",
        "live-restore": True,
        "storage-driver": "overlay2",
        "insecure-registries": ["r:5000"],
    }
    result = merged(config)
    assert {k: v for k, v in result.items() if k != "default-ulimits"} == config


def test_nested_unrelated_settings_are_kept():
    config = {
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "runtimeArgs": []}},
        "default-runtime": "nvidia",
    }
    result = merged(config)
    assert result["log-opts"] == config["log-opts"]
    assert result["runtimes"] == config["runtimes"]
    assert result["default-runtime"] == "nvidia"


def test_other_default_ulimits_entries_are_kept():
    result = merged({"default-ulimits": {"nproc": entry("nproc", 4096, 8192)}})
    assert result["default-ulimits"]["nproc"] == entry("nproc", 4096, 8192)
    assert set(limits_of(result)) == {"nproc", "nofile", "memlock"}


def test_already_satisfied_file_is_returned_byte_for_byte():
    content = (
        b'{"default-ulimits":{"nofile":{"Name":"nofile","Hard":65536,"Soft":1024},\n'
        b' "memlock":{"Name":"memlock","Soft":-1,"Hard":-1}}, "debug":true}'
    )
    assert merge_daemon_json(content, DESIRED, DJ) is content


def test_existing_higher_nofile_is_kept():
    result = merged({"default-ulimits": {"nofile": entry(soft=4096, hard=1048576)}})
    assert limits_of(result)["nofile"] == Ulimit("nofile", 4096, 1048576)


def test_existing_unlimited_memlock_is_kept():
    result = merged({"default-ulimits": {"memlock": entry("memlock", -1, -1)}})
    assert limits_of(result)["memlock"] == Ulimit("memlock", -1, -1)


def test_existing_unlimited_nofile_hard_is_kept():
    result = merged({"default-ulimits": {"nofile": entry(soft=1024, hard=-1)}})
    assert limits_of(result)["nofile"] == Ulimit("nofile", 1024, -1)


def test_low_soft_is_raised_but_higher_hard_kept():
    result = merged({"default-ulimits": {"nofile": entry(soft=256, hard=1048576)}})
    assert limits_of(result)["nofile"] == Ulimit("nofile", 1024, 1048576)


def test_low_hard_is_raised_but_higher_soft_kept():
    result = merged({"default-ulimits": {"nofile": entry(soft=4096, hard=4096)}})
    assert limits_of(result)["nofile"] == Ulimit("nofile", 4096, 65536)


def test_finite_memlock_is_raised_to_unlimited():
    result = merged({"default-ulimits": {"memlock": entry("memlock", 65536, 65536)}})
    assert limits_of(result)["memlock"] == Ulimit("memlock", -1, -1)


def test_lower_case_entry_is_updated_in_place_without_a_duplicate():
    result = merged({"default-ulimits": {"nofile": {"name": "nofile", "soft": 512, "hard": 4096}}})
    assert result["default-ulimits"]["nofile"] == {"name": "nofile", "soft": 1024, "hard": 65536}
    assert sorted(result["default-ulimits"]) == ["memlock", "nofile"]


def test_upper_case_entry_is_updated_in_place_without_a_duplicate():
    result = merged({"default-ulimits": {"nofile": {"NAME": "nofile", "SOFT": 512, "HARD": 4096}}})
    assert result["default-ulimits"]["nofile"] == {"NAME": "nofile", "SOFT": 1024, "HARD": 65536}


def test_entry_under_another_key_is_updated_where_it_is():
    result = merged({"default-ulimits": {"files": entry(soft=512, hard=4096)}})
    assert result["default-ulimits"]["files"] == entry()
    assert "nofile" not in result["default-ulimits"]


def test_entry_missing_soft_gets_one_soft_field():
    result = merged({"default-ulimits": {"nofile": {"name": "nofile", "hard": 65536}}})
    assert result["default-ulimits"]["nofile"] == {"name": "nofile", "hard": 65536, "Soft": 1024}
    assert limits_of(result)["nofile"] == Ulimit("nofile", 1024, 65536)


def test_entry_without_name_gets_one_even_when_limits_are_met():
    content = json.dumps(
        {
            "default-ulimits": {
                "nofile": {"Soft": 1024, "Hard": 65536},
                "memlock": entry("memlock", -1, -1),
            }
        }
    ).encode()
    result = json.loads(merge_daemon_json(content, DESIRED, DJ))
    assert result["default-ulimits"]["nofile"] == {"Soft": 1024, "Hard": 65536, "Name": "nofile"}


@pytest.mark.parametrize("name", ["", None])
def test_entry_with_empty_name_gets_its_key_as_name(name):
    content = json.dumps(
        {
            "default-ulimits": {
                "nofile": {"name": name, "soft": 1024, "hard": 65536},
                "memlock": entry("memlock", -1, -1),
            }
        }
    ).encode()
    result = json.loads(merge_daemon_json(content, DESIRED, DJ))
    assert result["default-ulimits"]["nofile"] == {"name": "nofile", "soft": 1024, "hard": 65536}


def test_key_taken_by_an_entry_of_another_limit_is_refused_not_overwritten():
    content = json.dumps({"default-ulimits": {"nofile": entry("memlock", -1, -1)}}).encode()
    with pytest.raises(ConfigError, match="default-ulimits.nofile has Name 'memlock'"):
        merge_daemon_json(content, DESIRED, DJ)


def test_null_default_ulimits_is_treated_as_no_entries():
    assert limits_of(merged(b'{"default-ulimits": null, "debug": true}')) == {
        "nofile": DESIRED[0],
        "memlock": DESIRED[1],
    }


def test_merge_keeps_tab_indentation():
    content = b'{\n\t"debug": true\n}\n'
    assert b'\n\t"debug": true' in merge_daemon_json(content, DESIRED, DJ)


def test_merge_keeps_four_space_indentation():
    content = b'{\n    "debug": true\n}\n'
    assert b'\n    "debug": true' in merge_daemon_json(content, DESIRED, DJ)


def test_merged_output_merged_again_is_unchanged():
    once = merge_daemon_json(
        b'{"default-ulimits": {"nofile": {"name": "nofile", "soft": 512, "hard": 4096}}}',
        DESIRED,
        DJ,
    )
    assert merge_daemon_json(once, DESIRED, DJ) == once


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b'{"a": 1', "invalid JSON at line 1 column"),
        (b"[]", "top level is a JSON array"),
        (b'{"default-ulimits": []}', "default-ulimits is a JSON array"),
        (
            b'{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": "65536"}}}',
            "not an integer",
        ),
        (
            b'{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536.0}}}',
            "not an integer",
        ),
        (
            b'{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 2048, "Hard": 1024}}}',
            "soft 2048 above hard 1024",
        ),
    ],
)
def test_merge_refuses_a_file_dockerd_would_refuse(content, message):
    with pytest.raises(ConfigError, match=message) as err:
        merge_daemon_json(content, DESIRED, DJ)
    assert str(err.value).startswith(DJ)
    assert "\n" not in str(err.value)
    assert "; " in str(err.value)


# ---------------------------------------------------------------- sysconfig OPTIONS


def test_double_quoted_options_get_the_flags_appended():
    text = 'OPTIONS="--selinux-enabled --log-driver=journald"\n'
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == f'OPTIONS="--selinux-enabled --log-driver=journald {FLAGS}"\n'
    )


def test_single_quoted_options_keep_single_quotes():
    text = "OPTIONS='--selinux-enabled --log-driver=journald --signature-verification=false'\n"
    expected = (
        "OPTIONS='--selinux-enabled --log-driver=journald --signature-verification=false "
        f"{FLAGS}'\n"
    )
    assert merge_sysconfig(text, DESIRED, SC) == expected


def test_unquoted_options_are_quoted_when_flags_are_added():
    assert (
        merge_sysconfig("OPTIONS=--selinux-enabled\n", DESIRED, SC)
        == f'OPTIONS="--selinux-enabled {FLAGS}"\n'
    )


def test_unquoted_options_with_several_flags_keep_them_all_inside_the_quotes():
    # systemd's EnvironmentFile reads the whole rest of the line as the value
    text = "OPTIONS=--selinux-enabled --log-driver=journald\n"
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == f'OPTIONS="--selinux-enabled --log-driver=journald {FLAGS}"\n'
    )


def test_unquoted_options_keep_a_trailing_shell_comment_outside_the_value():
    text = "OPTIONS=--selinux-enabled  # set by the installer\n"
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == f'OPTIONS="--selinux-enabled {FLAGS}"  # set by the installer\n'
    )


def test_low_ulimit_after_the_first_unquoted_flag_is_seen():
    text = "OPTIONS=--selinux-enabled --default-ulimit nofile=100:200\n"
    assert sysconfig_ulimits(text, SC) == {"nofile": Ulimit("nofile", 100, 200)}
    merged_text = merge_sysconfig(text, DESIRED, SC)
    assert sysconfig_ulimits(merged_text, SC) == {"nofile": DESIRED[0], "memlock": DESIRED[1]}


@pytest.mark.parametrize("line", ["OPTIONS=", 'OPTIONS=""', "OPTIONS=''"])
def test_empty_options_get_just_the_flags(line):
    quote = "'" if line.endswith("''") else '"'
    assert merge_sysconfig(f"{line}\n", DESIRED, SC) == f"OPTIONS={quote}{FLAGS}{quote}\n"


def test_options_of_blanks_get_just_the_flags():
    assert merge_sysconfig('OPTIONS="  "\n', DESIRED, SC) == f'OPTIONS="{FLAGS}"\n'


def test_export_options_is_recognised():
    assert (
        merge_sysconfig('export OPTIONS="--a"\n', DESIRED, SC) == f'export OPTIONS="--a {FLAGS}"\n'
    )


def test_missing_options_line_is_appended():
    text = "# /etc/sysconfig/docker\nDOCKER_CERT_PATH=/etc/docker\n"
    assert merge_sysconfig(text, DESIRED, SC) == text + f'OPTIONS="{FLAGS}"\n'


def test_missing_options_line_is_appended_on_its_own_line_without_trailing_newline():
    text = "DOCKER_CERT_PATH=/etc/docker"
    assert merge_sysconfig(text, DESIRED, SC) == text + f'\nOPTIONS="{FLAGS}"\n'


def test_empty_file_gets_an_options_line():
    assert merge_sysconfig("", DESIRED, SC) == f'OPTIONS="{FLAGS}"\n'


def test_comments_and_other_variables_are_kept_byte_identical():
    before = "# Modify these options if you want to change the way the docker daemon runs\n\n"
    after = (
        "\n# Controls the /etc/cron.daily/docker-logrotate cron job status.\n"
        "#LOGROTATE=false\n"
        "DOCKER_CERT_PATH=/etc/docker\n"
        "  # indented comment   \n"
        "ADD_REGISTRY='--add-registry registry.access.redhat.com'\n"
    )
    text = before + "OPTIONS='--selinux-enabled'\n" + after
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == before + f"OPTIONS='--selinux-enabled {FLAGS}'\n" + after
    )


def test_commented_out_options_is_ignored():
    text = (
        '#OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
        '# OPTIONS="--x"\n'
    )
    assert sysconfig_ulimits(text, SC) == {}
    assert merge_sysconfig(text, DESIRED, SC) == text + f'OPTIONS="{FLAGS}"\n'


def test_variable_ending_in_options_is_not_options():
    text = 'DOCKER_OPTIONS="--default-ulimit nofile=1024:65536"\n'
    assert sysconfig_ulimits(text, SC) == {}
    assert merge_sysconfig(text, DESIRED, SC) == text + f'OPTIONS="{FLAGS}"\n'


def test_last_options_assignment_wins():
    text = (
        'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
        'OPTIONS="--selinux-enabled"\n'
    )
    assert sysconfig_ulimits(text, SC) == {}
    assert merge_sysconfig(text, DESIRED, SC) == (
        'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
        f'OPTIONS="--selinux-enabled {FLAGS}"\n'
    )


def test_earlier_options_assignment_does_not_count():
    text = (
        'OPTIONS="--selinux-enabled"\n'
        'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
    )
    assert merge_sysconfig(text, DESIRED, SC) is text


def test_low_nofile_flag_is_raised_in_place_not_duplicated():
    text = 'OPTIONS="--selinux-enabled --default-ulimit nofile=1024:4096 --log-driver=journald"\n'
    assert merge_sysconfig(text, DESIRED, SC) == (
        'OPTIONS="--selinux-enabled --default-ulimit nofile=1024:65536 --log-driver=journald '
        '--default-ulimit memlock=-1:-1"\n'
    )


def test_equals_form_of_the_flag_is_raised_in_place():
    text = 'OPTIONS="--default-ulimit=nofile=1024:4096 --default-ulimit=memlock=64:64"\n'
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == 'OPTIONS="--default-ulimit=nofile=1024:65536 --default-ulimit=memlock=-1:-1"\n'
    )


def test_equals_form_is_read():
    text = "OPTIONS='--default-ulimit=nofile=2048:65536 --default-ulimit=memlock=-1'\n"
    assert sysconfig_ulimits(text, SC) == {
        "nofile": Ulimit("nofile", 2048, 65536),
        "memlock": Ulimit("memlock", -1, -1),
    }


def test_higher_flags_are_kept_and_file_returned_unchanged():
    text = (
        "# docker\n"
        "OPTIONS='--default-ulimit nofile=4096:1048576 --default-ulimit memlock=-1:-1 "
        "--selinux-enabled'\nX=1\n"
    )
    assert merge_sysconfig(text, DESIRED, SC) is text


def test_exactly_satisfying_flags_return_the_same_string():
    text = f'OPTIONS="{FLAGS}"'
    assert merge_sysconfig(text, DESIRED, SC) is text


def test_higher_soft_kept_when_only_hard_is_raised():
    text = 'OPTIONS="--default-ulimit nofile=8192:8192 --default-ulimit memlock=-1:-1"\n'
    assert (
        merge_sysconfig(text, DESIRED, SC)
        == 'OPTIONS="--default-ulimit nofile=8192:65536 --default-ulimit memlock=-1:-1"\n'
    )


def test_last_of_two_flags_for_one_limit_is_the_one_read_and_raised():
    text = (
        'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit nofile=10:20 '
        '--default-ulimit memlock=-1"\n'
    )
    assert sysconfig_ulimits(text, SC)["nofile"] == Ulimit("nofile", 10, 20)
    result = merge_sysconfig(text, DESIRED, SC)
    assert result == (
        'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit nofile=1024:65536 '
        '--default-ulimit memlock=-1"\n'
    )


def test_merged_sysconfig_merged_again_is_unchanged():
    once = merge_sysconfig("OPTIONS=--selinux-enabled --default-ulimit nofile=1:2", DESIRED, SC)
    assert merge_sysconfig(once, DESIRED, SC) is once


@pytest.mark.parametrize(
    "text, line",
    [('OPTIONS="--selinux-enabled\n', 1), ("X=1\nOPTIONS='--selinux-enabled\nY=2\n", 2)],
)
def test_unterminated_quote_is_refused_with_its_line(text, line):
    with pytest.raises(ConfigError) as err:
        merge_sysconfig(text, DESIRED, SC)
    assert str(err.value).startswith(f"{SC}: unterminated ")
    assert f"at line {line}" in str(err.value)
    with pytest.raises(ConfigError):
        sysconfig_ulimits(text, SC)


def test_escaped_double_quote_inside_options_does_not_end_it():
    text = 'OPTIONS="--label x=\\"a b\\""\n'
    assert merge_sysconfig(text, DESIRED, SC) == f'OPTIONS="--label x=\\"a b\\" {FLAGS}"\n'


def test_unparsable_ulimit_flag_in_options_is_refused():
    with pytest.raises(ConfigError, match="cannot parse --default-ulimit 'nofile=lots'"):
        sysconfig_ulimits('OPTIONS="--default-ulimit nofile=lots"\n', SC)


def test_flag_with_soft_above_hard_in_options_is_refused():
    with pytest.raises(ConfigError, match="soft 65536 above hard 1024"):
        merge_sysconfig('OPTIONS="--default-ulimit nofile=65536:1024"\n', DESIRED, SC)


def test_no_desired_limits_leaves_a_file_without_options_alone():
    assert merge_sysconfig("X=1\n", (), SC) == "X=1\n"


# ---------------------------------------------------------------- cmdline_ulimits


def test_cmdline_flag_with_separate_value():
    argv = ("/usr/bin/dockerd", "-H", "fd://", "--default-ulimit", "nofile=1024:65536")
    assert cmdline_ulimits(argv, "cmdline") == {"nofile": Ulimit("nofile", 1024, 65536)}


def test_cmdline_flag_with_equals_value():
    argv = ("dockerd", "--default-ulimit=memlock=-1:-1", "--default-ulimit=nofile=2048")
    assert cmdline_ulimits(argv, "cmdline") == {
        "memlock": Ulimit("memlock", -1, -1),
        "nofile": Ulimit("nofile", 2048, 2048),
    }


def test_cmdline_last_flag_for_a_limit_wins():
    argv = ("dockerd", "--default-ulimit", "nofile=1:2", "--default-ulimit=nofile=3:4")
    assert cmdline_ulimits(argv, "cmdline") == {"nofile": Ulimit("nofile", 3, 4)}


def test_cmdline_without_flags_has_no_limits():
    assert cmdline_ulimits(("dockerd", "--selinux-enabled", "--default-ulimits-x"), "cmdline") == {}
    assert cmdline_ulimits((), "cmdline") == {}


def test_cmdline_flag_without_value_at_the_end_is_ignored():
    assert cmdline_ulimits(("dockerd", "--default-ulimit"), "cmdline") == {}


def test_cmdline_bad_value_is_a_config_error_naming_where():
    with pytest.raises(ConfigError) as err:
        cmdline_ulimits(
            ("dockerd", "--default-ulimit", "nofile"), "the running dockerd's command line"
        )
    assert str(err.value).startswith("the running dockerd's command line: cannot parse")


def test_unquoted_options_with_inner_quotes_are_refused_rather_than_broken():
    with pytest.raises(ConfigError, match="unquoted OPTIONS at line 2 contains quotes"):
        merge_sysconfig('X=1\nOPTIONS=--label a="b c"\n', DESIRED, SC)
