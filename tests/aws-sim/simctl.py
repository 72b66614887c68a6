#!/usr/bin/env python3
"""simctl: the AWS-side set-up and inspection steps of nitrosync's end-to-end tests and demo.

It calls the AWS simulator (tests/aws-sim/aws_sim.py) as an account administrator would, with
boto3 and the simulator's CA, and prints one JSON object. It is the stand-in for the customer's
console or Terraform; the product itself never uses it.

    simctl.py --sim-dir RUN/aws-sim [--region us-east-1] COMMAND [ARGS]

Commands:
    setup-role --metadata FILE --provider-name N --role-name R --secret-name S
               [--subject SUB | --no-subject-pin] [--deny-put] [--kms-key-arn ARN]
        CreateSAMLProvider (or update it), CreateRole trusting it (saml:aud pinned, and
        saml:sub pinned to SUB unless --no-subject-pin), and an inline policy allowing the
        Secrets Manager actions on S and its test placeholders (without PutSecretValue when
        --deny-put; with kms:GenerateDataKey/Decrypt/Encrypt on ARN when given).
    apply-iam --file F              create the SAML provider, role and inline policy described by
                                    `nitrosync iam template --format json` (what `iam apply` does).
    create-key                      KMS CreateKey; prints the key ARN.
    instance-role [--name N] [--session-name S] [--duration-s D] [--region R]
        the parent's EC2 instance role, simulated: CreateRole N (default nitrosync-parent)
        trusted by ec2.amazonaws.com (or reuse it), then sts:AssumeRole on it as session S
        (default i-0123456789abcdef0, like an instance id) for D seconds (default 3600):
        {"role_arn", "access_key_id", "secret_access_key", "session_token", "account",
         "session_arn", "expiration"}. The simulator records the session: its calls are
        assumed-role calls (signature, token and expiry checked; KMS key policies apply).
    create-identity-key --policy FILE [--region R]
        KMS CreateKey with FILE as the key policy (a policy document, kept verbatim, or the
        output of `nitrosync kms template --format json`) and BypassPolicyLockoutSafetyCheck:
        {"key_id", "arn"}.
    kms-decrypt --blob-b64 B --key-id ARN [--context JSON] --access-key-id A
                --secret-access-key S [--session-token T]
        KMS Decrypt as that caller with no Recipient (what a parent could try with the instance
        role): {"ok": true, "plaintext_len"} or {"ok": false, "error", "message"}; never the
        plaintext.
    create-secret --name N --value V [--tag K=V ...]   a secret nitrosync does not own.
    delete-secret --name N [--recovery-days D]
    get-secret --name N             value (the test's own plaintext), tags, version count.
    iam-state --role-name R --provider-name P
        whether the role and the SAML provider exist: {"role": bool, "saml_provider": bool}.
    user-in-account --account A --name N
        IAM CreateUser N and CreateAccessKey in account A (moto's x-moto-account-id): a
        credential of another account, {"account", "access_key_id", "secret_access_key"}.
    fault --action A --kind K [--count N] [--latency-ms M]   POST /_sim/faults
    sim METHOD PATH [BODY]          any control API call, e.g. `sim GET requests`,
                                    `sim PUT quotas '{"secretsmanager:create": 10}'`,
                                    `sim POST bulk-roles roles.json` (BODY: JSON or a file of it)
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import ssl
import urllib.error
import urllib.request

import boto3
import iam_docs
from botocore.config import Config
from botocore.exceptions import ClientError

ADMIN_KEY = "AKIAIOSFODNN7EXAMPLE"
ADMIN_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client(service: str, args: argparse.Namespace):
    ready = json.loads((Path(args.sim_dir) / "ready.json").read_text())
    return boto3.client(
        service,
        region_name=args.region,
        endpoint_url=f"https://127.0.0.1:{ready['port']}",
        verify=ready["ca"],
        aws_access_key_id=ADMIN_KEY,
        aws_secret_access_key=ADMIN_SECRET,
        config=Config(retries={"max_attempts": 1}),
    )


def account(args) -> str:
    return client("sts", args).get_caller_identity()["Account"]


def setup_role(args) -> dict:
    iam = client("iam", args)
    metadata = Path(args.metadata).read_text()
    acct = account(args)
    provider_arn = f"arn:aws:iam::{acct}:saml-provider/{args.provider_name}"
    try:
        provider_arn = iam.create_saml_provider(SAMLMetadataDocument=metadata, Name=args.provider_name)["SAMLProviderArn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_saml_provider(SAMLMetadataDocument=metadata, SAMLProviderArn=provider_arn)
    trust = iam_docs.trust_policy(provider_arn, None if args.no_subject_pin else args.subject)
    role = iam.create_role(RoleName=args.role_name, AssumeRolePolicyDocument=json.dumps(trust), MaxSessionDuration=3600)
    policy = iam_docs.secret_policy(acct, args.region, args.secret_name, deny_put=args.deny_put,
                                    kms_key_arn=args.kms_key_arn)
    iam.put_role_policy(
        RoleName=args.role_name,
        PolicyName="nitrosync-secret",
        PolicyDocument=json.dumps(policy),
    )
    return {"role_arn": role["Role"]["Arn"], "saml_provider_arn": provider_arn, "account": acct}


def apply_iam(args) -> dict:
    docs = json.loads(Path(args.file).read_text())
    iam = client("iam", args)
    acct = account(args)
    provider_arn = f"arn:aws:iam::{acct}:saml-provider/{docs['saml_provider']['name']}"
    try:
        provider_arn = iam.create_saml_provider(
            SAMLMetadataDocument=docs["saml_provider"]["metadata"], Name=docs["saml_provider"]["name"])["SAMLProviderArn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_saml_provider(SAMLMetadataDocument=docs["saml_provider"]["metadata"], SAMLProviderArn=provider_arn)
    role = docs["role"]
    try:
        arn = iam.create_role(
            RoleName=role["name"], Path=role["path"], Description=role.get("description", ""),
            AssumeRolePolicyDocument=json.dumps(role["trust_policy"]),
            MaxSessionDuration=role["max_session_duration"])["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        iam.update_assume_role_policy(RoleName=role["name"], PolicyDocument=json.dumps(role["trust_policy"]))
        arn = iam.get_role(RoleName=role["name"])["Role"]["Arn"]
    iam.put_role_policy(RoleName=role["name"], PolicyName=docs["policy"]["name"],
                        PolicyDocument=json.dumps(docs["policy"]["document"]))
    return {"role_arn": arn, "saml_provider_arn": provider_arn}


def create_key(args) -> dict:
    key = client("kms", args).create_key(Description="nitrosync test key")["KeyMetadata"]
    return {"key_arn": key["Arn"], "key_id": key["KeyId"]}


EC2_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def instance_role(args) -> dict:
    iam = client("iam", args)
    try:
        arn = iam.create_role(RoleName=args.name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST),
                              Description="nitrosync parent instance role (simulated)",
                              MaxSessionDuration=43200)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=args.name)["Role"]["Arn"]
    out = client("sts", args).assume_role(RoleArn=arn, RoleSessionName=args.session_name,
                                          DurationSeconds=args.duration_s)
    c = out["Credentials"]
    return {"role_arn": arn, "access_key_id": c["AccessKeyId"], "secret_access_key": c["SecretAccessKey"],
            "session_token": c["SessionToken"], "account": arn.split(":")[4],
            "session_arn": out["AssumedRoleUser"]["Arn"], "expiration": c["Expiration"].isoformat()}


def identity_key_policy(path: str) -> tuple[str, str]:
    """(policy text, description) from a key policy document (kept verbatim) or from the output
    of `nitrosync kms template --format json` (its create_key request)."""
    text = Path(path).read_text()
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise SystemExit(f"simctl: --policy {path}: not JSON: {e}")
    if not isinstance(doc, dict):
        raise SystemExit(f"simctl: --policy {path}: not a JSON object")
    if "Statement" not in doc and isinstance(doc.get("key_policy"), dict):
        create = doc.get("create_key") or {}
        return (create.get("Policy") or json.dumps(doc["key_policy"]),
                create.get("Description") or "nitrosync enclave identity")
    return text, "nitrosync enclave identity"


def create_identity_key(args) -> dict:
    policy, description = identity_key_policy(args.policy)
    key = client("kms", args).create_key(
        Policy=policy, Description=description, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT",
        BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    return {"key_id": key["KeyId"], "arn": key["Arn"]}


def kms_decrypt(args) -> dict:
    """Decrypt a CiphertextBlob as a given caller, with no Recipient: what a parent holding the
    instance role's credentials could try. Prints whether it worked, never the plaintext."""
    ready = json.loads((Path(args.sim_dir) / "ready.json").read_text())
    kms = boto3.client(
        "kms", region_name=args.region, endpoint_url=f"https://127.0.0.1:{ready['port']}",
        verify=ready["ca"], aws_access_key_id=args.access_key_id,
        aws_secret_access_key=args.secret_access_key, aws_session_token=args.session_token or None,
        config=Config(retries={"max_attempts": 1}))
    kw = {"CiphertextBlob": base64.b64decode(args.blob_b64), "KeyId": args.key_id}
    if args.context:
        kw["EncryptionContext"] = json.loads(args.context)
    try:
        out = kms.decrypt(**kw)
    except ClientError as e:
        err = e.response.get("Error", {})
        return {"ok": False, "error": err.get("Code"), "message": err.get("Message")}
    return {"ok": True, "plaintext_len": len(out.get("Plaintext") or b"")}


def create_secret(args) -> dict:
    tags = [{"Key": k, "Value": v} for k, v in (t.split("=", 1) for t in args.tag)]
    out = client("secretsmanager", args).create_secret(Name=args.name, SecretString=args.value, Tags=tags)
    return {"arn": out["ARN"]}


def delete_secret(args) -> dict:
    sm = client("secretsmanager", args)
    if args.recovery_days:
        sm.delete_secret(SecretId=args.name, RecoveryWindowInDays=args.recovery_days)
    else:
        sm.delete_secret(SecretId=args.name, ForceDeleteWithoutRecovery=True)
    return {"deleted": args.name}


def get_secret(args) -> dict:
    sm = client("secretsmanager", args)
    try:
        desc = sm.describe_secret(SecretId=args.name)
    except sm.exceptions.ResourceNotFoundException:
        return {"exists": False}
    out = {
        "exists": True,
        "arn": desc["ARN"],
        "deleted": "DeletedDate" in desc,
        "tags": {t["Key"]: t["Value"] for t in desc.get("Tags", [])},
        "versions": len(desc.get("VersionIdsToStages", {})),
        "kms_key_id": desc.get("KmsKeyId"),
    }
    if not out["deleted"]:
        out["value"] = sm.get_secret_value(SecretId=args.name)["SecretString"]
    return out


def control(args, method: str, path: str, body: dict | None = None) -> dict:
    ready = json.loads((Path(args.sim_dir) / "ready.json").read_text())
    ctx = ssl.create_default_context(cafile=ready["ca"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"https://127.0.0.1:{ready['port']}/_sim/{path}", data=data, method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=300) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"simctl: {method} /_sim/{path}: HTTP {e.code}: {e.read().decode(errors='replace')}")
    return json.loads(text) if text.strip() else {}


def fault(args) -> dict:
    body = {"action": args.action, "kind": args.kind, "count": args.count}
    if args.latency_ms is not None:
        body["latency_ms"] = args.latency_ms
    return control(args, "POST", "faults", body)


def iam_state(args) -> dict:
    iam = client("iam", args)
    providers = [p["Arn"] for p in iam.list_saml_providers()["SAMLProviderList"]]
    try:
        iam.get_role(RoleName=args.role_name)
        role = True
    except iam.exceptions.NoSuchEntityException:
        role = False
    return {"role": role, "saml_provider": any(a.endswith(f":saml-provider/{args.provider_name}") for a in providers)}


def user_in_account(args) -> dict:
    iam = client("iam", args)

    def to_account(request, **_kw):
        request.headers["x-moto-account-id"] = args.account

    iam.meta.events.register("before-sign.iam.*", to_account)
    iam.create_user(UserName=args.name)
    key = iam.create_access_key(UserName=args.name)["AccessKey"]
    return {"account": args.account, "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"]}


def sim(args) -> dict:
    body = None
    if args.body is not None:
        text = args.body if args.body.lstrip()[:1] in ("{", "[") else Path(args.body).read_text()
        body = json.loads(text)
    return control(args, args.method, args.path, body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sim-dir", required=True)
    ap.add_argument("--region", default="us-east-1")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup-role")
    p.add_argument("--metadata", required=True)
    p.add_argument("--provider-name", required=True)
    p.add_argument("--role-name", required=True)
    p.add_argument("--secret-name", required=True)
    p.add_argument("--subject")
    p.add_argument("--no-subject-pin", action="store_true")
    p.add_argument("--deny-put", action="store_true")
    p.add_argument("--kms-key-arn")
    p = sub.add_parser("apply-iam")
    p.add_argument("--file", required=True)
    sub.add_parser("create-key")
    p = sub.add_parser("instance-role")
    p.add_argument("--name", default="nitrosync-parent")
    p.add_argument("--session-name", default="i-0123456789abcdef0")
    p.add_argument("--duration-s", type=int, default=3600)
    p.add_argument("--region", default=argparse.SUPPRESS, help="as the global --region")
    p = sub.add_parser("create-identity-key")
    p.add_argument("--policy", required=True, metavar="FILE")
    p.add_argument("--region", default=argparse.SUPPRESS, help="as the global --region")
    p = sub.add_parser("kms-decrypt")
    p.add_argument("--blob-b64", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--context", help="EncryptionContext as JSON")
    p.add_argument("--access-key-id", required=True)
    p.add_argument("--secret-access-key", required=True)
    p.add_argument("--session-token")
    p = sub.add_parser("create-secret")
    p.add_argument("--name", required=True)
    p.add_argument("--value", required=True)
    p.add_argument("--tag", action="append", default=[])
    p = sub.add_parser("delete-secret")
    p.add_argument("--name", required=True)
    p.add_argument("--recovery-days", type=int)
    p = sub.add_parser("get-secret")
    p.add_argument("--name", required=True)
    p = sub.add_parser("iam-state")
    p.add_argument("--role-name", required=True)
    p.add_argument("--provider-name", required=True)
    p = sub.add_parser("user-in-account")
    p.add_argument("--account", required=True)
    p.add_argument("--name", required=True)
    p = sub.add_parser("fault")
    p.add_argument("--action", required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--latency-ms", type=int)
    p = sub.add_parser("sim")
    p.add_argument("method", choices=["GET", "DELETE", "POST", "PUT"])
    p.add_argument("path")
    p.add_argument("body", nargs="?", help="JSON, or a file holding it")
    args = ap.parse_args(argv)
    if args.cmd == "setup-role" and not args.no_subject_pin and not args.subject:
        ap.error("setup-role needs --subject or --no-subject-pin")
    fn = {"setup-role": setup_role, "apply-iam": apply_iam, "create-key": create_key, "instance-role": instance_role,
          "create-identity-key": create_identity_key, "kms-decrypt": kms_decrypt, "create-secret": create_secret,
          "delete-secret": delete_secret, "get-secret": get_secret, "fault": fault,
          "iam-state": iam_state, "user-in-account": user_in_account,
          "sim": sim}[args.cmd]
    json.dump(fn(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
