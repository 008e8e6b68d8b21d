"""playbook: the bundled playbook, and one-line errors naming the file and the key."""

from __future__ import annotations

import pytest

from trains_nodeprep.errors import EXIT_USAGE, PlaybookError
from trains_nodeprep.model import DesiredState, SysctlSetting, Ulimit
from trains_nodeprep.playbook import load_playbook, parse_playbook

SOURCE = "site.yaml"
VALID = """\
version: 1
docker:
  default-ulimits:
    nofile: {soft: 1024, hard: 65536}
    memlock: {soft: -1, hard: -1}
sysctl:
  file: /etc/sysctl.d/99-trains.conf
  settings:
    vm.max_map_count: 262144
"""


def error_of(text: str) -> str:
    with pytest.raises(PlaybookError) as err:
        parse_playbook(text, SOURCE)
    message = str(err.value)
    assert message.startswith(f"{SOURCE}:"), message
    assert "\n" not in message
    assert err.value.exit_code == EXIT_USAGE
    return message


def test_bundled_playbook_loads_the_trains_requirements():
    state = load_playbook()
    assert state.ulimits == (Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1))
    assert state.sysctls == (SysctlSetting("vm.max_map_count", 262144),)
    assert state.sysctl_file == "/etc/sysctl.d/99-trains.conf"
    assert state.source.endswith("trains-node.yaml")


def test_valid_playbook_parses_to_desired_state():
    assert parse_playbook(VALID, SOURCE) == DesiredState(
        ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
        sysctls=(SysctlSetting("vm.max_map_count", 262144),),
        sysctl_file="/etc/sysctl.d/99-trains.conf",
        source=SOURCE,
    )


def test_sections_are_optional():
    state = parse_playbook("version: 1\n", SOURCE)
    assert state.ulimits == () and state.sysctls == ()
    assert state.sysctl_file == "/etc/sysctl.d/99-trains.conf"


def test_unknown_top_level_key_is_named():
    message = error_of("version: 1\ndockr: {}\n")
    assert (
        "key '(top)'" in message
        and "dockr" in message
        and "allowed: containerd, deploy, distributions, docker, limits, server, sysctl, version"
        in message
    )


def test_unknown_ulimit_name_is_named():
    message = error_of("version: 1\ndocker:\n  default-ulimits:\n    nofiles: {soft: 1, hard: 2}\n")
    assert "key 'docker.default-ulimits'" in message and "nofiles" in message


def test_unknown_key_in_a_ulimit_is_named():
    message = error_of(
        "version: 1\ndocker:\n  default-ulimits:\n    nofile: {soft: 1, hard: 2, max: 3}\n"
    )
    assert "key 'docker.default-ulimits.nofile'" in message and "max" in message


def test_unknown_key_in_sysctl_is_named():
    message = error_of("version: 1\nsysctl:\n  setting: {}\n")
    assert "key 'sysctl'" in message and "setting" in message


def test_soft_above_hard_is_refused():
    message = error_of(
        "version: 1\ndocker:\n  default-ulimits:\n    nofile: {soft: 65536, hard: 1024}\n"
    )
    assert (
        "key 'docker.default-ulimits.nofile'" in message
        and "soft 65536 is above hard 1024" in message
    )


def test_unlimited_soft_with_finite_hard_is_refused():
    message = error_of(
        "version: 1\ndocker:\n  default-ulimits:\n    memlock: {soft: -1, hard: 1024}\n"
    )
    assert "soft -1 is above hard 1024" in message


def test_unlimited_nofile_is_refused_as_no_container_could_start_with_it():
    message = error_of("version: 1\nlimits:\n  nofile: {soft: 1024, hard: -1}\n")
    assert "key 'limits.nofile'" in message and "cannot be unlimited (-1)" in message


def test_soft_missing_hard_is_refused():
    assert "needs both soft and hard" in error_of(
        "version: 1\ndocker:\n  default-ulimits:\n    nofile: {soft: 1024}\n"
    )


@pytest.mark.parametrize("value", ["lots", "1024.0", "true", "'1024'", "[1]"])
def test_non_integer_limit_is_refused(value):
    message = error_of(
        f"version: 1\ndocker:\n  default-ulimits:\n    nofile: {{soft: {value}, hard: 65536}}\n"
    )
    assert "key 'docker.default-ulimits.nofile.soft'" in message and "must be an integer" in message


def test_limit_below_unlimited_is_refused():
    message = error_of(
        "version: 1\ndocker:\n  default-ulimits:\n    nofile: {soft: -2, hard: 65536}\n"
    )
    assert "must be at least -1" in message


def test_non_integer_sysctl_minimum_is_refused():
    message = error_of("version: 1\nsysctl:\n  settings:\n    vm.max_map_count: 262144.5\n")
    assert "key 'sysctl.settings.vm.max_map_count'" in message and "must be an integer" in message


def test_negative_sysctl_minimum_is_refused():
    assert "must be at least 0" in error_of(
        "version: 1\nsysctl:\n  settings:\n    vm.max_map_count: -1\n"
    )


@pytest.mark.parametrize(
    "key", ["max_map_count", "VM.max_map_count", "vm max_map_count", "vm/max_map_count", "vm..x"]
)
def test_bad_sysctl_key_is_refused(key):
    message = error_of(f"version: 1\nsysctl:\n  settings:\n    '{key}': 1\n")
    assert f"key 'sysctl.settings.{key}'" in message and "not a sysctl key" in message


def test_sysctl_settings_that_are_a_list_are_refused():
    assert "key 'sysctl.settings'" in error_of(
        "version: 1\nsysctl:\n  settings: [vm.max_map_count]\n"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/etc/sysctl.conf",
        "/etc/99-trains.conf",
        "/etc/sysctl.d/sub/99-trains.conf",
        "/etc/sysctl.d/../99-trains.conf",
        "etc/sysctl.d/99-trains.conf",
        "/etc/sysctl.d/99-trains",
        "/usr/lib/sysctl.d/99-trains.conf",
    ],
)
def test_sysctl_file_outside_etc_sysctl_d_is_refused(path):
    message = error_of(f"version: 1\nsysctl:\n  file: '{path}'\n")
    assert "key 'sysctl.file'" in message and "/etc/sysctl.d" in message


def test_sysctl_file_that_is_not_a_string_is_refused():
    assert "key 'sysctl.file'" in error_of("version: 1\nsysctl:\n  file: 99\n")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_playbook_is_refused(text):
    assert "the playbook is empty" in error_of(text)


def test_yaml_syntax_error_names_the_line():
    message = error_of("version: 1\ndocker:\n  default-ulimits: {nofile: [\n")
    assert "line 4" in message and "fix the YAML syntax" in message


def test_yaml_tab_indentation_error_names_the_line():
    message = error_of("version: 1\ndocker:\n\tdefault-ulimits: {}\n")
    assert "line 3" in message


@pytest.mark.parametrize("version", ["2", "'1'", "true", "1.0", "null"])
def test_wrong_version_is_refused(version):
    message = error_of(f"version: {version}\n")
    assert "key 'version'" in message and "must be 1" in message


def test_missing_version_is_refused():
    assert "key 'version'" in error_of("docker: {}\n")


def test_top_level_list_is_refused():
    assert "must be a mapping, got list" in error_of("- version: 1\n")


def test_null_section_is_refused_as_not_a_mapping():
    assert "key 'docker'" in error_of("version: 1\ndocker:\n")


def test_server_directories_must_stay_under_opt_trains():
    message = error_of("version: 1\nserver:\n  directories:\n    /opt/trains/../../etc: {}\n")

    assert "server.directories./opt/trains/../../etc" in message and "under /opt/trains" in message


def test_server_directory_mode_is_an_octal_string():
    message = error_of("version: 1\nserver:\n  directories:\n    /opt/trains/data: {mode: 755}\n")

    assert "server.directories./opt/trains/data.mode" in message and "octal string" in message


def test_watchdog_renders_services_conf():
    from trains_nodeprep.playbook import parse_playbook

    state = parse_playbook(
        "version: 1\nserver:\n  watchdog: {threshold_sec: 3600, watch_interval_sec: 60}\n",
        "site.yaml",
    )

    [conf] = state.server_files
    assert conf.path == "/opt/trains/config/services.conf" and not conf.secret
    assert b"threshold_sec: 3600" in conf.content and b"watch_interval_sec: 60" in conf.content


LIMITS_ONCE = """\
version: 1
limits:
  nofile: {soft: 1024, hard: 65536}
containerd:
  drop-in: /etc/systemd/system/containerd.service.d/50-es.conf
"""


def test_top_level_limits_and_the_containerd_drop_in():
    state = parse_playbook(LIMITS_ONCE, SOURCE)
    assert state.ulimits == (Ulimit("nofile", 1024, 65536),)
    assert state.containerd_dropin == "/etc/systemd/system/containerd.service.d/50-es.conf"
    assert (
        parse_playbook(VALID, SOURCE).containerd_dropin
        == "/etc/systemd/system/containerd.service.d/99-trains.conf"
    )


def test_limits_stated_twice_are_refused():
    message = error_of(
        LIMITS_ONCE + "docker:\n  default-ulimits:\n    nofile: {soft: 1, hard: 2}\n"
    )
    assert "docker.default-ulimits" in message and "stated twice" in message


def test_errors_in_top_level_limits_name_that_key():
    assert "key 'limits.nofile'" in error_of("version: 1\nlimits:\n  nofile: {soft: 9, hard: 1}\n")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/systemd/system/docker.service.d/x.conf",
        "/etc/systemd/system/containerd.service.d/x",
        "/etc/systemd/system/containerd.service.d/../x.conf",
        5,
    ],
)
def test_containerd_drop_in_must_be_a_conf_file_of_containerd_service(path):
    assert "containerd.drop-in" in error_of(f"version: 1\ncontainerd:\n  drop-in: {path}\n")


def test_bundled_deploy_section_is_the_bundled_manifests_layout():
    deploy = load_playbook().deploy
    assert deploy.namespace == "trains"
    assert deploy.node_ports() == {
        30080: "trains/webserver-service",
        30008: "trains/apiserver-service",
        30081: "trains/fileserver-service",
    }
    api = deploy.endpoint("api")
    assert (api.port, api.host, api.health, api.health_before) == (
        8008,
        "api",
        "/debug.ping",
        ((0, 16), "/server.info"),
    )
    assert [(m.old, m.new) for m in deploy.data_moves] == [
        ("/opt/trains/data/elastic", "/opt/trains/data/elastic_7")
    ]


DEPLOY = """\
version: 1
deploy:
  namespace: clearml
  endpoints:
    web: {service: clearml-webserver, port: 80, node-port: 30080, host: app}
    api: {service: clearml-apiserver, port: 8008, node-port: 30008, host: api, health: /ping}
    files: {service: clearml-fileserver, port: 8081, node-port: 30081, host: files}
  data-moves: []
"""


def test_deploy_section_names_another_layout():
    deploy = parse_playbook(DEPLOY, SOURCE).deploy
    assert deploy.namespace == "clearml"
    assert deploy.endpoint("api").service == "clearml-apiserver"
    assert deploy.endpoint("api").health == "/ping"
    assert deploy.endpoint("api").health_before is None
    assert deploy.data_moves == ()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (("namespace: clearml", "namespace: Clear_ML"), "deploy.namespace"),
        (("node-port: 30008", "node-port: 8008"), "deploy.endpoints.api.node-port"),
        (("node-port: 30008", "node-port: 40000"), "deploy.endpoints.api.node-port"),
        (("health: /ping", "health: ping me"), "deploy.endpoints.api.health"),
        (("service: clearml-webserver, ", ""), "deploy.endpoints.web.service"),
        (("host: files", "host: files.example.com"), "deploy.endpoints.files.host"),
        (("    files: {", "    file: {"), "deploy.endpoints"),
        (("data-moves: []", "data-moves: [{old: /etc, new: /opt/trains/x}]"), "[0].old"),
    ],
)
def test_bad_deploy_section_names_the_key(change, key):
    old, new = change
    assert old in DEPLOY
    message = error_of(DEPLOY.replace(old, new))
    assert f"key '{key}" in message or key in message, message
