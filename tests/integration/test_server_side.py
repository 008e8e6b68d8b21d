"""The node side of the deployment: /opt/trains directories and trains-server config files."""

from __future__ import annotations

import subprocess
import threading
import time

from .cli import json_output, trains_nodeprep


def test_run_creates_the_data_directories_with_the_owners_the_containers_need(bed, make_node):
    node = make_node(docker=False)

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "--no-deploy")

    assert result.returncode == 0, result.stdout + result.stderr
    host = node.host()
    elastic = host.file("/opt/trains/data/elastic_7")
    assert (
        elastic.is_directory
        and elastic.uid == 1000
        and elastic.gid == 1000
        and elastic.mode == 0o755
    )
    for path in (
        "/opt/trains/data/mongo/db",
        "/opt/trains/data/redis",
        "/opt/trains/logs",
        "/opt/trains/config",
    ):
        assert host.file(path).is_directory, path


def test_a_container_owned_directory_is_not_fought(bed, make_node):
    node = make_node(docker=False)
    assert trains_nodeprep(bed, "run", "--host", node.name, "--yes", "--no-deploy").returncode == 0
    node.exec("chown", "999:999", "/opt/trains/data/mongo/db")  # what the mongo image does at start

    again = trains_nodeprep(bed, "run", "--host", node.name, "--no-deploy", "-o", "json")

    assert json_output(again)["nodes"][0]["status"] == "unchanged"
    assert node.host().file("/opt/trains/data/mongo/db").uid == 999


def test_fixed_users_are_written_root_only_and_never_shown(bed, make_node, tmp_path):
    node = make_node(docker=False)
    users = tmp_path / "users.txt"
    users.write_text("jane:Tr4ins-S3cret:Jane Doe\n")
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(node.exec("ps", "-eo", "args", check=False).stdout)
            seen.append(
                subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            )
            time.sleep(0.02)

    plan = trains_nodeprep(
        bed, "plan", "--host", node.name, "--no-cluster", "--fixed-users", str(users)
    )
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = trains_nodeprep(
            bed,
            "run",
            "--host",
            f"secured@{node.name}",
            "--yes",
            "--no-deploy",
            "--fixed-users",
            str(users),
            env={"TRAINS_NODEPREP_SUDO_PASSWORD": bed.sudo_password},
        )
    finally:
        done.set()
        watcher.join()

    assert result.returncode == 0, result.stdout + result.stderr
    conf = node.host().file("/opt/trains/config/apiserver.conf")
    assert conf.mode == 0o600 and conf.user == "root"
    assert 'username: "jane", password: "Tr4ins-S3cret", name: "Jane Doe"' in conf.content_string
    assert "content not shown: it holds passwords" in plan.stdout
    for text in [plan.stdout, plan.stderr, result.stdout, result.stderr, *seen]:
        assert "Tr4ins-S3cret" not in text
    assert any("trains-nodeprep" in listing or "sudo" in listing for listing in seen)
    second = trains_nodeprep(
        bed, "check", "--host", node.name, "--no-cluster", "--fixed-users", str(users)
    )
    assert "ok     server.file:/opt/trains/config/apiserver.conf" in second.stdout
