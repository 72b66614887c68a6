"""Read-only helpers over moto's in-process backends (moto 5.2.5), used by the strict front.

moto's server runs in this process, so the front reads the same IAM roles/policies/SAML providers,
Secrets Manager secrets and KMS keys that moto serves. Only partition "aws" is used.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

ROLE_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]{1,64})$")
PROVIDER_ARN_RE = re.compile(r"^arn:aws:iam::(\d{12}):saml-provider/([\w.-]{1,128})$")


def default_account() -> str:
    from moto.core import DEFAULT_ACCOUNT_ID

    return os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)


def iam(account: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account]["aws"]


def secretsmanager(account: str, region: str) -> Any:
    from moto.secretsmanager.models import secretsmanager_backends

    return secretsmanager_backends[account][region]


def kms(account: str, region: str) -> Any:
    from moto.kms.models import kms_backends

    return kms_backends[account][region]


# Role ARN -> role. moto finds roles by scanning all of them; with 10,000 roles that scan ran on
# every call. An entry is trusted only while moto still holds that very role object.
_roles_by_arn: dict = {}


def find_role(role_arn: str) -> Any:
    m = ROLE_ARN_RE.match(role_arn or "")
    if not m:
        return None
    backend = iam(m.group(1))
    role = _roles_by_arn.get(role_arn)
    if role is not None and backend.roles.get(role.id) is role:
        return role
    _roles_by_arn.pop(role_arn, None)
    found = None
    for r in backend.get_roles():
        _roles_by_arn[r.arn] = r
        if r.arn == role_arn:
            found = r
    return found


def find_saml_provider(provider_arn: str) -> Any:
    m = PROVIDER_ARN_RE.match(provider_arn or "")
    if not m:
        return None
    for p in iam(m.group(1)).list_saml_providers():
        if p.arn == provider_arn:
            return p
    return None


def role_identity_policies(role: Any) -> list:
    """Inline (PutRolePolicy) and attached managed policy documents of a role, current versions."""
    docs: list = list(role.policies.values())
    for policy in list(role.managed_policies.values()):
        for v in policy.versions:
            if v.is_default:
                docs.append(v.document)
    return docs


def find_secret(account: str, region: str, secret_id: str) -> Any:
    """The FakeSecret for a name, full ARN or partial ARN (deleted-pending ones included)."""
    if not secret_id:
        return None
    try:
        return secretsmanager(account, region).secrets.get(secret_id)
    except Exception:
        return None


def find_kms_key(account: str, region: str, key_id: str) -> Any:
    """The moto KMS Key for a key id, key ARN, alias name or alias ARN; None if there is none."""
    if not key_id:
        return None
    backend = kms(account, region)
    try:
        raw = backend.any_id_to_key_id(key_id)
    except Exception:
        return None
    return backend.keys.get(raw) if raw else None


def secret_tags(secret: Any) -> dict:
    return {t.get("Key"): t.get("Value") for t in (secret.tags or [])}
