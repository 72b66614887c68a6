"""The enclave's identity key, end to end through the strict front (DESIGN §10).

The parent's EC2 instance role is simulated with `simctl.py instance-role` (a role trusted by
ec2.amazonaws.com, assumed by the admin with sts:AssumeRole); the key is made with `simctl.py
create-identity-key` (CreateKey with BypassPolicyLockoutSafetyCheck) from the policy that
`nitrosync kms template` writes. With the instance role's session credentials, as the enclave
will: DescribeKey, GetKeyPolicy, ListGrants, then GenerateDataKey and Decrypt with a Recipient,
all authorised by the KEY POLICY naming the role (the role has no IAM policy at all).

Run: cd /work/main && .venv/bin/python -m pytest tests/aws-sim -q
"""

import base64
import html
import json
import os
import subprocess
import sys
import time

import pytest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import hashes, padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

import cms_recipient
import iam_eval
from simlib import ACCOUNT, Aws, TestNsm, rsa_recipient, start_sim, stop_sim, xml_field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/kms-admin"
IMAGE_SHA384 = "kms:RecipientAttestation:ImageSha384"
PCR0, PCR1, PCR2 = bytes([0xA0]) * 48, bytes([0xA1]) * 48, bytes([0xA2]) * 48
ZERO = bytes(48)
# iam/src/kms.rs ADMIN_ACTIONS: no PutKeyPolicy, no key material, no grants.
ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey", "kms:DisableKey",
    "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ListGrants", "kms:ListKeyPolicies", "kms:ListKeyRotations",
    "kms:ListResourceTags", "kms:RevokeGrant", "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion",
    "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription"]
ATTESTED = ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"]


def pcrs(p0=PCR0, p1=PCR1, p2=PCR2):
    out = {i: ZERO for i in range(16)}
    out.update({0: p0, 1: p1, 2: p2})
    return out


def template_policy(enclave_role: str, pcr0: bytes = PCR0) -> dict:
    """What `nitrosync kms template` writes for one image (iam/src/kms.rs), statement for statement."""
    return {"Version": "2012-10-17", "Id": "nitrosync-enclave-identity", "Statement": [
        {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": ADMIN_ROLE},
         "Action": ADMIN_ACTIONS, "Resource": "*"},
        {"Sid": "EnclaveInspectKey", "Effect": "Allow", "Principal": {"AWS": enclave_role},
         "Action": ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants"], "Resource": "*"},
        {"Sid": "EnclaveImage1", "Effect": "Allow", "Principal": {"AWS": enclave_role},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringEqualsIgnoreCase": {IMAGE_SHA384: pcr0.hex(),
                                                  "kms:RecipientAttestation:PCR1": PCR1.hex(),
                                                  "kms:RecipientAttestation:PCR2": PCR2.hex()}}},
        {"Sid": "DenyWithoutAttestation", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"], "Resource": "*",
         "Condition": {"Null": {IMAGE_SHA384: "true"}}},
        {"Sid": "DenyDebugImage", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ATTESTED,
         "Resource": "*", "Condition": {"StringEqualsIgnoreCase": {IMAGE_SHA384: ZERO.hex()}}},
        {"Sid": "DenyOtherImages", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ATTESTED,
         "Resource": "*", "Condition": {"StringNotEqualsIgnoreCase": {IMAGE_SHA384: [pcr0.hex()]}}},
        {"Sid": "DenyGrants", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:CreateGrant",
         "Resource": "*"},
        {"Sid": "DenyPolicyChange", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "kms:PutKeyPolicy",
         "Resource": "*"},
    ]}


def recipient(doc: bytes) -> dict:
    return {"AttestationDocument": base64.b64encode(doc).decode(), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}


def open_envelope(envelope: bytes, key) -> bytes:
    """Opens KMS's CiphertextForRecipient (CMS EnvelopedData, KeyTransRecipientInfo with RSAES-OAEP
    SHA-256, AES-256-CBC) with the recipient's private key."""
    (_, _, (_, content)), _ = cms_recipient.parse_ber(envelope)
    (_, _, [env]) = content
    _, rinfos, eci = env[2]
    ktri = rinfos[2][0][2]
    cek = key.decrypt(ktri[3][2], padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                               label=None))
    iv = eci[2][1][2][1][2]
    ciphertext = b"".join(c[2] for c in eci[2][2][2])
    dec = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    unpad = sym_padding.PKCS7(128).unpadder()
    return unpad.update(dec.update(ciphertext) + dec.finalize()) + unpad.finalize()


def simctl(sim, *args) -> dict:
    r = subprocess.run([sys.executable, os.path.join(HERE, "simctl.py"), "--sim-dir", str(sim["state"]), *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def creds_of(role: dict) -> Credentials:
    return Credentials(role["access_key_id"], role["secret_access_key"], role["session_token"])


@pytest.fixture(scope="module")
def nsm():
    return TestNsm("identity nsm")


@pytest.fixture(scope="module")
def sim(tmp_path_factory, nsm):
    state = tmp_path_factory.mktemp("aws-sim-identity")
    root = state / "sim-nsm" / "sim-root.pem"  # the enclave writes it at its first start
    info = start_sim(state, extra_args=["--attestation-root", str(root)])
    info["root"] = root
    yield info
    stop_sim(info)


@pytest.fixture(scope="module")
def parent(sim, nsm):
    """The parent's instance role, and the root of the simulated NSM written after the simulator
    started (as the enclave does)."""
    root = sim["root"]
    root.parent.mkdir()
    root.write_bytes(nsm.root_pem)
    return simctl(sim, "instance-role")


@pytest.fixture(scope="module")
def identity_key(sim, parent, tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "key-policy.json"
    text = json.dumps(template_policy(parent["role_arn"]), indent=2)
    path.write_text(text)
    key = simctl(sim, "create-identity-key", "--policy", str(path))
    return dict(key, policy=text)


def test_instance_role_is_an_assumed_role_caller(sim, parent):
    assert set(parent) >= {"role_arn", "access_key_id", "secret_access_key", "session_token", "account"}
    assert parent["role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/nitrosync-parent"
    assert parent["account"] == ACCOUNT
    assert parent["session_arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/nitrosync-parent/i-0123456789abcdef0"
    aws = Aws(sim)
    role = aws.iam("GetRole", RoleName="nitrosync-parent")
    trust = iam_eval.load_policy(html.unescape(xml_field(role, "AssumeRolePolicyDocument")))
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    st, who = aws.query("sts", "GetCallerIdentity", {}, creds=creds_of(parent))
    assert st == 200 and xml_field(who, "Arn") == parent["session_arn"], who
    sessions = aws.control("GET", "/_sim/sessions")[1]["sessions"]
    assert any(s["access_key_id"] == parent["access_key_id"] and s["role_arn"] == parent["role_arn"]
               for s in sessions)
    # A wrong session token or signature is refused: the front knows these credentials.
    st, err = aws.kms("ListKeys", {}, creds=Credentials(parent["access_key_id"], parent["secret_access_key"], "x"))
    assert (st, err["__type"]) == (400, "UnrecognizedClientException")
    st, err = aws.kms("ListKeys", {}, creds=Credentials(parent["access_key_id"], "wrong", parent["session_token"]))
    assert (st, err["__type"]) == (400, "InvalidSignatureException")
    # Again: the role is reused, a new session is issued.
    again = simctl(sim, "--region", "eu-west-1", "instance-role", "--session-name", "i-0fedcba9876543210")
    assert again["role_arn"] == parent["role_arn"] and again["access_key_id"] != parent["access_key_id"]


def test_assume_role_is_checked(sim, parent):
    aws = Aws(sim)

    def assume(creds=None, **params):
        return aws.query("sts", "AssumeRole", dict({"RoleArn": parent["role_arn"], "RoleSessionName": "s1"}, **params),
                         creds=creds)

    st, text = assume(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/no-such-role")
    assert st == 403 and xml_field(text, "Code") == "AccessDenied", text
    st, text = assume(RoleSessionName="a b")
    assert st == 400 and xml_field(text, "Code") == "ValidationError", text
    st, text = assume(DurationSeconds="600")
    assert st == 400 and xml_field(text, "Code") == "ValidationError", text
    st, text = assume(RoleArn="nitrosync-parent")
    assert st == 400 and "Request ARN is invalid" in text
    aws.iam("CreateRole", RoleName="short-sessions", MaxSessionDuration="3600",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": parent["role_arn"]}, "Action": "sts:AssumeRole"}]}))
    short = f"arn:aws:iam::{ACCOUNT}:role/short-sessions"
    st, text = assume(RoleArn=short, DurationSeconds="7200")
    assert st == 400 and "MaxSessionDuration" in text
    # Role chaining: the trust policy decides. short-sessions trusts the parent role...
    st, text = assume(creds=creds_of(parent), RoleArn=short)
    assert st == 200, text
    chained = Credentials(xml_field(text, "AccessKeyId"), xml_field(text, "SecretAccessKey"),
                          xml_field(text, "SessionToken"))
    st, who = aws.query("sts", "GetCallerIdentity", {}, creds=chained)
    assert st == 200 and xml_field(who, "Arn") == f"arn:aws:sts::{ACCOUNT}:assumed-role/short-sessions/s1"
    # ... but the parent role trusts EC2 only.
    st, text = assume(creds=chained)
    assert st == 403 and xml_field(text, "Code") == "AccessDenied"
    assert f"assumed-role/short-sessions/s1 is not authorized to perform: sts:AssumeRole" in text


def test_the_enclave_checks_and_uses_its_key_with_the_instance_role(sim, nsm, parent, identity_key):
    aws = Aws(sim)
    creds = creds_of(parent)
    key_id, arn = identity_key["key_id"], identity_key["arn"]
    assert arn == f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    # The role has no IAM policy: the key policy naming it is enough, as on AWS.
    assert "<member>" not in aws.iam("ListRolePolicies", RoleName="nitrosync-parent")
    st, out = aws.kms("DescribeKey", {"KeyId": arn}, creds=creds)
    assert st == 200, out
    meta = out["KeyMetadata"]
    assert (meta["KeyId"], meta["Arn"], meta["KeyState"], meta["KeyManager"]) == (key_id, arn, "Enabled", "CUSTOMER")
    assert (meta["KeySpec"], meta["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    # GetKeyPolicy returns the policy verbatim, PolicyName given or not.
    for body in ({"KeyId": arn, "PolicyName": "default"}, {"KeyId": key_id}):
        st, out = aws.kms("GetKeyPolicy", body, creds=creds)
        assert st == 200, out
        assert out == {"Policy": identity_key["policy"], "PolicyName": "default"}
    st, out = aws.kms("ListGrants", {"KeyId": arn}, creds=creds)
    assert st == 200 and out["Grants"] == [], out

    key, spki = rsa_recipient()
    st, gen = aws.kms("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs()))}, creds=creds)
    assert st == 200, gen
    assert set(gen) == {"KeyId", "CiphertextBlob", "CiphertextForRecipient"} and gen["KeyId"] == arn
    data_key = open_envelope(base64.b64decode(gen["CiphertextForRecipient"]), key)
    assert len(data_key) == 32
    # A later start: a new throw-away key, Decrypt with KeyId and Recipient.
    key2, spki2 = rsa_recipient()
    st, dec = aws.kms("Decrypt", {"KeyId": arn, "CiphertextBlob": gen["CiphertextBlob"],
                                  "Recipient": recipient(nsm.document(spki2, pcrs()))}, creds=creds)
    assert st == 200, dec
    assert "Plaintext" not in dec and dec["KeyId"] == arn
    assert open_envelope(base64.b64decode(dec["CiphertextForRecipient"]), key2) == data_key


def test_what_the_identity_key_refuses(sim, nsm, parent, identity_key, tmp_path):
    aws = Aws(sim)
    creds = creds_of(parent)
    arn = identity_key["arn"]
    session = parent["session_arn"]
    _, spki = rsa_recipient()
    st, gen = aws.kms("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs()))}, creds=creds)
    assert st == 200, gen
    blob = gen["CiphertextBlob"]

    def denied(op, body, why):
        st, err = aws.kms(op, body, creds=creds)
        assert (st, err.get("__type")) == (400, "AccessDeniedException"), (op, err)
        assert err["message"] == f"User: {session} is not authorized to perform: kms:{op} on resource: {arn} {why}"

    explicit = "with an explicit deny in a resource-based policy"
    # Another image, a debug image, another kernel: the key policy refuses.
    denied("Decrypt", {"KeyId": arn, "CiphertextBlob": blob,
                       "Recipient": recipient(nsm.document(spki, pcrs(p0=bytes([0xB0]) * 48)))}, explicit)
    denied("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256",
                               "Recipient": recipient(nsm.document(spki, pcrs(ZERO, ZERO, ZERO)))}, explicit)
    denied("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256",
                               "Recipient": recipient(nsm.document(spki, pcrs(p1=bytes([0xB1]) * 48)))},
           "because no resource-based policy allows the kms:GenerateDataKey action")
    # No attestation.
    denied("Decrypt", {"KeyId": arn, "CiphertextBlob": blob}, explicit)
    denied("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256"}, explicit)
    # Nothing else: not the policy, not a grant, not key management.
    denied("PutKeyPolicy", {"KeyId": arn, "PolicyName": "default", "Policy": identity_key["policy"],
                            "BypassPolicyLockoutSafetyCheck": True}, explicit)
    denied("CreateGrant", {"KeyId": arn, "GranteePrincipal": parent["role_arn"], "Operations": ["Decrypt"]}, explicit)
    denied("ScheduleKeyDeletion", {"KeyId": arn, "PendingWindowInDays": 7},
           "because no resource-based policy allows the kms:ScheduleKeyDeletion action")
    denied("Encrypt", {"KeyId": arn, "Plaintext": base64.b64encode(b"x").decode()},
           "because no resource-based policy allows the kms:Encrypt action")
    # A bad document: ValidationException before any policy.
    for rec in (recipient(TestNsm("rogue").document(spki, pcrs())),
                recipient(nsm.document(spki, pcrs(), timestamp=time.time() - 3600)),
                {"AttestationDocument": base64.b64encode(b"not a document").decode()}):
        st, err = aws.kms("GenerateDataKey", {"KeyId": arn, "KeySpec": "AES_256", "Recipient": rec}, creds=creds)
        assert (st, err["__type"]) == (400, "ValidationException"), err
        assert err["message"].startswith("Invalid attestation document: "), err
    # The policy is unchanged.
    st, out = aws.kms("GetKeyPolicy", {"KeyId": arn, "PolicyName": "default"}, creds=creds)
    assert st == 200 and out["Policy"] == identity_key["policy"]


def test_a_key_that_does_not_name_the_role_is_refused(sim, nsm, parent, tmp_path):
    """The key policy decides every operation on the key, DescribeKey and GetKeyPolicy included."""
    aws = Aws(sim)
    creds = creds_of(parent)
    other = template_policy(f"arn:aws:iam::{ACCOUNT}:role/someone-else")
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    key = simctl(sim, "create-identity-key", "--policy", str(path))
    for op in ("DescribeKey", "GetKeyPolicy", "ListGrants"):
        body = {"KeyId": key["arn"], **({"PolicyName": "default"} if op == "GetKeyPolicy" else {})}
        st, err = aws.kms(op, body, creds=creds)
        assert (st, err["__type"]) == (400, "AccessDeniedException"), (op, err)
        assert err["message"] == (f"User: {parent['session_arn']} is not authorized to perform: kms:{op} on "
                                  f"resource: {key['arn']} because no resource-based policy allows the kms:{op} "
                                  "action")
    # A key policy that delegates to the account (moto's default) needs IAM too.
    st, meta = aws.kms("CreateKey", {"Description": "default policy"})
    assert st == 200
    default_arn = meta["KeyMetadata"]["Arn"]
    st, err = aws.kms("DescribeKey", {"KeyId": default_arn}, creds=creds)
    assert st == 400 and err["message"].endswith("because no identity-based policy allows the kms:DescribeKey action")
    # A key that does not exist is moto's NotFoundException, for the Recipient operations too.
    missing = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
    for op, body in (("DescribeKey", {"KeyId": "alias/no-such-key"}), ("DescribeKey", {"KeyId": missing}),
                     ("GetKeyPolicy", {"KeyId": missing, "PolicyName": "default"}),
                     ("GenerateDataKey", {"KeyId": missing, "KeySpec": "AES_256"})):
        st, err = aws.kms(op, body, creds=creds)
        assert (st, err["__type"]) == (400, "NotFoundException"), (op, err)


def test_decrypt_with_another_key_id_is_incorrect_key(sim, nsm, parent, identity_key, tmp_path):
    aws = Aws(sim)
    creds = creds_of(parent)
    path = tmp_path / "second.json"
    path.write_text(json.dumps(template_policy(parent["role_arn"])))
    second = simctl(sim, "create-identity-key", "--policy", str(path))
    _, spki = rsa_recipient()
    rec = recipient(nsm.document(spki, pcrs()))
    st, gen = aws.kms("GenerateDataKey", {"KeyId": identity_key["arn"], "KeySpec": "AES_256", "Recipient": rec},
                      creds=creds)
    assert st == 200
    st, err = aws.kms("Decrypt", {"KeyId": second["arn"], "CiphertextBlob": gen["CiphertextBlob"], "Recipient": rec},
                      creds=creds)
    assert (st, err["__type"]) == (400, "IncorrectKeyException"), err
    # The admin too (moto alone would say AccessDeniedException).
    st, plain = aws.kms("GenerateDataKey", {"KeyId": (aws.kms("CreateKey", {})[1])["KeyMetadata"]["KeyId"],
                                            "KeySpec": "AES_256"})
    assert st == 200
    st, err = aws.kms("Decrypt", {"KeyId": second["key_id"], "CiphertextBlob": plain["CiphertextBlob"]})
    assert (st, err["__type"]) == (400, "IncorrectKeyException"), err


def test_create_identity_key_takes_the_template_json_form(sim, parent, tmp_path):
    """`nitrosync kms template --format json` output: its create_key.Policy is used verbatim."""
    policy = template_policy(parent["role_arn"])
    policy_text = json.dumps(policy, separators=(",", ":"))
    form = {"format": "nitrosync-kms-key/1", "key_policy": policy,
            "create_key": {"Policy": policy_text, "Description": "from the template",
                           "BypassPolicyLockoutSafetyCheck": True}}
    path = tmp_path / "kms.json"
    path.write_text(json.dumps(form))
    key = simctl(sim, "--region", "eu-west-1", "create-identity-key", "--policy", str(path))
    assert key["arn"].startswith(f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/")
    st, out = Aws(sim).kms("GetKeyPolicy", {"KeyId": key["arn"], "PolicyName": "default"}, region="eu-west-1",
                           creds=creds_of(parent))
    assert st == 200 and out["Policy"] == policy_text
    st, out = Aws(sim).kms("DescribeKey", {"KeyId": key["key_id"]}, region="eu-west-1")
    assert out["KeyMetadata"]["Description"] == "from the template"
    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    r = subprocess.run([sys.executable, os.path.join(HERE, "simctl.py"), "--sim-dir", str(sim["state"]),
                        "create-identity-key", "--policy", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "not JSON" in r.stderr


def nitrosync_bin():
    path = os.environ.get("NITROSYNC_BIN") or os.path.join(REPO, "target", "debug", "nitrosync")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


@pytest.mark.skipif(nitrosync_bin() is None, reason="no target/debug/nitrosync (cargo build first)")
def test_the_real_template_policy_works_end_to_end(sim, nsm, parent, tmp_path):
    """The policy `nitrosync kms template` really writes, through simctl and the strict front."""
    r = subprocess.run([nitrosync_bin(), "kms", "template", "--pcr0", PCR0.hex(), "--account", ACCOUNT,
                        "--key-admin-arn", ADMIN_ROLE, "--enclave-role-arn", parent["role_arn"],
                        "--format", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    form = json.loads(r.stdout)
    assert form["create_key"]["BypassPolicyLockoutSafetyCheck"] is True
    path = tmp_path / "kms.json"
    path.write_text(r.stdout)
    key = simctl(sim, "create-identity-key", "--policy", str(path))
    aws = Aws(sim)
    creds = creds_of(parent)
    for op in ("DescribeKey", "ListGrants"):
        assert aws.kms(op, {"KeyId": key["arn"]}, creds=creds)[0] == 200, op
    st, out = aws.kms("GetKeyPolicy", {"KeyId": key["arn"], "PolicyName": "default"}, creds=creds)
    assert st == 200 and json.loads(out["Policy"]) == form["key_policy"]
    key_pair, spki = rsa_recipient()
    st, gen = aws.kms("GenerateDataKey", {"KeyId": key["arn"], "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs()))}, creds=creds)
    assert st == 200, gen
    st, err = aws.kms("GenerateDataKey", {"KeyId": key["arn"], "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs(p0=bytes([0xB0]) * 48)))},
                      creds=creds)
    assert st == 400 and err["__type"] == "AccessDeniedException"
    st, err = aws.kms("PutKeyPolicy", {"KeyId": key["arn"], "PolicyName": "default", "Policy": "{}"}, creds=creds)
    assert st == 400 and err["message"].endswith("with an explicit deny in a resource-based policy")


def test_the_attestation_root_may_appear_and_change_after_start(tmp_path):
    """--attestation-root names a file that does not exist yet (the enclave writes sim-root.pem
    at its first start); it is read when a document is verified, and again when it changes."""
    state = tmp_path / "sim"
    state.mkdir()
    root = tmp_path / "nsm" / "sim-root.pem"
    info = start_sim(state, extra_args=["--attestation-root", str(root)])
    try:
        ready = json.loads((state / "ready.json").read_text())
        assert ready["attestation_roots"] == [str(root)]
        aws = Aws(info)
        _, spki = rsa_recipient()
        first, second = TestNsm("first nsm"), TestNsm("second nsm")

        def random_with(nsm):
            return aws.kms("GenerateRandom", {"NumberOfBytes": 8, "Recipient": recipient(nsm.document(spki, pcrs()))})

        st, err = random_with(first)
        assert (st, err["__type"]) == (400, "ValidationException")
        root.parent.mkdir()
        root.write_bytes(first.root_pem)
        assert random_with(first)[0] == 200
        # A new simulated NSM (the enclave's state dir was wiped): the new root replaces the old.
        root.write_bytes(second.root_pem)
        os.utime(root, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        assert random_with(second)[0] == 200
        st, err = random_with(first)
        assert (st, err["__type"]) == (400, "ValidationException")
        # Half-written: nothing is trusted until it is whole again.
        root.write_bytes(second.root_pem[:40])
        os.utime(root, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
        assert random_with(second)[0] == 400
        root.write_bytes(second.root_pem)
        os.utime(root, ns=(time.time_ns() + 3 * 10**9, time.time_ns() + 3 * 10**9))
        assert random_with(second)[0] == 200
    finally:
        stop_sim(info)
