"""POST /_sim/bulk-roles: many customer roles in one call, written straight into moto's IAM.

Tests at scale (10,000 destinations) need a role per destination; through the IAM API that is
20,000 calls before the test starts. This route makes the same SAML provider, roles and inline
policies as `simctl.py setup-role` (same documents, from iam_docs.py), in one request. It is a
test fixture of the simulator, not an AWS API: everything the product does still goes through the
strict front.

Body: {"metadata": XML, "provider_name": N, "region": R, "account": A (optional),
       "roles": [{"role_name": R, "subject": S, "secret_name": N}, ...]}
Answer: {"saml_provider_arn": ARN, "account": A, "created": count}. Either every role is created
or, when a name is invalid or taken, none is (400/409 with the first offending name).
"""

from __future__ import annotations

import json
import re
from typing import Any

import iam_docs
import moto_state

ROLE_NAME_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
PROVIDER_NAME_RE = re.compile(r"^[\w.-]{1,128}$")
MAX_ROLES = 20_000


class BulkError(ValueError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bulk_roles(spec: Any) -> dict:
    if not isinstance(spec, dict):
        raise BulkError(400, "body must be a JSON object")
    metadata, provider_name = spec.get("metadata"), spec.get("provider_name")
    region = spec.get("region", "us-east-1")
    account = spec.get("account") or moto_state.default_account()
    roles = spec.get("roles")
    if not isinstance(metadata, str) or not metadata.strip():
        raise BulkError(400, "metadata must be the SAML metadata XML")
    if not isinstance(provider_name, str) or not PROVIDER_NAME_RE.match(provider_name):
        raise BulkError(400, "provider_name must be 1-128 of [A-Za-z0-9_.-]")
    if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
        raise BulkError(400, "account must be 12 digits")
    if not isinstance(roles, list) or not 1 <= len(roles) <= MAX_ROLES:
        raise BulkError(400, f"roles must be a list of 1 to {MAX_ROLES}")
    backend = moto_state.iam(account)
    taken = {r.name for r in backend.get_roles()}
    seen: set = set()
    for r in roles:
        name = r.get("role_name") if isinstance(r, dict) else None
        if not isinstance(name, str) or not ROLE_NAME_RE.match(name):
            raise BulkError(400, f"invalid role_name {name!r}")
        if not isinstance(r.get("subject"), str) or not isinstance(r.get("secret_name"), str):
            raise BulkError(400, f"role {name}: subject and secret_name must be strings")
        if name in taken or name in seen:
            raise BulkError(409, f"role {name} already exists")
        seen.add(name)

    provider = backend.saml_providers.get(provider_name)
    if provider is None:
        provider = backend.create_saml_provider(provider_name, metadata)
    else:
        provider.saml_metadata_document = metadata
    for r in roles:
        trust = iam_docs.trust_policy(provider.arn, r["subject"])
        role = backend.create_role(r["role_name"], json.dumps(trust), "/", None, "", [], "3600")
        role.put_policy("nitrosync-secret", json.dumps(iam_docs.secret_policy(account, region, r["secret_name"])))
    return {"saml_provider_arn": provider.arn, "account": account, "created": len(roles)}
