"""The customer-side IAM documents of the tests: a role trusting the enclave's SAML provider, and
its identity policy for one destination's secret. Used by `simctl.py setup-role` (through the IAM
API) and by the `/_sim/bulk-roles` control route (straight into moto, for tests at scale)."""

from __future__ import annotations

from typing import Optional

ACS = "https://signin.aws.amazon.com/saml"
SECRET_ACTIONS = (
    "secretsmanager:CreateSecret", "secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret", "secretsmanager:TagResource", "secretsmanager:DeleteSecret",
    "secretsmanager:RemoveRegionsFromReplication",
)


def trust_policy(provider_arn: str, subject: Optional[str]) -> dict:
    """AssumeRoleWithSAML from the provider, saml:aud pinned; saml:sub too unless `subject` is None."""
    condition = {"StringEquals": {"saml:aud": ACS}}
    if subject is not None:
        condition["StringEquals"]["saml:sub"] = subject
        condition["StringEquals"]["saml:sub_type"] = "persistent"
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithSAML",
            "Condition": condition,
        }],
    }


def secret_policy(account: str, region: str, secret_name: str, *, deny_put: bool = False,
                  kms_key_arn: Optional[str] = None) -> dict:
    """The Secrets Manager actions on the secret and its test placeholders (and KMS on a key)."""
    actions = [a for a in SECRET_ACTIONS if not (deny_put and a == "secretsmanager:PutSecretValue")]
    base = f"arn:aws:secretsmanager:{region}:{account}:secret:{secret_name}"
    statements = [{
        "Effect": "Allow",
        "Action": actions,
        "Resource": [f"{base}-??????", f"{base}-nitrosync-test-*"],
    }]
    if kms_key_arn:
        statements.append({
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"],
            "Resource": kms_key_arn,
        })
    return {"Version": "2012-10-17", "Statement": statements}
