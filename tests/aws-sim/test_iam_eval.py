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
