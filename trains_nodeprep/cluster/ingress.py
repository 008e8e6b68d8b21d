"""Pure: how users reach trains-server. The Ingress that `--domain` adds to the tree (one
`networking.k8s.io/v1` Ingress: `app.D`, `api.D`, `files.D` to the web, API and file servers'
Services), the wrapper kustomization that adds it, and what the run summary says to set up: the
three DNS records and, for a load balancer instead of an Ingress, its mapping to the NodePorts.

Nothing here runs kubectl or writes a file (kubectl.with_ingress writes the wrapper).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..engine.types import Requirement
from ..errors import UsageError
from ..model import DeploySpec, Endpoint
from .tree import Tree

INGRESS_NAME = "trains-server"
# ingress-nginx refuses request bodies above 1 MiB by default (413 Request Entity Too Large):
# uploads of artifacts and models to the file server would fail. "0" lifts the limit.
BODY_SIZE_ANNOTATION = "nginx.ingress.kubernetes.io/proxy-body-size"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")  # RFC 1123, as Kubernetes checks names
_MAX_NAME = 253


@dataclass(frozen=True)
class IngressOptions:
    """--domain, --ingress-class, --tls-secret (validated: see ingress_options)."""

    domain: str
    ingress_class: str | None = None
    tls_secret: str | None = None


def ingress_options(
    domain: str | None, ingress_class: str | None, tls_secret: str | None
) -> IngressOptions | None:
    """The options checked, each refusal one line naming the option and the fix; None without
    --domain (no Ingress)."""
    if domain is None:
        for option, value in (("--ingress-class", ingress_class), ("--tls-secret", tls_secret)):
            if value is not None:
                raise UsageError(
                    f"{option} configures the Ingress that --domain adds: give --domain too"
                    " (e.g. --domain example.org)"
                )
        return None
    return IngressOptions(
        validate_domain(domain),
        _validate_name(ingress_class, "--ingress-class", "the IngressClass, e.g. nginx"),
        _validate_name(
            tls_secret, "--tls-secret", "a TLS Secret in the namespace, e.g. trains-tls"
        ),
    )


def validate_domain(domain: str) -> str:
    """A DNS name the three hosts go under (app.D, api.D, files.D), as Kubernetes accepts an
    Ingress host: lowercase letters, digits, '-' and '.'."""
    fix = None
    if "://" in domain or "/" in domain or ":" in domain:
        fix = "give the name only, without scheme, port or path (e.g. --domain example.org)"
    elif domain.startswith("*."):
        fix = "give the domain without '*.': app., api. and files. are put in front of it"
    elif domain.endswith("."):
        fix = f"drop the trailing dot (--domain {domain.rstrip('.')})"
    elif domain != domain.lower() and _SUBDOMAIN.fullmatch(domain.lower()):
        fix = f"write it in lowercase (--domain {domain.lower()})"
    elif not _SUBDOMAIN.fullmatch(domain):
        fix = (
            "use labels of lowercase letters, digits and '-' (at most 63 each, not starting or"
            " ending with '-') joined by '.', e.g. --domain example.org"
        )
    elif len("files." + domain) > _MAX_NAME:
        fix = f"use a name of at most {_MAX_NAME - len('files.')} characters"
    if fix:
        raise UsageError(f"--domain {domain!r} is not a DNS name: {fix}")
    return domain


def _validate_name(value: str | None, option: str, what: str) -> str | None:
    if value is not None and (len(value) > _MAX_NAME or not _SUBDOMAIN.fullmatch(value)):
        raise UsageError(
            f"{option} {value!r} is not a Kubernetes name: give {what} (lowercase letters,"
            " digits, '-' and '.')"
        )
    return value


def host_of(endpoint: Endpoint, domain: str) -> str:
    return f"{endpoint.host}.{domain}"


def render_ingress(spec: DeploySpec, options: IngressOptions) -> dict:
    """The Ingress: one rule per endpoint, host `{endpoint.host}.DOMAIN` to the endpoint's
    Service and port, in the playbook's namespace."""
    hosts = [host_of(e, options.domain) for e in spec.endpoints]
    body: dict = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": INGRESS_NAME,
            "namespace": spec.namespace,
            "labels": {"app.kubernetes.io/managed-by": "trains-nodeprep"},
            "annotations": {BODY_SIZE_ANNOTATION: "0"},
        },
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": endpoint.service,
                                        "port": {"number": endpoint.port},
                                    }
                                },
                            }
                        ]
                    },
                }
                for endpoint, host in zip(spec.endpoints, hosts, strict=True)
            ]
        },
    }
    if options.ingress_class:
        body["spec"]["ingressClassName"] = options.ingress_class
    if options.tls_secret:
        body["spec"]["tls"] = [{"hosts": hosts, "secretName": options.tls_secret}]
    return body


def render_ingress_yaml(spec: DeploySpec, options: IngressOptions) -> str:
    """The Ingress as the file the wrapper kustomization lists (JSON is YAML; the comment says
    why the annotation is there)."""
    return (
        "# Added by trains-nodeprep --domain: app., api. and files. to trains-server's Services.\n"
        f"# {BODY_SIZE_ANNOTATION}: ingress-nginx refuses bodies above 1 MiB by default, and\n"
        "# uploads to the file server would fail with 413 Request Entity Too Large.\n"
        + json.dumps(render_ingress(spec, options), indent=2)
        + "\n"
    )


def render_wrapper_kustomization(base: str, resources: tuple[str, ...] = (), tail: str = "") -> str:
    """A kustomization of `base` (a directory, relative: kustomize refuses absolute paths) plus
    `resources` (files beside it), then `tail` (more of its YAML, e.g. images:)."""
    listed = "".join(f"- {json.dumps(item)}\n" for item in (base, *resources))
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n{listed}{tail}"
    )


def backends_requirement(tree: Tree, spec: DeploySpec) -> Requirement:
    """Each Ingress backend is a Service port of the tree (else the Ingress routes nowhere)."""
    missing = []
    for endpoint in spec.endpoints:
        service = tree.find("Service", spec.namespace, endpoint.service)
        if service is None:
            missing.append(f"no Service {spec.namespace}/{endpoint.service}")
            continue
        ports = [p.get("port") for p in service.spec.get("ports") or [] if isinstance(p, dict)]
        if endpoint.port not in ports:
            offered = ", ".join(str(p) for p in ports) or "none"
            missing.append(
                f"{spec.namespace}/{endpoint.service} has no port {endpoint.port} (its ports:"
                f" {offered})"
            )
    return Requirement(
        "ingress.backends",
        "the Ingress's backends are Service ports of the tree",
        "; ".join(missing) + " (fix deploy.endpoints in the playbook)"
        if missing
        else "yes: " + ", ".join(f"{e.service}:{e.port}" for e in spec.endpoints),
        not missing,
        f"Ingress {spec.namespace}/{INGRESS_NAME}",
    )


@dataclass(frozen=True)
class IngressRule:
    host: str  # app.example.org
    service: str
    port: int


@dataclass(frozen=True)
class DnsRecord:
    name: str  # app.example.org
    points_to: str  # the node's address (or the load balancer's, for users who have one)


@dataclass(frozen=True)
class Forward:
    """What a load balancer in front of the node forwards: a host (with --domain) or the
    endpoint, to the node's NodePort."""

    endpoint: str
    host: str | None
    node_port: int
    target: str  # NODE:PORT


@dataclass(frozen=True)
class Access:
    """How users reach trains-server once it is deployed."""

    namespace: str
    node: str
    options: IngressOptions | None  # None: no --domain, no Ingress
    rules: tuple[IngressRule, ...]
    dns: tuple[DnsRecord, ...]
    load_balancer: tuple[Forward, ...]
    ingress_name: str = INGRESS_NAME


def make_access(spec: DeploySpec, node: str | None, options: IngressOptions | None) -> Access:
    """The DNS records (with --domain) and the load-balancer mapping to the NodePorts (always).

    `node`: the labeled node's address, or None when it is not known."""
    address = node or "NODE"
    hosts = {e.name: host_of(e, options.domain) if options else None for e in spec.endpoints}
    return Access(
        namespace=spec.namespace,
        node=address,
        options=options,
        rules=tuple(
            IngressRule(host, e.service, e.port) for e in spec.endpoints if (host := hosts[e.name])
        ),
        dns=tuple(DnsRecord(host, address) for host in hosts.values() if host),
        load_balancer=tuple(
            Forward(e.name, hosts[e.name], e.node_port, f"{address}:{e.node_port}")
            for e in spec.endpoints
        ),
    )
