"""Oracle: verify a SAML Response with signxml in its default (strict) mode.

usage: verify_signxml.py RESPONSE.xml CERT.pem EXPECTED_ASSERTION_ID
Exit 0 and print "OK <tag> <ID>" only if exactly the Assertion's signature verifies against CERT and
the signed element signxml returns is the Assertion with that ID.
"""
import sys

from signxml import XMLVerifier

xml_path, cert_path, expected_id = sys.argv[1:4]
with open(xml_path, "rb") as f:
    xml = f.read()
with open(cert_path) as f:
    cert = f.read()

# Default XMLVerifier: expects exactly one reference, rejects SHA-1, requires the given cert.
result = XMLVerifier().verify(xml, x509_cert=cert)
signed = result.signed_xml
tag = signed.tag
if tag != "{urn:oasis:names:tc:SAML:2.0:assertion}Assertion" or signed.get("ID") != expected_id:
    print(f"signed element is {tag} ID={signed.get('ID')!r}", file=sys.stderr)
    sys.exit(3)
print("OK", tag, signed.get("ID"))
