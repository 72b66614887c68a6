"""Tests of the strict front: SAML, authorisation, Secrets Manager limits, faults.

Run: cd /work/main && .venv/bin/python -m pytest tests/aws-sim -q
"""

import base64
import datetime as dt
import http.client
import json
import ssl
import time
import uuid

import pytest
from botocore.credentials import Credentials

from simlib import (ACCOUNT, ACS, Aws, Idp, creds_from, metadata, saml_response, start_sim, stop_sim,
                    xml_field)

REGION = "us-east-1"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:"


def token() -> str:
    return uuid.uuid4().hex  # 32 characters


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    info = start_sim(tmp_path_factory.mktemp("aws-sim-strict"))
    yield info
    stop_sim(info)


@pytest.fixture(scope="module")
def env(sim):
    """Admin setup: a SAML provider (two keys: rotation), roles, policies, KMS keys."""
    aws = Aws(sim)
    idp, idp2 = Idp(), Idp()
    t = aws.iam("CreateSAMLProvider", Name="nitrosync-idp", SAMLMetadataDocument=metadata(idp.entity_id, [idp, idp2]))
    provider = xml_field(t, "SAMLProviderArn")

    def make_role(name, conditions):
        st = {"Effect": "Allow", "Principal": {"Federated": provider}, "Action": "sts:AssumeRoleWithSAML"}
        if conditions:
            st["Condition"] = conditions
        t = aws.iam("CreateRole", RoleName=name,
                    AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [st]}))
        return xml_field(t, "Arn")

    role = make_role("tenant-a", {"StringEquals": {"SAML:aud": ACS, "saml:sub": "tenant-a",
                                                   "saml:sub_type": "persistent"}})
    open_role = make_role("open-role", {"StringEquals": {"SAML:aud": ACS}})
    any_role = make_role("any-role", {"StringLike": {"saml:sub": "tenant-*"}, "StringNotEquals": {"saml:sub_type": "transient"}})

    keys = {}
    for name in ("allowed", "forbidden", "disabled"):
        status, out = aws.kms("CreateKey", {"Description": name})
        assert status == 200, out
        keys[name] = out["KeyMetadata"]
    assert aws.kms("DisableKey", {"KeyId": keys["disabled"]["KeyId"]})[0] == 200
    assert aws.kms("CreateAlias", {"AliasName": "alias/nitrosync", "TargetKeyId": keys["allowed"]["KeyId"]})[0] == 200

    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Resource": SECRET_ARN + "app/*",
         "Action": ["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:Describe*",
                    "secretsmanager:GetSecretValue", "secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret"]},
        {"Effect": "Allow", "Action": "secretsmanager:TagResource", "Resource": SECRET_ARN + "app/t-*"},
        {"Effect": "Deny", "Action": "secretsmanager:PutSecretValue", "Resource": SECRET_ARN + "app/locked-??????"},
        {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": keys["allowed"]["Arn"]},
    ]}
    aws.iam("PutRolePolicy", RoleName="tenant-a", PolicyName="secrets", PolicyDocument=json.dumps(policy))
    t = aws.iam("CreatePolicy", PolicyName="list-secrets", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"}]}))
    aws.iam("AttachRolePolicy", RoleName="tenant-a", PolicyArn=xml_field(t, "Arn"))

    e = {"aws": aws, "idp": idp, "idp2": idp2, "provider": provider, "role": role, "open_role": open_role,
         "any_role": any_role,
         "keys": keys, "roles_attr": [f"{role},{provider}"]}
    st, text = assume(e)
    assert st == 200, text
    e["creds"] = creds_from(text)
    return e


def assume(e, subject="tenant-a", role=None, roles=None, idp=None, **kw):
    role = role or e["role"]
    roles = roles if roles is not None else [f"{role},{e['provider']}"]
    extra = {k: kw.pop(k) for k in list(kw) if k in ("DurationSeconds",)}
    xml = saml_response(idp or e["idp"], subject=subject, roles=roles, **kw)
    return e["aws"].assume(role, e["provider"], xml, **extra)


def code(text):
    return xml_field(text, "Code")


# ---------------------------------------------------------------------------------------------
# SAML provider metadata
# ---------------------------------------------------------------------------------------------


def test_saml_provider_metadata_must_parse(sim):
    aws = Aws(sim)
    bad = "<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'/>" + " " * 1000
    status, text = aws.query("iam", "CreateSAMLProvider", {"Name": "bad", "SAMLMetadataDocument": bad})
    assert (status, code(text)) == (400, "InvalidInput"), text
    status, text = aws.query("iam", "CreateSAMLProvider", {"Name": "short", "SAMLMetadataDocument": "<x/>"})
    assert (status, code(text)) == (400, "ValidationError"), text


# ---------------------------------------------------------------------------------------------
# AssumeRoleWithSAML
# ---------------------------------------------------------------------------------------------


def test_good_assertion_gives_credentials(env):
    st, text = assume(env)
    assert st == 200, text
    assert xml_field(text, "AccessKeyId").startswith("ASIA")
    assert xml_field(text, "Subject") == "tenant-a"
    assert xml_field(text, "SubjectType") == "persistent"
    assert xml_field(text, "Issuer") == env["idp"].entity_id
    assert xml_field(text, "Arn") == f"arn:aws:sts::{ACCOUNT}:assumed-role/tenant-a/nitrosync"
    # The default duration is 3600 s.
    exp = dt.datetime.strptime(xml_field(text, "Expiration")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    assert 3500 < (exp - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 3600
    c = creds_from(text)
    st, who = env["aws"].query("sts", "GetCallerIdentity", {}, creds=c)
    assert st == 200 and f"assumed-role/tenant-a/nitrosync" in who
    st, sessions = env["aws"].control("GET", "/_sim/sessions")
    assert any(s["access_key_id"] == c.access_key and s["subject"] == "tenant-a" for s in sessions["sessions"])


def test_role_attribute_either_order_rotation_key_and_regional_acs(env):
    st, text = assume(env, roles=[f"{env['provider']},{env['role']}"])
    assert st == 200, text
    st, text = assume(env, idp=env["idp2"])  # second signing key of the provider
    assert st == 200, text
    regional = "https://eu-west-1.signin.aws.amazon.com/saml"
    st, text = assume(env, role=env["open_role"], destination=regional, recipient=regional)
    assert st == 403, text  # allowed by the signature checks, but saml:aud pinned to the global ACS
    assert code(text) == "AccessDenied"
    st, text = assume(env, role=env["any_role"], subject="tenant-z", destination=regional, recipient=regional)
    assert st == 200, text
    assert xml_field(text, "Audience") == regional
    # Mixed ACS URLs: Destination regional, Recipient global.
    st, text = assume(env, role=env["any_role"], subject="tenant-z", destination=regional)
    assert (st, code(text)) == (400, "InvalidIdentityToken"), text
    # StringLike / StringNotEquals on saml:sub and saml:sub_type.
    st, text = assume(env, role=env["any_role"], subject="other-z")
    assert (st, code(text)) == (403, "AccessDenied"), text
    st, text = assume(env, role=env["any_role"], subject="tenant-z",
                      name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient")
    assert (st, code(text)) == (403, "AccessDenied"), text


def test_wrong_subject_is_access_denied(env):
    st, text = assume(env, subject="tenant-b")
    assert (st, code(text)) == (403, "AccessDenied"), text
    assert "Not authorized to perform sts:AssumeRoleWithSAML" in text
    # A role whose trust policy does not pin saml:sub admits any subject (the worker's probe case).
    st, text = assume(env, subject=f"probe-{uuid.uuid4().hex}", role=env["open_role"])
    assert st == 200, text


@pytest.mark.parametrize("kw, expect", [
    ({"tamper": True}, "Signature validation failed"),
    ({"sign": False}, "not signed"),
    ({"sha1": True}, "Deprecated"),
    ({"idp": "stranger"}, "Signature validation failed"),
    ({"audience": "urn:example"}, "not a valid audience"),
    ({"issuer": "https://evil.example/"}, "Invalid issuer"),
    ({"destination": "https://example.com/saml"}, "Destination"),
    ({"destination": "https://signin.aws.amazon.com/samlx"}, "Destination"),
    ({"recipient": "https://example.com/saml"}, "SubjectConfirmation"),
    ({"in_response_to": "_abc"}, "InResponseTo"),
    ({"session_name": None}, "RoleSessionName is required"),
    ({"session_name": "x"}, "RoleSessionName in AuthnResponse must match"),
    ({"session_name": "bad name!"}, "RoleSessionName in AuthnResponse must match"),
    ({"session_duration": "100"}, "SessionDuration"),
    ({"not_before_s": 900, "not_after_s": 1200}, "not yet valid"),
    ({"roles": []}, "Role attribute"),
])
def test_invalid_assertions(env, kw, expect):
    if kw.get("idp") == "stranger":
        kw = dict(kw, idp=Idp(env["idp"].entity_id))
    st, text = assume(env, **kw)
    assert (st, code(text)) == (400, "InvalidIdentityToken"), text
    assert expect.lower() in text.lower(), text


def test_expired_assertion_is_expired_token(env):
    # python3-saml allows 300 s of clock drift on Conditions; SubjectConfirmationData has none.
    st, text = assume(env, not_before_s=-1200, not_after_s=-600)
    assert (st, code(text)) == (400, "ExpiredToken"), text
    st, text = assume(env, sc_not_after_s=-10)
    assert (st, code(text)) == (400, "ExpiredToken"), text


def test_role_attribute_mismatch_is_access_denied(env):
    other = f"arn:aws:iam::{ACCOUNT}:role/someone-else"
    st, text = assume(env, roles=[f"{other},{env['provider']}"])
    assert (st, code(text)) == (403, "AccessDenied"), text


def test_unknown_provider_and_bad_parameters(env):
    aws = env["aws"]
    xml = saml_response(env["idp"], subject="tenant-a", roles=env["roles_attr"])
    st, text = aws.assume(env["role"], f"arn:aws:iam::{ACCOUNT}:saml-provider/nope", xml)
    assert (st, code(text)) == (400, "InvalidIdentityToken") and "provider doesn't exist" in text, text
    base = {"RoleArn": env["role"], "PrincipalArn": env["provider"]}
    st, text = aws.query("sts", "AssumeRoleWithSAML", dict(base, SAMLAssertion="%%%not base64%%%"), signed=False)
    assert (st, code(text)) == (400, "InvalidIdentityToken"), text
    st, text = aws.query("sts", "AssumeRoleWithSAML", dict(base, SAMLAssertion="A" * 100_004), signed=False)
    assert (st, code(text)) == (400, "ValidationError"), text
    st, text = aws.query("sts", "AssumeRoleWithSAML", base, signed=False)
    assert (st, code(text)) == (400, "ValidationError"), text
    st, text = assume(env, DurationSeconds=7200)  # role's MaxSessionDuration is 3600
    assert (st, code(text)) == (400, "ValidationError") and "MaxSessionDuration" in text, text
    st, text = assume(env, DurationSeconds=899)
    assert (st, code(text)) == (400, "ValidationError"), text
    st, text = assume(env, DurationSeconds=900)
    assert st == 200, text


# ---------------------------------------------------------------------------------------------
# Assumed-role callers: signature, policies, KMS
# ---------------------------------------------------------------------------------------------


def test_assumed_role_signature_token_and_clock(env):
    aws, c = env["aws"], env["creds"]
    # Change the last character (to one it is not: a random key may already end in "x").
    wrong = "y" if c.secret_key.endswith("x") else "x"
    bad_secret = Credentials(c.access_key, c.secret_key[:-1] + wrong, c.token)
    st, out = aws.sm("ListSecrets", {}, creds=bad_secret)
    assert (st, out["__type"]) == (400, "InvalidSignatureException"), out
    st, out = aws.sm("ListSecrets", {}, creds=Credentials(c.access_key, c.secret_key, "bogus"))
    assert (st, out["__type"]) == (400, "UnrecognizedClientException"), out
    skewed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    st, out = aws.sm("ListSecrets", {}, creds=c, when=skewed)
    assert (st, out["__type"]) == (400, "InvalidSignatureException") and "Signature expired" in out["message"]
    st, out = aws.sm("ListSecrets", {}, creds=c, when=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=4))
    assert st == 200, out  # within AWS's 5 minutes
    st, text = aws.query("sts", "GetCallerIdentity", {}, creds=bad_secret)
    assert (st, code(text)) == (403, "SignatureDoesNotMatch"), text


def test_policy_allows_and_denies(env):
    aws, c = env["aws"], env["creds"]
    st, out = aws.sm("CreateSecret", {"Name": "app/plain", "SecretString": "v1", "ClientRequestToken": token()}, creds=c)
    assert st == 200, out
    assert out["ARN"].startswith(SECRET_ARN + "app/plain-") and len(out["ARN"]) == len(SECRET_ARN + "app/plain-") + 6
    st, out = aws.sm("PutSecretValue", {"SecretId": "app/plain", "SecretString": "v2", "ClientRequestToken": token()},
                     creds=c)
    assert st == 200, out
    st, out = aws.sm("ListSecrets", {}, creds=c)  # attached managed policy
    assert st == 200, out

    # Not allowed: a secret outside app/*.
    assert aws.sm("CreateSecret", {"Name": "other/x", "SecretString": "v"})[0] == 200  # admin
    st, out = aws.sm("PutSecretValue", {"SecretId": "other/x", "SecretString": "v2"}, creds=c)
    assert (st, out["__type"]) == (400, "AccessDeniedException"), out
    assert out["message"].startswith(f"User: arn:aws:sts::{ACCOUNT}:assumed-role/tenant-a/nitrosync is not authorized "
                                     f"to perform: secretsmanager:PutSecretValue on resource: {SECRET_ARN}other/x-")
    assert out["message"].endswith("because no identity-based policy allows the secretsmanager:PutSecretValue action")
    st, out = aws.sm("CreateSecret", {"Name": "other/y", "SecretString": "v"}, creds=c)
    assert (st, out["__type"]) == (400, "AccessDeniedException"), out

    # Explicit deny wins over the app/* allow; the `-??????` pattern matches moto's ARN suffix.
    assert aws.sm("CreateSecret", {"Name": "app/locked", "SecretString": "v"})[0] == 200
    st, out = aws.sm("PutSecretValue", {"SecretId": "app/locked", "SecretString": "v2"}, creds=c)
    assert (st, out["__type"]) == (400, "AccessDeniedException") and "explicit deny" in out["message"], out

    # Tags on CreateSecret need secretsmanager:TagResource too.
    tags = [{"Key": "nitrosync:managed-by", "Value": "nitrosync"}]
    st, out = aws.sm("CreateSecret", {"Name": "app/tagged", "SecretString": "v", "Tags": tags}, creds=c)
    assert (st, out["__type"]) == (400, "AccessDeniedException") and "secretsmanager:TagResource" in out["message"]
    st, out = aws.sm("CreateSecret", {"Name": "app/t-tagged", "SecretString": "v", "Tags": tags}, creds=c)
    assert st == 200, out


def test_kms_keys(env):
    aws, c, keys = env["aws"], env["creds"], env["keys"]
    ok = [keys["allowed"]["KeyId"], keys["allowed"]["Arn"], "alias/nitrosync"]
    for i, key in enumerate(ok):
        st, out = aws.sm("CreateSecret", {"Name": f"app/kms-ok-{i}", "SecretString": "v", "KmsKeyId": key}, creds=c)
        assert st == 200, out
    st, out = aws.sm("CreateSecret", {"Name": "app/kms-no", "SecretString": "v",
                                      "KmsKeyId": keys["forbidden"]["Arn"]}, creds=c)
    assert (st, out) == (400, {"__type": "AccessDeniedException", "message": "Access to KMS is not allowed"})
    for key in (keys["disabled"]["KeyId"], "11111111-2222-3333-4444-555555555555", "alias/nope"):
        st, out = aws.sm("CreateSecret", {"Name": "app/kms-bad", "SecretString": "v", "KmsKeyId": key}, creds=c)
        assert (st, out["__type"]) == (400, "EncryptionFailure"), out
        st, out = aws.sm("CreateSecret", {"Name": "kms-bad-admin", "SecretString": "v", "KmsKeyId": key})  # admin too
        assert (st, out["__type"]) == (400, "EncryptionFailure"), out
    # A secret that an admin put under the forbidden key: the role may not write a new value.
    assert aws.sm("CreateSecret", {"Name": "app/kms-admin", "SecretString": "v",
                                   "KmsKeyId": keys["forbidden"]["KeyId"]})[0] == 200
    st, out = aws.sm("PutSecretValue", {"SecretId": "app/kms-admin", "SecretString": "v2"}, creds=c)
    assert (st, out["message"]) == (400, "Access to KMS is not allowed"), out
    st, out = aws.sm("UpdateSecret", {"SecretId": "app/kms-ok-0", "KmsKeyId": keys["forbidden"]["KeyId"]}, creds=c)
    assert (st, out["message"]) == (400, "Access to KMS is not allowed"), out
    # Direct KMS calls are authorised too (kms:<Operation> on the key ARN).
    st, out = aws.kms("GenerateDataKey", {"KeyId": keys["allowed"]["KeyId"], "KeySpec": "AES_256"}, creds=c)
    assert st == 200, out
    st, out = aws.kms("DescribeKey", {"KeyId": keys["allowed"]["KeyId"]}, creds=c)
    assert (st, out["__type"]) == (400, "AccessDeniedException"), out
    assert f"kms:DescribeKey on resource: {keys['allowed']['Arn']}" in out["message"]


# ---------------------------------------------------------------------------------------------
# Secrets Manager limits and state (admin caller: limits apply to everyone)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload, err", [
    ({"Name": "lim/big", "SecretString": "x" * 65_537}, "ValidationException"),
    ({"Name": "lim/bigutf8", "SecretString": "é" * 32_769}, "ValidationException"),
    ({"Name": "lim/empty", "SecretString": ""}, "ValidationException"),
    ({"Name": "n" * 513, "SecretString": "v"}, "ValidationException"),
    ({"Name": "", "SecretString": "v"}, "ValidationException"),
    ({"Name": "lim/bad name", "SecretString": "v"}, "ValidationException"),
    ({"Name": "lim/bad#", "SecretString": "v"}, "ValidationException"),
    ({"Name": "lim/tok", "SecretString": "v", "ClientRequestToken": "a" * 31}, "ValidationException"),
    ({"Name": "lim/tok", "SecretString": "v", "ClientRequestToken": "a" * 65}, "ValidationException"),
    ({"Name": "lim/tags", "SecretString": "v", "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]},
     "ValidationException"),
    ({"Name": "lim/tags", "SecretString": "v", "Tags": [{"Key": "k" * 129, "Value": "v"}]}, "ValidationException"),
    ({"Name": "lim/tags", "SecretString": "v", "Tags": [{"Key": "k", "Value": "v" * 257}]}, "ValidationException"),
    ({"Name": "lim/tags", "SecretString": "v", "Tags": [{"Key": "aws:x", "Value": "v"}]}, "InvalidParameterException"),
    ({"Name": "lim/both", "SecretString": "v", "SecretBinary": "dg=="}, "InvalidParameterException"),
])
def test_limits_rejected(env, payload, err):
    st, out = env["aws"].sm("CreateSecret", payload)
    assert (st, out["__type"]) == (400, err), out


def test_limits_accepted(env):
    aws = env["aws"]
    ok = [
        {"Name": "lim/max", "SecretString": "x" * 65_536, "ClientRequestToken": "a" * 64},
        {"Name": "n" * 512, "SecretString": "v", "ClientRequestToken": "b" * 32},
        {"Name": "lim/ends-abcdef", "SecretString": "v"},  # discouraged, not refused (the worker checks)
        {"Name": "lim/chars_+=.@-/", "SecretString": "v"},
        {"Name": "lim/tags-ok", "SecretString": "v",
         "Tags": [{"Key": f"{i:0128d}", "Value": "v" * 256} for i in range(50)]},
    ]
    for p in ok:
        st, out = aws.sm("CreateSecret", p)
        assert st == 200, (p["Name"][:40], out)
    st, out = aws.sm("TagResource", {"SecretId": "lim/tags-ok", "Tags": [{"Key": "one-more", "Value": "v"}]})
    assert (st, out["__type"]) == (400, "ValidationException"), out
    st, out = aws.sm("PutSecretValue", {"SecretId": "lim/max", "SecretString": "x" * 65_537})
    assert (st, out["__type"]) == (400, "ValidationException"), out


def test_not_found_is_400(env):
    st, out = env["aws"].sm("GetSecretValue", {"SecretId": "does/not/exist"})
    assert (st, out["__type"]) == (400, "ResourceNotFoundException"), out
    st, out = env["aws"].sm("PutSecretValue", {"SecretId": "app/does-not-exist", "SecretString": "v"},
                            creds=env["creds"])
    assert (st, out["__type"]) == (400, "ResourceNotFoundException"), out


def test_pending_deletion(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "del/x", "SecretString": "v"})[0] == 200
    st, out = aws.sm("DeleteSecret", {"SecretId": "del/x", "RecoveryWindowInDays": 7})
    assert st == 200, out
    st, out = aws.sm("CreateSecret", {"Name": "del/x", "SecretString": "v", "ClientRequestToken": token()})
    assert (st, out["__type"]) == (400, "InvalidRequestException") and "scheduled for deletion" in out["message"]
    for op, p in (("PutSecretValue", {"SecretString": "v2"}), ("UpdateSecret", {"SecretString": "v2"}),
                  ("TagResource", {"Tags": [{"Key": "k", "Value": "v"}]})):
        st, out = aws.sm(op, dict(p, SecretId="del/x"))
        assert (st, out["__type"]) == (400, "InvalidRequestException"), (op, out)
        assert "marked for deletion" in out["message"]
    st, info = aws.control("GET", "/_sim/secrets/del/x")
    assert st == 200 and info["deleted"] is True and info["versions"] == 1
    assert aws.sm("RestoreSecret", {"SecretId": "del/x"})[0] == 200
    assert aws.sm("PutSecretValue", {"SecretId": "del/x", "SecretString": "v2"})[0] == 200
    st, out = aws.sm("DeleteSecret", {"SecretId": "del/x", "ForceDeleteWithoutRecovery": True})
    assert st == 200, out
    assert aws.sm("CreateSecret", {"Name": "del/x", "SecretString": "v"})[0] == 200  # force-deleted: name is free


def test_idempotent_client_request_token(env):
    aws, c = env["aws"], env["creds"]
    tags = [{"Key": "nitrosync:managed-by", "Value": "nitrosync"}]
    t0 = token()
    st, out = aws.sm("CreateSecret", {"Name": "app/t-idem", "SecretString": "v0", "ClientRequestToken": t0,
                                      "Tags": tags, "KmsKeyId": "alias/nitrosync"}, creds=c)
    assert st == 200 and out["VersionId"] == t0, out  # moto (like AWS) uses the token as the VersionId
    st, again = aws.sm("CreateSecret", {"Name": "app/t-idem", "SecretString": "v0", "ClientRequestToken": t0,
                                        "Tags": tags, "KmsKeyId": "alias/nitrosync"}, creds=c)
    assert st == 200 and again["ARN"] == out["ARN"], again  # retried create: same secret
    t1 = token()
    for _ in range(3):
        st, out = aws.sm("PutSecretValue", {"SecretId": "app/t-idem", "SecretString": "v1", "ClientRequestToken": t1},
                         creds=c)
        assert st == 200 and out["VersionId"] == t1, out
    st, info = aws.control("GET", "/_sim/secrets/app/t-idem")
    assert info["versions"] == 2 and info["current_version"] == t1, info
    assert info["tags"] == {"nitrosync:managed-by": "nitrosync"} and info["kms_key_id"] == "alias/nitrosync"
    assert info["deleted"] is False
    st, out = aws.sm("PutSecretValue", {"SecretId": "app/t-idem", "SecretString": "other", "ClientRequestToken": t1},
                     creds=c)
    assert (st, out["__type"]) == (400, "ResourceExistsException"), out
    st, reqs = aws.control("GET", "/_sim/requests")
    writes = reqs["writes"]["app/t-idem"]
    assert [w["action"] for w in writes] == ["CreateSecret"] * 2 + ["PutSecretValue"] * 4
    assert writes[-1]["status"] == "400 ResourceExistsException" and writes[-1]["client_request_token"] == t1
    assert writes[-1]["caller"] == "assumed-role"
    assert aws.control("GET", "/_sim/secrets/nope")[0] == 404


def test_reads_are_logged_with_their_arrival_time_and_account(env):
    aws, c = env["aws"], env["creds"]
    tags = [{"Key": "nitrosync:managed-by", "Value": "nitrosync"}]
    assert aws.sm("CreateSecret", {"Name": "app/t-reads", "SecretString": "v0", "Tags": tags,
                                   "KmsKeyId": "alias/nitrosync"}, creds=c)[0] == 200
    before = time.time()
    for _ in range(3):
        assert aws.sm("DescribeSecret", {"SecretId": "app/t-reads"}, creds=c)[0] == 200
    st, out = aws.sm("DescribeSecret", {"SecretId": "app/t-reads-absent"}, creds=c)
    assert (st, out["__type"]) == (400, "ResourceNotFoundException"), out
    after = time.time()
    reads = aws.control("GET", "/_sim/requests")[1]["reads"]
    mine = reads["app/t-reads"]
    assert [r["action"] for r in mine] == ["DescribeSecret"] * 3
    assert all(r["status"] == "200" and r["caller"] == "assumed-role" and r["account"] == ACCOUNT
               and r["region"] == REGION for r in mine), mine
    times = [r["time"] for r in mine]
    assert times == sorted(times) and before - 0.001 <= times[0] and times[-1] <= after + 0.001, (before, times)
    assert reads["app/t-reads-absent"][0]["status"] == "400 ResourceNotFoundException"
    # Reads are not writes.
    writes = aws.control("GET", "/_sim/requests")[1]["writes"]["app/t-reads"]
    assert [w["action"] for w in writes] == ["CreateSecret"]


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


def _put(aws, name, value, tok, **kw):
    return aws.sm("PutSecretValue", {"SecretId": name, "SecretString": value, "ClientRequestToken": tok}, **kw)


def test_fault_control_api(env):
    aws = env["aws"]
    assert aws.control("DELETE", "/_sim/faults")[0] == 200
    st, out = aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": "nope"})
    assert st == 400, out
    st, out = aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": "throttle",
                                                    "count": 2})
    assert st == 200 and out["fault"]["remaining"] == 2
    st, out = aws.control("GET", "/_sim/faults")
    assert [f["kind"] for f in out["faults"]] == ["throttle"]
    assert aws.control("DELETE", "/_sim/faults")[0] == 200
    assert aws.control("GET", "/_sim/faults")[1]["faults"] == []


def test_faults_answer_errors(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "flt/a", "SecretString": "v"})[0] == 200
    cases = [("throttle", 400, "ThrottlingException"), ("error5xx", 500, "InternalServiceError"),
             ("limit", 400, "LimitExceededException")]
    for kind, status, err in cases:
        aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": kind, "count": 2})
        for _ in range(2):
            st, out = _put(aws, "flt/a", "v2", token())
            assert (st, out["__type"]) == (status, err), out
        assert _put(aws, "flt/a", "v2", token())[0] == 200  # count used up
    st, out = aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": "throttle"})
    st, out = _put(aws, "flt/a", "v3", token())
    assert out == {"__type": "ThrottlingException", "message": "Rate exceeded"}
    # STS: query-protocol shapes.
    for kind, status, err in (("throttle", 400, "Throttling"), ("error5xx", 500, "InternalFailure")):
        aws.control("POST", "/_sim/faults", {"action": "sts:AssumeRoleWithSAML", "kind": kind})
        st, text = assume(env)
        assert (st, code(text)) == (status, err), text
    assert assume(env)[0] == 200


def test_fault_latency(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "flt/lat", "SecretString": "v"})[0] == 200
    aws.control("POST", "/_sim/faults", {"action": "secretsmanager:*", "kind": "latency", "latency_ms": 400})
    t0 = time.monotonic()
    assert _put(aws, "flt/lat", "v2", token())[0] == 200
    assert time.monotonic() - t0 >= 0.4


def test_fault_drops(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "flt/drop", "SecretString": "v"})[0] == 200
    assert aws.control("GET", "/_sim/secrets/flt/drop")[1]["versions"] == 1

    aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": "drop_before"})
    with pytest.raises((http.client.HTTPException, ConnectionError, ssl.SSLError, OSError)):
        _put(aws, "flt/drop", "v2", token())
    assert aws.control("GET", "/_sim/secrets/flt/drop")[1]["versions"] == 1  # nothing written

    t = token()
    aws.control("POST", "/_sim/faults", {"action": "secretsmanager:PutSecretValue", "kind": "drop_after"})
    with pytest.raises((http.client.HTTPException, ConnectionError, ssl.SSLError, OSError)):
        _put(aws, "flt/drop", "v2", t)
    assert aws.control("GET", "/_sim/secrets/flt/drop")[1]["versions"] == 2  # written, answer lost
    st, out = _put(aws, "flt/drop", "v2", t)  # the client's retry with the same token
    assert st == 200 and out["VersionId"] == t
    assert aws.control("GET", "/_sim/secrets/flt/drop")[1]["versions"] == 2  # no second version
    writes = aws.control("GET", "/_sim/requests")[1]["writes"]["flt/drop"]
    assert [w["status"] for w in writes[-3:]] == ["dropped_before", "dropped_after 200", "200"]

    # drop_after on AssumeRoleWithSAML: credentials were issued but the client never saw them.
    aws.control("POST", "/_sim/faults", {"action": "sts:AssumeRoleWithSAML", "kind": "drop_after"})
    with pytest.raises((http.client.HTTPException, ConnectionError, ssl.SSLError, OSError)):
        assume(env)
    assert assume(env)[0] == 200


def test_boto3_with_loopback_endpoint_is_checked_too(sim, env):
    """Clients that use endpoint_url=https://127.0.0.1:PORT (simctl.py) send no AWS Host: the
    front takes the service from the SigV4 scope / X-Amz-Target / STS action instead."""
    import boto3
    from botocore.config import Config

    def client(service, **kw):
        return boto3.client(service, region_name=REGION, endpoint_url=f"https://127.0.0.1:{sim['port']}",
                            verify=sim["ca"], config=Config(retries={"max_attempts": 1}),
                            aws_access_key_id="AKIAIOSFODNN7EXAMPLE", aws_secret_access_key="x" * 40, **kw)

    sm = client("secretsmanager")
    with pytest.raises(sm.exceptions.ClientError) as e:
        sm.create_secret(Name="bad name", SecretString="v")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sts = client("sts")
    xml = saml_response(env["idp"], subject="tenant-b", roles=env["roles_attr"])
    with pytest.raises(sts.exceptions.ClientError) as e:
        sts.assume_role_with_saml(RoleArn=env["role"], PrincipalArn=env["provider"],
                                  SAMLAssertion=base64.b64encode(xml).decode())
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    xml = saml_response(env["idp"], subject="tenant-a", roles=env["roles_attr"])
    out = sts.assume_role_with_saml(RoleArn=env["role"], PrincipalArn=env["provider"],
                                    SAMLAssertion=base64.b64encode(xml).decode())
    c = out["Credentials"]
    assert out["Subject"] == "tenant-a" and out["SubjectType"] == "persistent"
    sm_role = boto3.client("secretsmanager", region_name=REGION, endpoint_url=f"https://127.0.0.1:{sim['port']}",
                           verify=sim["ca"], config=Config(retries={"max_attempts": 1}),
                           aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
                           aws_session_token=c["SessionToken"])
    assert sm_role.create_secret(Name="app/boto3", SecretString="v")["Name"] == "app/boto3"
    with pytest.raises(sm_role.exceptions.ClientError) as e:
        sm_role.create_secret(Name="other/boto3", SecretString="v")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


# ---------------------------------------------------------------------------------------------
# Request-rate quotas
# ---------------------------------------------------------------------------------------------


def test_quota_control_api(env):
    aws = env["aws"]
    st, out = aws.control("GET", "/_sim/quotas")
    assert st == 200 and out["rates"]["secretsmanager:writes"] == 50 and out["rates"]["sts:all"] == 600
    assert aws.control("PUT", "/_sim/quotas", {"secretsmanager:nope": 1})[0] == 400
    assert aws.control("PUT", "/_sim/quotas", {"secretsmanager:writes": 0})[0] == 400
    assert aws.control("PUT", "/_sim/quotas", {"secretsmanager:writes": True})[0] == 400
    assert aws.control("DELETE", "/_sim/quotas")[0] == 200


def test_quota_throttles_over_the_rate_and_refills(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "quota/a", "SecretString": "v0"})[0] == 200
    st, out = aws.control("PUT", "/_sim/quotas", {"secretsmanager:writes": 5})
    assert st == 200 and out["rates"]["secretsmanager:writes"] == 5
    try:
        statuses = [_put(aws, "quota/a", f"v{i}", token()) for i in range(8)]
        ok = [s for s, _ in statuses if s == 200]
        throttled = [o for s, o in statuses if s != 200]
        # A full bucket holds one second of the rate: 5 pass (a 6th if a token refilled meanwhile).
        assert 5 <= len(ok) <= 6, statuses
        assert throttled and all(o == {"__type": "ThrottlingException", "message": "Rate exceeded"}
                                 for o in throttled), throttled
        # Reads are another group and are not affected.
        assert aws.sm("DescribeSecret", {"SecretId": "quota/a"})[0] == 200
        assert aws.control("GET", "/_sim/quotas")[1]["throttled"]["secretsmanager:writes"] == len(throttled)
        # The throttled calls wrote nothing: the secret has exactly the accepted versions.
        st, info = aws.control("GET", "/_sim/secrets/quota/a")
        assert info["versions"] == 1 + len(ok), info
        time.sleep(0.25)  # a token refills every 0.2 s
        assert _put(aws, "quota/a", "later", token())[0] == 200
    finally:
        aws.control("DELETE", "/_sim/quotas")
    assert aws.control("GET", "/_sim/quotas")[1]["throttled_total"] == 0


def test_quota_is_per_account_of_the_role_for_assume_role_with_saml(env):
    aws = env["aws"]
    aws.control("PUT", "/_sim/quotas", {"sts:all": 2})
    try:
        answers = [assume(env) for _ in range(4)]
        assert [st for st, _ in answers[:2]] == [200, 200], answers
        throttled = [code(text) for st, text in answers[2:] if st != 200]
        assert throttled and set(throttled) == {"Throttling"}, answers
    finally:
        aws.control("DELETE", "/_sim/quotas")
    assert assume(env)[0] == 200


# ---------------------------------------------------------------------------------------------
# Bulk roles (test fixture route)
# ---------------------------------------------------------------------------------------------


def test_bulk_roles_make_working_pinned_roles(env):
    aws, idp = env["aws"], Idp()
    md = metadata(idp.entity_id, [idp])
    roles = [{"role_name": f"bulk-{i}", "subject": f"sub-{i}", "secret_name": f"bulk/{i}"} for i in range(50)]
    st, out = aws.control("POST", "/_sim/bulk-roles", {"metadata": md, "provider_name": "bulk", "roles": roles})
    assert st == 200 and out["created"] == 50, out
    provider = out["saml_provider_arn"]
    role = f"arn:aws:iam::{ACCOUNT}:role/bulk-7"
    # The pinned subject works, and its credentials may write only its own secret.
    st, text = aws.assume(role, provider, saml_response(idp, subject="sub-7", roles=[f"{role},{provider}"]))
    assert st == 200, text
    c = creds_from(text)
    assert aws.sm("CreateSecret", {"Name": "bulk/7", "SecretString": "x"}, creds=c)[0] == 200
    st, out2 = aws.sm("CreateSecret", {"Name": "bulk/8", "SecretString": "x"}, creds=c)
    assert (st, out2["__type"]) == (400, "AccessDeniedException"), out2
    # Another subject is refused.
    st, text = aws.assume(role, provider, saml_response(idp, subject="sub-8", roles=[f"{role},{provider}"]))
    assert (st, code(text)) == (403, "AccessDenied"), text
    # All or nothing: a taken name creates none of the batch.
    st, out = aws.control("POST", "/_sim/bulk-roles", {"metadata": md, "provider_name": "bulk", "roles": [
        {"role_name": "bulk-new", "subject": "s", "secret_name": "n"}, roles[0]]})
    assert st == 409 and "bulk-0" in out["error"], out
    st, text = aws.query("iam", "GetRole", {"RoleName": "bulk-new"})
    assert st == 404, text
    assert aws.control("POST", "/_sim/bulk-roles", {"metadata": md, "provider_name": "bulk",
                                                    "roles": [{"role_name": "bad name!"}]})[0] == 400


def test_describe_lists_only_labelled_versions(env):
    aws = env["aws"]
    assert aws.sm("CreateSecret", {"Name": "labels/a", "SecretString": "v0"})[0] == 200
    for i in range(3):
        assert _put(aws, "labels/a", f"v{i + 1}", token())[0] == 200
    st, out = aws.sm("DescribeSecret", {"SecretId": "labels/a"})
    assert st == 200, out
    assert sorted(s for stages in out["VersionIdsToStages"].values() for s in stages) == [
        "AWSCURRENT", "AWSPREVIOUS"], out
    assert len(out["VersionIdsToStages"]) == 2
    # The versions are all still there (the inspection route reads moto directly).
    assert aws.control("GET", "/_sim/secrets/labels/a")[1]["versions"] == 4
