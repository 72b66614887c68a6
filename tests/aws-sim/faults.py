"""Fault injection: the next N matching AWS calls fail in a chosen way.

Control API (see README): POST/GET/DELETE /_sim/faults. A fault is
  {"action": "secretsmanager:PutSecretValue" | "sts:AssumeRoleWithSAML" | "secretsmanager:*" | "*",
   "kind": "throttle" | "error5xx" | "limit" | "latency" | "drop_before" | "drop_after",
   "count": N (default 1), "latency_ms": M (latency only, default 1000)}
The action is `<service from Host>:<operation>`, matched with `*`/`?` wildcards, case-insensitive.
Each request consumes at most one fault: the oldest pending one that matches.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Optional

import iam_eval

KINDS = ("throttle", "error5xx", "limit", "latency", "drop_before", "drop_after")
JSON_SERVICES = ("secretsmanager", "kms")


class FaultError(ValueError):
    pass


class Faults:
    def __init__(self, errors: Any):
        self.err = errors
        self.lock = threading.Lock()
        self.pending: list[dict] = []
        self.fired: list[dict] = []
        self._ids = itertools.count(1)

    # -- control ---------------------------------------------------------------------------------

    def add(self, spec: Any) -> dict:
        if not isinstance(spec, dict):
            raise FaultError("body must be a JSON object")
        action, kind = spec.get("action", "*"), spec.get("kind")
        if not isinstance(action, str) or not action:
            raise FaultError("action must be a non-empty string")
        if kind not in KINDS:
            raise FaultError(f"kind must be one of {', '.join(KINDS)}")
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise FaultError("count must be a positive integer")
        latency_ms = spec.get("latency_ms", 1000)
        if not isinstance(latency_ms, (int, float)) or not 0 <= latency_ms <= 600_000:
            raise FaultError("latency_ms must be a number between 0 and 600000")
        fault = {"id": next(self._ids), "action": action, "kind": kind, "remaining": count,
                 "latency_ms": latency_ms}
        with self.lock:
            self.pending.append(fault)
        return dict(fault)

    def list(self) -> dict:
        with self.lock:
            return {"faults": [dict(f) for f in self.pending], "fired": list(self.fired[-100:])}

    def clear(self) -> None:
        with self.lock:
            self.pending.clear()
            self.fired.clear()

    def take(self, label: str) -> Optional[dict]:
        with self.lock:
            for f in self.pending:
                if iam_eval.glob_match(f["action"], label, ignore_case=True):
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        self.pending.remove(f)
                    self.fired.append({"id": f["id"], "kind": f["kind"], "action": label, "time": time.time()})
                    return dict(f)
        return None

    # -- the check --------------------------------------------------------------------------------

    def check(self, req: Any) -> Any:
        """Runs first, outside the front's serialising lock. Raises DropConnection for drop_before;
        marks the request for drop_after (the front drops it after moto has answered)."""
        label = f"{req.service or '-'}:{req.action or '-'}"
        f = self.take(label)
        if f is None:
            return None
        kind, json_proto = f["kind"], req.service in JSON_SERVICES
        req.ctx["fault"] = kind
        if kind == "latency":
            time.sleep(f["latency_ms"] / 1000.0)
            return None
        if kind == "drop_before":
            raise self.err.DropConnection()
        if kind == "drop_after":
            req.ctx["drop_after"] = True
            return None
        if kind == "throttle":
            if json_proto:
                return self.err.aws_json_error("ThrottlingException", "Rate exceeded")
            return self.err.aws_query_error("Throttling", "Rate exceeded")
        if kind == "error5xx":
            if json_proto:
                return self.err.aws_json_error("InternalServiceError", "An error occurred on the server side.", 500)
            return self.err.aws_query_error("InternalFailure", "An internal error occurred.", 500, "Receiver")
        # limit
        if json_proto:
            return self.err.aws_json_error("LimitExceededException",
                                           "The request failed because it would exceed one of the Secrets Manager "
                                           "quotas.")
        return self.err.aws_query_error("LimitExceeded", "Limit exceeded.")
