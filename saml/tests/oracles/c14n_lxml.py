"""Oracle: exclusive XML canonicalisation (exc-c14n, no prefix list) by lxml / libxml2.

usage: c14n_lxml.py RESPONSE.xml
Writes to stdout the canonical form of the whole document, a NUL byte, and the canonical form of
the Assertion as its own apex after removing its ds:Signature (what the enveloped-signature
transform digests).
"""
import sys

from lxml import etree

NS = {
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}

with open(sys.argv[1], "rb") as f:
    root = etree.fromstring(f.read())

document = etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
(assertion,) = root.findall("saml:Assertion", NS)
(signature,) = assertion.findall("ds:Signature", NS)
assertion.remove(signature)
digested = etree.tostring(assertion, method="c14n", exclusive=True, with_comments=False)
sys.stdout.buffer.write(document + b"\0" + digested)
