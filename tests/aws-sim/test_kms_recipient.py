"""KMS with a Recipient: attestation documents, key policies, CiphertextForRecipient (DESIGN §10).

Run: cd /work/main && .venv/bin/python -m pytest tests/aws-sim -q
Needs Debian's `openssl` command (the Makefile's APT_PACKAGES) as the independent CMS oracle.
"""

import base64
import datetime as dt
import glob
import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import cbor
import cms_recipient
import nitro_attestation as na
from simlib import ACCOUNT, ACS, Aws, Idp, TestNsm, creds_from, metadata, rsa_recipient, saml_response, start_sim, \
    stop_sim, xml_field

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "fixtures")
AWS_DOCS = "/work/shared/fixtures/attestation"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
PCR0, PCR1, PCR2 = bytes([0xA0]) * 48, bytes([0xA1]) * 48, bytes([0xA2]) * 48
OTHER_PCR0 = bytes([0xB0]) * 48
ZERO = bytes(48)


def pcrs(p0=PCR0, p1=PCR1, p2=PCR2, **more):
    out = {i: ZERO for i in range(16)}
    out.update({0: p0, 1: p1, 2: p2})
    out.update({int(k[3:]): v for k, v in more.items()})
    return out


def recipient(doc: bytes) -> dict:
    return {"AttestationDocument": base64.b64encode(doc).decode(), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}


# ---------------------------------------------------------------------------------------------
# openssl cms, the independent oracle
# ---------------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed (make setup: APT_PACKAGES)")


def recip_cert(key) -> bytes:
    """A self-signed certificate for the recipient key whose SubjectKeyIdentifier is KMS's rid
    (SHA-256 of the DER SPKI), so that `openssl cms -recip` finds the KeyTransRecipientInfo."""
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "enclave recipient")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier(hashlib.sha256(spki).digest()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl_decrypt(tmp_path, envelope: bytes, key, use_recip: bool = True) -> bytes:
    d = tmp_path / f"cms-{os.urandom(4).hex()}"
    d.mkdir()
    (d / "in.der").write_bytes(envelope)
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    args = [OPENSSL, "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(d / "in.der"),
            "-inkey", str(d / "key.pem"), "-out", str(d / "out.bin")]
    if use_recip:
        (d / "cert.pem").write_bytes(recip_cert(key))
        args += ["-recip", str(d / "cert.pem")]
    r = subprocess.run(args, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return (d / "out.bin").read_bytes()


def ber_shape(envelope: bytes) -> None:
    """Asserts AWS's BER layout (the real answer in fixtures/ has exactly this shape)."""
    assert envelope[:2] == b"\x30\x80", "ContentInfo SEQUENCE with indefinite length"
    assert envelope[2:13] == bytes.fromhex("06092a864886f70d010703"), "id-envelopedData"
    assert envelope[13:17] == b"\xa0\x80\x30\x80", "[0] and EnvelopedData, indefinite"
    assert envelope[17:20] == b"\x02\x01\x02", "EnvelopedData version 2"
    assert envelope.endswith(b"\x00\x00" * 5)
    (tag, indef, (ctype, content)), end = cms_recipient.parse_ber(envelope)
    assert end == len(envelope) and tag == 0x30 and indef
    (_, _, [env]) = content
    version, rinfos, eci = env[2]
    assert rinfos[0] == 0x31 and not rinfos[1] and len(rinfos[2]) == 1, "one RecipientInfo, DER SET"
    ktri = rinfos[2][0][2]
    assert ktri[0][2] == b"\x02" and ktri[1][0] == 0x80 and len(ktri[1][2]) == 32, "version 2, rid = SKI (32 bytes)"
    assert ktri[2][2][0][2] == bytes.fromhex("2a864886f70d010107"), "id-RSAES-OAEP"
    assert eci[0] == 0x30 and eci[1], "EncryptedContentInfo, indefinite"
    assert eci[2][1][2][0][2] == bytes.fromhex("60864801650304012a"), "aes256-CBC"
    assert len(eci[2][1][2][1][2]) == 16, "its IV"
    chunks = eci[2][2]
    assert chunks[0] == 0xA0 and chunks[1], "encryptedContent [0] constructed, indefinite"
    sizes = [len(c[2]) for c in chunks[2]]
    assert all(s == 1000 for s in sizes[:-1]) and 0 < sizes[-1] <= 1000


def ski_of(envelope: bytes) -> bytes:
    (_, _, (_, content)), _ = cms_recipient.parse_ber(envelope)
    return content[2][0][2][1][2][0][2][1][2]


# ---------------------------------------------------------------------------------------------
# Unit tests: the codec, the verifier, the CMS writer
# ---------------------------------------------------------------------------------------------


def test_cbor_codec_is_strict():
    assert cbor.loads(bytes.fromhex("bf6161f5ff")) == {"a": True}  # indefinite map
    assert cbor.loads(bytes.fromhex("5f42010243030405ff")) == b"\x01\x02\x03\x04\x05"
    v = {"k": [1, -2, b"x", None, "s", {3: b""}]}
    assert cbor.loads(cbor.dumps(v)) == v
    for bad in ("a1616101616102", "0000", "5a00000010", "1c", "a2616101616101"):
        with pytest.raises(cbor.CborError):
            cbor.loads(bytes.fromhex(bad))
    deep = b"\x81" * 40 + b"\x00"
    with pytest.raises(cbor.CborError):
        cbor.loads(deep)


def test_real_aws_documents_verify_against_the_aws_root():
    files = sorted(glob.glob(os.path.join(AWS_DOCS, "aws-*.cbor")))
    if not files:
        pytest.skip("no AWS fixtures in /work/shared/fixtures/attestation")
    roots = na.load_roots([na.AWS_ROOT_PEM])
    assert hashlib.sha256(roots[0].public_bytes(serialization.Encoding.DER)).hexdigest() == \
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    for f in files:
        doc = open(f, "rb").read()
        ts = na.parse(doc)[3].timestamp_ms / 1000
        att = na.verify(doc, roots, now=ts + 10)
        assert att.debug == ("debug" in f), f
        assert att.condition_context()["kms:RecipientAttestation:ImageSha384"] == att.pcrs[0].hex()
        with pytest.raises(na.AttestationError) as e:
            na.recipient_key(att)  # none of them carries an RSA public_key
        assert e.value.kind == "public_key"
        with pytest.raises(na.AttestationError) as e:
            na.verify(doc, roots, now=time.time())
        assert e.value.kind == "expired", f
        with pytest.raises(na.AttestationError) as e:
            na.verify(doc, roots, now=ts - 3600)
        assert e.value.kind == "not_yet_valid"
    mock = open(os.path.join(AWS_DOCS, "mock-root-signed.cbor"), "rb").read()
    ts = na.parse(mock)[3].timestamp_ms / 1000
    with pytest.raises(na.AttestationError) as e:
        na.verify(mock, roots, now=ts)
    assert e.value.kind == "untrusted"
    assert na.verify(mock, na.load_roots([os.path.join(AWS_DOCS, "mock-root.der")]), now=ts)


def test_a_document_of_the_rust_simulated_nsm_verifies():
    """fixtures/rust-simulated-nsm.cbor: made by target/debug/nitrosync-enclave --simulator
    (nitrosync_attestation::SimulatedNsm, rcgen chain, ciborium payload) through its control
    socket's Attest request; its root is fixtures/rust-simulated-nsm-root.pem."""
    doc = open(os.path.join(FIXTURES, "rust-simulated-nsm.cbor"), "rb").read()
    roots = na.load_roots([os.path.join(FIXTURES, "rust-simulated-nsm-root.pem")])
    ts = na.parse(doc)[3].timestamp_ms / 1000
    att = na.verify(doc, roots, now=ts + 1)
    assert att.nonce == b"nitrosync-aws-sim-fixture" and len(att.pcrs) == 16 and not att.debug
    with pytest.raises(na.AttestationError) as e:
        na.recipient_key(att)  # the control API's document binds the X25519 bundle key, not an RSA key
    assert e.value.kind == "public_key"
    with pytest.raises(na.AttestationError) as e:
        na.verify(doc, na.load_roots([na.AWS_ROOT_PEM]), now=ts + 1)
    assert e.value.kind == "untrusted"


def test_verifier_refusals():
    nsm, other = TestNsm(), TestNsm("other nsm")
    roots = [x509.load_pem_x509_certificate(nsm.root_pem)]
    _, spki = rsa_recipient()
    now = time.time()
    good = nsm.document(spki, timestamp=now)
    att = na.verify(good, roots, now)
    key, got_spki = na.recipient_key(att)
    assert got_spki == spki and key.key_size == 2048

    def kind(doc, **kw):
        with pytest.raises(na.AttestationError) as e:
            na.recipient_key(na.verify(doc, kw.get("roots", roots), kw.get("now", now)))
        return e.value.kind

    # one byte changed anywhere after the COSE header: never accepted
    positions = [len(good) // 3, len(good) // 2, len(good) - 50, len(good) - 1]
    for i in positions:
        bad = bytearray(good)
        bad[i] ^= 0x01
        assert kind(bytes(bad)) in ("malformed", "signature", "untrusted"), i
    assert kind(other.document(spki, timestamp=now)) == "untrusted"
    assert kind(good, roots=[]) == "untrusted"
    assert kind(nsm.document(spki, timestamp=now - 301)) == "expired"
    assert na.verify(nsm.document(spki, timestamp=now - 290), roots, now)
    assert kind(nsm.document(spki, timestamp=now + 120)) == "not_yet_valid"
    assert kind(nsm.document(rsa_recipient(1024)[1], timestamp=now)) == "public_key"
    ec_spki = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kind(nsm.document(ec_spki, timestamp=now)) == "public_key"
    assert kind(nsm.document(None, timestamp=now)) == "public_key"
    assert kind(b"\xa0") == "malformed"
    assert kind(good + b"\x00") == "malformed"
    # a chain that is not the one that signed: the leaf's signature no longer verifies
    top = cbor.loads(good)
    p = cbor.loads(top[2])
    p["certificate"] = other.leaf.public_bytes(serialization.Encoding.DER)
    assert kind(cbor.dumps([top[0], top[1], cbor.dumps(p), top[3]])) == "signature"
    # the right leaf and signature, but the cabundle names another intermediate
    p = cbor.loads(top[2])
    p["cabundle"] = [nsm.root.public_bytes(serialization.Encoding.DER),
                     other.intermediate.public_bytes(serialization.Encoding.DER)]
    payload = cbor.dumps(p)
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(nsm.leaf_key.sign(na.sig_structure(top[0], payload), ec.ECDSA(hashes.SHA384())))
    assert kind(cbor.dumps([top[0], {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])) == "untrusted"


def test_cms_writer_reproduces_a_real_kms_answer_byte_for_byte():
    """fixtures/aws-kms-ciphertext-for-recipient.ber is a CiphertextForRecipient that AWS KMS
    returned (published in RustCrypto/formats issue #779 and its cms/tests/examples). Rebuilt from
    its parts, our writer gives the same 461 bytes."""
    real = open(os.path.join(FIXTURES, "aws-kms-ciphertext-for-recipient.ber"), "rb").read()
    assert len(real) == 461
    ber_shape(real)
    (_, _, (_, content)), _ = cms_recipient.parse_ber(real)
    env = content[2][0][2]
    ktri = env[1][2][0][2]
    eci = env[2][2]
    iv = eci[1][2][1][2]
    ct = b"".join(c[2] for c in eci[2][2])
    assert cms_recipient.build(ktri[1][2], ktri[3][2], iv, ct) == real


@needs_openssl
def test_cms_envelope_opens_with_openssl(tmp_path):
    key, spki = rsa_recipient()
    for size in (32, 1, 15, 16, 999, 1000, 4096):
        plain = os.urandom(size)
        env = cms_recipient.envelope(plain, key.public_key(), hashlib.sha256(spki).digest())
        ber_shape(env)
        assert ski_of(env) == hashlib.sha256(spki).digest()
        assert openssl_decrypt(tmp_path, env, key) == plain
    env = cms_recipient.envelope(b"x" * 4096, key.public_key(), hashlib.sha256(spki).digest())
    (_, _, (_, content)), _ = cms_recipient.parse_ber(env)
    assert [len(c[2]) for c in content[2][0][2][2][2][2][2]] == [1000, 1000, 1000, 1000, 112]  # as KMS does
    assert openssl_decrypt(tmp_path, env, key, use_recip=False) == b"x" * 4096


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsm():
    return TestNsm()


@pytest.fixture(scope="module")
def late_nsm():
    return TestNsm("late nsm")


@pytest.fixture(scope="module")
def sim(tmp_path_factory, nsm):
    state = tmp_path_factory.mktemp("aws-sim-kms")
    root = state / "sim-root.pem"
    root.write_bytes(nsm.root_pem)
    info = start_sim(state, extra_args=["--attestation-root", str(root),
                                        "--attestation-root", str(state / "late-root.pem")])
    info["late_root"] = state / "late-root.pem"
    yield info
    stop_sim(info)


@pytest.fixture(scope="module")
def enclave_key():
    return rsa_recipient()


def attested_policy(pcr0: bytes = PCR0, extra: list = (), enclave: str = ROOT) -> str:
    """DESIGN §10's key policy: the enclave may use the key only with the pinned measurements, and
    nobody may use it without an attestation document."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": ROOT}, "Resource": "*",
         "Action": ["kms:Describe*", "kms:Get*", "kms:Put*", "kms:Create*", "kms:Encrypt"]},
        {"Sid": "Enclave", "Effect": "Allow", "Principal": {"AWS": enclave}, "Resource": "*",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"],
         "Condition": {"StringEqualsIgnoreCase": {"kms:RecipientAttestation:ImageSha384": pcr0.hex(),
                                                  "kms:RecipientAttestation:PCR1": PCR1.hex(),
                                                  "kms:RecipientAttestation:PCR2": PCR2.hex()}}},
        {"Sid": "DenyUnattested", "Effect": "Deny", "Principal": "*", "Resource": "*",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
         "Condition": {"Null": {"kms:RecipientAttestation:ImageSha384": "true"}}},
        *extra]})


def make_key(aws, policy=None) -> dict:
    body = {"Description": "nitrosync identity"}
    if policy is not None:
        body["Policy"] = policy
    st, out = aws.kms("CreateKey", body)
    assert st == 200, out
    return out["KeyMetadata"]


def opened(tmp_path, out, key) -> bytes:
    assert "Plaintext" not in out and "PrivateKeyPlaintext" not in out, out.keys()
    env = base64.b64decode(out["CiphertextForRecipient"])
    ber_shape(env)
    return openssl_decrypt(tmp_path, env, key)


@needs_openssl
def test_generate_data_key_and_decrypt_with_recipient(sim, nsm, enclave_key, tmp_path):
    aws = Aws(sim)
    key, spki = enclave_key
    kms_key = make_key(aws, attested_policy())
    st, out = aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200, out
    assert out["KeyId"] == kms_key["Arn"] and out["CiphertextBlob"]
    data_key = opened(tmp_path, out, key)
    assert len(data_key) == 32
    assert ski_of(base64.b64decode(out["CiphertextForRecipient"])) == hashlib.sha256(spki).digest()
    # Later start: a fresh throw-away key and document; the stored CiphertextBlob opens to the same key.
    key2, spki2 = rsa_recipient()
    st, out2 = aws.kms("Decrypt", {"CiphertextBlob": out["CiphertextBlob"],
                                   "Recipient": recipient(nsm.document(spki2, pcrs()))})
    assert st == 200, out2
    assert out2["KeyId"] == kms_key["Arn"]
    assert opened(tmp_path, out2, key2) == data_key
    # KeyId given too, and NumberOfBytes instead of KeySpec
    st, out3 = aws.kms("Decrypt", {"CiphertextBlob": out["CiphertextBlob"], "KeyId": kms_key["Arn"],
                                   "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200 and opened(tmp_path, out3, key) == data_key
    st, out4 = aws.kms("GenerateDataKey", {"KeyId": kms_key["Arn"], "NumberOfBytes": 64,
                                           "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200 and len(opened(tmp_path, out4, key)) == 64
    # Without a Recipient the key policy refuses (explicit Deny of non-attested use)
    st, err = aws.kms("Decrypt", {"CiphertextBlob": out["CiphertextBlob"]})
    assert st == 400 and err["__type"] == "AccessDeniedException"
    assert err["message"] == (f"User: {ROOT} is not authorized to perform: kms:Decrypt on resource: "
                              f"{kms_key['Arn']} with an explicit deny in a resource-based policy")
    # No data key in the simulator's log
    log = open(os.path.join(str(sim["state"]), "sim.log"), "rb").read()
    for secret in (data_key, data_key.hex().encode(), base64.b64encode(data_key)):
        assert secret not in log


def test_no_recipient_keeps_the_plaintext_path(sim):
    aws = Aws(sim)
    kms_key = make_key(aws)  # moto's default key policy: the account may do everything
    st, out = aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256"})
    assert st == 200 and set(out) == {"CiphertextBlob", "Plaintext", "KeyId"}
    st, dec = aws.kms("Decrypt", {"CiphertextBlob": out["CiphertextBlob"]})
    assert st == 200 and dec["Plaintext"] == out["Plaintext"] and "CiphertextForRecipient" not in dec
    st, rnd = aws.kms("GenerateRandom", {"NumberOfBytes": 16})
    assert st == 200 and len(base64.b64decode(rnd["Plaintext"])) == 16
    st, pair = aws.kms("GenerateDataKeyPair", {"KeyId": kms_key["KeyId"], "KeyPairSpec": "ECC_NIST_P256"})
    assert st == 200, pair
    assert pair["KeyPairSpec"] == "ECC_NIST_P256" and "CiphertextForRecipient" not in pair
    private = serialization.load_der_private_key(base64.b64decode(pair["PrivateKeyPlaintext"]), None)
    assert private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == base64.b64decode(pair["PublicKey"])
    st, dec = aws.kms("Decrypt", {"CiphertextBlob": pair["PrivateKeyCiphertextBlob"]})
    assert st == 200 and dec["Plaintext"] == pair["PrivateKeyPlaintext"]


@needs_openssl
def test_generate_random_and_data_key_pair_with_recipient(sim, nsm, enclave_key, tmp_path):
    aws = Aws(sim)
    key, spki = enclave_key
    st, out = aws.kms("GenerateRandom", {"NumberOfBytes": 48, "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200 and len(opened(tmp_path, out, key)) == 48
    kms_key = make_key(aws, attested_policy())
    st, pair = aws.kms("GenerateDataKeyPair", {"KeyId": kms_key["KeyId"], "KeyPairSpec": "RSA_2048",
                                               "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200, pair
    private_der = opened(tmp_path, pair, key)
    private = serialization.load_der_private_key(private_der, None)
    assert private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == base64.b64decode(pair["PublicKey"])
    st, dec = aws.kms("Decrypt", {"CiphertextBlob": pair["PrivateKeyCiphertextBlob"],
                                  "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert st == 200 and opened(tmp_path, dec, key) == private_der
    st, err = aws.kms("GenerateDataKeyPair", {"KeyId": kms_key["KeyId"], "KeyPairSpec": "RSA_1024"})
    assert st == 400 and err["__type"] == "ValidationException"


def test_key_policy_pins_the_image(sim, nsm, enclave_key):
    aws = Aws(sim)
    _, spki = enclave_key
    kms_key = make_key(aws, attested_policy())
    ok = aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256",
                                     "Recipient": recipient(nsm.document(spki, pcrs()))})
    assert ok[0] == 200
    # Upper-case hex in the policy still matches (StringEqualsIgnoreCase, as AWS's examples use)
    upper = make_key(aws, attested_policy().replace(PCR0.hex(), PCR0.hex().upper()))
    assert aws.kms("GenerateDataKey", {"KeyId": upper["KeyId"], "KeySpec": "AES_256",
                                       "Recipient": recipient(nsm.document(spki, pcrs()))})[0] == 200
    for bad in (pcrs(p0=OTHER_PCR0), pcrs(p1=OTHER_PCR0), pcrs(ZERO, ZERO, ZERO)):  # other image, kernel, debug
        st, err = aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256",
                                              "Recipient": recipient(nsm.document(spki, bad))})
        assert st == 400 and err["__type"] == "AccessDeniedException", err
        assert err["message"] == (f"User: {ROOT} is not authorized to perform: kms:GenerateDataKey on resource: "
                                  f"{kms_key['Arn']} because no resource-based policy allows the "
                                  "kms:GenerateDataKey action")


def test_debug_documents_are_verified_and_left_to_the_key_policy(sim, nsm, enclave_key):
    """AWS KMS accepts debug-mode documents (its kmstool tutorial pins ImageSha384 = 96 zeros for a
    debug enclave); what refuses them is a key policy pinning the real image, or denying zeros."""
    aws = Aws(sim)
    _, spki = enclave_key
    debug = recipient(nsm.document(spki, pcrs(ZERO, ZERO, ZERO)))
    zeros = make_key(aws, attested_policy(ZERO).replace(PCR1.hex(), ZERO.hex()).replace(PCR2.hex(), ZERO.hex()))
    assert aws.kms("GenerateDataKey", {"KeyId": zeros["KeyId"], "KeySpec": "AES_256", "Recipient": debug})[0] == 200
    deny_debug = {"Sid": "NoDebug", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
                  "Condition": {"StringEquals": {"kms:RecipientAttestation:ImageSha384": ZERO.hex()}}}
    both = make_key(aws, attested_policy(ZERO, [deny_debug]).replace(PCR1.hex(), ZERO.hex()).replace(PCR2.hex(), ZERO.hex()))
    st, err = aws.kms("GenerateDataKey", {"KeyId": both["KeyId"], "KeySpec": "AES_256", "Recipient": debug})
    assert st == 400 and err["__type"] == "AccessDeniedException" and "explicit deny" in err["message"]


def test_explicit_deny_wins(sim, nsm, enclave_key):
    aws = Aws(sim)
    _, spki = enclave_key
    deny_pcr3 = {"Sid": "NotThatRole", "Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "kms:Decrypt",
                 "Resource": "*", "Condition": {"StringEquals": {"kms:RecipientAttestation:PCR3": ("c3" * 48)}}}
    kms_key = make_key(aws, attested_policy(extra=[deny_pcr3]))
    st, out = aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs(PCR3=bytes([0xC3]) * 48)))})
    assert st == 200, out  # the Deny names Decrypt only
    blob = out["CiphertextBlob"]
    assert aws.kms("Decrypt", {"CiphertextBlob": blob,
                               "Recipient": recipient(nsm.document(spki, pcrs()))})[0] == 200
    st, err = aws.kms("Decrypt", {"CiphertextBlob": blob,
                                  "Recipient": recipient(nsm.document(spki, pcrs(PCR3=bytes([0xC3]) * 48)))})
    assert st == 400 and err["__type"] == "AccessDeniedException"
    assert err["message"].endswith("with an explicit deny in a resource-based policy")


def test_bad_documents_are_refused(sim, nsm, enclave_key):
    aws = Aws(sim)
    _, spki = enclave_key
    kms_key = make_key(aws)  # the default policy: only the document is in question

    def call(rec):
        return aws.kms("GenerateDataKey", {"KeyId": kms_key["KeyId"], "KeySpec": "AES_256", "Recipient": rec})

    good = nsm.document(spki, pcrs())
    assert call(recipient(good))[0] == 200
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 0x01
    cases = {
        "expired": recipient(nsm.document(spki, pcrs(), timestamp=time.time() - 301)),
        "future": recipient(nsm.document(spki, pcrs(), timestamp=time.time() + 600)),
        "wrong root": recipient(TestNsm("rogue").document(spki, pcrs())),
        "tampered": recipient(bytes(tampered)),
        "signature": recipient(good[:-1] + bytes([good[-1] ^ 1])),
        "not rsa": recipient(nsm.document(b"\x01" * 32, pcrs())),
        "small rsa": recipient(nsm.document(rsa_recipient(1024)[1], pcrs())),
        "not cbor": {"AttestationDocument": base64.b64encode(b"not a document").decode()},
        "not base64": {"AttestationDocument": "***", "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
        "algorithm": dict(recipient(good), KeyEncryptionAlgorithm="RSAES_OAEP_SHA_1"),
    }
    for name, rec in cases.items():
        st, err = call(rec)
        assert (st, err.get("__type")) == (400, "ValidationException"), (name, err)
        assert "Plaintext" not in err and "CiphertextForRecipient" not in err
    assert "Invalid attestation document" in call(cases["expired"])[1]["message"]


def test_a_root_file_written_after_start_is_picked_up(sim, late_nsm, enclave_key):
    """The enclave's simulated NSM writes sim-root.pem at its first start, after the simulator's."""
    aws = Aws(sim)
    _, spki = enclave_key
    rec = recipient(late_nsm.document(spki, pcrs()))
    st, err = aws.kms("GenerateRandom", {"NumberOfBytes": 8, "Recipient": rec})
    assert st == 400 and err["__type"] == "ValidationException"
    sim["late_root"].write_bytes(late_nsm.root_pem)
    assert aws.kms("GenerateRandom", {"NumberOfBytes": 8, "Recipient": rec})[0] == 200


def test_assumed_role_callers(sim, nsm, enclave_key):
    """A key policy that names the role allows it without IAM; one that names the account needs IAM too."""
    aws = Aws(sim)
    _, spki = enclave_key
    idp = Idp()
    t = aws.iam("CreateSAMLProvider", Name="kms-idp", SAMLMetadataDocument=metadata(idp.entity_id, [idp]))
    provider = xml_field(t, "SAMLProviderArn")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Federated": provider},
                                                     "Action": "sts:AssumeRoleWithSAML",
                                                     "Condition": {"StringEquals": {"SAML:aud": ACS}}}]}
    role = xml_field(aws.iam("CreateRole", RoleName="enclave-instance", AssumeRolePolicyDocument=json.dumps(trust)), "Arn")
    st, text = aws.assume(role, provider, saml_response(idp, subject="enclave", roles=[f"{role},{provider}"]))
    assert st == 200, text
    creds = creds_from(text)
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/enclave-instance/nitrosync"
    by_role = make_key(aws, attested_policy(enclave=role))
    rec = recipient(nsm.document(spki, pcrs()))
    st, out = aws.kms("GenerateDataKey", {"KeyId": by_role["KeyId"], "KeySpec": "AES_256", "Recipient": rec}, creds=creds)
    assert st == 200, out
    by_account = make_key(aws, attested_policy())
    st, err = aws.kms("GenerateDataKey", {"KeyId": by_account["KeyId"], "KeySpec": "AES_256", "Recipient": rec},
                      creds=creds)
    assert st == 400 and err["message"] == (
        f"User: {session_arn} is not authorized to perform: kms:GenerateDataKey on resource: {by_account['Arn']} "
        "because no identity-based policy allows the kms:GenerateDataKey action")
    aws.iam("PutRolePolicy", RoleName="enclave-instance", PolicyName="kms", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:GenerateDataKey",
                                                "Resource": by_account["Arn"]}]}))
    assert aws.kms("GenerateDataKey", {"KeyId": by_account["KeyId"], "KeySpec": "AES_256", "Recipient": rec},
                   creds=creds)[0] == 200
    # The IAM policy alone does not get past the key policy's conditions
    st, err = aws.kms("GenerateDataKey", {"KeyId": by_account["KeyId"], "KeySpec": "AES_256",
                                          "Recipient": recipient(nsm.document(spki, pcrs(p0=OTHER_PCR0)))}, creds=creds)
    assert st == 400 and "because no resource-based policy allows" in err["message"]
