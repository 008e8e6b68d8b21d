"""FakeKubeAPI: a TEST DOUBLE of the Kubernetes API server, for driving the real
`kubectl` end to end on a machine where no real kube-apiserver can run.

It is NOT a Kubernetes API server. It is a small stdlib HTTP server (plain HTTP on
127.0.0.1, a random free port, no authentication, no TLS) that keeps objects as
JSON in memory and answers the requests the real kubectl 1.32 makes for:

- ``kubectl version -o json`` (``/version``). The kubectl here is Google Cloud
  SDK's dispatcher: before every command it asks ``/version?timeout=5s`` and runs
  the kubectl.1.MINOR it ships nearest to the server's version, so the
  ``server_version`` the fake reports (default v1.32.4) picks the real kubectl
  that runs. Servers v1.29 to v1.33 work with kubectl's defaults; with v1.27 or
  v1.28 the older kubectl validates against OpenAPI v2 (protobuf, not served
  here) and ``kubectl apply`` needs ``--validate=false``;
- ``kubectl get nodes [-l SELECTOR] -o json``, ``kubectl get node NAME -o json``,
  ``kubectl get services -A -o json`` (lists and gets; label selectors ``k=v``,
  ``k!=v``, ``k``, ``!k``, and field selectors; JSON only, no server-side Tables);
- ``kubectl label node NAME k=v`` (GET, then a merge PATCH);
- ``kubectl apply -k DIR``, client-side apply (GET, 404 -> POST; found -> a
  strategic-merge PATCH carrying the last-applied annotation; a second apply of
  the same tree patches nothing and kubectl prints "unchanged");
- ``kubectl rollout status deployment/NAME``: every Deployment is reported
  rolled out at once (status.observedGeneration == metadata.generation, all
  replica counts == spec.replicas, conditions Available and Progressing True);
  watches (``?watch=true``) stream ADDED/MODIFIED/DELETED events of the stored
  objects. ``kubectl delete -k`` and ``kubectl delete KIND NAME`` work too (a
  deleted Namespace is ``Terminating`` until it is empty, or for 0.2 s, then
  goes with what is left in it).
- ``kubectl rollout restart deployment/NAME`` (a GET, then a strategic-merge
  PATCH of ``spec.template.metadata.annotations``
  ``kubectl.kubernetes.io/restartedAt``, ``?fieldManager=kubectl-rollout``, as
  kubectl 1.32 sends it). A Deployment whose ``spec.template`` changes (that
  PATCH, or an apply that changes the template) gets its pods replaced the way
  its controller would leave them, by a small STAND-IN for the Deployment
  controller (not the controller: no surge, no readiness, no scaling): each pod
  of its old ReplicaSets goes and a new Running pod (a new name, the template's
  labels plus ``pod-template-hash``, the old pod's node) appears in a new
  ReplicaSet ``NAME-HASH`` owned by the Deployment; the old ReplicaSets are
  scaled to 0. New pods get the files of ``set_new_pod_files`` (none by
  default). A Deployment with no pods gets none: the fake makes no pods from
  nothing. ``kubectl rollout status`` then succeeds (see above);
- ``kubectl get replicasets -n NS -o json`` (the ReplicaSets above);
- ``kubectl apply`` of an Ingress (``networking.k8s.io/v1``, stored only: no ingress
  controller, ``status.loadBalancer`` stays empty);
- ``kubectl get --raw /api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH``, a
  STAND-IN for the API server's service proxy (proxy.py): there are no pods or endpoints, so
  what answers is what the test gives ``set_service_proxy(namespace, service, port, target)``,
  a base URL (a server the test started; the answer is passed on as it came) or a callable
  ``(method, path_and_query) -> (status, body)``; without one, 503 "no endpoints available
  for service", as the real one says for a Service without ready pods (and 404 for a missing
  Service, 503 for a port it does not have or a target that cannot be reached);
- ``kubectl get pods -n NS -l SELECTOR -o json`` of the pods a test adds with
  ``add_pod`` (free-standing, or with the ``owner_references`` it gives) or
  ``add_deployment_pod`` (a pod of a stored Deployment, in a ReplicaSet owned by
  it, as its controller would have made it), and
  ``kubectl exec -n NS POD [-c CONTAINER] -- cat PATH [PATH...]``. Exec runs
  NOTHING: there is no container and no process. ``cat`` prints the contents
  that ``add_pod(..., files={PATH: TEXT})`` gave the pod; a path not given gets
  ``cat: PATH: No such file or directory`` on stderr and exit code 1, as the real
  cat; any other command (or a ``cat`` option) gets a FakeKubeAPI message on
  stderr and exit code 126. The protocol is the one kubectl 1.30+ uses (checked
  with kubectl 1.30 to 1.33): it GETs the pod (an unknown pod is kubectl's own
  ``Error from server (NotFound): pods "X" not found``), then
  ``GET .../pods/NAME/exec?command=..&container=..&stdout=true&stderr=true`` as
  a WebSocket upgrade offering the subprotocol ``v5.channel.k8s.io``. The fake
  answers RFC 6455 101 (``v5`` or ``v4.channel.k8s.io``), sends unmasked binary
  frames whose first byte is the channel (1 stdout, 2 stderr, 3 the error
  channel: a ``Status``, ``Success`` or ``Failure``/``NonZeroExitCode`` with the
  exit code in ``details.causes``, which kubectl exits with after printing
  "command terminated with exit code N"), then, 0.2 s later, a close frame (1000); it answers
  pings, ignores stdin and v5 close signals (channel 255). A refused upgrade
  (unknown container, a pod not Running) answers a 400 ``Status``; kubectl
  then retries over SPDY (``POST``) and prints that same error. SPDY itself is
  not served (400 saying so): kubectl 1.29 and older (server_version v1.27 to
  v1.29 here) or ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`` cannot exec.
  ``execs`` records (namespace, pod, container, command, subprotocol) of each.

What it serves for that: legacy (non-aggregated) discovery (``/api``, ``/apis``,
``/api/v1``, ``/apis/apps/v1``: requests for aggregated discovery get plain JSON,
and client-go falls back), and a minimal OpenAPI v3 (``/openapi/v3`` and one
document per group-version) that only says every PATCH accepts the
``fieldValidation`` query parameter, so kubectl's default ``--validate=strict``
defers validation to the "server" instead of fetching the OpenAPI v2 schema
(``/openapi/v2`` answers 404; kubectl then computes strategic merge patches from
its compiled-in types).

Resources: namespaces, nodes, services (plus the ``proxy`` stand-in), pods (stored, plus
``exec``), configmaps and ingresses (stored only), deployments, replicasets (stored; made by
the stand-in above).
Server-side behaviour it imitates: uid,
resourceVersion, creationTimestamp, generation (bumped when spec changes);
404 NotFound / 409 AlreadyExists / 422 Invalid as ``Status`` objects; creating a
namespaced object in a missing namespace is refused; Services get a clusterIP,
``protocol: TCP``, ``targetPort`` defaults and node ports (taken ports are
refused with 422 "provided port is already allocated", as the real one does;
range 30000-32767); a new Namespace is ``Active``. Seeded like a fresh cluster:
namespaces default, kube-system, kube-public, kube-node-lease and the Service
default/kubernetes (ClusterIP, no node port).

What it does NOT do: authentication/authorization, TLS, admission, defaulting
or validation beyond the above (``fieldValidation`` is accepted and ignored),
a real strategic merge patch (PATCH bodies are deep-merged, with the SMP
directives kubectl emits for these manifests: ``$setElementOrder``,
``$retainKeys``, ``$patch: delete/replace``, ``$deleteFromPrimitiveList``, and
list merge by the usual merge keys), JSON patch (``application/json-patch+json``
answers 415), server-side apply (``application/apply-patch+yaml`` answers 415),
PUT (update/replace), HEAD, health endpoints, ``generateName``, set-based
label selectors (``in``, ``notin``), server-side Tables, bookmarks, "410 Gone"
for old resource versions, controllers (but the stand-in above
for a Deployment's template change: nothing else makes ReplicaSets or Pods;
StatefulSets and DaemonSets are not served), garbage collection, finalizers,
``kubectl delete`` options (grace periods, propagation), server-side dry run
(``?dryRun=All`` answers 400, so ``--dry-run=server`` and ``kubectl diff`` do
not work), protobuf (JSON only), aggregated discovery, subresources other than
``exec`` and a Service's ``proxy`` (no node or pod proxy), logs/attach/port-forward/cp,
exec of anything but ``cat`` (no container, process or shell; stdin is read and dropped, a TTY is
not emulated: ``-i``/``-t`` get the same canned output), exec over SPDY, pod
lifecycle (a pod stays as ``add_pod`` left it, until a template change of its
Deployment replaces it).

Pytest fixtures here: ``kube_api`` (a started FakeKubeAPI, stopped after the
test), ``kubeconfig`` (a kubeconfig for it in tmp_path) and ``kubectl`` (runs the
real kubectl with that kubeconfig and a cache dir of the test's own; returns a
``KubectlResult`` with stdout, stderr, returncode, seconds and ``.json()``).
Import them into a test module, or list ``tests.kubefake.fixtures`` in ``pytest_plugins``.

Only what trains-nodeprep makes kubectl do is served (its kube module: version, get
nodes/services/pods/replicasets, label, apply -k, rollout status and restart, exec, the
service proxy of its health probes),
plus delete, namespace termination and watches, which the next work builds on.

Modules: resources (what is served), status (Status errors), selectors, merge (strategic
merge and JSON merge patch), store, api (FakeKubeAPI and object semantics), handler (HTTP
routing, lists, watches), exec (WebSocket exec), proxy (the service proxy stand-in), discovery
(discovery and OpenAPI v3), kubectl (KubectlResult, run_kubectl), fixtures.

kubectl keeps a discovery and HTTP cache (``~/.kube/cache`` by default). Give
every kubectl call a fresh ``--cache-dir`` (or ``KUBECACHEDIR``, or a temp
``HOME``), or the cache of one test's server outlives it and leaks into the next.
"""

from __future__ import annotations

from .api import FakeKubeAPI
from .fixtures import kube_api, kubeconfig, kubectl
from .kubectl import KubectlResult, kubectl_binary, run_kubectl
from .merge import json_merge_patch, strategic_merge
from .selectors import field_selector_matches, label_selector_matches

__all__ = [
    "FakeKubeAPI",
    "KubectlResult",
    "field_selector_matches",
    "json_merge_patch",
    "kube_api",
    "kubeconfig",
    "kubectl",
    "kubectl_binary",
    "label_selector_matches",
    "run_kubectl",
    "strategic_merge",
]
