#!/usr/bin/env python3
"""Writes the CiphertextForRecipient fixtures of `nitrosync-enclave`'s `identity::cms` tests.

    python3 enclave/tests/data/identity/make-cms-fixture.py            # keep the key, rewrite the blobs
    python3 enclave/tests/data/identity/make-cms-fixture.py --new-key  # a new RSA-2048 key too

Needs the `cryptography` package (tests/aws-sim/requirements.txt). The envelopes come from the AWS
simulator's own writer, tests/aws-sim/cms_recipient.py, which reproduces a real KMS answer byte for
byte (tests/aws-sim/test_kms_recipient.py), so the Rust reader is tested against what the
simulator and KMS send. Every run draws new content keys and IVs, so the blobs change; the
plaintexts do not: byte i of an n-byte plaintext is (7 * i + n) mod 256 (`plaintext()` below,
`known_plaintext()` in enclave/src/identity/cms.rs).

Files (in this folder):
  recipient-key.pk8.der   the test recipient key: RSA-2048, PKCS#8 DER. A test key, nothing else.
  open-N.ber              N-byte plaintexts (1, 15, 16, 32, 4096) for that key, as KMS writes them
  two-recipients.ber      the 32-byte envelope with its KeyTransRecipientInfo twice
  cek-16.ber              a 16-byte content key under RSA-OAEP (AES-128-CBC content), labelled aes256-CBC
  bad-padding.ber         32 bytes encrypted without PKCS#7 padding (the last byte is 0x00)
  no-content.ber          the 32-byte envelope without its encryptedContent
  aws-kms-ciphertext-for-recipient.ber
                          not written here: a real KMS answer to another key, copied from
                          tests/aws-sim/fixtures/ (see README.md)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "..", "tests", "aws-sim"))

import cms_recipient as cms  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

KEY_FILE = os.path.join(HERE, "recipient-key.pk8.der")
LENGTHS = (1, 15, 16, 32, 4096)
OAEP = asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def plaintext(n: int) -> bytes:
    return bytes((7 * i + n) % 256 for i in range(n))


def write(name: str, data: bytes) -> None:
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes", file=sys.stderr)


def load_key(new: bool) -> rsa.RSAPrivateKey:
    if new or not os.path.exists(KEY_FILE):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write(os.path.basename(KEY_FILE), key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return key
    with open(KEY_FILE, "rb") as f:
        return serialization.load_der_private_key(f.read(), password=None)


def cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def raw_envelope(public: rsa.RSAPublicKey, ski: bytes, cek: bytes, content: bytes) -> bytes:
    """`content` (already a multiple of 16 bytes) under `cek`, with no padding added."""
    iv = os.urandom(16)
    return cms.build(ski, public.encrypt(cek, OAEP), iv, cbc(cek, iv, content))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-key", action="store_true", help="generate a new recipient key")
    args = parser.parse_args()

    key = load_key(args.new_key)
    public = key.public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ski = hashlib.sha256(spki).digest()

    for n in LENGTHS:
        write(f"open-{n}.ber", cms.envelope(plaintext(n), public, ski))

    # Two recipients: the same KeyTransRecipientInfo twice in the SET.
    cek = os.urandom(32)
    iv = os.urandom(16)
    padded = plaintext(32) + bytes([16] * 16)
    ktri = cms.seq(cms.integer(2), cms.tlv(0x80, ski), cms.oaep_sha256_alg(),
                   cms.octets(public.encrypt(cek, OAEP)))
    eci = cms.indefinite(0x30, cms.oid(cms.OID_DATA), cms.seq(cms.oid(cms.OID_AES256_CBC), cms.octets(iv)),
                         cms.indefinite(0xA0, cms.octets(cbc(cek, iv, padded))))
    env = cms.indefinite(0x30, cms.integer(2), cms.tlv(0x31, ktri + ktri), eci)
    write("two-recipients.ber",
          cms.indefinite(0x30, cms.oid(cms.OID_ENVELOPED_DATA), cms.indefinite(0xA0, env)))

    # A 16-byte content key (what an AES-128 envelope would carry) under the aes256-CBC label.
    write("cek-16.ber", raw_envelope(public, ski, os.urandom(16), padded))

    # 32 bytes without padding: the last byte of the plaintext is 0x00, which PKCS#7 never ends in.
    unpadded = plaintext(31) + b"\x00"
    write("bad-padding.ber", raw_envelope(public, ski, os.urandom(32), unpadded))

    # No encryptedContent: the EncryptedContentInfo stops after the algorithm.
    eci = cms.indefinite(0x30, cms.oid(cms.OID_DATA), cms.seq(cms.oid(cms.OID_AES256_CBC), cms.octets(iv)))
    env = cms.indefinite(0x30, cms.integer(2), cms.tlv(0x31, ktri), eci)
    write("no-content.ber",
          cms.indefinite(0x30, cms.oid(cms.OID_ENVELOPED_DATA), cms.indefinite(0xA0, env)))


if __name__ == "__main__":
    main()
