"""Every option of the commands, declared once, with a --help text that says what it is for.

A command takes `host: Hosts = None` and gets the same flag, short name and help everywhere.
The defaults live in workflows.py (DEFAULT_*), so the flows and --help agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..workflows import Output

Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        "-H",
        help="Node as \\[user@]host[:port] or an ~/.ssh/config alias. Repeat for more nodes."
        " Default: the cluster's node labeled app=trains.",
        show_default=False,
    ),
]
HostsFile = Annotated[
    Path | None,
    typer.Option(
        "--hosts-file",
        help="Nodes from FILE: one \\[user@]host[:port] per line, # comments. Adds to --host.",
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
FixedUsers = Annotated[
    Path | None,
    typer.Option(
        "--fixed-users",
        help="Write /opt/trains/config/apiserver.conf (0600) with trains-server's fixed users"
        " from FILE: one username:password:Full Name per line. Passwords are never shown.",
        show_default=False,
    ),
]
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="SSH login user for nodes given without user@"
        " (default: ~/.ssh/config, else your local user).",
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
        help="Prompt once for the sudo password of a non-root login."
        " For CI, set TRAINS_NODEPREP_SUDO_PASSWORD instead.",
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
        "--output",
        "-o",
        help="text for people, json for machines (a stable, documented shape on stdout;"
        " human text then goes to stderr).",
    ),
]
Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        help="Show tracebacks for errors (ours and internal ones) instead of only their one line.",
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        "-y",
        help="Confirm runtime restarts without asking (needed when not in a terminal). A docker"
        " restart, or MicroK8s's stop and start, restarts every container on the node;"
        " containers survive a restart of containerd, k3s or RKE2 but keep their old limits"
        " until they are recreated. run: also confirms the rollout restart of a workload whose"
        " Elasticsearch pod still runs with limits below the playbook's.",
    ),
]
RestartTimeout = Annotated[
    int,
    typer.Option(
        "--restart-timeout",
        min=5,
        max=600,
        help="Seconds the runtime (docker, containerd, k3s, RKE2, MicroK8s) may take to answer"
        " after a restart before the change"
        " is rolled back and the old config restarted.",
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
        help="Accept more than one labeled node"
        " (the data of a redeploy may then be on another node).",
    ),
]
Kustomize = Annotated[
    Path | None,
    typer.Option(
        "--kustomize",
        help="Your own kustomize tree to apply instead of the bundled one"
        " (e.g. a trains-server-k8s overlay).",
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
Domain = Annotated[
    str | None,
    typer.Option(
        "--domain",
        help="Also deploy an Ingress (networking.k8s.io/v1) in trains-server's namespace: app.D"
        " to the web server, api.D to the API server, files.D to the file server (upload size"
        " limit lifted for ingress-nginx). The summary lists the DNS records to create.",
        show_default=False,
    ),
]
IngressClass = Annotated[
    str | None,
    typer.Option(
        "--ingress-class",
        help="spec.ingressClassName of the --domain Ingress, e.g. nginx"
        " (default: the cluster's default IngressClass).",
        show_default=False,
    ),
]
TlsSecret = Annotated[
    str | None,
    typer.Option(
        "--tls-secret",
        help="Serve the --domain hosts over HTTPS with this TLS Secret (in trains-server's"
        " namespace; a certificate for app.D, api.D and files.D).",
        show_default=False,
    ),
]
Replace = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Delete and create again the objects whose immutable fields the tree changes"
        " (a Deployment's selector, a Service's clusterIP): kubectl apply refuses those and"
        " applies the rest. Never a Namespace, PersistentVolume or claim; the node's data stays.",
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

# check only
JunitXml = Annotated[
    Path | None,
    typer.Option(
        "--junit-xml",
        help="Also write JUnit XML: one test case per requirement per node.",
        show_default=False,
    ),
]
Pods = Annotated[
    bool | None,
    typer.Option(
        "--pods/--no-pods",
        help="Read the limits and vm.max_map_count that each running Elasticsearch pod really"
        " sees (kubectl exec ... cat /proc/1/limits). Default: when the cluster is checked and"
        " such a pod runs; --pods also fails when none runs.",
        show_default=False,
    ),
]

# plan only
ShowScripts = Annotated[
    bool,
    typer.Option(
        "--show-scripts",
        help="Also print the remote scripts exactly as they would be sent: the read-only facts"
        " script, and each changing node's apply script (secret contents travel on stdin, never"
        " in a script).",
    ),
]

# run only
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Same as the plan command: show diffs, change nothing.")
]
Deploy = Annotated[
    bool | None,
    typer.Option(
        "--deploy/--no-deploy",
        help="After the nodes converge, kubectl apply -k the server (default: when a kubeconfig"
        " is found). --no-deploy also skips the cluster pre-checks.",
        show_default=False,
    ),
]
Wait = Annotated[
    int | None,
    typer.Option(
        "--wait",
        min=1,
        help="After deploying, wait up to SECONDS for every Deployment to become available"
        " (and for a rollout restart to finish; then the new pod's limits are read again).",
        show_default=False,
    ),
]

# restore only
OnlyFile = Annotated[
    str | None,
    typer.Option("--file", help="Restore only this file's newest backup.", show_default=False),
]

# label only
NodeName = Annotated[str, typer.Argument(help="Kubernetes node name to label.")]
