"""Counting what reached the API server, from its audit log (the server's own record of every
request). Shared by the injection tests; the log is written in batches, so each count first
makes a marker request and reads up to it."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from xray_dev.cluster import Cluster
from xray_dev.fixtures_cluster import wait_for
from xray_operator.reconcile.kube import Kube

Obj = dict[str, Any]


class Audit:
    """Counts writes to workloads from the API server's audit log (the server's own record of
    every request), from the moment it was created."""

    def __init__(self, cluster: Cluster, kube: Kube) -> None:
        self.path = cluster.audit_log
        self.kube = kube
        self.offset = self.path.stat().st_size

    def writes(self, namespace: str, prefix: str = "") -> Counter[str]:
        """Patches/updates of the test's workloads (names starting with `prefix`) in `namespace`
        by non-system users, per name. An operator running against the same cluster writes the
        daemon's children there too; those are not counted."""
        # The log is written in batches: a request made now marks where "everything so far" ends.
        marker = f"audit-marker-{uuid.uuid4().hex[:8]}"
        self.kube.get("v1", "ConfigMap", namespace, marker)
        lines = wait_for(lambda: self._lines_until(marker), timeout=15, what="audit flush")
        counts: Counter[str] = Counter()
        for line in lines:
            ref = line.get("objectRef") or {}
            if (line.get("verb") in ("patch", "update") and ref.get("namespace") == namespace
                    and ref.get("resource") in ("deployments", "statefulsets", "daemonsets")
                    and not ref.get("subresource") and ref.get("name", "").startswith(prefix)
                    and not ref.get("name", "").endswith("-daemon")
                    and not line["user"]["username"].startswith("system:")):
                counts[ref["name"]] += 1
        self.offset = self.path.stat().st_size
        return counts

    def _lines_until(self, marker: str) -> list[Obj] | None:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        lines = [json.loads(raw) for raw in data.splitlines() if raw.strip()]
        if not any((line.get("objectRef") or {}).get("name") == marker for line in lines):
            return None
        return lines
