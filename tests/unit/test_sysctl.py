"""sysctl: parsing sysctl.d files, which value wins at boot, rendering our file. Plain data only."""

from __future__ import annotations

from trains_nodeprep.formats.sysctl_conf import (
    BootValue,
    boot_order,
    boot_values,
    parse_int,
    parse_sysctl_conf,
    render_sysctl_file,
)

HEADER = "# Managed by trains-nodeprep"
KEY = "vm.max_map_count"


# ---------------------------------------------------------------- parse_sysctl_conf


def test_assignments_are_read_in_file_order():
    assert parse_sysctl_conf("vm.max_map_count=262144\nfs.file-max=100\n") == [
        (KEY, "262144"),
        ("fs.file-max", "100"),
    ]


def test_hash_and_semicolon_comments_and_blank_lines_are_skipped():
    text = (
        "# vm.max_map_count=1\n; vm.max_map_count=2\n   # indented=3\n\n  \n"
        "vm.max_map_count=262144\n"
    )
    assert parse_sysctl_conf(text) == [(KEY, "262144")]


def test_spaces_around_the_equals_sign_are_ignored():
    assert parse_sysctl_conf(
        "  vm.max_map_count   =   262144  \n\tkernel.pid_max\t=\t4194304\n"
    ) == [
        (KEY, "262144"),
        ("kernel.pid_max", "4194304"),
    ]


def test_slash_keys_are_read_as_dotted_keys():
    assert parse_sysctl_conf("vm/max_map_count = 262144\nnet/core/somaxconn=1024\n") == [
        (KEY, "262144"),
        ("net.core.somaxconn", "1024"),
    ]


def test_dash_prefix_that_ignores_errors_is_not_part_of_the_key():
    assert parse_sysctl_conf("-vm.max_map_count=262144\n") == [(KEY, "262144")]


def test_value_with_inner_spaces_is_kept_whole():
    assert parse_sysctl_conf("net.ipv4.ip_local_port_range = 32768   60999\n") == [
        ("net.ipv4.ip_local_port_range", "32768   60999")
    ]


def test_lines_without_equals_are_skipped():
    assert parse_sysctl_conf("garbage\nvm.max_map_count=262144\n") == [(KEY, "262144")]


def test_a_key_assigned_twice_is_listed_twice_in_order():
    assert parse_sysctl_conf("vm.max_map_count=1\nvm.max_map_count=2") == [(KEY, "1"), (KEY, "2")]


def test_crlf_lines_are_read():
    assert parse_sysctl_conf("vm.max_map_count=262144\r\n") == [(KEY, "262144")]


# ---------------------------------------------------------------- boot_order / boot_values


def test_files_are_applied_in_name_order_across_directories():
    paths = [
        "/usr/lib/sysctl.d/50-default.conf",
        "/etc/sysctl.d/99-trains.conf",
        "/run/sysctl.d/60-run.conf",
        "/usr/local/lib/sysctl.d/10-local.conf",
    ]
    assert boot_order(paths) == [
        "/usr/local/lib/sysctl.d/10-local.conf",
        "/usr/lib/sysctl.d/50-default.conf",
        "/run/sysctl.d/60-run.conf",
        "/etc/sysctl.d/99-trains.conf",
    ]


def test_etc_masks_the_same_name_in_usr_lib():
    paths = ["/usr/lib/sysctl.d/50-default.conf", "/etc/sysctl.d/50-default.conf"]
    assert boot_order(paths) == ["/etc/sysctl.d/50-default.conf"]


def test_run_masks_usr_lib_but_not_etc():
    paths = [
        "/usr/lib/sysctl.d/50-a.conf",
        "/run/sysctl.d/50-a.conf",
        "/etc/sysctl.d/50-a.conf",
        "/run/sysctl.d/40-b.conf",
        "/lib/sysctl.d/40-b.conf",
    ]
    assert boot_order(paths) == ["/run/sysctl.d/40-b.conf", "/etc/sysctl.d/50-a.conf"]


def test_etc_sysctl_conf_is_applied_last():
    paths = ["/etc/sysctl.conf", "/etc/sysctl.d/99-trains.conf", "/usr/lib/sysctl.d/zz-last.conf"]
    assert boot_order(paths) == [
        "/etc/sysctl.d/99-trains.conf",
        "/usr/lib/sysctl.d/zz-last.conf",
        "/etc/sysctl.conf",
    ]


def test_files_outside_the_sysctl_directories_are_not_applied():
    assert boot_order(
        ["/etc/sysctl.d/sub/10-x.conf", "/tmp/99-x.conf", "/etc/sysctl.d/20-y.conf"]
    ) == ["/etc/sysctl.d/20-y.conf"]


def test_no_files_means_no_order():
    assert boot_order([]) == []


def test_later_file_with_a_lower_value_wins_at_boot():
    files = {
        "/etc/sysctl.d/99-trains.conf": "vm.max_map_count=262144\n",
        "/usr/lib/sysctl.d/99-zz-vendor.conf": "vm.max_map_count=65530\n",
    }
    assert boot_values(files)[KEY] == BootValue("65530", "/usr/lib/sysctl.d/99-zz-vendor.conf")


def test_masked_vendor_file_does_not_count():
    files = {
        "/usr/lib/sysctl.d/99-trains.conf": "vm.max_map_count=1\n",
        "/etc/sysctl.d/99-trains.conf": "vm.max_map_count=262144\n",
    }
    assert boot_values(files) == {KEY: BootValue("262144", "/etc/sysctl.d/99-trains.conf")}


def test_etc_sysctl_conf_overrides_every_sysctl_d_file():
    files = {
        "/etc/sysctl.conf": "vm/max_map_count = 1048576\n",
        "/etc/sysctl.d/99-trains.conf": "vm.max_map_count=262144\n",
    }
    assert boot_values(files)[KEY] == BootValue("1048576", "/etc/sysctl.conf")


def test_last_line_within_a_file_wins():
    assert boot_values({"/etc/sysctl.d/10-a.conf": "vm.max_map_count=1\nvm.max_map_count=2\n"})[
        KEY
    ] == BootValue("2", "/etc/sysctl.d/10-a.conf")


def test_keys_set_nowhere_are_absent():
    assert boot_values({"/etc/sysctl.d/10-a.conf": "# nothing\n"}) == {}


def test_parse_int_reads_numbers_and_rejects_the_rest():
    assert parse_int("262144") == 262144
    assert parse_int(" 5 ") == 5
    assert parse_int("lots") is None
    assert parse_int("") is None
    assert parse_int(None) is None


# ---------------------------------------------------------------- render_sysctl_file


def test_new_file_has_header_and_setting():
    assert render_sysctl_file(None, {KEY: 262144}, HEADER) == f"{HEADER}\n{KEY}=262144\n"


def test_new_file_without_header():
    assert render_sysctl_file(None, {KEY: 262144}, "") == f"{KEY}=262144\n"


def test_new_file_with_several_settings_keeps_their_order():
    assert (
        render_sysctl_file(None, {KEY: 262144, "fs.file-max": 100}, HEADER)
        == f"{HEADER}\n{KEY}=262144\nfs.file-max=100\n"
    )


def test_existing_value_is_edited_in_place_keeping_comments_and_other_keys():
    existing = (
        "# tuned for ES\nfs.file-max = 100\nvm.max_map_count = 65530\n"
        "; trailing comment\nkernel.pid_max=4194304\n"
    )
    expected = (
        "# tuned for ES\nfs.file-max = 100\nvm.max_map_count = 262144\n"
        "; trailing comment\nkernel.pid_max=4194304\n"
    )
    assert render_sysctl_file(existing, {KEY: 262144}, HEADER) == expected


def test_slash_form_line_is_edited_in_place():
    assert (
        render_sysctl_file("vm/max_map_count=1\n", {KEY: 262144}, HEADER)
        == "vm/max_map_count=262144\n"
    )


def test_commented_out_setting_is_not_edited_and_the_key_is_appended():
    existing = "# vm.max_map_count=65530\n"
    assert render_sysctl_file(existing, {KEY: 262144}, HEADER) == existing + f"{KEY}=262144\n"


def test_missing_key_is_appended_without_a_header():
    assert (
        render_sysctl_file("fs.file-max=100\n", {KEY: 262144}, HEADER)
        == f"fs.file-max=100\n{KEY}=262144\n"
    )


def test_missing_key_is_appended_on_its_own_line_when_file_lacks_final_newline():
    assert (
        render_sysctl_file("fs.file-max=100", {KEY: 262144}, HEADER)
        == f"fs.file-max=100\n{KEY}=262144\n"
    )


def test_empty_existing_file_gets_the_setting():
    assert render_sysctl_file("", {KEY: 262144}, HEADER) == f"{KEY}=262144\n"


def test_only_the_last_of_duplicate_lines_is_edited():
    existing = "vm.max_map_count=1\nvm.max_map_count=2\n"
    assert (
        render_sysctl_file(existing, {KEY: 262144}, HEADER)
        == "vm.max_map_count=1\nvm.max_map_count=262144\n"
    )


def test_rendering_a_file_that_already_has_the_value_changes_nothing():
    existing = "# mine\nvm.max_map_count = 262144\n"
    assert render_sysctl_file(existing, {KEY: 262144}, HEADER) == existing


def test_rendered_file_reads_back_with_the_value():
    text = render_sysctl_file("# x\nvm.max_map_count=65530\n", {KEY: 1048576}, HEADER)
    assert dict(parse_sysctl_conf(text))[KEY] == "1048576"
