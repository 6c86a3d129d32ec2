"""Send hostile input to every operation of a running hanseek API and list the answers that are 5xx.

usage: python scripts/sweep_api.py [BASE_URL]   (default http://127.0.0.1:8000; e.g. after `make run`)

It writes to the service it is pointed at (posts and users named "fz1" and the like): point it at a
scratch instance, not production. Two passes, read from the live OpenAPI schema:
- shallow: junk path ids, hostile values in every query parameter, malformed and oversized JSON bodies,
  junk image uploads;
- deep: a plausible body built from each JSON schema, then one leaf at a time set to each hostile value.
Every answer's status must also be one the operation declares in the schema, and every 4xx must be
a problem document (`application/problem+json`): the OpenAPI document is the clients' contract.
Prints one JSON line with the counts, then each failure. Exit code 1 if any answer was 5xx,
undeclared or not a problem document.
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx

HOSTILE: list[Any] = ["", "x" * 5000, -1, 0, 10**12, 1.5e308, None, [], {}, "💥", "../../etc/x", "NaN", True]
DEEP_EXTRA: list[Any] = [[None], {"a": [1]}, "\x00", -(10**30), 2**63]
PATH_IDS = ["nope", "0", "%00", "x" * 300, "-1"]
BODIES = [b"", b"{", b"null", b"[]", b'{"a":1}', json.dumps({"x": "y" * 100_000}).encode()]
UPLOADS = [b"", b"notanimage", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50]


class Sweep:
    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=60)
        self.spec: dict[str, Any] = self.client.get("/openapi.json").json()
        self.requests = 0
        self.failures: list[tuple[Any, ...]] = []
        self.undeclared: dict[tuple[str, str, int], int] = {}

    def send(self, method: str, path: str, op: dict[str, Any], **kw: Any) -> None:
        self.requests += 1
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as e:  # a reset connection is a failure too
            self.failures.append((method, path, str(kw)[:200], repr(e)))
            return
        if r.status_code >= 500:
            self.failures.append((method, path, str(kw)[:200], r.status_code, r.text[:200]))
        elif str(r.status_code) not in op.get("responses", {}):
            key = (method, op["x-path"], r.status_code)
            self.undeclared[key] = self.undeclared.get(key, 0) + 1
        elif r.status_code >= 400 and r.headers.get("content-type") != "application/problem+json":
            self.failures.append((method, path, str(kw)[:200], r.status_code, "not a problem document"))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
        if "anyOf" in schema:
            schema = self.resolve(next(s for s in schema["anyOf"] if s.get("type") != "null"))
        return schema

    def sample(self, schema: dict[str, Any]) -> Any:
        s = self.resolve(schema)
        kind = s.get("type")
        if "enum" in s:
            return s["enum"][0]
        if kind == "object":
            return {k: self.sample(v) for k, v in s.get("properties", {}).items()}
        if kind == "array":
            return [self.sample(s.get("items", {}))]
        if kind == "integer":
            return max(1, s.get("minimum", 1))
        if kind == "number":
            return 0.5
        if kind == "boolean":
            return True
        return "2024-05-01T12:00:00Z" if s.get("format") == "date-time" else "fz1"

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, ops in self.spec["paths"].items():
            for method, op in ops.items():
                yield method.upper(), path, {**op, "x-path": path}

    def shallow(self) -> None:
        for method, path, op in self.operations():
            params = op.get("parameters", [])
            for pid in PATH_IDS:
                p = path
                for prm in params:
                    if prm["in"] == "path":
                        p = p.replace("{" + prm["name"] + "}", pid)
                self.send(method, p, op)
                for prm in params:
                    if prm["in"] == "query":
                        for v in HOSTILE:
                            if v is not None and not isinstance(v, list | dict):
                                self.send(method, p, op, params={prm["name"]: v})
                if "requestBody" not in op:
                    continue
                for body in BODIES:
                    self.send(method, p, op, content=body, headers={"content-type": "application/json"})
                content = op["requestBody"].get("content", {})
                if "multipart/form-data" in content:
                    for data in UPLOADS:
                        for field in ("file", "files", "image"):
                            self.send(method, p, op, files={field: ("a.png", data, "image/png")})
                schema = content.get("application/json", {}).get("schema")
                if schema:
                    for k in self.resolve(schema).get("properties", {}):
                        for v in HOSTILE:
                            self.send(method, p, op, json={k: v})

    def deep(self) -> None:
        for method, path, op in self.operations():
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if not schema:
                continue
            p = path
            for prm in op.get("parameters", []):
                if prm["in"] == "path":
                    p = p.replace("{" + prm["name"] + "}", "fz1")
            base = self.sample(schema)
            for leaf in set(_leaves(base)):
                for v in HOSTILE + DEEP_EXTRA:
                    self.send(method, p, op, json=_with(base, leaf, v))


def _leaves(x: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, (*at, k))
    elif isinstance(x, list) and x:
        yield from _leaves(x[0], (*at, 0))
    yield at


def _with(x: Any, at: tuple[Any, ...], value: Any) -> Any:
    if not at:
        return value
    out = copy.deepcopy(x)
    cur = out
    for step in at[:-1]:
        cur = cur[step]
    cur[at[-1]] = value
    return out


def main() -> int:
    sweep = Sweep(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000")
    sweep.shallow()
    shallow = sweep.requests
    sweep.deep()
    print(json.dumps({"shallow_requests": shallow, "deep_requests": sweep.requests - shallow,
                      "failures": len(sweep.failures),  # 5xx, resets, 4xx not problem+json
                      "undeclared_statuses": len(sweep.undeclared)}))  # fmt: skip
    for f in sweep.failures:
        print(f)
    for (method, path, status), n in sorted(sweep.undeclared.items()):
        print(f"undeclared: {method} {path} answered {status} ({n}×)")
    return 1 if sweep.failures or sweep.undeclared else 0


if __name__ == "__main__":
    sys.exit(main())
