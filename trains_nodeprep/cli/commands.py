"""The commands: each turns its options into the flow's arguments, by keyword, and runs the flow.

Nothing is decided here. What a command does is in workflows.py; its options and their help
are in options.py; the error guard is in guard.py.
"""

from __future__ import annotations

import typer

from .. import workflows
from ..workflows import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_KEEP_BACKUPS,
    DEFAULT_PARALLEL,
    DEFAULT_RESTART_TIMEOUT,
    DEFAULT_SELECTOR,
    ClusterArgs,
    Command,
    NodeArgs,
    Output,
    RestoreOptions,
    RunOptions,
)
from .guard import error_guard
from .options import (
    AcceptNew,
    AllowMany,
    AskSudo,
    ClusterOpt,
    ConnectTimeout,
    Context,
    Debug,
    Deploy,
    Domain,
    DryRun,
    FixedUsers,
    Hosts,
    HostsFile,
    Identity,
    ImageVersion,
    IngressClass,
    JunitXml,
    KeepBackups,
    Kubeconfig,
    Kustomize,
    Local,
    NodeName,
    OnlyFile,
    OutputOpt,
    Parallel,
    PlaybookOpt,
    Pods,
    Port,
    Replace,
    RestartTimeout,
    Selector,
    ShowScripts,
    TlsSecret,
    User,
    Wait,
    Yes,
)


def check(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = DEFAULT_PARALLEL,
    output: OutputOpt = Output.TEXT,
    junit_xml: JunitXml = None,
    cluster: ClusterOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = DEFAULT_SELECTOR,
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    image_version: ImageVersion = None,
    fixed_users: FixedUsers = None,
    pods: Pods = None,
    debug: Debug = False,
) -> None:
    """Report, read-only, whether each node (and the cluster) is ready: exit 0 if all are, else 1.

    One line per requirement per node: expected, actual, ok/drift. With a cluster, also whether
    the server accepts the tree (a server-side dry run, stored nowhere) and what the running
    Elasticsearch pod really got. Made for a pre-deploy CI step.
    """
    with error_guard(Command.CHECK, debug=debug):
        code = workflows.check(
            NodeArgs(
                hosts=host,
                hosts_file=hosts_file,
                local=local,
                playbook=playbook,
                fixed_users=fixed_users,
                user=user,
                port=port,
                identity=identity,
                connect_timeout=connect_timeout,
                accept_new=accept_new_host_keys,
                ask_sudo=ask_sudo_password,
                parallel=parallel,
                output=output,
                debug=debug,
            ),
            ClusterArgs(
                enabled=cluster,
                kubeconfig=kubeconfig,
                context=context,
                selector=selector,
                kustomize=kustomize,
                image_version=image_version,
                allow_many=allow_many_labeled,
            ),
            junit_xml=junit_xml,
            pods=pods,
        )
    raise typer.Exit(code)


def plan(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = DEFAULT_PARALLEL,
    output: OutputOpt = Output.TEXT,
    cluster: ClusterOpt = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = DEFAULT_SELECTOR,
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    image_version: ImageVersion = None,
    domain: Domain = None,
    ingress_class: IngressClass = None,
    tls_secret: TlsSecret = None,
    replace: Replace = False,
    fixed_users: FixedUsers = None,
    show_scripts: ShowScripts = False,
    debug: Debug = False,
) -> None:
    """Show what `run` would change, as unified diffs and commands. Changes nothing."""
    with error_guard(Command.PLAN, debug=debug):
        code = workflows.plan(
            NodeArgs(
                hosts=host,
                hosts_file=hosts_file,
                local=local,
                playbook=playbook,
                fixed_users=fixed_users,
                user=user,
                port=port,
                identity=identity,
                connect_timeout=connect_timeout,
                accept_new=accept_new_host_keys,
                ask_sudo=ask_sudo_password,
                parallel=parallel,
                output=output,
                debug=debug,
            ),
            ClusterArgs(
                enabled=cluster,
                kubeconfig=kubeconfig,
                context=context,
                selector=selector,
                kustomize=kustomize,
                image_version=image_version,
                allow_many=allow_many_labeled,
                domain=domain,
                ingress_class=ingress_class,
                tls_secret=tls_secret,
                replace=replace,
            ),
            show_scripts=show_scripts,
        )
    raise typer.Exit(code)


def run(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = DEFAULT_PARALLEL,
    output: OutputOpt = Output.TEXT,
    yes: Yes = False,
    dry_run: DryRun = False,
    restart_timeout: RestartTimeout = DEFAULT_RESTART_TIMEOUT,
    keep_backups: KeepBackups = DEFAULT_KEEP_BACKUPS,
    deploy: Deploy = None,
    wait: Wait = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = DEFAULT_SELECTOR,
    allow_many_labeled: AllowMany = False,
    kustomize: Kustomize = None,
    image_version: ImageVersion = None,
    domain: Domain = None,
    ingress_class: IngressClass = None,
    tls_secret: TlsSecret = None,
    replace: Replace = False,
    fixed_users: FixedUsers = None,
    debug: Debug = False,
) -> None:
    """Bring each node to the playbook's state, verify it, then deploy trains-server.

    Cluster pre-checks run before any node is touched. Files are replaced atomically with a
    timestamped backup beside them. The limits go where the pods' runtime reads them: docker,
    containerd, or the own containerd of k3s, RKE2 or MicroK8s. A runtime restarts only when
    its config changed and it runs (a stopped one stays stopped), after a warning (in a
    terminal it asks; --yes confirms). kubectl apply -k runs only after every node converged.
    An Elasticsearch pod that still runs with limits below the playbook's (it started before)
    has its workload restarted (kubectl rollout restart), asked the same way. A second run
    changes nothing.
    """
    with error_guard(Command.PLAN if dry_run else Command.RUN, debug=debug):
        code = workflows.run(
            NodeArgs(
                hosts=host,
                hosts_file=hosts_file,
                local=local,
                playbook=playbook,
                fixed_users=fixed_users,
                user=user,
                port=port,
                identity=identity,
                connect_timeout=connect_timeout,
                accept_new=accept_new_host_keys,
                ask_sudo=ask_sudo_password,
                parallel=parallel,
                output=output,
                debug=debug,
            ),
            ClusterArgs(
                enabled=deploy,
                kubeconfig=kubeconfig,
                context=context,
                selector=selector,
                kustomize=kustomize,
                image_version=image_version,
                allow_many=allow_many_labeled,
                domain=domain,
                ingress_class=ingress_class,
                tls_secret=tls_secret,
                replace=replace,
            ),
            RunOptions(
                yes=yes,
                dry_run=dry_run,
                restart_timeout=restart_timeout,
                keep_backups=keep_backups,
                wait=wait,
            ),
            ask=ask_in_terminal,
        )
    raise typer.Exit(code)


def restore(
    host: Hosts = None,
    hosts_file: HostsFile = None,
    local: Local = False,
    playbook: PlaybookOpt = None,
    user: User = None,
    port: Port = None,
    identity: Identity = None,
    connect_timeout: ConnectTimeout = DEFAULT_CONNECT_TIMEOUT,
    accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False,
    parallel: Parallel = DEFAULT_PARALLEL,
    output: OutputOpt = Output.TEXT,
    file: OnlyFile = None,
    yes: Yes = False,
    restart_timeout: RestartTimeout = DEFAULT_RESTART_TIMEOUT,
    keep_backups: KeepBackups = DEFAULT_KEEP_BACKUPS,
    debug: Debug = False,
) -> None:
    """Put back the files that the last change on each node replaced, from their backups.

    Restores every file backed up at the newest backup time (a file the change created is
    removed), restarts the runtime if one of its files changed and it runs, and verifies. The
    restore keeps a backup too: restoring again undoes it. Kernel values already set are not
    lowered.
    """
    with error_guard(Command.RESTORE, debug=debug):
        code = workflows.restore(
            NodeArgs(
                hosts=host,
                hosts_file=hosts_file,
                local=local,
                playbook=playbook,
                user=user,
                port=port,
                identity=identity,
                connect_timeout=connect_timeout,
                accept_new=accept_new_host_keys,
                ask_sudo=ask_sudo_password,
                parallel=parallel,
                output=output,
                debug=debug,
            ),
            RestoreOptions(
                only_path=file,
                yes=yes,
                restart_timeout=restart_timeout,
                keep_backups=keep_backups,
            ),
            ask=ask_in_terminal,
        )
    raise typer.Exit(code)


def label(
    node: NodeName,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    selector: Selector = DEFAULT_SELECTOR,
    debug: Debug = False,
) -> None:
    """Label NODE app=trains (trains-server's node), refusing when another node has the label."""
    with error_guard("label", debug=debug):
        code = workflows.label(node, kubeconfig=kubeconfig, context=context, selector=selector)
    raise typer.Exit(code)


def ask_in_terminal(question: str, on_stderr: bool) -> bool:
    """The restart question, on the terminal (stderr when stdout carries JSON); no by default."""
    return typer.confirm(question, default=False, err=on_stderr)
