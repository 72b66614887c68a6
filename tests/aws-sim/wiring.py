"""Wires the strict front: which checks run, in which order, and the control API routes.

Order, as AWS does it: faults (pre-check, outside the serialising lock); IAM SAML metadata;
caller identity (SigV4/token/expiry of assumed-role callers); AssumeRoleWithSAML; Secrets Manager
input limits; identity-policy authorisation; secret state (pending deletion) and KMS key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import auth
import faults
import saml_check
import sm_limits


def build_front(app: Any, sim: Any) -> Any:
    """The StrictFront over `app` with every check wired in. `sim` is the aws_sim module (StrictFront,
    DropConnection, aws_json_error, aws_query_error, json_response), passed in because it usually
    runs as __main__."""
    sessions = auth.Sessions()
    authz = auth.AuthChecks(sessions, sim)
    saml = saml_check.SamlChecks(sessions, sim)
    sm = sm_limits.SmRules(sim, authz)
    flt = faults.Faults(sim)

    front = sim.StrictFront(app)
    front.pre_checks = [flt.check]
    front.checks = [saml.check_provider, authz.identify, saml.check, sm.limits, authz.authorize, sm.state]
    front.after = [saml.after, sm.after]
    front.on_write = sm.log_write
    front.on_reset = [sessions.clear, sm.clear_writes, flt.clear]

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

    def requests_route(req: Any, rest: str) -> dict:
        if req.method == "DELETE":
            sm.clear_writes()
            return {}
        return {"writes": sm.writes_snapshot()}

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

    front.control_routes = {"faults": faults_route, "requests": requests_route,
                            "secrets": secrets_route, "sessions": sessions_route}
    return front
