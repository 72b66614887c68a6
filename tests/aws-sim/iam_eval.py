"""A small IAM policy evaluator for the simulator's strict front (no moto imports here).

Covers what nitrosync's roles use: Effect, Action/NotAction, Resource/NotResource, Principal (for
trust policies), wildcards `*` and `?`, and the condition operators listed in OPERATORS (with the
`IfExists` suffix and the `ForAnyValue:`/`ForAllValues:` prefixes). Evaluation follows AWS's rule
for a single account: an explicit Deny wins, otherwise some Allow is needed, otherwise implicit deny.

Not covered (treated as "statement does not apply"): policy variables (`${aws:username}`),
NotPrincipal, numeric/date/IP operators, unknown operators. Permission boundaries, SCPs, session
policies and secret (resource) policies are not evaluated. KMS key policies are, through
`key_policy_evaluate` (used by kms_recipient.py for Decrypt, GenerateDataKey, GenerateDataKeyPair and
GenerateRandom, and for every other operation on a key by an assumed-role caller).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, Optional
from urllib.parse import unquote

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit_deny", "implicit_deny"


def as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def load_policy(doc: Any) -> dict:
    """A policy document from moto: a dict, a JSON string, or a URL-encoded JSON string."""
    if isinstance(doc, dict):
        return doc
    text = str(doc or "").strip()
    if text.startswith("%7B") or text.startswith("%7b"):
        text = unquote(text)
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@lru_cache(maxsize=4096)
def _glob_re(pattern: str, ignore_case: bool) -> "re.Pattern[str]":
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{rx}$", re.S | (re.I if ignore_case else 0))


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return bool(_glob_re(str(pattern), ignore_case).match(str(value)))


# ---------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------


def _str_eq(p: str, v: str) -> bool:
    return p == v


def _str_eq_ic(p: str, v: str) -> bool:
    return p.lower() == v.lower()


def _str_like(p: str, v: str) -> bool:
    return glob_match(p, v)


def _bool(p: str, v: str) -> bool:
    return str(p).lower() == str(v).lower()


# operator -> (matcher(policy_value, context_value), negated)
OPERATORS = {
    "stringequals": (_str_eq, False),
    "stringnotequals": (_str_eq, True),
    "stringequalsignorecase": (_str_eq_ic, False),
    "stringnotequalsignorecase": (_str_eq_ic, True),
    "stringlike": (_str_like, False),
    "stringnotlike": (_str_like, True),
    "arnequals": (_str_like, False),  # ARN operators compare with wildcards, like StringLike
    "arnlike": (_str_like, False),
    "arnnotequals": (_str_like, True),
    "arnnotlike": (_str_like, True),
    "bool": (_bool, False),
}


def _context_values(ctx: dict, key: str) -> Optional[list]:
    lk = key.lower()
    for k, v in ctx.items():
        if k.lower() == lk:
            return [str(x) for x in as_list(v)]
    return None


def condition_holds(op: str, key: str, policy_values: Any, ctx: dict) -> bool:
    """One (operator, key) entry of a Condition block."""
    set_op = ""
    if ":" in op:
        set_op, op = op.split(":", 1)
        set_op = set_op.lower()
    op_l = op.lower()
    if_exists = op_l.endswith("ifexists")
    if if_exists:
        op_l = op_l[: -len("ifexists")]
    values = [str(v) for v in as_list(policy_values)]
    ctx_values = _context_values(ctx, key)

    if op_l == "null":
        want_absent = any(v.lower() == "true" for v in values)
        return (ctx_values is None or ctx_values == []) == want_absent
    if op_l not in OPERATORS:
        return False
    match, negated = OPERATORS[op_l]
    if ctx_values is None:
        if set_op == "forallvalues":
            return True
        # A missing key never matches; negated operators are then true, *IfExists always true.
        return True if (if_exists or negated) else False

    def one(cv: str) -> bool:
        hit = any(match(pv, cv) for pv in values)
        return not hit if negated else hit

    if set_op == "forallvalues":
        return all(one(cv) for cv in ctx_values)
    if not ctx_values:
        return negated
    return any(one(cv) for cv in ctx_values)


def conditions_hold(cond: Any, ctx: dict) -> bool:
    if not cond:
        return True
    if not isinstance(cond, dict):
        return False
    for op, entries in cond.items():
        if not isinstance(entries, dict):
            return False
        for key, values in entries.items():
            if not condition_holds(op, key, values, ctx):
                return False
    return True


# ---------------------------------------------------------------------------------------------
# Statements
# ---------------------------------------------------------------------------------------------


def _matches_any(patterns: Iterable, value: str, ignore_case: bool) -> bool:
    return any(glob_match(p, value, ignore_case) for p in patterns)


def statement_applies(st: dict, action: str, resource: Optional[str], ctx: dict) -> bool:
    if "Action" in st:
        if not _matches_any(as_list(st["Action"]), action, True):
            return False
    elif "NotAction" in st:
        if _matches_any(as_list(st["NotAction"]), action, True):
            return False
    else:
        return False
    if resource is not None:
        if "Resource" in st:
            if not _matches_any(as_list(st["Resource"]), resource, False):
                return False
        elif "NotResource" in st:
            if _matches_any(as_list(st["NotResource"]), resource, False):
                return False
        else:
            return False
    return conditions_hold(st.get("Condition"), ctx)


def evaluate(docs: Iterable[Any], action: str, resource: str, ctx: Optional[dict] = None) -> str:
    """Identity-policy decision for one action on one resource: ALLOW, EXPLICIT_DENY or
    IMPLICIT_DENY."""
    ctx = ctx or {}
    allowed = False
    for doc in docs:
        for st in as_list(load_policy(doc).get("Statement")):
            if not isinstance(st, dict) or not statement_applies(st, action, resource, ctx):
                continue
            effect = str(st.get("Effect", ""))
            if effect == "Deny":
                return EXPLICIT_DENY
            if effect == "Allow":
                allowed = True
    return ALLOW if allowed else IMPLICIT_DENY


def _principal_matches(principal: Any, kind: str, value: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for k, v in principal.items():
        vals = [str(x) for x in as_list(v)]
        if k == kind and value in vals:
            return True
        if k == "AWS" and "*" in vals:
            return True
    return False


def trust_allows(doc: Any, principal_kind: str, principal: str, action: str, ctx: dict) -> bool:
    """Does a role's trust policy let `principal` (e.g. kind "Federated", a SAML provider ARN)
    perform `action` (e.g. sts:AssumeRoleWithSAML) given the condition context?"""
    allowed = False
    for st in as_list(load_policy(doc).get("Statement")):
        if not isinstance(st, dict) or "NotPrincipal" in st:
            continue
        if not _principal_matches(st.get("Principal"), principal_kind, principal):
            continue
        if not statement_applies(st, action, None, ctx):
            continue
        if st.get("Effect") == "Deny":
            return False
        if st.get("Effect") == "Allow":
            allowed = True
    return allowed


# ---------------------------------------------------------------------------------------------
# Key policies (resource policies of KMS keys)
# ---------------------------------------------------------------------------------------------

DIRECT, VIA_ACCOUNT = "direct", "account"


def _aws_principal_match(principal: Any, caller_arns: list, account: str) -> Optional[str]:
    """How a statement's Principal names the caller: DIRECT (`"*"`, `{"AWS": "*"}`, or one of the
    caller's ARNs: role, assumed-role session, or `arn:aws:iam::<acct>:root` for the account's
    root), VIA_ACCOUNT (the caller's account, as `<acct>` or `arn:aws:iam::<acct>:root`: the key
    policy delegates to IAM), or None. Principal ARNs are compared exactly (AWS allows no wildcards
    there other than a lone "*")."""
    if principal == "*":
        return DIRECT
    if not isinstance(principal, dict):
        return None
    found = None
    for v in (str(x) for x in as_list(principal.get("AWS"))):
        if v == "*" or v in caller_arns:
            return DIRECT
        if v in (account, f"arn:aws:iam::{account}:root"):
            found = VIA_ACCOUNT
    return found


def key_policy_evaluate(doc: Any, caller_arns: list, account: str, action: str, resource: str,
                        ctx: dict) -> tuple[str, bool]:
    """(decision, needs_iam) of a key policy for one caller in the key's account.

    EXPLICIT_DENY if a Deny statement names the caller (directly, through its account, or "*")
    and applies; ALLOW if an Allow statement applies, with `needs_iam` True when the only such
    statements name the caller's account (AWS then also requires the caller's IAM policies to
    allow, unless the caller is the account's root); otherwise IMPLICIT_DENY. Statements with
    NotPrincipal are skipped."""
    direct = via_account = False
    for st in as_list(load_policy(doc).get("Statement")):
        if not isinstance(st, dict) or "NotPrincipal" in st:
            continue
        how = _aws_principal_match(st.get("Principal"), caller_arns, account)
        if how is None or not statement_applies(st, action, resource, ctx):
            continue
        effect = str(st.get("Effect", ""))
        if effect == "Deny":
            return EXPLICIT_DENY, False
        if effect == "Allow":
            if how == DIRECT:
                direct = True
            else:
                via_account = True
    if direct:
        return ALLOW, False
    if via_account:
        return ALLOW, f"arn:aws:iam::{account}:root" not in caller_arns
    return IMPLICIT_DENY, False
