#!/usr/bin/env python3
"""Writes the seeds of the sealed-identity fuzz targets (deterministic: same bytes every run).

    python3 fuzz-enclave/seeds/make-identity-seeds.py

- recipient_open/: copies of the CMS fixtures in enclave/tests/data/identity/ (see its README),
  addressed to the fixture key the target opens them with.
- key_policy/: the template policy of enclave/src/identity/policy.rs's tests (without
  kms:PutKeyPolicy, so it passes for IMAGE_A), and variants that the check refuses.
- identity_unseal/: a first byte (odd: the rest is the plaintext CBOR, which the target
  encrypts; even: the rest is nonce || ciphertext) and an identity, valid or refused.
- sealed_identity/: SealedIdentity CBOR as the parent stores it, sealed under the targets' data
  key, key ARN and PCR0 (those of the seal unit tests).

Needs the `cryptography` package (tests/aws-sim/requirements.txt). The CBOR is written by hand,
as ciborium reads serde structs: maps with text keys, byte strings for the secrets.
"""

import json
import shutil
import struct
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz-enclave" / "seeds"

DATA_KEY = bytes([0x11]) * 32
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PCR0 = bytes([0xA5]) * 48


# --- CBOR (RFC 8949), the few types the targets read ---------------------------------------

def head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | info]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v) -> bytes:
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return head(0, v)
    if isinstance(v, (bytes, bytearray)):
        return head(2, len(v)) + bytes(v)
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(type(v))


def write(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# --- recipient_open ------------------------------------------------------------------------

def recipient_open() -> None:
    for f in sorted((ROOT / "enclave" / "tests" / "data" / "identity").glob("*.ber")):
        (SEEDS / "recipient_open").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, SEEDS / "recipient_open" / f.name)


# --- key_policy ----------------------------------------------------------------------------

IMAGE_A = "aa01" * 24
IMAGE_B = "BB02" * 24
ZERO = "0" * 96
ADMIN = "arn:aws:iam::111122223333:role/nitrosync-key-admin"
ENCLAVE = "arn:aws:iam::111122223333:role/nitrosync-parent"
ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:DeleteAlias", "kms:DescribeKey",
    "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation",
    "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListGrants", "kms:ListKeyPolicies",
    "kms:ListKeyRotations", "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RevokeGrant",
    "kms:RotateKeyOnDemand", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:UntagResource",
    "kms:UpdateAlias", "kms:UpdateKeyDescription",
]
SHA = "kms:RecipientAttestation:ImageSha384"


def template(admin_actions, enclave_condition=None):
    """The template policy of the policy tests (`template_policy`)."""
    return {
        "Version": "2012-10-17",
        "Id": "nitrosync-enclave-identity",
        "Statement": [
            {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": ADMIN},
             "Action": admin_actions, "Resource": "*"},
            {"Sid": "EnclaveImage1", "Effect": "Allow", "Principal": {"AWS": ENCLAVE},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": enclave_condition or {"StringEqualsIgnoreCase": {
                 SHA: IMAGE_A,
                 "kms:RecipientAttestation:PCR1": "11" * 48,
                 "kms:RecipientAttestation:PCR2": "22" * 48}}},
            {"Sid": "EnclaveImage2", "Effect": "Allow", "Principal": {"AWS": ENCLAVE},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
             "Condition": {"StringEqualsIgnoreCase": {SHA: IMAGE_B.lower()}}},
            {"Sid": "DenyWithoutAttestation", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"], "Resource": "*",
             "Condition": {"Null": {SHA: "true"}}},
            {"Sid": "DenyDebugImage", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"],
             "Resource": "*", "Condition": {"StringEqualsIgnoreCase": {SHA: ZERO}}},
            {"Sid": "DenyOtherImages", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"],
             "Resource": "*",
             "Condition": {"StringNotEqualsIgnoreCase": {SHA: [IMAGE_A, IMAGE_B.lower()]}}},
            {"Sid": "DenyGrants", "Effect": "Deny", "Principal": {"AWS": "*"},
             "Action": "kms:CreateGrant", "Resource": "*"},
        ],
    }


def one(statement):
    return {"Version": "2012-10-17", "Statement": statement}


def key_policy() -> None:
    safe = [a for a in ADMIN_ACTIONS if a != "kms:PutKeyPolicy"]
    pinned = {"StringEquals": {SHA: IMAGE_A}}
    release = {"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": ENCLAVE},
               "Action": "kms:Decrypt", "Resource": "*"}
    policies = {
        # Accepted for IMAGE_A (and IMAGE_B).
        "template-passes.json": template(safe),
        "single-statement-passes.json": one(dict(release, Condition=pinned)),
        # Refused.
        "template-put-key-policy.json": template(ADMIN_ACTIONS),
        "wildcard-action.json": one([dict(release, Action="kms:*", Condition=pinned)]),
        "not-action.json": one([dict(release, NotAction="kms:Encrypt", Condition=pinned)]),
        "unpinned-decrypt.json": one([release]),
        "if-exists.json": one([dict(release, Condition={"StringEqualsIfExists": {SHA: IMAGE_A}})]),
        "debug-image.json": one([dict(release, Condition={"StringEquals": {SHA: ZERO}})]),
        "pinned-twice.json": one([dict(release, Condition={
            "StringEquals": {SHA: IMAGE_A}, "StringEqualsIgnoreCase": {SHA.lower(): IMAGE_B}})]),
        "encrypt.json": one([dict(release, Action=["kms:Encrypt"], Condition=pinned)]),
        "other-image.json": one([dict(release, Condition={"StringEquals": {SHA: IMAGE_B}})]),
        "unknown-element.json": dict(one([dict(release, Condition=pinned)]), Extra=1),
    }
    for name, policy in policies.items():
        write("key_policy", name, json.dumps(policy, indent=2).encode())
    # A duplicate member name, which json.dumps cannot write.
    write("key_policy", "duplicate-effect.json", (
        '{"Statement": [{"Effect": "Deny", "Effect": "Allow", "Action": "kms:Decrypt",'
        ' "Principal": "*", "Resource": "*"}]}').encode())


# --- identity_unseal and sealed_identity ---------------------------------------------------

def aad() -> bytes:
    label = b"nitrosync/enclave-identity"
    arn = KEY_ARN.encode()
    return (struct.pack(">I", len(label)) + label + struct.pack(">I", 1)
            + struct.pack(">I", len(arn)) + arn + struct.pack(">I", len(PCR0)) + PCR0)


def identity(**changes) -> dict:
    plain = {
        "format": 1,
        "saml_key_pkcs8": b"SAML-PRIVATE-KEY-PKCS8-" * 4,
        "saml_cert_der": b"SAML-CERTIFICATE-" * 4,
        "bundle_key": b"BUNDLE-KEY-BUNDLE-KEY-BUNDLE-KEY",
        "mac_master": b"MAC-MASTER-MAC-MASTER-MAC-MASTER",
        "generation": 0,
    }
    plain.update(changes)
    return {k: v for k, v in plain.items() if v is not None}


ROTATION = dict(
    generation=3,
    next_saml_key_pkcs8=b"NEXT-SAML-KEY-" * 4,
    next_saml_cert_der=b"NEXT-SAML-CERT-" * 4,
    next_bundle_key=b"NEXT-BUNDLE-KEY-NEXT-BUNDLE-KEY-",
    previous_bundle_key=b"PREVIOUS-BUNDLE-KEY-PREVIOUS-BUN",
    previous_bundle_until_ms=1_767_225_600_000,
)


def sealed(plain: bytes, n: int) -> tuple[bytes, bytes]:
    nonce = bytes([n]) * 12
    return nonce, AESGCM(DATA_KEY).encrypt(nonce, plain, aad())


def identity_unseal() -> None:
    plaintexts = {
        "valid": cbor(identity()),
        "rotation": cbor(identity(**ROTATION)),
        "format-2": cbor(identity(format=2)),
        "short-bundle-key": cbor(identity(bundle_key=b"\x01" * 31)),
        "next-incomplete": cbor(identity(next_saml_key_pkcs8=b"NEXT")),
        "previous-without-cut-off": cbor(identity(previous_bundle_key=b"\x02" * 32)),
        "empty-saml-key": cbor(identity(saml_key_pkcs8=b"")),
        "unknown-field": cbor(identity(extra=1)),
        "trailing-byte": cbor(identity()) + b"\x00",
    }
    for name, plain in plaintexts.items():
        write("identity_unseal", f"plaintext-{name}", b"\x01" + plain)
    for n, name in enumerate(["valid", "rotation"], start=1):
        nonce, ct = sealed(plaintexts[name], n)
        write("identity_unseal", f"sealed-{name}", b"\x00" + nonce + ct)


def sealed_identity() -> None:
    def stored(plain: bytes, n: int, **changes) -> bytes:
        nonce, ct = sealed(plain, n)
        s = {
            "format": 1,
            "key_arn": KEY_ARN,
            "pcr0": PCR0.hex(),
            "generation": 0,
            "ciphertext_blob": bytes(range(184)),
            "nonce": nonce,
            "sealed": ct,
        }
        s.update(changes)
        return cbor({k: v for k, v in s.items() if v is not None})

    write("sealed_identity", "valid", stored(cbor(identity()), 1))
    write("sealed_identity", "rotation", stored(cbor(identity(**ROTATION)), 2, generation=3))
    write("sealed_identity", "without-generation", stored(cbor(identity()), 3, generation=None))
    write("sealed_identity", "format-2", stored(cbor(identity()), 4, format=2))
    write("sealed_identity", "nonce-11", stored(cbor(identity()), 5, nonce=b"\x05" * 11))


if __name__ == "__main__":
    recipient_open()
    key_policy()
    identity_unseal()
    sealed_identity()
