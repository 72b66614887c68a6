"""`CiphertextForRecipient` as AWS KMS emits it: CMS EnvelopedData (RFC 5652) in BER.

Python's `cryptography` cannot write this (its PKCS#7 envelope wraps keys with PKCS#1 v1.5 only), so
the structure is written here from its RSA-OAEP and AES-CBC primitives. The layout copies a real
KMS answer byte for byte (the 461-byte example in test_kms_recipient.py, published with
RustCrypto/formats issue #779 and its `cms/tests/examples/kms_ciphertext_for_recipient_*.ber`):

    30 80                                  ContentInfo                       (indefinite)
      06 09 2a864886f70d010703               id-envelopedData
      a0 80                                  [0] EXPLICIT                      (indefinite)
        30 80                                EnvelopedData                     (indefinite)
          02 01 02                             version 2
          31 82 ....                           recipientInfos SET              (definite, DER)
            30 82 ....                           KeyTransRecipientInfo
              02 01 02                             version 2
              80 20 <32 bytes>                     rid [0] SubjectKeyIdentifier = SHA-256(DER SPKI)
              30 3c 06 09 2a864886f70d010107       id-RSAES-OAEP
                    30 2f a0 0f 30 0d <sha256> 05 00            hashAlgorithm [0] sha256
                          a1 1c 30 1a <mgf1> 30 0d <sha256> 05 00   maskGenAlgorithm [1] mgf1(sha256)
              04 82 <len> <wrapped key>            RSAES-OAEP-SHA-256 of the 32-byte AES key
          30 80                                EncryptedContentInfo            (indefinite)
            06 09 2a864886f70d010701             id-data
            30 1d 06 09 608648016503040102a  04 10 <iv>     aes256-CBC, IV
            a0 80                                [0] IMPLICIT constructed OCTET STRING (indefinite)
              04 <len> <chunk> ...                 the ciphertext in chunks of 1000 bytes
            00 00
          00 00
        00 00
      00 00

The content is AES-256-CBC with PKCS#7 padding under a fresh key and IV per answer.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
OID_DATA = "1.2.840.113549.1.7.1"
OID_RSAES_OAEP = "1.2.840.113549.1.1.7"
OID_MGF1 = "1.2.840.113549.1.1.8"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
CHUNK = 1000  # KMS splits the encrypted content into OCTET STRINGs of 1000 bytes
EOC = b"\x00\x00"


# ---------------------------------------------------------------------------------------------
# A minimal ASN.1 writer (DER definite lengths; BER indefinite-length constructed values)
# ---------------------------------------------------------------------------------------------


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_length(len(content)) + content


def indefinite(tag: int, *parts: bytes) -> bytes:
    """A constructed value with indefinite length: tag, 0x80, contents, end-of-contents."""
    return bytes([tag, 0x80]) + b"".join(parts) + EOC


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def integer(n: int) -> bytes:
    raw = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return tlv(0x02, raw)


def seq(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


NULL = b"\x05\x00"


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def sha256_alg() -> bytes:
    return seq(oid(OID_SHA256), NULL)


def oaep_sha256_alg() -> bytes:
    """AlgorithmIdentifier id-RSAES-OAEP with RSAES-OAEP-params {sha256, mgf1(sha256)}, no pSource."""
    params = seq(tlv(0xA0, sha256_alg()), tlv(0xA1, seq(oid(OID_MGF1), sha256_alg())))
    return seq(oid(OID_RSAES_OAEP), params)


# ---------------------------------------------------------------------------------------------
# The envelope
# ---------------------------------------------------------------------------------------------


def build(ski: bytes, wrapped_key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """The ContentInfo bytes from their parts (no cryptography here)."""
    ktri = seq(integer(2), tlv(0x80, ski), oaep_sha256_alg(), octets(wrapped_key))
    chunks = [octets(ciphertext[i:i + CHUNK]) for i in range(0, len(ciphertext), CHUNK)]
    eci = indefinite(0x30,
                     oid(OID_DATA),
                     seq(oid(OID_AES256_CBC), octets(iv)),
                     indefinite(0xA0, *chunks))
    enveloped = indefinite(0x30, integer(2), tlv(0x31, ktri), eci)
    return indefinite(0x30, oid(OID_ENVELOPED_DATA), indefinite(0xA0, enveloped))


def envelope(plaintext: bytes, recipient: rsa.RSAPublicKey, ski: bytes) -> bytes:
    """Encrypts `plaintext` to `recipient` the way KMS does for a Recipient: a fresh AES-256 key
    wrapped with RSAES-OAEP (SHA-256, MGF1-SHA-256, no label), the content AES-256-CBC."""
    cek = bytearray(os.urandom(32))
    iv = os.urandom(16)
    try:
        wrapped = recipient.encrypt(bytes(cek), asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()),
                                                                  algorithm=hashes.SHA256(), label=None))
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.AES(bytes(cek)), modes.CBC(iv)).encryptor()
        ciphertext = enc.update(padded) + enc.finalize()
    finally:
        for i in range(len(cek)):
            cek[i] = 0
    return build(ski, wrapped, iv, ciphertext)


# ---------------------------------------------------------------------------------------------
# A reader, for tests: BER (definite and indefinite lengths) into (tag, value-or-children)
# ---------------------------------------------------------------------------------------------


def parse_ber(data: bytes, pos: int = 0) -> tuple[tuple, int]:
    """One element at `pos`: ((tag, indefinite, payload), next pos). `payload` is bytes for a
    primitive element and a list of elements for a constructed one."""
    tag = data[pos]
    pos += 1
    first = data[pos]
    pos += 1
    constructed = bool(tag & 0x20)
    if first == 0x80:
        if not constructed:
            raise ValueError("indefinite length on a primitive element")
        children = []
        while data[pos:pos + 2] != EOC:
            child, pos = parse_ber(data, pos)
            children.append(child)
        return (tag, True, children), pos + 2
    if first & 0x80:
        n = first & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise ValueError("element runs past the end")
    if not constructed:
        return (tag, False, data[pos:end]), end
    children = []
    while pos < end:
        child, pos = parse_ber(data, pos)
        children.append(child)
    if pos != end:
        raise ValueError("constructed element overruns its length")
    return (tag, False, children), end
