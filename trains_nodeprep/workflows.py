"""The command flows: check, plan and run (pre-checks, the nodes, the deploy gate), restore, label.

The CLI (`cli/`) only turns options into the arguments below and an exit code into the
process's; what a command does happens here. No typer: each flow returns its exit code, and the
one question a flow may ask (may docker or containerd restart?) goes through a function the
caller passes in. Heavy modules (paramiko, rich, yaml, the cluster code) are imported where they
are first needed, so that `--help` and a JSON run load only what they use.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EXIT_CONNECTION, EXIT_DRIFT, EXIT_OK, EXIT_USAGE, NodePrepError, UsageError

if TYPE_CHECKING:
    from tempfile import TemporaryDirectory

    from rich.console import Console

    from .cluster.deploy import ClusterOutcome
    from .cluster.kubectl import Kubectl
    from .cluster.restarts import PodRestart
    from .engine.converge import NodeOutcome
    from .engine.facts import NodeFacts
    from .engine.types import Plan
    from .model import DesiredState
    from .node import LocalNode, SSHNode, Target
    from .report import Progress

    Node = LocalNode | SSHNode

# The defaults of the options, here once: the CLI shows them in --help, the flows fall back on them.
DEFAULT_SELECTOR = "app=trains"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_PARALLEL = 64
DEFAULT_RESTART_TIMEOUT = 60
DEFAULT_KEEP_BACKUPS = 5


class Output(StrEnum):
    """text: for people, on stdout. json: the report on stdout, anything human on stderr."""

    TEXT = "text"
    JSON = "json"


class Command(StrEnum):
    """The node commands, as the JSON report names them ("command")."""

    CHECK = "check"
    PLAN = "plan"
    RUN = "run"
    RESTORE = "restore"


# ask(question, on_stderr) -> the user's yes/no; only called when stdin is a terminal
Ask = Callable[[str, bool], bool]


@dataclass(frozen=True, kw_only=True)
class NodeArgs:
    """Which nodes, how to reach them, what state they should have, how to report."""

    hosts: Sequence[str] | None = None
    hosts_file: Path | None = None
    local: bool = False
    playbook: Path | None = None
    fixed_users: Path | None = None
    user: str | None = None
    port: int | None = None
    identity: Sequence[Path] | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    accept_new: bool = False
    ask_sudo: bool = False
    parallel: int = DEFAULT_PARALLEL
    output: Output = Output.TEXT
    debug: bool = False


@dataclass(frozen=True, kw_only=True)
class ClusterArgs:
    """The cluster: whether to use it, where it is, trains-server's node, what to deploy."""

    enabled: bool | None = None  # None: when a kubeconfig is found
    kubeconfig: Path | None = None
    context: str | None = None
    selector: str = DEFAULT_SELECTOR
    kustomize: Path | None = None
    image_version: str | None = None
    allow_many: bool = False
    domain: str | None = None  # plan, run: also an Ingress for app.D, api.D, files.D
    ingress_class: str | None = None
    tls_secret: str | None = None
    replace: bool = False  # delete and recreate the objects whose immutable fields change


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How `run` changes a node (and `plan`, which is a dry run)."""

    yes: bool = False
    dry_run: bool = False
    restart_timeout: int = DEFAULT_RESTART_TIMEOUT
    keep_backups: int = DEFAULT_KEEP_BACKUPS
    wait: int | None = None  # seconds to wait for the Deployments after `apply -k`
    show_scripts: bool = False  # a dry run: also print the scripts as they would be sent


@dataclass(frozen=True, kw_only=True)
class RestoreOptions:
    only_path: str | None = None  # one file's newest backup instead of the whole newest set
    yes: bool = False
    restart_timeout: int = DEFAULT_RESTART_TIMEOUT
    keep_backups: int = DEFAULT_KEEP_BACKUPS


class Session:
    """What every node command needs: the playbook, the nodes, the cluster, the consoles."""

    def __init__(self, args: NodeArgs, cluster: ClusterArgs) -> None:
        from .playbook import load_playbook

        self.args = args
        self.output = args.output
        self.hosts = list(args.hosts or [])
        if args.hosts_file:
            self.hosts += _read_hosts_file(args.hosts_file)
        if args.local and self.hosts:
            raise UsageError(
                "--local and --host exclude each other: use --local on the node itself,"
                " --host from elsewhere"
            )
        self.desired: DesiredState = load_playbook(args.playbook)
        if args.fixed_users:
            import dataclasses

            from .server_config import load_fixed_users

            self.desired = dataclasses.replace(
                self.desired,
                server_files=self.desired.server_files + (load_fixed_users(args.fixed_users),),
            )
        self.sudo_password = self._sudo_password(args.ask_sudo)
        self.kubectl: Kubectl | None = None
        self.cluster_args = cluster
        self.cluster: ClusterOutcome | None = None
        self.workdir: TemporaryDirectory[str] | None = None
        self.tree_label = ""
        from .cluster.ingress import ingress_options

        self.ingress = ingress_options(cluster.domain, cluster.ingress_class, cluster.tls_secret)
        enabled = cluster.enabled
        if enabled is None:
            from .cluster.kubectl import kubeconfig_available

            enabled = kubeconfig_available(str(cluster.kubeconfig) if cluster.kubeconfig else None)
        if enabled:
            import tempfile

            from .cluster.kubectl import (
                Kubectl,
                bundled_kustomization,
                with_image_version,
                with_ingress,
            )

            self.kubectl = Kubectl(
                str(cluster.kubeconfig) if cluster.kubeconfig else None,
                cluster.context,
                namespace=self.desired.deploy.namespace,
            )
            self.workdir = tempfile.TemporaryDirectory(prefix="trains-nodeprep-")
            source = cluster.kustomize or bundled_kustomization()
            if not source.is_dir():
                raise UsageError(f"--kustomize {source}: not a directory with a kustomization.yaml")
            self.kustomize_dir = with_ingress(
                with_image_version(source, cluster.image_version, self.workdir.name),
                self.desired.deploy,
                self.ingress,
                self.workdir.name,
            )
            # for people: the tree they chose, not the temporary wrapper over it
            self.tree_label = str(source) + "".join(
                f" {option} {value}"
                for option, value in (
                    ("--image-version", cluster.image_version),
                    ("--domain", cluster.domain),
                )
                if value
            )
        elif self.ingress is not None:
            raise UsageError(
                "--domain adds an Ingress to trains-server's deploy: give a --kubeconfig"
                " (or drop --no-deploy / --no-cluster)"
            )
        elif not args.local and not self.hosts:
            raise UsageError(
                "no nodes given: pass --host [user@]NODE (repeatable), --local, or a --kubeconfig"
                " to find the node labeled app=trains"
            )
        self.nodes: list[Node] = self._nodes_from_options()

    def _nodes_from_options(self) -> list[Node]:
        if self.args.local:
            from .node import LocalNode

            return [LocalNode(self.sudo_password)]
        if not self.hosts:
            return []  # found in the cluster by precheck()
        from .node import parse_target

        targets = [parse_target(h) for h in self.hosts]
        labels = [t.label for t in targets]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise UsageError(f"--host {duplicates[0]} is given twice: one run per node at a time")
        return self._ssh_nodes(targets)

    def _ssh_nodes(self, targets: list[Target]) -> list[Node]:
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

    def precheck(self, *, diff: bool = False) -> None:
        """Cluster pre-checks; without --host/--local, the labeled nodes become the targets.
        `diff`: also read the tree's live objects, for plan's cluster diff."""
        if self.kubectl is None:
            return
        from .cluster.deploy import precheck
        from .node import Target

        targets = [node.names() for node in self.nodes] if self.nodes else None
        self.cluster = precheck(
            self.kubectl,
            selector=self.cluster_args.selector,
            kustomize_dir=self.kustomize_dir,
            targets=targets,
            allow_many=self.cluster_args.allow_many,
            spec=self.desired.deploy,
            replace=self.cluster_args.replace,
            live=diff,
        )
        self.cluster.tree_label = self.tree_label
        self._access(self.cluster)
        if not self.nodes and self.cluster.facts and self.cluster.facts.labeled_nodes:
            self.nodes = self._ssh_nodes(
                [Target(host=node.address) for node in self.cluster.facts.labeled_nodes]
            )

    def _access(self, cluster: ClusterOutcome) -> None:
        """With --domain, the pre-check that the Ingress's backends are in the tree; how users
        will reach trains-server (the run summary prints it)."""
        from .cluster.ingress import backends_requirement, make_access

        facts = cluster.facts
        if self.ingress is not None and facts is not None and facts.tree is not None:
            cluster.requirements.append(backends_requirement(facts.tree, self.desired.deploy))
        node = facts.labeled_nodes[0].address if facts and facts.labeled_nodes else None
        cluster.access = make_access(self.desired.deploy, node, self.ingress)

    # Made on first use: a JSON run with nothing human to say never imports rich (~35 ms).
    @functools.cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console(highlight=False)

    @functools.cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False)

    @property
    def human(self) -> Console:
        """Human text goes to stdout unless stdout carries JSON; then all of it goes to stderr."""
        return self.err if self.output == Output.JSON else self.out

    def progress(self, prompts: bool = False) -> Progress:
        """Live per-node states in a terminal (unless a prompt may come), else lines on stderr."""
        from .report import Progress

        live = self.output == Output.TEXT and not prompts and self.out.is_terminal
        return Progress(sys.stderr, live_console=self.out if live else None)

    def exit_code(self, outcomes: list[NodeOutcome]) -> int:
        from .engine.converge import overall_exit_code

        code = overall_exit_code(outcomes) if outcomes else EXIT_OK
        if self.cluster is not None and not self.cluster.ok and code != EXIT_CONNECTION:
            code = EXIT_DRIFT
        if not outcomes and self.cluster is None:
            code = EXIT_USAGE
        return code

    def finish(self, command: Command, outcomes: list[NodeOutcome], code: int) -> int:
        """The JSON report, the nodes' tracebacks with --debug; returns the command's exit code."""
        if self.output == Output.JSON:
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
        return code


def check(
    nodes: NodeArgs,
    cluster: ClusterArgs,
    *,
    junit_xml: Path | None = None,
    pods: bool | None = None,
) -> int:
    """Read-only: every node's requirements and, beside them, the cluster's (and its pods')."""
    session = Session(nodes, cluster)
    from .engine.converge import check_node
    from .engine.parallel import for_each_node
    from .report import print_check, print_cluster, render_junit

    kubectl = session.kubectl
    if pods and kubectl is None:
        raise UsageError(
            "--pods reads the pods through kubectl: give a --kubeconfig (or drop --no-cluster)"
        )
    targets_given = bool(session.nodes)
    if not targets_given:
        session.precheck()  # the labeled nodes become the targets

    def cluster_checks(kubectl: Kubectl) -> None:
        if targets_given:
            session.precheck()
        cluster = session.cluster
        reachable = (
            cluster is not None
            and cluster.facts is not None
            and cluster.facts.server_version is not None
        )
        if cluster is not None and reachable and pods is not False:
            from .cluster.deploy import pod_check

            pod_check(kubectl, cluster, session.desired, required=bool(pods))
        if cluster is not None and reachable and cluster.facts is not None:
            from .cluster.health import service_health

            facts = cluster.facts
            found, notes = service_health(
                kubectl,
                session.desired.deploy,
                facts.labeled_nodes[0] if facts.labeled_nodes else None,
                facts.tree,
                facts.services,
            )
            cluster.requirements += found
            cluster.notes += notes

    # Read-only on both sides: kubectl's calls and the nodes' SSH commands go side by side.
    with _alongside(functools.partial(cluster_checks, kubectl) if kubectl is not None else None):
        with session.progress() as progress:
            outcomes = for_each_node(
                session.nodes,
                lambda node: check_node(node, session.desired),
                nodes.parallel,
                progress,
            )
    code = session.exit_code(outcomes)
    if nodes.output == Output.TEXT:
        print_cluster(session.out, session.cluster)
        print_check(session.out, outcomes)
    if junit_xml:
        try:
            junit_xml.write_text(render_junit(outcomes, session.cluster), encoding="utf-8")
        except OSError as err:
            raise UsageError(f"cannot write --junit-xml {junit_xml}: {err.strerror}") from err
    return session.finish(Command.CHECK, outcomes, code)


def plan(nodes: NodeArgs, cluster: ClusterArgs, *, show_scripts: bool = False) -> int:
    """What `run` would do, changing nothing: a dry run never asks, restarts or deploys."""
    options = RunOptions(dry_run=True, show_scripts=show_scripts)
    return run(nodes, cluster, options, ask=_never_asked)


def run(nodes: NodeArgs, cluster: ClusterArgs, options: RunOptions, *, ask: Ask) -> int:
    """Cluster pre-checks, then every node converged, then (only then) the deploy."""
    session = Session(nodes, cluster)
    from .engine.converge import run_node
    from .engine.parallel import for_each_node
    from .engine.types import NodeStatus
    from .report import print_cluster, print_cluster_changes, print_plan, print_run

    command = Command.PLAN if options.dry_run else Command.RUN
    session.precheck(diff=options.dry_run)
    if session.cluster is not None and not session.cluster.ready:
        # Refuse before any node is touched.
        if nodes.output == Output.TEXT:
            print_cluster(session.out, session.cluster)
            if options.dry_run:
                print_cluster_changes(session.out, session.cluster)
            session.out.print(
                "refused: the cluster pre-checks failed; no node was touched", highlight=False
            )
        return session.finish(command, [], EXIT_DRIFT)
    confirm = _confirmer(session, yes=options.yes, ask=ask)
    with session.progress(prompts=not options.yes and not options.dry_run) as progress:
        outcomes = for_each_node(
            session.nodes,
            lambda node: run_node(
                node,
                session.desired,
                confirm=confirm,
                dry_run=options.dry_run,
                restart_timeout=options.restart_timeout,
                keep_backups=options.keep_backups,
            ),
            nodes.parallel,
            progress,
        )
    if nodes.output == Output.TEXT:
        print_cluster(session.out, session.cluster)
        if options.dry_run:
            print_cluster_changes(session.out, session.cluster)
        (print_plan if options.dry_run else print_run)(session.out, outcomes)
    if options.dry_run and options.show_scripts:
        _print_scripts(session, outcomes, options)
    cluster_ = session.cluster
    if cluster_ is not None and session.kubectl is not None:
        if options.dry_run:
            if _converged(outcomes, (NodeStatus.PLANNED, NodeStatus.UNCHANGED)):
                _pod_restarts(session, cluster_, session.kubectl, options, ask=_never_asked)
            from .report import print_access

            print_access(session.human, cluster_.access, planned=True)
        else:
            _deploy_once_converged(session, cluster_, session.kubectl, outcomes, options.wait)
            if cluster_.deployed:
                _pod_restarts(session, cluster_, session.kubectl, options, ask=ask)
    return session.finish(command, outcomes, session.exit_code(outcomes))


def _converged(outcomes: list[NodeOutcome], statuses: Sequence[str]) -> bool:
    return bool(outcomes) and all(o.status in statuses for o in outcomes)


def _pod_restarts(
    session: Session, cluster: ClusterOutcome, kubectl: Kubectl, options: RunOptions, *, ask: Ask
) -> None:
    """Restart the workloads whose Elasticsearch pods still run with limits below the
    playbook's (they started before the node was prepared): asked like a runtime restart;
    a dry run only lists them. kubectl calls: see cluster.deploy.stale_pod_restarts."""
    from .cluster.deploy import restart_workload, stale_pod_restarts
    from .report import print_pod_restarts

    cluster.pod_restarts, notes = stale_pod_restarts(kubectl, session.desired)
    cluster.notes += notes
    confirm = _pod_restart_confirmer(session, yes=options.yes, ask=ask)
    for restart in cluster.pod_restarts if not options.dry_run else ():
        if not restart.workload.restartable:
            restart.error = f"not restarted: {restart.manual}"
        elif not confirm(restart):
            restart.error = (
                f"not restarted (not confirmed): run `{restart.command}`, or rerun with --yes;"
                " check --pods fails until then"
            )
        else:
            session.human.print(f"restarting {restart.workload.ref}", highlight=False)
            restart_workload(kubectl, restart, session.desired, wait=options.wait)
    for note in notes:
        session.human.print(f"  note   {note}", highlight=False, soft_wrap=True)
    print_pod_restarts(session.human, cluster.pod_restarts, dry_run=options.dry_run)


def _print_scripts(session: Session, outcomes: list[NodeOutcome], options: RunOptions) -> None:
    """The facts script every node gets, and the apply script each node's plan would send."""
    from .engine.converge import backup_stamp
    from .remote.scripts import render_apply_script, render_facts_script
    from .report import print_scripts

    facts_script = render_facts_script(session.desired)
    applies = {
        outcome.label: render_apply_script(
            outcome.plan,
            init_system=outcome.facts.init_system,
            stamp=backup_stamp(),
            restart_timeout=options.restart_timeout,
            keep_backups=options.keep_backups,
            facts_script=facts_script,
        )
        for outcome in outcomes
        if outcome.plan is not None
        and outcome.facts is not None
        and not outcome.plan.empty
        and not outcome.plan.blockers
    }
    print_scripts(session.human, facts_script, applies)


def _deploy_once_converged(
    session: Session,
    cluster: ClusterOutcome,
    kubectl: Kubectl,
    outcomes: list[NodeOutcome],
    wait: int | None,
) -> None:
    """The deploy gate: `kubectl apply -k` only after every node converged."""
    from .engine.types import NodeStatus

    if not _converged(outcomes, (NodeStatus.CHANGED, NodeStatus.UNCHANGED)):
        cluster.error = "not deployed: not every node converged"
        session.human.print("not deploying: not every node converged", highlight=False)
        return
    import time

    from .cluster.deploy import deploy
    from .report import print_access, print_deploy

    session.human.print(
        f"deploying trains-server: kubectl apply -k {session.tree_label}", highlight=False
    )
    started = time.monotonic()
    deploy(
        kubectl,
        cluster,
        session.desired.deploy,
        wait=wait,
        on_line=lambda line: session.human.print(f"  {line}", highlight=False, markup=False),
    )
    if wait and cluster.deployed and not cluster.rollout_failures:
        _await_health(session, cluster, kubectl, deadline=started + wait)
    print_deploy(session.human, cluster)
    if cluster.deployed:
        print_access(session.human, cluster.access)


def _await_health(
    session: Session, cluster: ClusterOutcome, kubectl: Kubectl, *, deadline: float
) -> None:
    """run --wait: after the rollout, ask trains-server as check does (asking again what does
    not answer yet, until the --wait time is up); only the URLs that answer are printed."""
    from .cluster.health import await_service_health

    facts = cluster.facts
    cluster.health, notes = await_service_health(
        kubectl,
        session.desired.deploy,
        facts.labeled_nodes[0] if facts and facts.labeled_nodes else None,
        facts.tree if facts else None,
        deadline,
    )
    cluster.notes += notes
    for note in notes:
        session.human.print(f"  note   {note}", highlight=False, soft_wrap=True)
    answered = {req.id.removeprefix("service.") for req in cluster.health if req.ok}
    cluster.urls = {name: url for name, url in cluster.urls.items() if name in answered}


def restore(nodes: NodeArgs, options: RestoreOptions, *, ask: Ask) -> int:
    """Put back the newest backup set (or one file's) on each node, then verify."""
    if not nodes.hosts and not nodes.hosts_file and not nodes.local:
        raise UsageError("restore needs --host [user@]NODE, --hosts-file or --local")
    session = Session(nodes, ClusterArgs(enabled=False))
    from .engine.converge import restore_node
    from .engine.parallel import for_each_node
    from .report import print_run

    confirm = _confirmer(session, yes=options.yes, ask=ask)
    with session.progress(prompts=not options.yes) as progress:
        outcomes = for_each_node(
            session.nodes,
            lambda node: restore_node(
                node,
                session.desired,
                confirm=confirm,
                only_path=options.only_path,
                restart_timeout=options.restart_timeout,
                keep_backups=options.keep_backups,
            ),
            nodes.parallel,
            progress,
        )
    code = session.exit_code(outcomes)
    if nodes.output == Output.TEXT:
        print_run(session.out, outcomes)
    return session.finish(Command.RESTORE, outcomes, code)


def label(
    node: str,
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    selector: str = DEFAULT_SELECTOR,
) -> int:
    """Label NODE with the selector, refusing when another node already carries it."""
    from .cluster.kubectl import Kubectl, parse_nodes

    kubectl = Kubectl(str(kubeconfig) if kubeconfig else None, context)
    try:
        done = kubectl.run("get", "nodes", "-l", selector, "-o", "json")
        if done.returncode != 0:
            raise NodePrepError(
                f"cannot list nodes: {done.stderr.strip().splitlines()[-1:] or ['no answer']};"
                " check --kubeconfig/--context"
            )
        others = [n.name for n in parse_nodes(done.stdout) if n.name != node]
        if others:
            raise NodePrepError(
                f"{', '.join(others)} already carries {selector}; trains-server keeps its data on"
                f" one node: remove it there first"
                f" (kubectl label node {others[0]} {selector.split('=')[0]}-)"
            )
        kubectl.label(node, selector)
        print(f"labeled {node} {selector}", flush=True)
    finally:
        kubectl.close()
    return EXIT_OK


def _confirmer(session: Session, *, yes: bool, ask: Ask) -> Callable[[str, Plan, NodeFacts], bool]:
    """Ask before a docker or containerd restart: say why, then --yes, a terminal prompt, or no."""
    prompt_lock = threading.Lock()
    interactive = sys.stdin.isatty()

    def confirm(label: str, node_plan: Plan, facts: NodeFacts) -> bool:
        from .report import restart_warnings

        with prompt_lock:  # nodes run in threads: one warning and question at a time
            for warning in restart_warnings(node_plan):
                session.human.print(f"{label}: {warning}", highlight=False)
            if yes:
                return True
            if not interactive:
                return False
            return ask(
                f"Restart {' and '.join(node_plan.restarts)} on {label}?",
                session.output == Output.JSON,
            )

    return confirm


def _pod_restart_confirmer(
    session: Session, *, yes: bool, ask: Ask
) -> Callable[[PodRestart], bool]:
    """Ask before a rollout restart, as before a runtime restart: say what it does, then
    --yes, a terminal prompt, or no."""
    interactive = sys.stdin.isatty()

    def confirm(restart: PodRestart) -> bool:
        where = f"{restart.workload.ref} in namespace {restart.workload.namespace}"
        session.human.print(
            f"cluster: {where}: {restart.reason}; a rollout restart replaces its pods"
            " (Elasticsearch is unavailable until the new pod runs)",
            highlight=False,
        )
        if yes:
            return True
        if not interactive:
            return False
        return ask(f"Restart {where}?", session.output == Output.JSON)

    return confirm


def _never_asked(question: str, on_stderr: bool) -> bool:
    return False  # a dry run applies nothing, so it has nothing to confirm


@contextlib.contextmanager
def _alongside(work: Callable[[], None] | None) -> Iterator[None]:
    """Runs `work` in a thread while the block runs; waits for it after, and raises its error."""
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
