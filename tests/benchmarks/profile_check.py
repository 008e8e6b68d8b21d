"""Where does `trains-nodeprep check` spend its time on K nodes? (on demand, not a test)

    sudo .venv/bin/python -m tests.benchmarks.profile_check [--nodes 50] [--parallel K]
        [--repeat 3] [--py-spy FILE [--py-spy-idle]]

Starts the test bed with K docker=False nodes (as tests/benchmarks/bench.py does; needs the
peers' venv that bench.py makes), then prints:

1. plain wall times of `trains-nodeprep check --host IP ... --no-cluster -o json`;
2. a CPU split: the command's own CPU (all its threads, from wait4) against the whole
   machine's (/proc/stat). On the bed the nodes' sshd and remote commands share the client's
   cores, so machine - client = what the nodes spent. Also for the asyncssh floor, for the
   asyncssh floor running trains-nodeprep's facts script instead of `cat`, and for
   `trains-nodeprep --version` (start-up alone);
3. the facts script's CPU and process count when run in one node directly (nsenter);
4. each stage of one remote command over trains-nodeprep's own paramiko connection
   (open channel, exec, first byte, EOF, exit status), on a used and on a fresh connection;
5. instrumented runs: the CLI's main() in a fresh interpreter with timing wrappers (no change
   to trains_nodeprep/): interpreter start, imports, session set-up, node phase, report,
   and per node the route from ~/.ssh/config, known_hosts loading, TCP, key exchange, auth, exec;
6. the same with --parallel 1: each step's client CPU without contention;
7. with --py-spy FILE: one run sampled by py-spy (collapsed stacks in FILE) and summarized.
   py-spy's idle detection is unreliable in this VM (lock and socket waits show as busy):
   trust (2) and (6) for CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD_FLAG = "--child"


# --------------------------------------------------------------------------- the child


def child(out_path: str, cli_args: list[str]) -> None:
    """Runs trains-nodeprep's own main() with timing wrappers; writes the timeline to out_path."""
    import threading

    t_start = time.time()
    events: list[dict] = []
    lock = threading.Lock()

    def record(kind: str, label: str, t0: float, t1: float, cpu: float = 0.0) -> None:
        with lock:
            events.append(
                {
                    "kind": kind,
                    "label": label,
                    "t0": t0,
                    "t1": t1,
                    "cpu": cpu,
                    "thread": threading.current_thread().name,
                }
            )

    t0 = time.time()
    import trains_nodeprep.cli as cli  # typer, rich, ... as the console script does

    record("import cli", "-", t0, time.time())
    import trains_nodeprep.node.ssh as node_mod
    from trains_nodeprep.node.tweaks import import_paramiko

    t0 = time.time()
    paramiko = import_paramiko(needs_invoke=False)  # as the first SSHNode does in a real run
    record("import paramiko", "-", t0, time.time())
    import trains_nodeprep.engine.converge as runner

    def timed(owner, name: str, kind: str, label_of=lambda args: "-"):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t0, c0 = time.time(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                record(kind, label_of(args), t0, time.time(), time.process_time() - c0)

        setattr(owner, name, wrapper)

    def node_label(args):
        return getattr(args[0], "label", "-")

    timed(runner, "for_each_node", "for_each_node")
    timed(runner, "check_node", "node total", lambda a: a[0].label)
    timed(node_mod.SSHNode, "_connect", "connect (all)", node_label)
    timed(node_mod.SSHNode, "run_as_root", "exec", node_label)
    timed(node_mod.SSHNode, "close", "close", node_label)
    timed(node_mod, "trusted_host_keys", "known_hosts load")
    timed(node_mod, "_open_socket", "tcp connect", lambda a: a[0])
    timed(node_mod, "_login", "ssh open (kex+auth)", lambda a: a[0].host)
    timed(node_mod, "resolve_route", "route (ssh_config)", lambda a: a[0].host)
    timed(paramiko.Transport, "start_client", "kex (start_client)")
    timed(paramiko.SSHClient, "_auth", "auth", lambda a: "-")
    timed(runner, "make_plan", "plan", lambda a: "-")
    timed(runner, "parse_facts", "parse facts", lambda a: "-")

    sys.argv = ["trains-nodeprep", *cli_args]
    code = 0
    cpu0 = os.times()
    t_main = time.time()
    stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")
    try:
        code = cli.run_app()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdout.close()
        sys.stdout = stdout
    t_end = time.time()
    cpu1 = os.times()
    with open(out_path, "w") as handle:
        json.dump(
            {
                "t_start": t_start,
                "t_main": t_main,
                "t_end": t_end,
                "code": code,
                "cpu_user": cpu1.user - cpu0.user,
                "cpu_sys": cpu1.system - cpu0.system,
                "events": events,
            },
            handle,
        )
    sys.stderr.flush()
    os._exit(0)  # as the console script (cli.main) leaves: without the interpreter's teardown


# --------------------------------------------------------------------------- the parent


def summarize(data: dict, t_spawn: float, t_exit: float, k: int) -> str:
    events = data["events"]
    lines = []

    def phase(kind: str) -> list[dict]:
        return [e for e in events if e["kind"] == kind]

    each = phase("for_each_node")
    fe = each[0] if each else None
    lines.append(f"wall, spawn to exit: {t_exit - t_spawn:.3f} s (exit code {data['code']})")
    lines.append(f"  interpreter start + site imports: {data['t_start'] - t_spawn:.3f} s")
    for kind in ("import cli", "import paramiko"):
        for e in phase(kind):
            lines.append(f"  {kind}: {e['t1'] - e['t0']:.3f} s")
    if fe:
        lines.append(
            "  main() to the node phase (options, playbook, session): "
            f"{fe['t0'] - data['t_main']:.3f} s"
        )
        lines.append(f"  node phase (for_each_node, {k} nodes): {fe['t1'] - fe['t0']:.3f} s")
        lines.append(
            f"  after the node phase (report, JSON, exit): {data['t_end'] - fe['t1']:.3f} s"
        )
    lines.append(f"  exit (os._exit, as cli.main): {t_exit - data['t_end']:.3f} s")
    cpu = data["cpu_user"] + data["cpu_sys"]
    main_wall = data["t_end"] - data["t_main"]
    lines.append(
        f"CPU in main(): {data['cpu_user']:.2f} user + {data['cpu_sys']:.2f} sys = {cpu:.2f} s "
        f"over {main_wall:.2f} s wall ({cpu / main_wall:.2f} cores busy)"
    )
    if not fe:
        return "\n".join(lines)
    base = fe["t0"]
    per_node = {}
    for e in phase("node total"):
        per_node[e["label"]] = {"start": e["t0"] - base, "end": e["t1"] - base}
    rows = []
    for kind in (
        "route (ssh_config)",
        "known_hosts load",
        "tcp connect",
        "kex (start_client)",
        "auth",
        "ssh open (kex+auth)",
        "connect (all)",
        "exec",
        "parse facts",
        "plan",
        "close",
        "node total",
    ):
        durations = [e["t1"] - e["t0"] for e in phase(kind)]
        if durations:
            rows.append(
                f"  {kind:22s} n={len(durations):3d}  median {statistics.median(durations):.3f}  "
                f"max {max(durations):.3f}  sum {sum(durations):.2f} s"
            )
    starts = sorted(v["start"] for v in per_node.values())
    ends = sorted(v["end"] for v in per_node.values())
    lines.append("per node (seconds):")
    lines.extend(rows)
    if starts:
        lines.append(
            f"  node starts after the phase began: first {starts[0]:.3f}, "
            f"median {statistics.median(starts):.3f}, "
            f"last {starts[-1]:.3f} (pool slots)"
        )
        lines.append(
            f"  node ends: first {ends[0]:.3f}, median {statistics.median(ends):.3f}, "
            f"last {ends[-1]:.3f}"
        )
    # when did each connect phase end, across nodes: shows serialisation
    for kind in ("tcp connect", "kex (start_client)", "auth", "exec"):
        ts = sorted(e["t1"] - base for e in phase(kind))
        if ts:
            lines.append(
                f"  '{kind}' finished: first {ts[0]:.3f}, median {statistics.median(ts):.3f}, "
                f"last {ts[-1]:.3f}"
            )
    return "\n".join(lines)


def _busy_jiffies() -> tuple[int, int]:
    """(busy, forks) of the whole machine so far: /proc/stat cpu line minus idle+iowait,
    processes."""
    busy = forks = 0
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:]]
            busy = sum(fields[:8]) - fields[3] - fields[4]
        elif line.startswith("processes "):
            forks = int(line.split()[1])
    return busy, forks


def cpu_split(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> dict:
    """Wall time, the command's own CPU (its threads and children) and the whole machine's CPU.

    On the bed the nodes' sshd and remote commands run on the same two cores, so
    machine - client = what the nodes spent (sshd, shell, the remote commands)."""
    hz = os.sysconf("SC_CLK_TCK")
    busy0, forks0 = _busy_jiffies()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 9)
            raise RuntimeError(f"{argv[0]} did not finish within {timeout} s")
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    busy1, forks1 = _busy_jiffies()
    proc.returncode = os.waitstatus_to_exitcode(status)
    client = usage.ru_utime + usage.ru_stime
    machine = (busy1 - busy0) / hz
    return {
        "wall": wall,
        "client_cpu": client,
        "machine_cpu": machine,
        "other_cpu": machine - client,
        "forks": forks1 - forks0,
        "code": proc.returncode,
    }


def _fmt_split(name: str, r: dict, k: int) -> str:
    return (
        f"  {name:42s} wall {r['wall']:5.2f} s | client CPU {r['client_cpu']:5.2f} s "
        f"({1000 * r['client_cpu'] / k:4.0f} ms/node) | machine CPU {r['machine_cpu']:5.2f} s | "
        f"nodes (sshd + remote) {r['other_cpu']:5.2f} s "
        f"({1000 * r['other_cpu'] / k:4.0f} ms/node) | "
        f"processes started {r['forks']} ({r['forks'] / k:.1f}/node) | exit {r['code']}"
    )


def facts_script_cost(node, repeat: int = 5) -> str:
    """CPU and processes of trains-nodeprep's facts script run in one node (no SSH)."""
    import resource

    from tests.benchmarks.bench import READ_COMMAND
    from trains_nodeprep.playbook import load_playbook
    from trains_nodeprep.remote.scripts import render_facts_script

    results = []
    for name, script in (
        ("facts script (bundled playbook)", render_facts_script(load_playbook())),
        ("the floor's read (cat)", READ_COMMAND),
    ):
        samples = []
        for _ in range(repeat):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            _, forks0 = _busy_jiffies()
            t0 = time.perf_counter()
            node.exec("/bin/sh", "-c", script, check=False)
            wall = time.perf_counter() - t0
            _, forks1 = _busy_jiffies()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            samples.append(
                (wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), forks1 - forks0)
            )
        wall, cpu, forks = (statistics.median(x) for x in zip(*samples))
        results.append(
            f"  {name:32s} wall {1000 * wall:5.0f} ms, CPU {1000 * cpu:5.0f} ms, "
            f"processes {forks:.0f} (incl. nsenter's 2)"
        )
    return "\n".join(results)


PY_SPY_CATEGORIES = (  # first match wins: (category, substrings that must all be in the stack)
    ("start-up: imports", ("<module>",)),
    ("connect: route from ~/.ssh/config (resolve_route)", ("resolve_route",)),
    ("connect: known_hosts parsing (trusted_host_keys)", ("trusted_host_keys",)),
    ("connect: TCP", ("_open_socket",)),
    ("connect: key exchange (worker side)", ("start_client",)),
    ("connect: authentication (worker side)", ("_auth",)),
    ("connect: other", ("SSHNode._connect",)),
    ("exec: open channel, send, read (worker side)", ("run_as_root",)),
    ("facts parsing + plan", ("check_node",)),
    ("paramiko transport threads: kex, auth, crypto, packets", ("Transport.run",)),
    ("main thread: CLI, session, report", ("MainThread",)),
)


def summarize_py_spy(path: Path) -> str:
    """Samples per category and the top self frames (py-spy raw = collapsed stacks + count)."""
    import collections

    categories: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        name = next(
            (c for c, needles in PY_SPY_CATEGORIES if all(x in stack for x in needles)), "other"
        )
        categories[name] += n
        leaves[stack.split(";")[-1]] += n
    if not total:
        return "  (no samples)"
    lines = [f"  {total} samples (250 Hz: {total / 250:.2f} s of thread time)"]
    lines += [f"  {n:6d} {100 * n / total:5.1f}%  {c}" for c, n in categories.most_common()]
    lines.append("  top self frames:")
    lines += [f"  {n:6d} {100 * n / total:5.1f}%  {leaf}" for leaf, n in leaves.most_common(15)]
    return "\n".join(lines)


def summarize_serial_cpu(data: dict, k: int) -> str:
    """With --parallel 1 only one node is in flight: the process CPU of a step is that step's."""
    lines = [
        f"client CPU per node and step, nodes one at a time (--parallel 1, {k} nodes; median ms):"
    ]
    for kind in (
        "route (ssh_config)",
        "known_hosts load",
        "tcp connect",
        "kex (start_client)",
        "auth",
        "connect (all)",
        "exec",
        "parse facts",
        "plan",
        "close",
        "node total",
    ):
        cpus = [e["cpu"] for e in data["events"] if e["kind"] == kind]
        walls = [e["t1"] - e["t0"] for e in data["events"] if e["kind"] == kind]
        if cpus:
            lines.append(
                f"  {kind:22s} CPU {1000 * statistics.median(cpus):6.1f}   "
                f"wall {1000 * statistics.median(walls):6.1f}"
            )
    lines.append("  (exec includes connect: SSHNode.run_as_root connects first)")
    return "\n".join(lines)


def _stages(transport, script: str) -> tuple[float, ...]:
    """(open, exec, first byte, stdout EOF, exit status) in seconds after the channel request."""
    t0 = time.perf_counter()
    channel = transport.open_session(timeout=10)
    t_open = time.perf_counter()
    channel.settimeout(60)
    channel.exec_command(shlex.join(["sh", "-c", script]))
    t_exec = time.perf_counter()
    channel.shutdown_write()
    first = None
    while True:
        chunk = channel.recv(65536)
        if first is None:
            first = time.perf_counter()
        if not chunk:
            break
    t_eof = time.perf_counter()
    while channel.recv_stderr(65536):
        pass
    channel.recv_exit_status()
    t_status = time.perf_counter()
    channel.close()
    return (t_open - t0, t_exec - t0, first - t0, t_eof - t0, t_status - t0)


def exec_breakdown(bed, node, repeat: int = 10) -> str:
    """One node, paramiko connections made by trains-nodeprep's own SSHNode: each stage of one
    remote command (open channel, exec request, first byte, stdout EOF, exit status), for the
    facts script and simpler commands, on a connection already used and as the first command
    of a fresh connection (what check does), next to the same command run in the node directly."""
    os.environ["HOME"] = str(bed.home)  # before ~/.ssh/config and known_hosts are read
    from tests.benchmarks.bench import READ_COMMAND
    from trains_nodeprep.node import SSHNode, SSHOptions, Target
    from trains_nodeprep.playbook import load_playbook
    from trains_nodeprep.remote.scripts import render_facts_script

    commands = {
        "facts script": render_facts_script(load_playbook()),
        "dockerd --version": "dockerd --version",
        "the floor's cat": READ_COMMAND,
        "true": "true",
    }
    lines = [
        f"  {'command':18s} {'connection':10s} {'in node':>8s} {'open':>6s} {'exec':>6s} "
        f"{'1st byte':>9s} "
        f"{'stdout EOF':>11s} {'exit st.':>9s}   (ms after the channel request, median of {repeat})"
    ]
    for name, script in commands.items():
        local = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            node.exec("/bin/sh", "-c", script, check=False)
            local.append(time.perf_counter() - t0)
        warm, fresh = [], []
        ssh_node = SSHNode(Target(node.address, "root"), SSHOptions())
        try:
            transport = ssh_node._connect().get_transport()
            _stages(transport, "true")
            for _ in range(repeat):
                warm.append(_stages(transport, script))
        finally:
            ssh_node.close()
        for _ in range(repeat):
            new_node = SSHNode(Target(node.address, "root"), SSHOptions())
            try:
                fresh.append(_stages(new_node._connect().get_transport(), script))
            finally:
                new_node.close()
        for label, samples in (("used", warm), ("fresh", fresh)):
            med = [1000 * statistics.median(x) for x in zip(*samples)]
            lines.append(
                f"  {name:18s} {label:10s} {1000 * statistics.median(local):8.1f} "
                f"{med[0]:6.1f} {med[1]:6.1f} "
                f"{med[2]:9.1f} {med[3]:11.1f} {med[4]:9.1f}"
            )
    lines.append(
        "  ('in node' = the same command through nsenter, no SSH; includes nsenter's own ~2 ms)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == CHILD_FLAG:
        child(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.profile_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument(
        "--parallel", type=int, default=None, help="--parallel for the check (default: K)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--py-spy", type=Path, help="also sample one run with py-spy; collapsed stacks to this file"
    )
    parser.add_argument(
        "--py-spy-idle",
        action="store_true",
        help="py-spy: keep idle samples too (default: on-CPU only)",
    )
    parser.add_argument("--lock-timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (the test bed)", file=sys.stderr)
        return 2

    from tests.benchmarks.bench import CHECK_NODE_FILES, TOOL_VENV, ensure_tool_venv
    from tests.testbed import TestBed

    ensure_tool_venv(timeout=900)  # the asyncssh floor runs from the peers' venv

    workdir = Path(tempfile.mkdtemp(prefix="tnp-prof-"))
    os.chmod(workdir, 0o755)
    bed = TestBed(workdir / "bed")
    parallel = args.parallel or args.nodes
    try:
        bed.start(lock_timeout=args.lock_timeout)
        nodes = [
            bed.add_node(f"p{i}", docker=False, files=CHECK_NODE_FILES) for i in range(args.nodes)
        ]
        cli_args = [
            "check",
            *[a for n in nodes for a in ("--host", n.address)],
            "--user",
            "root",
            "--no-cluster",
            "-o",
            "json",
            "--parallel",
            str(parallel),
        ]
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(bed.home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "USER": "root",
            "LOGNAME": "root",
        }
        plain = [str(Path(sys.executable).parent / "trains-nodeprep"), *cli_args]
        walls = []
        for _ in range(args.repeat):  # uninstrumented, for reference
            t0 = time.perf_counter()
            done = subprocess.run(plain, env=env, capture_output=True, timeout=600)
            walls.append(time.perf_counter() - t0)
            if done.returncode not in (0, 1):
                print(done.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
                return 1
        print(
            f"K={args.nodes}, --parallel {parallel}: "
            f"plain runs {', '.join(f'{w:.2f}' for w in walls)} s "
            f"(median {statistics.median(walls):.2f})"
        )

        # CPU: the client process vs the whole machine (= client + the nodes' sshd and commands)
        floor_dir = workdir / "floor"
        floor_dir.mkdir()
        from tests.benchmarks.bench import ASYNCSSH_FLOOR, READ_COMMAND, TOOL_PYTHON

        (floor_dir / "floor.py").write_text(ASYNCSSH_FLOOR)
        (floor_dir / "spec.json").write_text(
            json.dumps(
                {
                    "hosts": [n.address for n in nodes],
                    "key": str(bed.client_key),
                    "known_hosts": str(bed.known_hosts),
                    "commands": [READ_COMMAND],
                    "timeout": 60,
                }
            )
        )
        from trains_nodeprep.playbook import load_playbook
        from trains_nodeprep.remote.scripts import render_facts_script

        (floor_dir / "facts.sh").write_text(render_facts_script(load_playbook()))
        (floor_dir / "spec-facts.json").write_text(
            json.dumps(
                {
                    "hosts": [n.address for n in nodes],
                    "key": str(bed.client_key),
                    "known_hosts": str(bed.known_hosts),
                    "commands": [f"sh -c {shlex.quote((floor_dir / 'facts.sh').read_text())}"],
                    "timeout": 60,
                }
            )
        )
        p16 = [*plain[:-1], "16"] if plain[-2] == "--parallel" else plain
        variants = [
            (f"trains-nodeprep check --parallel {parallel}", plain),
            ("trains-nodeprep check --parallel 16", p16),
            (
                "asyncssh floor (cat)",
                [str(TOOL_PYTHON), str(floor_dir / "floor.py"), str(floor_dir / "spec.json")],
            ),
            (
                "asyncssh + trains-nodeprep's facts script",
                [str(TOOL_PYTHON), str(floor_dir / "floor.py"), str(floor_dir / "spec-facts.json")],
            ),
            ("trains-nodeprep --version (start-up only)", [plain[0], "--version"]),
        ]
        print(
            f"\nCPU split, median of {args.repeat} "
            "(client = the command's own threads and children):"
        )
        for name, command in variants:
            runs = [cpu_split(command, env, workdir) for _ in range(args.repeat)]
            median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            print(_fmt_split(name, median, args.nodes))
        print("\nOne node, the remote read run locally in it (nsenter, no SSH), median of 5:")
        print(facts_script_cost(nodes[0]))
        print("\nOne node, one remote command over trains-nodeprep's own paramiko connection:")
        print(exec_breakdown(bed, nodes[0]))
        for i in range(args.repeat):
            out = workdir / f"timeline{i}.json"
            t_spawn = time.time()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tests.benchmarks.profile_check",
                    CHILD_FLAG,
                    str(out),
                    *cli_args,
                ],
                env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
                capture_output=True,
                timeout=600,
                cwd=Path(__file__).resolve().parents[2],
            )
            t_exit = time.time()
            if not out.exists():
                print(done.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
                return 1
            print(f"\n--- instrumented run {i + 1}")
            print(summarize(json.loads(out.read_text()), t_spawn, t_exit, args.nodes))
        # nodes one at a time: per-step client CPU without contention
        out = workdir / "timeline-serial.json"
        serial_args = [*cli_args[:-1], "1"]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.benchmarks.profile_check",
                CHILD_FLAG,
                str(out),
                *serial_args,
            ],
            env=dict(env, PYTHONPATH=str(Path(__file__).resolve().parents[2])),
            capture_output=True,
            timeout=600,
            cwd=Path(__file__).resolve().parents[2],
        )
        if out.exists():
            print("\n" + summarize_serial_cpu(json.loads(out.read_text()), args.nodes))
        if args.py_spy:
            py_spy = TOOL_VENV / "bin" / "py-spy"
            if not py_spy.exists():
                subprocess.run(
                    [str(TOOL_VENV / "bin" / "pip"), "install", "-q", "py-spy"],
                    check=True,
                    timeout=600,
                )
            idle = ["--idle"] if args.py_spy_idle else []
            done = subprocess.run(
                [
                    str(py_spy),
                    "record",
                    *idle,
                    "--threads",
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "-o",
                    str(args.py_spy),
                    "--",
                    *plain,
                ],
                env=env,
                capture_output=True,
                timeout=600,
            )
            print(
                f"\npy-spy ({'all samples' if idle else 'on-CPU samples only'}): "
                f"exit {done.returncode}, "
                f"collapsed stacks in {args.py_spy}"
            )
            print(summarize_py_spy(args.py_spy))
    finally:
        if bed.started:
            bed.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
