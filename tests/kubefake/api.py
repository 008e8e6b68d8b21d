"""FakeKubeAPI, a TEST DOUBLE of the Kubernetes API: the server's life cycle, the test-facing
API (add_node, add_service, add_pod, add_deployment_pod, set_new_pod_files, set_service_proxy,
objects, requests, execs), what the real API server does to objects on create and update (uid,
resourceVersion, generation, Service defaults and node ports, Deployment status, Namespace
termination), and a stand-in for the Deployment controller that replaces a Deployment's pods
when its template changes."""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import re
import threading
import uuid
from pathlib import Path

from .handler import APIHandler
from .proxy import ProxyTarget
from .resources import BY_KIND, SERVER_VERSION, Resource
from .status import APIError, timestamp
from .store import Store

NODE_PORT_RANGE = (30000, 32767)
# the characters of generated names (pod-template-hash, pod suffixes), as in apimachinery
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class FakeKubeAPI:
    """A test double of the Kubernetes API server (no real one can run here).

    Plain HTTP on 127.0.0.1 at a random free port; see the module docstring for
    what it implements and what it does not. ``requests`` records (method, path)
    of every request in order; the path keeps its query string. ``execs`` records
    (namespace, pod, container, command, subprotocol) of every exec that got
    its WebSocket upgrade.
    """

    def __init__(self, *, server_version: str = SERVER_VERSION["gitVersion"]) -> None:
        """``server_version`` ("v1.MINOR.PATCH..."): what /version reports. The
        kubectl here is Google Cloud SDK's dispatcher: it asks /version first and
        runs the kubectl.1.MINOR it ships nearest to the server's version."""
        m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(.*)$", server_version)
        if not m:
            raise ValueError(f"server_version must look like v1.32.4, not {server_version!r}")
        self.server_version = dict(
            SERVER_VERSION, major=m[1], minor=m[2], gitVersion=f"v{m[1]}.{m[2]}.{m[3]}{m[4]}"
        )
        self._store = Store()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self.requests: list[tuple[str, str]] = []
        self._requests_lock = threading.Lock()
        self._pod_files: dict[
            tuple[str, str], dict[str, str]
        ] = {}  # (namespace, pod) -> path -> content
        self.execs: list[
            tuple[str, str, str, tuple[str, ...], str]
        ] = []  # (namespace, pod, container, command, protocol)
        self._new_pod_files: dict[str, str] = {}  # set_new_pod_files
        # set_service_proxy: (namespace, service, port) -> what answers its service proxy
        self._service_proxies: dict[tuple[str, str, int], ProxyTarget] = {}
        self.url = ""
        self._seed()

    # ---------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._httpd is not None:
            return
        api = self

        class Handler(APIHandler):
            fake = api

        self._stopping.clear()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeKubeAPI",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        with self._store.changed:
            self._store.changed.notify_all()  # wake the watches
        for timer in self._timers:
            timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeKubeAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------- test-facing API
    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """Write a kubeconfig whose current context points kubectl at this server
        (``server: http://127.0.0.1:PORT``, no credentials) and return its path.

        kubectl also keeps a discovery/HTTP cache, by default in ~/.kube/cache:
        run it with a fresh ``--cache-dir`` (or ``KUBECACHEDIR``, or ``HOME``) per
        test, or one test's cache outlives its server.
        """
        if not self.url:
            raise RuntimeError("start() the FakeKubeAPI before writing a kubeconfig for it")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        path.chmod(0o600)
        return path

    def add_node(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        internal_ip: str | None = None,
        hostname: str | None = None,
    ) -> None:
        """A Ready node with the usual kubernetes.io labels plus ``labels``."""
        all_labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": hostname or name,
            "kubernetes.io/os": "linux",
        }
        all_labels.update(labels or {})
        addresses = []
        if internal_ip:
            addresses.append({"type": "InternalIP", "address": internal_ip})
        addresses.append({"type": "Hostname", "address": hostname or name})
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": all_labels},
            "spec": {},
            "status": {
                "addresses": addresses,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": timestamp(),
                        "lastTransitionTime": timestamp(),
                    }
                ],
                "nodeInfo": {
                    "kubeletVersion": self.server_version["gitVersion"],
                    "containerRuntimeVersion": "containerd://1.7.0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "Fake Linux",
                    "kernelVersion": "6.1.0",
                    "kubeProxyVersion": self.server_version["gitVersion"],
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
                "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            },
        }
        with self._store.lock:
            self._create(BY_KIND["Node"], "", node, replace=True)

    def add_service(self, namespace: str, name: str, node_ports: list[int]) -> None:
        """A NodePort Service holding ``node_ports`` (creates the namespace if needed)."""
        with self._store.lock:
            if ("Namespace", "", namespace) not in self._store.objects:
                self._create(
                    BY_KIND["Namespace"],
                    "",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                )
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "type": "NodePort" if node_ports else "ClusterIP",
                    "selector": {"app": name},
                    "ports": [
                        {"name": f"p{n}", "port": 10000 + n % 10000, "nodePort": n}
                        for n in node_ports
                    ]
                    or [{"port": 80}],
                },
            }
            self._create(BY_KIND["Service"], namespace, svc)

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str],
        node_name: str | None = None,
        containers: tuple[str, ...] | list[str] = ("elasticsearch",),
        phase: str = "Running",
        files: dict[str, str] | None = None,
        owner_references: list[dict] | None = None,
    ) -> None:
        """A pod as a kubelet would report it (creates the namespace if needed):
        ``status.phase`` (Running by default; then every container is ready and
        running, else none is), ``spec.nodeName``, one container per name in
        ``containers``. ``files`` is the pod's fake filesystem, shared by its
        containers: what ``kubectl exec POD -- cat PATH...`` prints. Nothing runs:
        no process, no /proc but the files given here. ``owner_references`` go to
        ``metadata.ownerReferences`` as given (``add_deployment_pod`` makes them).
        Adding a pod of the same name again replaces it (and its files)."""
        pod = self._pod_object(
            namespace, name, labels, node_name, containers, phase, owner_references
        )
        with self._store.lock:
            if ("Namespace", "", namespace) not in self._store.objects:
                self._create(
                    BY_KIND["Namespace"],
                    "",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                )
            self._create(BY_KIND["Pod"], namespace, pod, replace=True)
            self._pod_files[(namespace, name)] = dict(files or {})

    def add_deployment_pod(
        self,
        namespace: str,
        deployment: str,
        *,
        node_name: str | None = None,
        files: dict[str, str] | None = None,
    ) -> str:
        """A Running pod of the stored Deployment ``deployment``, as its controller
        would have made it: a ReplicaSet ``DEPLOYMENT-HASH`` (HASH from the pod
        template; created if missing) owned by the Deployment, and a pod
        ``DEPLOYMENT-HASH-XXXXX`` with the template's labels plus
        ``pod-template-hash``, its containers, and ownerReferences to that
        ReplicaSet. ``files`` as for ``add_pod``. Returns the pod's name.
        Nothing made these but this call: the fake runs no controllers (but see
        ``set_new_pod_files``)."""
        with self._store.lock:
            dep = self._store.objects.get(("Deployment", namespace, deployment))
            if dep is None:
                raise KeyError(f"no Deployment {namespace}/{deployment}: apply it first")
            rs = self._replicaset_for(dep)
            name = self._new_pod_name(rs)
            self._create(BY_KIND["Pod"], namespace, self._pod_of(rs, name, node_name))
            self._pod_files[(namespace, name)] = dict(files or {})
            return name

    def set_new_pod_files(self, files: dict[str, str]) -> None:
        """The files (as for ``add_pod``) of every pod the fake makes from now on
        when a Deployment's pod template changes (``kubectl rollout restart``, an
        apply that changes the template): what a recreated pod would see."""
        with self._store.lock:
            self._new_pod_files = dict(files)

    def set_service_proxy(
        self, namespace: str, service: str, port: int, target: ProxyTarget | None
    ) -> None:
        """What answers ``GET /api/v1/namespaces/NS/services/SERVICE:PORT/proxy/PATH`` (the
        API server's service proxy, ``kubectl get --raw``), a STAND-IN for the Service's pods:
        a base URL (PATH and the query appended; e.g. a stand-in server the test started) or a
        callable ``(method, path_and_query) -> (status, body)``. ``port`` is the Service's
        port (its number; the URL may name it). None: no endpoints again (503). See proxy.py
        for what the real proxy answers and the fake too."""
        with self._store.lock:
            if target is None:
                self._service_proxies.pop((namespace, service, port), None)
            else:
                self._service_proxies[(namespace, service, port)] = target

    def _pod_object(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        node_name: str | None,
        containers: tuple[str, ...] | list[str],
        phase: str,
        owner_references: list[dict] | None,
    ) -> dict:
        if not containers:
            raise ValueError("a pod has at least one container")
        now = timestamp()
        running = phase == "Running"
        metadata: dict = {"name": name, "namespace": namespace, "labels": dict(labels)}
        if owner_references:
            metadata["ownerReferences"] = copy.deepcopy(owner_references)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "containers": [{"name": c, "image": f"fake/{c}:latest"} for c in containers],
                "restartPolicy": "Always",
                **({"nodeName": node_name} if node_name else {}),
            },
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": t, "status": "True" if running else "False", "lastTransitionTime": now}
                    for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                ],
                "containerStatuses": [
                    {
                        "name": c,
                        "ready": running,
                        "started": running,
                        "restartCount": 0,
                        "image": f"fake/{c}:latest",
                        "imageID": "",
                        "containerID": f"containerd://{uuid.uuid4().hex}",
                        "state": {"running": {"startedAt": now}}
                        if running
                        else {"waiting": {"reason": "ContainerCreating"}},
                    }
                    for c in containers
                ],
                **(
                    {"hostIP": "10.200.0.1", "podIP": "10.244.0.10", "startTime": now}
                    if running
                    else {}
                ),
            },
        }

    # ------------------------------------------- a stand-in for the Deployment controller
    # Not the real controller: no scaling, no surge, no readiness. Only what a rollout
    # does to the pods that exist: on a change of spec.template, the old ReplicaSets are
    # scaled to 0 and their pods go; as many new pods (new names, the template's labels)
    # come up at once in a new ReplicaSet, Running, with the files of set_new_pod_files.

    def _replicaset_for(self, dep: dict) -> dict:
        """The Deployment's ReplicaSet for its current template (made if missing)."""
        meta = dep["metadata"]
        namespace, template = meta["namespace"], dep["spec"].get("template") or {}
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
        template_hash = "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in digest[:10])
        name = f"{meta['name']}-{template_hash}"
        found = self._store.objects.get(("ReplicaSet", namespace, name))
        if found is not None:
            return found
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["pod-template-hash"] = template_hash
        pod_template = copy.deepcopy(template)
        pod_template.setdefault("metadata", {})["labels"] = labels
        selector = copy.deepcopy(dep["spec"].get("selector") or {"matchLabels": {}})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [_owner_reference(dep)],
            },
            "spec": {
                "replicas": dep["spec"].get("replicas", 1),
                "selector": selector,
                "template": pod_template,
            },
        }
        return self._create(BY_KIND["ReplicaSet"], namespace, rs)

    def _pod_of(self, rs: dict, name: str, node_name: str | None) -> dict:
        template = rs["spec"]["template"]
        containers = [c["name"] for c in (template.get("spec") or {}).get("containers") or []]
        return self._pod_object(
            rs["metadata"]["namespace"],
            name,
            template["metadata"]["labels"],
            node_name,
            containers or ["main"],
            "Running",
            [_owner_reference(rs)],
        )

    def _new_pod_name(self, rs: dict) -> str:
        while True:
            suffix = "".join(_NAME_CHARS[b % len(_NAME_CHARS)] for b in uuid.uuid4().bytes[:5])
            name = f"{rs['metadata']['name']}-{suffix}"
            if ("Pod", rs["metadata"]["namespace"], name) not in self._store.objects:
                return name

    def _owned_by(self, kind: str, owner: dict) -> list[tuple[tuple[str, str, str], dict]]:
        uid = owner["metadata"]["uid"]
        return [
            (key, obj)
            for key, obj in sorted(self._store.objects.items())
            if key[0] == kind
            and any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])
        ]

    def _roll_out_if_template_changed(self, previous: dict, dep: dict) -> None:
        """After an update of a Deployment (store lock held): a new template replaces
        the pods of its old ReplicaSets, one new pod for each old one."""
        if previous.get("spec", {}).get("template") == dep.get("spec", {}).get("template"):
            return
        old_pods = [
            (key, pod)
            for _, rs in self._owned_by("ReplicaSet", dep)
            for key, pod in self._owned_by("Pod", rs)
        ]
        if not old_pods:
            return  # nothing ran: the fake makes no pods from nothing
        new_rs = self._replicaset_for(dep)
        for key, rs in self._owned_by("ReplicaSet", dep):
            if key[2] != new_rs["metadata"]["name"] and rs["spec"].get("replicas") != 0:
                scaled = copy.deepcopy(rs)
                scaled["spec"]["replicas"] = 0
                self._store.put(key, self._finish(BY_KIND["ReplicaSet"], scaled, rs))
        for key, pod in old_pods:
            if pod["metadata"]["ownerReferences"][0].get("uid") == new_rs["metadata"]["uid"]:
                continue  # already of the new template
            self._store.remove(key)
            self._pod_files.pop((key[1], key[2]), None)
            name = self._new_pod_name(new_rs)
            self._create(
                BY_KIND["Pod"], key[1], self._pod_of(new_rs, name, pod["spec"].get("nodeName"))
            )
            self._pod_files[(key[1], name)] = dict(self._new_pod_files)

    def objects(self, kind: str | None = None, namespace: str | None = None) -> list[dict]:
        """Copies of the stored objects (seeded ones included), optionally of one
        kind and/or namespace, ordered by kind, namespace, name."""
        with self._store.lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self._store.objects.items())
                if (kind is None or k == kind) and (namespace is None or ns == namespace)
            ]

    def get_object(self, kind: str, name: str, namespace: str = "") -> dict | None:
        with self._store.lock:
            obj = self._store.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def _exec_log(
        self, namespace: str, pod: str, container: str, command: tuple[str, ...], protocol: str
    ) -> None:
        with self._requests_lock:
            self.execs.append((namespace, pod, container, command, protocol))

    def clear_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    # ---------------------------------------------------------- internals
    def _record(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))

    def _seed(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create(
                BY_KIND["Namespace"],
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
        self._create(
            BY_KIND["Service"],
            "default",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                },
            },
        )

    def _used_node_ports(self, exclude: tuple[str, str] | None) -> dict[int, str]:
        used = {}
        for (kind, ns, name), obj in self._store.objects.items():
            if kind != "Service" or (ns, name) == exclude:
                continue
            for port in obj.get("spec", {}).get("ports", []) or []:
                if port.get("nodePort"):
                    used[int(port["nodePort"])] = f"{ns}/{name}"
        return used

    def _prepare_service(self, svc: dict, previous: dict | None) -> None:
        """Defaults and node port allocation, like the real API server."""
        spec = svc.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            ip = (
                (previous or {}).get("spec", {}).get("clusterIP")
                or spec.get("clusterIP")
                or self._store.next_cluster_ip()
            )
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        meta = svc["metadata"]
        used = self._used_node_ports((meta.get("namespace", ""), meta["name"]))
        errors = []
        for i, port in enumerate(spec.get("ports", []) or []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                if not port.get("nodePort"):
                    taken = set(used) | {p.get("nodePort") for p in spec["ports"]}
                    port["nodePort"] = next(
                        n
                        for n in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1)
                        if n not in taken
                    )
                n = int(port["nodePort"])
                if not NODE_PORT_RANGE[0] <= n <= NODE_PORT_RANGE[1]:
                    errors.append(
                        f"spec.ports[{i}].nodePort: Invalid value: {n}: provided port is not in "
                        "the valid range. "
                        f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"
                    )
                elif n in used:
                    errors.append(
                        f"spec.ports[{i}].nodePort: Invalid value: {n}: provided port is already "
                        "allocated"
                    )
            elif port.get("nodePort"):
                errors.append(
                    f"spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is "
                    f"'{spec['type']}'"
                )
        if errors:
            raise APIError(
                422,
                "Invalid",
                f'Service "{meta["name"]}" is invalid: ' + ", ".join(errors),
                {
                    "name": meta["name"],
                    "kind": "Service",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": e.split(": ", 1)[1],
                            "field": e.split(":", 1)[0],
                        }
                        for e in errors
                    ],
                },
            )

    @staticmethod
    def _deployment_status(dep: dict) -> None:
        replicas = dep.get("spec", {}).get("replicas", 1)
        now = timestamp()
        dep["status"] = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{dep["metadata"]["name"]}-fake" '
                    "has successfully progressed.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        if replicas == 0:
            for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
                dep["status"].pop(key)

    def _finish(self, res: Resource, obj: dict, previous: dict | None) -> dict:
        """Server-side fields after a create or an update."""
        meta = obj.setdefault("metadata", {})
        if previous is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = timestamp()
        else:
            for key in ("uid", "creationTimestamp"):
                meta[key] = previous["metadata"][key]
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        if res.kind == "Service":
            self._prepare_service(obj, previous)
        if res.kind == "Ingress":  # no ingress controller here gives it an address
            obj["status"] = (previous or {}).get("status") or {"loadBalancer": {}}
        if res.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if res.kind == "Deployment":
            if previous is None:
                meta["generation"] = 1
            else:
                meta["generation"] = previous["metadata"].get("generation", 1) + (
                    1 if obj.get("spec") != previous.get("spec") else 0
                )
            self._deployment_status(obj)
        if previous is not None and _without_rv(obj) == _without_rv(previous):
            meta["resourceVersion"] = previous["metadata"]["resourceVersion"]
        else:
            meta["resourceVersion"] = self._store.next_rv()
        return obj

    NAMESPACE_FINALIZE_SECONDS = 0.2

    def _delete_namespace(self, name: str) -> dict:
        """Like the real server: a namespace with content turns Terminating, its
        content goes (after NAMESPACE_FINALIZE_SECONDS, or as soon as it is
        empty), then the namespace itself."""
        store = self._store
        key = ("Namespace", "", name)
        ns = store.objects[key]
        if not any(k[1] == name for k in store.objects):
            return store.remove(key)
        if "deletionTimestamp" not in ns["metadata"]:
            ns = copy.deepcopy(ns)
            ns["metadata"]["deletionTimestamp"] = timestamp()
            ns["status"] = {"phase": "Terminating"}
            ns["metadata"]["resourceVersion"] = store.next_rv()
            store.put(key, ns)
            timer = threading.Timer(
                self.NAMESPACE_FINALIZE_SECONDS, self._finalize_namespace, args=(name,)
            )
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return copy.deepcopy(ns)

    def _finalize_namespace(self, name: str) -> None:
        with self._store.lock:
            ns = self._store.objects.get(("Namespace", "", name))
            if ns is None or "deletionTimestamp" not in ns["metadata"]:
                return
            for key in [k for k in self._store.objects if k[1] == name]:
                self._store.remove(key)
            self._store.remove(("Namespace", "", name))

    def _finalize_namespace_if_empty(self, name: str) -> None:
        ns = self._store.objects.get(("Namespace", "", name))
        if (
            ns is not None
            and "deletionTimestamp" in ns["metadata"]
            and not any(k[1] == name for k in self._store.objects)
        ):
            self._store.remove(("Namespace", "", name))

    def _create(
        self,
        res: Resource,
        namespace: str,
        obj: dict,
        replace: bool = False,
        *,
        dry_run: bool = False,
    ) -> dict:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise APIError(
                422,
                "Invalid",
                f"{res.kind} is invalid: metadata.name: Required value: name is required",
            )
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise APIError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request",
                )
            meta["namespace"] = namespace
            ns_obj = self._store.objects.get(("Namespace", "", namespace))
            if ns_obj is None:
                raise APIError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            if "deletionTimestamp" in ns_obj["metadata"]:
                raise APIError(
                    403,
                    "Forbidden",
                    f'{res.plural}{"." + res.group if res.group else ""} "{name}" is forbidden: '
                    f"unable to create new content in namespace {namespace} because it is being "
                    "terminated",
                    {
                        "name": name,
                        "group": res.group,
                        "kind": res.plural,
                        "causes": [
                            {
                                "reason": "NamespaceTerminating",
                                "field": "metadata.namespace",
                                "message": f"namespace {namespace} is being terminated",
                            }
                        ],
                    },
                )
        else:
            meta.pop("namespace", None)
        key = (res.kind, namespace if res.namespaced else "", name)
        if key in self._store.objects and not replace:
            raise APIError(
                409,
                "AlreadyExists",
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        obj = self._finish(res, obj, None)
        if not dry_run:
            self._store.put(key, obj)
        return obj

    def _refuse_immutable_changes(self, res: Resource, current: dict, new: dict) -> None:
        """What the real API server's validation refuses on an update: a workload's selector
        (apps/v1), a Service's clusterIP once set (422 Invalid, the field named)."""
        name = current["metadata"]["name"]
        old_spec, new_spec = current.get("spec") or {}, new.get("spec") or {}
        if res.kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
            if new_spec.get("selector") != old_spec.get("selector"):
                raise _invalid(
                    res,
                    name,
                    "spec.selector",
                    _go_label_selector(new_spec.get("selector") or {}),
                    "field is immutable",
                )
        if res.kind == "Service":
            old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
            if new_ip and old_ip and new_ip != old_ip:
                raise _invalid(
                    res,
                    name,
                    "spec.clusterIPs[0]",
                    f'[]string{{"{new_ip}"}}',
                    "may not change once set",
                )

    def _collect_garbage(self, owner: dict) -> None:
        """A stand-in for the garbage collector (background propagation, kubectl delete's
        default): what the deleted object owned goes, and what that owned (store lock held)."""
        for key, child in self._owned_by("ReplicaSet", owner) + self._owned_by("Pod", owner):
            if key in self._store.objects:
                self._store.remove(key)
                self._pod_files.pop((key[1], key[2]), None)
                self._collect_garbage(child)


def _without_rv(obj: dict) -> dict:
    o = copy.deepcopy(obj)
    o.get("metadata", {}).pop("resourceVersion", None)
    if o.get("kind") == "Deployment":  # its status is recomputed (timestamps) on every write
        o.pop("status", None)
    return o


def _owner_reference(owner: dict) -> dict:
    """The controller reference a child of ``owner`` carries, as the controllers set it."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _invalid(res: Resource, name: str, field: str, value: str, detail: str) -> APIError:
    """422 Invalid as the real server words it: `Deployment.apps "x" is invalid: FIELD: ...`."""
    qualified = res.kind + (f".{res.group}" if res.group else "")
    message = f"Invalid value: {value}: {detail}"
    return APIError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {field}: {message}',
        {
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": message, "field": field}],
        },
    )


def _go_label_selector(selector: dict) -> str:
    """A LabelSelector the way the real server prints it (Go's %#v)."""
    labels = ", ".join(
        f'"{k}":"{v}"' for k, v in sorted((selector.get("matchLabels") or {}).items())
    )
    expressions = "nil" if not selector.get("matchExpressions") else "..."
    return (
        f"v1.LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
        f" MatchExpressions:[]v1.LabelSelectorRequirement({expressions})}}"
    )
