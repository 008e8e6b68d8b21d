"""Many nodes at once: every node reported in host order, failures isolated, round trips counted."""

from __future__ import annotations

from .cli import json_output, trains_nodeprep


def test_twenty_nodes_are_checked_in_parallel_and_reported_in_host_order(bed, make_node, tmp_path):
    nodes = [make_node(docker=False) for _ in range(20)]
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(
        "# the pool\n" + "".join(f"root@{n.address}  # {n.name}\n" for n in reversed(nodes[10:]))
    )
    direct = [arg for n in nodes[:10] for arg in ("--host", n.name)]

    result = trains_nodeprep(
        bed, "check", *direct, "--hosts-file", str(hosts_file), "--parallel", "20", "-o", "json"
    )

    assert result.returncode == 1, result.stderr  # fresh nodes drift
    reported = json_output(result)["nodes"]
    assert [n["host"] for n in reported] == [n.name for n in nodes[:10]] + [
        f"root@{n.address}" for n in reversed(nodes[10:])
    ]
    assert {n["status"] for n in reported} == {"drift"}
    assert all(
        n["remote_commands"] == 1 for n in reported
    )  # one exec per node after authentication
    # not a terminal: progress comes as plain lines on stderr, one per node and state
    assert (
        f"{nodes[0].name}: reading facts" in result.stderr
        and f"{nodes[0].name}: drift" in result.stderr
    )


def test_one_unreachable_and_one_broken_node_do_not_stop_the_others(bed, make_node):
    healthy = [make_node(docker=False) for _ in range(3)]
    broken = make_node(docker=False)
    broken.write("/etc/docker/daemon.json", '{"log-level": "warn",\n}\n')
    hosts = [healthy[0].name, broken.name, "root@10.200.0.251", healthy[1].name, healthy[2].name]

    result = trains_nodeprep(
        bed,
        "run",
        *[a for h in hosts for a in ("--host", h)],
        "--yes",
        "--no-deploy",
        "--connect-timeout",
        "3",
        "-o",
        "json",
    )

    assert result.returncode == 3  # a connection error outranks the refusal
    by_host = {n["host"]: n for n in json_output(result)["nodes"]}
    assert list(by_host) == hosts
    assert (
        by_host[broken.name]["status"] == "refused"
        and "line 2 column 1" in by_host[broken.name]["error"]
    )
    assert by_host["root@10.200.0.251"]["status"] == "unreachable"
    for node in healthy:
        assert by_host[node.name]["status"] == "changed"
        assert node.max_map_count() == 262144
    assert broken.max_map_count() == 65530 and broken.read("/etc/sysctl.d/99-trains.conf") is None


def test_round_trips_check_one_unchanged_run_one_changing_run_two(bed, make_node):
    node = make_node(docker=False)

    check = json_output(
        trains_nodeprep(bed, "check", "--host", node.name, "--no-cluster", "-o", "json")
    )
    changing = json_output(
        trains_nodeprep(bed, "run", "--host", node.name, "--yes", "--no-deploy", "-o", "json")
    )
    unchanged = json_output(
        trains_nodeprep(bed, "run", "--host", node.name, "--no-deploy", "-o", "json")
    )

    # a changing run: the facts, then the apply with the verification read at its end
    assert [r["nodes"][0]["remote_commands"] for r in (check, changing, unchanged)] == [1, 2, 1]
    # and the node's sshd saw one connection per command, not one per step
    logins = node.sh("grep -c 'Accepted publickey' /var/log/sshd.log || true").stdout.strip()
    assert logins == "3"
