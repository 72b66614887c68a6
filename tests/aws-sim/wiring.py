"""Wires the strict front: which checks run, in which order, and the control API routes.

Order, as AWS does it: faults (pre-check, outside the serialising lock); IAM SAML metadata;
caller identity (SigV4/token/expiry of assumed-role callers); request-rate quotas;
AssumeRoleWithSAML; AssumeRole; Secrets Manager
input limits; KMS Recipient (attestation) and key policies; identity-policy authorisation; secret
state (pending deletion) and KMS key.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import parse_qs

import auth
import bulk
import faults
import kms_recipient
import quotas
import saml_check
import sm_limits


def build_front(app: Any, sim: Any, attestation_roots: Optional[list] = None,
                attestation_max_age_s: float = 300) -> Any:
    """The StrictFront over `app` with every check wired in. `sim` is the aws_sim module (StrictFront,
    DropConnection, aws_json_error, aws_query_error, json_response), passed in because it usually
    runs as __main__. `attestation_roots` are the PEM/DER files whose certificates KMS Recipient
    documents must chain to (default: the AWS Nitro Enclaves root)."""
    sessions = auth.Sessions()
    authz = auth.AuthChecks(sessions, sim)
    saml = saml_check.SamlChecks(sessions, sim)
    sm = sm_limits.SmRules(sim, authz)
    flt = faults.Faults(sim)
    quota = quotas.Quotas(sim)
    kms = kms_recipient.KmsRecipient(sim, attestation_roots, attestation_max_age_s)

    front = sim.StrictFront(app)
    front.pre_checks = [flt.check]
    front.checks = [saml.check_provider, authz.identify, quota.check, saml.check, authz.assume_role, sm.limits,
                    kms.check, authz.authorize, sm.state]
    front.after = [saml.after, authz.after_assume_role, sm.after, kms.after]
    front.on_write = sm.log_write
    front.on_reset = [sessions.clear, sm.clear_writes, flt.clear, quota.reset]

    def faults_route(req: Any, rest: str) -> Any:
        if rest:
            return sim.json_response({"error": "no such endpoint"}, 404)
        if req.method == "GET":
            return sim.json_response(flt.list())
        if req.method == "DELETE":
            flt.clear()
            return sim.json_response({"ok": True})
        if req.method == "POST":
            try:
                return sim.json_response({"ok": True, "fault": flt.add(req.json())})
            except (ValueError, faults.FaultError) as e:
                return sim.json_response({"error": str(e)}, 400)
        return sim.json_response({"error": "method not allowed"}, 405)

    def quotas_route(req: Any, rest: str) -> Any:
        if rest:
            return sim.json_response({"error": "no such endpoint"}, 404)
        if req.method == "GET":
            return sim.json_response(quota.snapshot())
        if req.method == "DELETE":
            quota.reset()
            return sim.json_response({"ok": True})
        if req.method == "PUT":
            try:
                return sim.json_response(quota.set_rates(req.json()))
            except (ValueError, quotas.QuotaError) as e:
                return sim.json_response({"error": str(e)}, 400)
        return sim.json_response({"error": "method not allowed"}, 405)

    def bulk_roles_route(req: Any, rest: str) -> Any:
        if rest or req.method != "POST":
            return sim.json_response({"error": "use POST /_sim/bulk-roles"}, 405)
        try:
            spec = req.json()
        except ValueError as e:
            return sim.json_response({"error": f"body is not JSON: {e}"}, 400)
        try:
            with front.serial:
                return sim.json_response(bulk.bulk_roles(spec))
        except bulk.BulkError as e:
            return sim.json_response({"error": str(e)}, e.status)

    def requests_route(req: Any, rest: str) -> dict:
        if req.method == "DELETE":
            sm.clear_writes()
            return {}
        return {"writes": sm.writes_snapshot(), "reads": sm.reads_snapshot()}

    def secrets_route(req: Any, rest: str) -> Any:
        if req.method != "GET" or not rest:
            return sim.json_response({"error": "use GET /_sim/secrets/<name>?region=R"}, 400)
        q = {k: v[0] for k, v in parse_qs(req.query).items()}
        with front.serial:
            info = sm.inspect(rest, q.get("region", "us-east-1"), q.get("account"))
        if info is None:
            return sim.json_response({"error": f"no secret {rest}"}, 404)
        return sim.json_response(info)

    def sessions_route(req: Any, rest: str) -> Any:
        with sessions._lock:
            items = list(sessions._by_key.values())
        return sim.json_response({"sessions": [
            {"access_key_id": s.access_key_id, "arn": s.arn, "role_arn": s.role_arn, "subject": s.subject,
             "session_name": s.session_name, "expiration": s.expiration} for s in items]})

    front.control_routes = {"faults": faults_route, "quotas": quotas_route, "bulk-roles": bulk_roles_route, "requests": requests_route,
                            "secrets": secrets_route, "sessions": sessions_route}
    return front
