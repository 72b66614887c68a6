"""Unit tests of the policy evaluator (no simulator process)."""

import json

import iam_eval as ev

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_wildcards_and_explicit_deny():
    allow = {"Effect": "Allow", "Action": "secretsmanager:Put*", "Resource": "arn:aws:secretsmanager:*:*:secret:app/*"}
    assert ev.evaluate([doc(allow)], "secretsmanager:PutSecretValue", ARN) == ev.ALLOW
    assert ev.evaluate([doc(allow)], "SecretsManager:putsecretvalue", ARN) == ev.ALLOW  # actions: case-insensitive
    assert ev.evaluate([doc(allow)], "secretsmanager:GetSecretValue", ARN) == ev.IMPLICIT_DENY
    pinned = dict(allow, Resource="arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-??????")
    assert ev.evaluate([doc(pinned)], "secretsmanager:PutSecretValue", ARN) == ev.ALLOW
    assert ev.evaluate([doc(pinned)], "secretsmanager:PutSecretValue", ARN + "x") == ev.IMPLICIT_DENY
    deny = {"Effect": "Deny", "NotAction": "secretsmanager:Get*", "Resource": "*"}
    assert ev.evaluate([doc(allow), doc(deny)], "secretsmanager:PutSecretValue", ARN) == ev.EXPLICIT_DENY
    not_res = {"Effect": "Allow", "Action": "*", "NotResource": ARN}
    assert ev.evaluate([doc(not_res)], "kms:Decrypt", "arn:aws:kms:us-east-1:1:key/k") == ev.ALLOW
    assert ev.evaluate([doc(not_res)], "kms:Decrypt", ARN) == ev.IMPLICIT_DENY
    assert ev.evaluate(["%7B%22Statement%22%3A%20%5B%5D%7D", "not json"], "a:b", ARN) == ev.IMPLICIT_DENY


def test_conditions():
    ctx = {"saml:sub": "tenant-a", "saml:sub_type": "persistent", "aws:TagKeys": ["a", "b"]}
    assert ev.conditions_hold({"StringEquals": {"SAML:sub": "tenant-a"}}, ctx)  # keys: case-insensitive
    assert ev.conditions_hold({"StringEquals": {"saml:sub": ["x", "tenant-a"]}}, ctx)
    assert not ev.conditions_hold({"StringEquals": {"saml:sub": "tenant-b"}}, ctx)
    assert ev.conditions_hold({"StringLike": {"saml:sub": "tenant-?"}}, ctx)
    assert not ev.conditions_hold({"StringNotEquals": {"saml:sub": "tenant-a"}}, ctx)
    assert ev.conditions_hold({"StringNotEquals": {"saml:iss": "x"}}, ctx)  # missing key: negated -> true
    assert not ev.conditions_hold({"StringEquals": {"saml:iss": "x"}}, ctx)
    assert ev.conditions_hold({"StringEqualsIfExists": {"saml:iss": "x"}}, ctx)
    assert ev.conditions_hold({"Null": {"saml:iss": "true", "saml:sub": "false"}}, ctx)
    assert ev.conditions_hold({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}, ctx)
    assert not ev.conditions_hold({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, ctx)
    assert ev.conditions_hold({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, ctx)
    assert not ev.conditions_hold({"NumericLessThan": {"x": "1"}}, ctx)  # unsupported operator: no match


def test_trust_policy():
    prov = "arn:aws:iam::123456789012:saml-provider/idp"
    st = {"Effect": "Allow", "Principal": {"Federated": prov}, "Action": ["sts:AssumeRoleWith*"],
          "Condition": {"StringEquals": {"saml:sub": "tenant-a"}}}
    ctx = {"saml:sub": "tenant-a"}
    assert ev.trust_allows(doc(st), "Federated", prov, "sts:AssumeRoleWithSAML", ctx)
    assert not ev.trust_allows(doc(st), "Federated", prov + "2", "sts:AssumeRoleWithSAML", ctx)
    assert not ev.trust_allows(doc(st), "Federated", prov, "sts:AssumeRoleWithSAML", {"saml:sub": "b"})
    deny = {"Effect": "Deny", "Principal": "*", "Action": "sts:*"}
    assert not ev.trust_allows(doc(st, deny), "Federated", prov, "sts:AssumeRoleWithSAML", ctx)


def test_key_policy_principals_and_delegation():
    acct = "123456789012"
    root = f"arn:aws:iam::{acct}:root"
    role = f"arn:aws:iam::{acct}:role/enclave"
    session = f"arn:aws:sts::{acct}:assumed-role/enclave/i-1"
    key = f"arn:aws:kms:us-east-1:{acct}:key/k"
    pin = {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": "AB" * 48}}
    ctx = {"kms:RecipientAttestation:ImageSha384": "ab" * 48}

    def doc(*statements):
        return {"Version": "2012-10-17", "Statement": list(statements)}

    def allow(principal, cond=None, action="kms:Decrypt"):
        st = {"Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*"}
        if cond:
            st["Condition"] = cond
        return st

    kp = ev.key_policy_evaluate
    # the account (root ARN or bare id) delegates to IAM, except for the root user itself
    for p in ({"AWS": root}, {"AWS": acct}):
        assert kp(doc(allow(p)), [role, session], acct, "kms:Decrypt", key, {}) == (ev.ALLOW, True)
    assert kp(doc(allow({"AWS": root})), [root], acct, "kms:Decrypt", key, {}) == (ev.ALLOW, False)
    # naming the role, the session, or everyone allows without IAM
    for p in ({"AWS": role}, {"AWS": [session, "x"]}, "*", {"AWS": "*"}):
        assert kp(doc(allow(p)), [role, session], acct, "kms:Decrypt", key, {}) == (ev.ALLOW, False), p
    # another role, another account, a service, wildcards inside an ARN: not the caller
    for p in ({"AWS": f"arn:aws:iam::{acct}:role/other"}, {"AWS": "arn:aws:iam::999999999999:root"},
              {"Service": "ec2.amazonaws.com"}, {"AWS": f"arn:aws:iam::{acct}:role/*"}):
        assert kp(doc(allow(p)), [role, session], acct, "kms:Decrypt", key, {})[0] == ev.IMPLICIT_DENY, p
    # conditions on the attestation: case-insensitive match, absent key -> no match
    assert kp(doc(allow({"AWS": role}, pin)), [role], acct, "kms:Decrypt", key, ctx)[0] == ev.ALLOW
    assert kp(doc(allow({"AWS": role}, pin)), [role], acct, "kms:Decrypt", key, {})[0] == ev.IMPLICIT_DENY
    # a Deny that applies wins over any Allow; Null denies non-attested calls only
    deny_plain = {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                  "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}}
    d = doc(allow({"AWS": role}), deny_plain)
    assert kp(d, [role], acct, "kms:Decrypt", key, {})[0] == ev.EXPLICIT_DENY
    assert kp(d, [role], acct, "kms:Decrypt", key, ctx)[0] == ev.ALLOW
    deny_acct = {"Effect": "Deny", "Principal": {"AWS": acct}, "Action": "kms:Decrypt", "Resource": "*"}
    assert kp(doc(allow("*"), deny_acct), [role], acct, "kms:Decrypt", key, {})[0] == ev.EXPLICIT_DENY
    # other actions are not covered; NotPrincipal statements are skipped
    assert kp(doc(allow({"AWS": role})), [role], acct, "kms:Encrypt", key, {})[0] == ev.IMPLICIT_DENY
    np = {"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "kms:*", "Resource": "*"}
    assert kp(doc(np), [role], acct, "kms:Decrypt", key, {})[0] == ev.IMPLICIT_DENY
