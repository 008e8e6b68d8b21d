"""Discovery (legacy, non-aggregated: /api, /apis, one APIResourceList per group-version)
and the minimal OpenAPI v3 that lets kubectl defer validation to the server."""

from __future__ import annotations

from .resources import GROUP_VERSIONS, RESOURCES, SERVER_VERSION


def api_group(group: str) -> dict:
    versions = [
        {"groupVersion": f"{group}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == group
    ]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def api_group_list() -> dict:
    groups = sorted({g for g, _ in GROUP_VERSIONS if g})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")}
            for g in groups
        ],
    }


def resource_list(group: str, version: str) -> dict:
    resources = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.kind in ("Deployment", "Pod", "ReplicaSet", "Service"):
            entry["categories"] = ["all"]
        elif r.kind == "ConfigMap":
            entry["categories"] = []
        resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict:
    return {
        "paths": {
            gv_path(g, v): {
                "serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}?hash=FAKE{g.upper()}{v.upper()}"
            }
            for g, v in GROUP_VERSIONS
        }
    }


def openapi_v3_doc(path: str) -> dict | None:
    """Just enough OpenAPI v3 for kubectl to see that the server accepts
    ?fieldValidation= on PATCH (so it does not validate client-side)."""
    match = [(g, v) for g, v in GROUP_VERSIONS if gv_path(g, v) == path]
    if not match:
        return None
    group, version = match[0]
    paths = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        prefix = f"/{path}/namespaces/{{namespace}}" if r.namespaced else f"/{path}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        paths[f"{prefix}/{r.plural}/{{name}}"] = {
            "patch": {
                "description": f"partially update the specified {r.kind}",
                "operationId": f"patch{r.kind}",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "description": (
                            "fieldValidation instructs the server on how to handle objects "
                            "in the request containing unknown or duplicate fields."
                        ),
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                ],
                "requestBody": {
                    "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}
                },
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (FakeKubeAPI)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }
