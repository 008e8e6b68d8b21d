"""The command line: commands, options and exit codes. The work happens elsewhere."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .errors import EXIT_CONNECTION, EXIT_DRIFT, EXIT_OK, EXIT_USAGE, NodePrepError, UsageError

app = typer.Typer(
    name="trains-nodeprep",
    help=(
        "Get Kubernetes nodes ready for trains-server (Docker default ulimits, vm.max_map_count), "
        "over SSH or locally, safely and idempotently, then deploy the server with kubectl apply -k.\n\n"
        "Start with `trains-nodeprep check --local` (read-only), then `trains-nodeprep plan --host NODE` "
        "to see the diffs, then `trains-nodeprep run --host NODE`. Without --host, the node labeled "
        "app=trains in your cluster is used.\n\n"
        "Exit codes: 0 ready/ok, 1 a node drifts (check) or failed/was refused (run), or a cluster "
        "pre-check failed, 2 usage or playbook error, 3 a node could not be reached, authenticated "
        "or sudo was refused."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(str, Enum):
    text = "text"
    json = "json"


Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        "-H",
        help="Node as [user@]host[:port] or an ~/.ssh/config alias. Repeat for more nodes. Default: the cluster's node labeled app=trains.",
        show_default=False,
    ),
]
HostsFile = Annotated[
    Path | None,
    typer.Option(
        "--hosts-file",
        help="Nodes from FILE: one [user@]host[:port] per line, # comments. Adds to --host.",
        show_default=False,
    ),
]
Local = Annotated[
    bool, typer.Option("--local", help="Act on this machine without SSH (uses sudo when not root).")
]
PlaybookOpt = Annotated[
    Path | None,
    typer.Option(
        "--playbook",
        "-p",
        help="Desired state as YAML. Default: the bundled playbooks/trains-node.yaml.",
        show_default=False,
    ),
]
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="SSH login user for nodes given without user@ (default: ~/.ssh/config, else your local user).",
        show_default=False,
    ),
]
Port = Annotated[
    int | None,
    typer.Option(
        "--port",
        help="SSH port for nodes given without :port (default: ~/.ssh/config, else 22).",
        show_default=False,
    ),
]
Identity = Annotated[
    list[Path] | None,
    typer.Option(
        "--identity",
        "-i",
        help="Private key file; repeatable. Keys from ~/.ssh/config and your agent are tried too.",
        show_default=False,
    ),
]
ConnectTimeout = Annotated[
    float, typer.Option("--connect-timeout", help="Seconds to wait for each node's SSH connection.")
]
AcceptNew = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-keys",
        help="Trust and record host keys not yet in known_hosts. A CHANGED key is always refused.",
    ),
]
AskSudo = Annotated[
    bool,
    typer.Option(
        "--ask-sudo-password",
        help="Prompt once for the sudo password of a non-root login. For CI, set TRAINS_NODEPREP_SUDO_PASSWORD instead.",
    ),
]
Parallel = Annotated[
    int,
    typer.Option(
        "--parallel",
        min=1,
        max=256,
        help="Nodes handled at once (each is one SSH connection and a thread).",
    ),
]
OutputOpt = Annotated[
    Output,
    typer.Option(
        "--output", "-o", help="text for people, json for machines (a stable, documented shape)."
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Confirm docker restarts without asking (needed when not in a terminal).",
    ),
]
RestartTimeout = Annotated[
    int,
    typer.Option(
        "--restart-timeout",
        min=5,
        max=600,
        help="Seconds docker may take to answer after a restart before the change is rolled back.",
    ),
]
KeepBackups = Annotated[
    int,
    typer.Option(
        "--keep-backups",
        min=1,
        max=1000,
        help="Backups kept beside each file (FILE.<UTC time>.bak); older ones are deleted.",
    ),
]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="kubeconfig for the cluster (default: $KUBECONFIG, else ~/.kube/config).",
        show_default=False,
    ),
]
Context = Annotated[
    str | None,
    typer.Option(
        "--context", help="kubeconfig context (default: the current one).", show_default=False
    ),
]
Selector = Annotated[str, typer.Option("--selector", help="Label of the trains-server node.")]
AllowMany = Annotated[
    bool,
    typer.Option(
        "--allow-many-labeled",
        help="Accept more than one labeled node (the data of a redeploy may then be on another node).",
    ),
]
Kustomize = Annotated[
    Path | None,
    typer.Option(
        "--kustomize",
        help="Your own kustomize tree to apply instead of the bundled one (e.g. a trains-server-k8s overlay).",
        show_default=False,
    ),
]
ImageVersion = Annotated[
    str | None,
    typer.Option(
        "--image-version",
        help="Tag of allegroai/trains-server to deploy (default: the overlay's pin).",
        show_default=False,
    ),
]
FixedUsers = Annotated[
    Path | None,
    typer.Option(
        "--fixed-users",
        help="Write /opt/trains/config/apiserver.conf (0600) with trains-server's fixed users from FILE: one username:password:Full Name per line. Passwords are never shown.",
        show_default=False,
    ),
]
ClusterOpt = Annotated[
    bool | None,
    typer.Option(
        "--cluster/--no-cluster",
        help="Include the cluster pre-checks (default: when a kubeconfig is found).",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trains-nodeprep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    pass


@dataclass
class NodeArgs:
    hosts: list[str] | None
    local: bool
    playbook: Path | None
    user: str | None
    port: int | None
    identity: list[Path] | None
    connect_timeout: float
    accept_new: bool
    ask_sudo: bool
    parallel: int
    output: Output
    debug: bool
    fixed_users: Path | None = None
    hosts_file: Path | None = None


@dataclass
class ClusterArgs:
    enabled: bool | None  # None: when a kubeconfig is found
    kubeconfig: Path | None = None
    context: str | None = None
    selector: str = "app=trains"
    kustomize: Path | None = None
    image_version: str | None = None
    allow_many: bool = False


class _Session:
    """What every node command needs: the playbook, the nodes, the cluster, the consoles."""

    def __init__(self, args: NodeArgs, cluster: ClusterArgs) -> None:
        from .playbook import load_playbook

        self.args = args
        if args.hosts_file:
            args.hosts = (args.hosts or []) + _read_hosts_file(args.hosts_file)
        self.output = args.output
        if args.local and args.hosts:
            raise UsageError(
                "--local and --host exclude each other: use --local on the node itself, --host from elsewhere"
            )
        self.desired = load_playbook(args.playbook)
        if args.fixed_users:
            import dataclasses

            from .server_config import load_fixed_users

            self.desired = dataclasses.replace(
                self.desired,
                server_files=self.desired.server_files + (load_fixed_users(args.fixed_users),),
            )
        self.sudo_password = self._sudo_password(args.ask_sudo)
        self.kubectl = None
        self.cluster_args = cluster
        self.cluster = None
        self.workdir = None
        enabled = cluster.enabled
        if enabled is None:
            from .kube import kubeconfig_available

            enabled = kubeconfig_available(str(cluster.kubeconfig) if cluster.kubeconfig else None)
        if enabled:
            import tempfile

            from .kube import Kubectl, bundled_kustomization, with_image_version

            self.kubectl = Kubectl(
                str(cluster.kubeconfig) if cluster.kubeconfig else None, cluster.context
            )
            self.workdir = tempfile.TemporaryDirectory(prefix="trains-nodeprep-")
            source = cluster.kustomize or bundled_kustomization()
            if not source.is_dir():
                raise UsageError(f"--kustomize {source}: not a directory with a kustomization.yaml")
            self.kustomize_dir = with_image_version(
                source, cluster.image_version, self.workdir.name
            )
        elif not args.local and not args.hosts:
            raise UsageError(
                "no nodes given: pass --host [user@]NODE (repeatable), --local, or a --kubeconfig to find the node labeled app=trains"
            )
        self.nodes = self._nodes_from_options()

    def _nodes_from_options(self) -> list:
        if self.args.local:
            from .node import LocalNode

            return [LocalNode(self.sudo_password)]
        if not self.args.hosts:
            return []  # found in the cluster by precheck()
        from .node import parse_target

        targets = [parse_target(h) for h in self.args.hosts]
        labels = [t.label for t in targets]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise UsageError(f"--host {duplicates[0]} is given twice: one run per node at a time")
        return self._ssh_nodes(targets)

    def _ssh_nodes(self, targets) -> list:
        from .node import SSHNode, SSHOptions

        options = SSHOptions(
            user=self.args.user,
            port=self.args.port,
            identity_files=tuple(str(p) for p in self.args.identity or ()),
            connect_timeout=self.args.connect_timeout,
            accept_new_host_keys=self.args.accept_new,
            sudo_password=self.sudo_password,
        )
        return [SSHNode(t, options) for t in targets]

    @staticmethod
    def _sudo_password(ask: bool) -> str | None:
        from .node import SUDO_PASSWORD_ENV

        if ask:
            import getpass

            return getpass.getpass("sudo password: ")
        return os.environ.get(SUDO_PASSWORD_ENV) or None

    def precheck(self) -> None:
        """Cluster pre-checks; without --host/--local, the labeled nodes become the targets."""
        if self.kubectl is None:
            return
        from .deploy import precheck
        from .node import Target

        targets = [node.names() for node in self.nodes] if self.nodes else None
        self.cluster = precheck(
            self.kubectl,
            selector=self.cluster_args.selector,
            kustomize_dir=self.kustomize_dir,
            targets=targets,
            allow_many=self.cluster_args.allow_many,
        )
        if not self.nodes and self.cluster.facts and self.cluster.facts.labeled_nodes:
            self.nodes = self._ssh_nodes(
                [Target(host=node.address) for node in self.cluster.facts.labeled_nodes]
            )

    # Made on first use: a JSON run with nothing human to say never imports rich (~35 ms).
    @functools.cached_property
    def out(self):
        from rich.console import Console

        return Console(highlight=False)

    @functools.cached_property
    def err(self):
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    @property
    def human(self):
        """Human text goes to stdout unless stdout carries JSON; then everything human goes to stderr."""
        return self.err if self.output == Output.json else self.out

    def progress(self, prompts: bool = False):
        """Live per-node states in a terminal (unless a prompt may come), plain lines on stderr otherwise."""
        from .report import Progress

        live = self.output == Output.text and not prompts and self.out.is_terminal
        return Progress(sys.stderr, live_console=self.out if live else None)

    def exit_code(self, outcomes) -> int:
        from .engine.converge import overall_exit_code

        code = overall_exit_code(outcomes) if outcomes else EXIT_OK
        if self.cluster is not None and not self.cluster.ok and code != EXIT_CONNECTION:
            code = EXIT_DRIFT
        if not outcomes and self.cluster is None:
            code = EXIT_USAGE
        return code

    def finish(self, command: str, outcomes, code: int) -> None:
        if self.output == Output.json:
            from .report import outcomes_json

            sys.stdout.write(
                json.dumps(outcomes_json(command, outcomes, code == 0, self.cluster), indent=2)
                + "\n"
            )
        if self.args.debug:
            for outcome in outcomes:
                if outcome.traceback:
                    self.err.print(f"--- {outcome.label}\n{outcome.traceback}", markup=False)
        if self.kubectl is not None:
            self.kubectl.close()
        raise typer.Exit(code)


@contextlib.contextmanager
def _alongside(work: Callable[[], None] | None):
    """Runs `work` in a thread while the block runs; waits for it after, and raises what it raised."""
    if work is None:
        yield
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-checks") as pool:
        done = pool.submit(work)
        yield  # an error of the block leaves through the pool's exit, which waits for `work` first
    done.result()


def _read_hosts_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise UsageError(f"cannot read --hosts-file {path}: {err.strerror}") from err
    hosts = [line.split("#", 1)[0].strip() for line in lines]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise UsageError(
            f"--hosts-file {path} lists no hosts; write one [user@]host[:port] per line"
        )
    return hosts


def _guard(debug: bool):
    """Turn our errors into one line on stderr and an exit code; tracebacks only with --debug."""

    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, error, traceback):
            if isinstance(error, NodePrepError):
                if debug:
                    import traceback as tb

                    tb.print_exception(kind, error, traceback)
                typer.echo(f"trains-nodeprep: error: {error}", err=True)
                raise typer.Exit(error.exit_code)
            if isinstance(error, KeyboardInterrupt):
                typer.echo("trains-nodeprep: interrupted", err=True)
                raise typer.Exit(130)
            return False

    return Guard()


@app.command()
def check(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = 10.0,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = 64,
    output: OutputOpt = Output.text,
    junit_xml: Annotated[
        Path | None,
        typer.Option(
            "--junit-xml",
            help="Also write JUnit XML: one test case per requirement per node.",
            show_default=False,
        ),
    ] = None,
    cluster: ClusterOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = "app=trains",
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    fixed_users: FixedUsers = None,
    pods: Annotated[
        bool | None,
        typer.Option(
            "--pods/--no-pods",
            help="Read the limits and vm.max_map_count that each running Elasticsearch pod really sees (kubectl exec ... cat "
            "/proc/1/limits). Default: when the cluster is checked and such a pod runs; --pods also fails when none runs.",
            show_default=False,
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Report, read-only, whether each node (and the cluster) is ready. Exit 0 when all are, 1 when not.

    One line per requirement per node: expected, actual, ok/drift. With a cluster, also what the
    running Elasticsearch pod really got. Made for a pre-deploy CI step.
    """
    with _guard(debug):
        session = _Session(
            NodeArgs(
                host,
                local,
                playbook,
                user,
                port,
                identity,
                connect_timeout,
                accept_new_host_keys,
                ask_sudo_password,
                parallel,
                output,
                debug,
                fixed_users,
                hosts_file,
            ),
            ClusterArgs(
                cluster, kubeconfig, context, selector, kustomize, None, allow_many_labeled
            ),
        )
        from .report import print_check, print_cluster, render_junit
        from .engine.converge import check_node
        from .engine.parallel import for_each_node

        if pods and session.kubectl is None:
            raise UsageError(
                "--pods reads the pods through kubectl: give a --kubeconfig (or drop --no-cluster)"
            )
        targets_given = bool(session.nodes)
        if not targets_given:
            session.precheck()  # the labeled nodes become the targets

        def cluster_checks() -> None:
            if targets_given:
                session.precheck()
            reachable = (
                session.cluster is not None
                and session.cluster.facts is not None
                and session.cluster.facts.server_version is not None
            )
            if reachable and pods is not False:
                from .deploy import pod_check

                pod_check(session.kubectl, session.cluster, session.desired, required=bool(pods))

        # Read-only on both sides: kubectl's calls and the nodes' SSH commands go side by side.
        with _alongside(cluster_checks if session.kubectl is not None else None):
            with session.progress() as progress:
                outcomes = for_each_node(
                    session.nodes,
                    lambda node: check_node(node, session.desired),
                    parallel,
                    progress,
                )
        code = session.exit_code(outcomes)
        if output == Output.text:
            print_cluster(session.out, session.cluster)
            print_check(session.out, outcomes)
        if junit_xml:
            try:
                junit_xml.write_text(render_junit(outcomes, session.cluster), encoding="utf-8")
            except OSError as err:
                raise UsageError(f"cannot write --junit-xml {junit_xml}: {err.strerror}") from err
        session.finish("check", outcomes, code)


@app.command()
def plan(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = 10.0,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = 64,
    output: OutputOpt = Output.text,
    cluster: ClusterOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = "app=trains",
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    image_version: ImageVersion = None,
    fixed_users: FixedUsers = None,
    debug: Debug = False,
) -> None:
    """Show what `run` would change, as unified diffs and commands. Changes nothing."""
    with _guard(debug):
        _run(
            NodeArgs(
                host,
                local,
                playbook,
                user,
                port,
                identity,
                connect_timeout,
                accept_new_host_keys,
                ask_sudo_password,
                parallel,
                output,
                debug,
                fixed_users,
                hosts_file,
            ),
            ClusterArgs(
                cluster, kubeconfig, context, selector, kustomize, image_version, allow_many_labeled
            ),
            yes=False,
            dry_run=True,
            restart_timeout=60,
            keep_backups=5,
            wait=None,
        )


@app.command()
def run(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = 10.0,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = 64,
    output: OutputOpt = Output.text,
    yes: Yes = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Same as the plan command: show diffs, change nothing."),
    ] = False,
    restart_timeout: RestartTimeout = 60,
    keep_backups: KeepBackups = 5,
    deploy: Annotated[
        bool | None,
        typer.Option(
            "--deploy/--no-deploy",
            help="After the nodes converge, kubectl apply -k the server (default: when a kubeconfig is found). --no-deploy also skips the cluster pre-checks.",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        int | None,
        typer.Option(
            "--wait",
            min=1,
            help="After deploying, wait up to SECONDS for every Deployment to become available.",
            show_default=False,
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = "app=trains",
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    image_version: ImageVersion = None,
    fixed_users: FixedUsers = None,
    debug: Debug = False,
) -> None:
    """Bring each node to the playbook's state, verify it, then deploy trains-server.

    Cluster pre-checks run before any node is touched. Files are replaced atomically with a
    timestamped backup beside them; docker restarts only when its config changed, after a
    warning (in a terminal it asks; --yes confirms). kubectl apply -k runs only after every
    node converged. A second run changes nothing.
    """
    with _guard(debug):
        _run(
            NodeArgs(
                host,
                local,
                playbook,
                user,
                port,
                identity,
                connect_timeout,
                accept_new_host_keys,
                ask_sudo_password,
                parallel,
                output,
                debug,
                fixed_users,
                hosts_file,
            ),
            ClusterArgs(
                deploy, kubeconfig, context, selector, kustomize, image_version, allow_many_labeled
            ),
            yes=yes,
            dry_run=dry_run,
            restart_timeout=restart_timeout,
            keep_backups=keep_backups,
            wait=wait,
        )


@app.command()
def restore(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = 10.0,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = 64,
    output: OutputOpt = Output.text,
    file: Annotated[
        str | None,
        typer.Option("--file", help="Restore only this file's newest backup.", show_default=False),
    ] = None,
    yes: Yes = False,
    restart_timeout: RestartTimeout = 60,
    keep_backups: KeepBackups = 5,
    debug: Debug = False,
) -> None:
    """Put back the files that the last change on each node replaced, from their backups.

    Restores every file backed up at the newest backup time (a file the change created is
    removed), restarts docker if a docker file changed, and verifies. The restore keeps a
    backup too: restoring again undoes it. Kernel values already set are not lowered.
    """
    with _guard(debug):
        if not host and not hosts_file and not local:
            raise UsageError("restore needs --host [user@]NODE, --hosts-file or --local")
        session = _Session(
            NodeArgs(
                host,
                local,
                playbook,
                user,
                port,
                identity,
                connect_timeout,
                accept_new_host_keys,
                ask_sudo_password,
                parallel,
                output,
                debug,
                None,
                hosts_file,
            ),
            ClusterArgs(False),
        )
        from .report import print_run
        from .engine.converge import restore_node
        from .engine.parallel import for_each_node

        confirm = _confirmer(session, yes)
        with session.progress(prompts=not yes) as progress:
            outcomes = for_each_node(
                session.nodes,
                lambda node: restore_node(
                    node,
                    session.desired,
                    confirm=confirm,
                    only_path=file,
                    restart_timeout=restart_timeout,
                    keep_backups=keep_backups,
                ),
                parallel,
                progress,
            )
        code = session.exit_code(outcomes)
        if output == Output.text:
            print_run(session.out, outcomes)
        session.finish("restore", outcomes, code)


@app.command()
def label(
    node: Annotated[str, typer.Argument(help="Kubernetes node name to label.")],
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = "app=trains",
    debug: Debug = False,
) -> None:
    """Label NODE app=trains (the node trains-server runs on), refusing when another node has the label."""
    with _guard(debug):
        from .kube import Kubectl, parse_nodes

        kubectl = Kubectl(str(kubeconfig) if kubeconfig else None, context)
        try:
            done = kubectl.run("get", "nodes", "-l", selector, "-o", "json")
            if done.returncode != 0:
                raise NodePrepError(
                    f"cannot list nodes: {done.stderr.strip().splitlines()[-1:] or ['no answer']}; check --kubeconfig/--context"
                )
            others = [n.name for n in parse_nodes(done.stdout) if n.name != node]
            if others:
                raise NodePrepError(
                    f"{', '.join(others)} already carries {selector}; trains-server keeps its data on one node: remove it there first (kubectl label node {others[0]} {selector.split('=')[0]}-)"
                )
            kubectl.label(node, selector)
            typer.echo(f"labeled {node} {selector}")
        finally:
            kubectl.close()


def _confirmer(session: _Session, yes: bool):
    """Ask before a docker or containerd restart: say why, then --yes, a terminal prompt, or no."""
    prompt_lock = threading.Lock()
    interactive = sys.stdin.isatty()

    def confirm(label, node_plan, facts) -> bool:
        from .report import restart_warnings

        with prompt_lock:
            for warning in restart_warnings(node_plan):
                session.human.print(f"{label}: {warning}", highlight=False)
            if yes:
                return True
            if not interactive:
                return False
            return typer.confirm(
                f"Restart {' and '.join(node_plan.restarts)} on {label}?",
                default=False,
                err=session.output == Output.json,
            )

    return confirm


def _run(
    args: NodeArgs, cluster: ClusterArgs, *, yes, dry_run, restart_timeout, keep_backups, wait
) -> None:
    session = _Session(args, cluster)
    from .report import print_cluster, print_deploy, print_plan, print_run
    from .engine.converge import run_node
    from .engine.parallel import for_each_node

    session.precheck()
    if session.cluster is not None and not session.cluster.ready:
        # Refuse before any node is touched.
        if args.output == Output.text:
            print_cluster(session.out, session.cluster)
            session.out.print(
                "refused: the cluster pre-checks failed; no node was touched", highlight=False
            )
        session.finish("plan" if dry_run else "run", [], EXIT_DRIFT)
    confirm = _confirmer(session, yes)
    with session.progress(prompts=not yes and not dry_run) as progress:
        outcomes = for_each_node(
            session.nodes,
            lambda node: run_node(
                node,
                session.desired,
                confirm=confirm,
                dry_run=dry_run,
                restart_timeout=restart_timeout,
                keep_backups=keep_backups,
            ),
            args.parallel,
            progress,
        )
    if args.output == Output.text:
        print_cluster(session.out, session.cluster)
        (print_plan if dry_run else print_run)(session.out, outcomes)
    converged = outcomes and all(o.status in ("changed", "unchanged") for o in outcomes)
    if session.cluster is not None and not dry_run:
        if converged:
            from .deploy import deploy

            session.human.print(
                f"deploying trains-server: kubectl apply -k {session.kustomize_dir}",
                highlight=False,
            )
            deploy(
                session.kubectl,
                session.cluster,
                wait=wait,
                on_line=lambda line: session.human.print(
                    f"  {line}", highlight=False, markup=False
                ),
            )
            print_deploy(session.human, session.cluster)
        else:
            session.cluster.error = "not deployed: not every node converged"
            session.human.print("not deploying: not every node converged", highlight=False)
    session.finish("plan" if dry_run else "run", outcomes, session.exit_code(outcomes))


def run_app() -> int:
    """The CLI; its exit code."""
    try:
        app()
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            typer.echo(exit_.code, err=True)
            return 1
        return exit_.code or EXIT_OK
    except NodePrepError as err:  # pragma: no cover - commands guard themselves
        typer.echo(f"trains-nodeprep: error: {err}", err=True)
        return EXIT_USAGE
    return EXIT_OK


def main() -> None:
    """The console script. It leaves as a normal exit does (exit handlers, such as the temporary
    directories' cleanup, then flushed output) but without tearing down the interpreter's ~400
    modules one by one, which would add 40-60 ms to every command."""
    code = run_app()
    atexit._run_exitfuncs()  # what sys.exit would run: weakref finalizers (TemporaryDirectory), ...
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (`| head`): nothing more can reach it
        pass
    os._exit(code)
