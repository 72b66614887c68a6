"""Request-rate quotas: AWS answers ThrottlingException when a caller's account goes over them.

AWS documents these rates per account and region (Secrets Manager "quotas" page, STS "request
quotas"); a group's operations share one rate:

    secretsmanager PutSecretValue, UpdateSecret, UpdateSecretVersionStage and the replication calls  50/s
    secretsmanager TagResource, UntagResource                                                          50/s
    secretsmanager CreateSecret                                                                        50/s
    secretsmanager DeleteSecret, RestoreSecret                                                         50/s
    secretsmanager DescribeSecret, GetSecretValue                                                  10,000/s
    sts            every operation (AssumeRoleWithSAML included)                                      600/s

Each (account, region, group) is a token bucket holding one second of its rate, so a burst of
`rate` calls passes and then calls pass at `rate` a second. A throttled call does not reach moto and
takes no token. The account is the caller's (the assumed role's, or the administrator's); for
AssumeRoleWithSAML, which is unsigned, it is the account of the RoleArn.

Control API: GET /_sim/quotas (rates and throttled counts per group), PUT /_sim/quotas
{"group": rate, ...} (tests lower a rate to make throttling quick to reach), DELETE (AWS's
rates again, counts zeroed).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import moto_state

# group -> (service, operations, AWS's rate a second)
AWS_GROUPS: dict[str, tuple[str, tuple[str, ...], float]] = {
    "secretsmanager:writes": ("secretsmanager", (
        "PutSecretValue", "UpdateSecret", "UpdateSecretVersionStage", "ReplicateSecretToRegions",
        "RemoveRegionsFromReplication", "StopReplicationToReplica"), 50.0),
    "secretsmanager:tags": ("secretsmanager", ("TagResource", "UntagResource"), 50.0),
    "secretsmanager:create": ("secretsmanager", ("CreateSecret",), 50.0),
    "secretsmanager:delete": ("secretsmanager", ("DeleteSecret", "RestoreSecret"), 50.0),
    "secretsmanager:reads": ("secretsmanager", ("DescribeSecret", "GetSecretValue"), 10_000.0),
    "sts:all": ("sts", ("*",), 600.0),
}
MAX_RATE = 1_000_000.0


class QuotaError(ValueError):
    pass


def group_of(service: str, action: str) -> Optional[str]:
    for name, (svc, ops, _) in AWS_GROUPS.items():
        if svc == service and ("*" in ops or action in ops):
            return name
    return None


class Quotas:
    def __init__(self, errors: Any):
        self.err = errors
        self.lock = threading.Lock()
        self.rates = {g: r for g, (_, _, r) in AWS_GROUPS.items()}
        self.buckets: dict[tuple[str, str, str], list[float]] = {}  # key -> [tokens, last]
        self.throttled: dict[str, int] = {}

    # -- control ---------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        with self.lock:
            return {"rates": dict(self.rates), "throttled": dict(self.throttled),
                    "throttled_total": sum(self.throttled.values())}

    def set_rates(self, spec: Any) -> dict:
        if not isinstance(spec, dict) or not spec:
            raise QuotaError('body must be a JSON object such as {"secretsmanager:create": 10}')
        for group, rate in spec.items():
            if group not in AWS_GROUPS:
                raise QuotaError(f"unknown quota group {group!r}; groups: {', '.join(AWS_GROUPS)}")
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= MAX_RATE:
                raise QuotaError(f"{group}: rate must be a number in (0, {MAX_RATE:g}]")
        with self.lock:
            for group, rate in spec.items():
                self.rates[group] = float(rate)
            self.buckets.clear()
        return self.snapshot()

    def reset(self) -> None:
        with self.lock:
            self.rates = {g: r for g, (_, _, r) in AWS_GROUPS.items()}
            self.buckets.clear()
            self.throttled.clear()

    # -- the check --------------------------------------------------------------------------------

    @staticmethod
    def account_of(req: Any) -> str:
        sess = req.ctx.get("session")
        if sess is not None:
            return sess.account
        if req.service == "sts" and req.action == "AssumeRoleWithSAML":
            m = moto_state.ROLE_ARN_RE.match(req.form.get("RoleArn", ""))
            if m:
                return m.group(1)
        return moto_state.default_account()

    def take(self, account: str, region: str, group: str, now: float) -> bool:
        """Takes one token; False (and counted) when the bucket is empty."""
        with self.lock:
            rate = self.rates[group]
            b = self.buckets.setdefault((account, region, group), [rate, now])
            b[0] = min(rate, b[0] + (now - b[1]) * rate)
            b[1] = now
            if b[0] >= 1.0:
                b[0] -= 1.0
                return True
            self.throttled[group] = self.throttled.get(group, 0) + 1
            return False

    def check(self, req: Any) -> Any:
        group = group_of(req.service or "", req.action or "")
        if group is None:
            return None
        if self.take(self.account_of(req), req.region or "us-east-1", group, time.monotonic()):
            return None
        if req.service == "sts":
            return self.err.aws_query_error("Throttling", "Rate exceeded")
        return self.err.aws_json_error("ThrottlingException", "Rate exceeded")
