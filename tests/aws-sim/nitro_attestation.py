"""Verifies AWS Nitro Enclaves attestation documents, as KMS does for a `Recipient` (no moto here).

A document is an (untagged, or tag-18) COSE_Sign1 array `[protected, unprotected, payload,
signature]`: protected header `{1: -35}` (ES384), a 96-byte r||s signature by the leaf certificate's
P-384 key over the Sig_structure `["Signature1", protected, h'', payload]` (the payload bytes as
received, never re-encoded), and a CBOR payload map with `module_id`, `digest` ("SHA384"),
`timestamp` (ms), `pcrs` ({index: bytes}), `certificate` (leaf, DER), `cabundle` ([root, ...,
issuer of the leaf], DER), `public_key`, `user_data`, `nonce`.

`verify(doc, roots, now)` checks, in this order: the structure; the signature; the chain (the
bundle's first certificate must be one of `roots`, byte for byte; each next certificate, then the
leaf, must be issued by the one before, issuers must be CAs allowed to sign certificates within
their path length, the leaf must not be a CA; every certificate valid at the document's
`timestamp`); then freshness against `now` (at most `max_age_s` old, at most `FUTURE_SKEW_S` ahead).
`recipient_key(att)` then requires `public_key` to be a DER SubjectPublicKeyInfo of an RSA key of
at least 2048 bits, which is what KMS encrypts to.

Debug-mode documents (PCR0, PCR1, PCR2 all zero) are verified like any other, as AWS KMS does:
their `kms:RecipientAttestation:ImageSha384` is 96 zeros, and the key policy decides (AWS's own
kmstool tutorial pins that value for debug enclaves).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import cbor

ES384 = -35
MAX_AGE_S = 300  # how old a document KMS accepts (simulator default; see README)
FUTURE_SKEW_S = 60
MIN_RSA_BITS = 2048
MAX_DOC = 262_144  # KMS's AttestationDocument length limit
HERE = os.path.dirname(os.path.abspath(__file__))
AWS_ROOT_PEM = os.path.join(HERE, "aws-nitro-root-g1.pem")


class AttestationError(ValueError):
    """Why a document was refused. `kind` is one of: malformed, signature, untrusted, expired,
    not_yet_valid, public_key."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class Attestation:
    module_id: str
    timestamp_ms: int
    pcrs: dict
    certificate: bytes
    cabundle: list
    public_key: Optional[bytes]
    user_data: Optional[bytes]
    nonce: Optional[bytes]
    digest: str = "SHA384"

    @property
    def image_sha384(self) -> str:
        return self.pcrs[0].hex()

    @property
    def debug(self) -> bool:
        return all(not any(self.pcrs.get(i, b"\x00")) for i in (0, 1, 2))

    def condition_context(self) -> dict:
        """KMS's condition keys for this document: ImageSha384 (= PCR0) and PCR<n>, lowercase hex."""
        ctx = {"kms:RecipientAttestation:ImageSha384": self.image_sha384}
        for i, v in sorted(self.pcrs.items()):
            ctx[f"kms:RecipientAttestation:PCR{i}"] = v.hex()
        return ctx


def load_roots(paths: Iterable[str]) -> list:
    """Certificates from PEM (one or more per file) or DER files. Missing files are skipped (the
    simulated NSM writes its root at the enclave's first start, possibly after the simulator's)."""
    roots = []
    for p in paths:
        try:
            data = open(p, "rb").read()
        except FileNotFoundError:
            continue
        try:
            if b"-----BEGIN" in data:
                roots += x509.load_pem_x509_certificates(data)
            else:
                roots.append(x509.load_der_x509_certificate(data))
        except ValueError as e:
            raise ValueError(f"{p}: not a PEM or DER certificate ({e})") from None
    return roots


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    return cbor.dumps(["Signature1", protected, b"", payload])


def _bad(msg: str) -> AttestationError:
    return AttestationError("malformed", msg)


def _opt_bytes(p: dict, key: str, limit: int) -> Optional[bytes]:
    if key not in p:
        raise _bad(f"payload has no {key}")
    v = p[key]
    if v is None:
        return None
    if not isinstance(v, bytes) or len(v) > limit:
        raise _bad(f"{key} is not a byte string of at most {limit} bytes")
    return v


def parse(doc: bytes) -> tuple[bytes, bytes, bytes, Attestation]:
    """(protected, payload, signature, decoded payload) of a well-formed document; no checks of
    signature, chain or time."""
    if not isinstance(doc, (bytes, bytearray)) or not 1 <= len(doc) <= MAX_DOC:
        raise _bad("document is empty or too large")
    try:
        top = cbor.loads(bytes(doc))
    except cbor.CborError as e:
        raise _bad(f"document is not CBOR: {e}") from None
    if isinstance(top, cbor.Tag):
        if top.tag != 18:
            raise _bad(f"unexpected CBOR tag {top.tag}")
        top = top.value
    if not isinstance(top, list) or len(top) != 4:
        raise _bad("document is not a COSE_Sign1 array of four items")
    protected, unprotected, payload, signature = top
    if not isinstance(protected, bytes) or not isinstance(unprotected, dict):
        raise _bad("bad COSE_Sign1 headers")
    if not isinstance(payload, bytes) or not payload or not isinstance(signature, bytes):
        raise _bad("bad COSE_Sign1 payload or signature")
    try:
        prot = cbor.loads(protected) if protected else {}
    except cbor.CborError:
        raise _bad("protected header is not CBOR") from None
    if prot != {1: ES384}:
        raise AttestationError("signature", "protected header is not {1: -35} (ES384)")
    if len(signature) != 96:
        raise AttestationError("signature", "ES384 signature is not 96 bytes")
    try:
        p = cbor.loads(payload)
    except cbor.CborError as e:
        raise _bad(f"payload is not CBOR: {e}") from None
    if not isinstance(p, dict):
        raise _bad("payload is not a map")
    module_id, digest, ts = p.get("module_id"), p.get("digest"), p.get("timestamp")
    if not isinstance(module_id, str) or not module_id:
        raise _bad("module_id is missing")
    if digest != "SHA384":
        raise _bad(f"digest is {digest!r}, not SHA384")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts <= 0:
        raise _bad("timestamp is missing")
    pcrs = p.get("pcrs")
    if not isinstance(pcrs, dict) or not 1 <= len(pcrs) <= 32:
        raise _bad("pcrs is not a map of 1 to 32 entries")
    for k, v in pcrs.items():
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < 32:
            raise _bad("a PCR index is not 0-31")
        if not isinstance(v, bytes) or len(v) != 48:
            raise _bad(f"PCR{k} is not 48 bytes")
    if 0 not in pcrs:
        raise _bad("PCR0 is missing")
    cert, bundle = p.get("certificate"), p.get("cabundle")
    if not isinstance(cert, bytes) or not cert:
        raise _bad("certificate is missing")
    if not isinstance(bundle, list) or not bundle or not all(isinstance(c, bytes) and c for c in bundle):
        raise _bad("cabundle is not a non-empty list of certificates")
    att = Attestation(module_id=module_id, timestamp_ms=ts, pcrs=dict(pcrs), certificate=cert,
                      cabundle=list(bundle), public_key=_opt_bytes(p, "public_key", 1024),
                      user_data=_opt_bytes(p, "user_data", 1024), nonce=_opt_bytes(p, "nonce", 1024))
    return protected, payload, signature, att


def _der_cert(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise _bad(f"{what} is not a DER certificate") from None


def _check_signature(protected: bytes, payload: bytes, signature: bytes, leaf: x509.Certificate) -> None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
        raise AttestationError("signature", "leaf certificate key is not P-384")
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    try:
        key.verify(encode_dss_signature(r, s), sig_structure(protected, payload), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise AttestationError("signature", "COSE_Sign1 signature does not verify with the leaf certificate") from None


def _ca_ok(c: x509.Certificate) -> tuple[bool, Optional[int]]:
    try:
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False, None
    try:
        ku = c.extensions.get_extension_for_class(x509.KeyUsage).value
        if not ku.key_cert_sign:
            return False, None
    except x509.ExtensionNotFound:
        pass
    return bc.ca, bc.path_length


def _check_chain(att: Attestation, roots: list, at: dt.datetime) -> None:
    if not roots:
        raise AttestationError("untrusted", "no trusted attestation root is configured")
    root_ders = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    if att.cabundle[0] not in root_ders:
        raise AttestationError("untrusted", "the document's certificate chain does not start at a trusted root")
    chain = [_der_cert(d, "a cabundle entry") for d in att.cabundle] + [_der_cert(att.certificate, "certificate")]
    for i, c in enumerate(chain):
        if not c.not_valid_before_utc <= at <= c.not_valid_after_utc:
            raise AttestationError("untrusted", f"certificate {i} of the chain is not valid at the document's time")
        if i == 0:
            continue
        issuer = chain[i - 1]
        is_ca, pathlen = _ca_ok(issuer)
        if not is_ca:
            raise AttestationError("untrusted", f"certificate {i - 1} of the chain may not issue certificates")
        intermediates_below = len(chain) - 1 - i  # CA certificates after chain[i]... excluding the leaf
        if pathlen is not None and intermediates_below > pathlen:
            raise AttestationError("untrusted", f"certificate {i - 1} of the chain exceeds its path length")
        try:
            c.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise AttestationError("untrusted", f"certificate {i} of the chain is not issued by the one before it") from None
    if _ca_ok(chain[-1])[0]:
        raise AttestationError("untrusted", "the leaf certificate is a CA")


def verify(doc: bytes, roots: list, now: float, max_age_s: float = MAX_AGE_S) -> Attestation:
    """The verified document, or AttestationError. `now` is epoch seconds."""
    protected, payload, signature, att = parse(doc)
    leaf = _der_cert(att.certificate, "certificate")
    _check_signature(protected, payload, signature, leaf)
    at = dt.datetime.fromtimestamp(att.timestamp_ms / 1000, dt.timezone.utc)
    _check_chain(att, roots, at)
    age = now - att.timestamp_ms / 1000
    if age > max_age_s:
        raise AttestationError("expired", f"the attestation document is {int(age)} s old; at most {int(max_age_s)} s is accepted")
    if age < -FUTURE_SKEW_S:
        raise AttestationError("not_yet_valid", "the attestation document's timestamp is in the future")
    return att


def recipient_key(att: Attestation) -> tuple[rsa.RSAPublicKey, bytes]:
    """The RSA key KMS encrypts to, and its DER SubjectPublicKeyInfo as given in the document."""
    if not att.public_key:
        raise AttestationError("public_key", "the attestation document has no public_key")
    try:
        key = serialization.load_der_public_key(att.public_key)
    except (ValueError, TypeError):
        raise AttestationError("public_key", "public_key is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise AttestationError("public_key", "public_key is not an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise AttestationError("public_key", f"public_key is RSA-{key.key_size}; at least RSA-{MIN_RSA_BITS} is required")
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != att.public_key:
        raise AttestationError("public_key", "public_key is not a DER SubjectPublicKeyInfo")
    return key, spki


def subject_key_identifier(spki_der: bytes) -> bytes:
    """The recipient identifier KMS puts in CiphertextForRecipient: SHA-256 of the DER SPKI."""
    return hashlib.sha256(spki_der).digest()

