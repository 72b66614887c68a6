"""Test helpers for the AWS simulator: start it, call it as the real AWS hostnames (SigV4 with
botocore), and build signed SAML Responses and IdP metadata (RSA-2048, xmlsec, RSA-SHA256)."""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid
from typing import Any, Optional
from urllib.parse import urlencode

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT = "123456789012"
ADMIN = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
ACS = "https://signin.aws.amazon.com/saml"
NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


def start_sim(state_dir: Any, regions: str = "us-east-1,eu-west-1", extra_args: Optional[list] = None) -> dict:
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "aws_sim.py"), "--state-dir", str(state_dir), "--port", "0",
         "--regions", regions] + list(extra_args or []),
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(str(state_dir), "sim.log"), "wb"),
    )
    ready = os.path.join(str(state_dir), "ready.json")
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("simulator did not start:\n" + open(os.path.join(str(state_dir), "sim.log")).read())
        time.sleep(0.05)
    info = json.loads(open(ready).read())
    info["proc"], info["state"] = proc, state_dir
    return info


def stop_sim(info: dict) -> None:
    proc = info["proc"]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class HostConnection(http.client.HTTPSConnection):
    """TCP to the simulator's loopback port, TLS and HTTP as if talking to `hostname`."""

    def __init__(self, sim: dict, hostname: str, context: Optional[ssl.SSLContext] = None, timeout: float = 10):
        ctx = context or ssl.create_default_context(cafile=sim["ca"])
        super().__init__(sim["host"], sim["port"], context=ctx, timeout=timeout)
        self.hostname = hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.hostname)

    def call(self, method: str, path: str, body: bytes = b"", headers: Optional[dict] = None) -> tuple:
        headers = dict(headers or {})
        headers["Host"] = self.hostname
        self.request(method, path, body=body, headers=headers)
        resp = self.getresponse()
        return resp.status, resp.read(), resp


def sign(hostname: str, service: str, region: str, body: bytes, headers: dict,
         creds: Credentials = ADMIN, when: Optional[dt.datetime] = None) -> dict:
    req = AWSRequest(method="POST", url=f"https://{hostname}/", data=body, headers=dict(headers, Host=hostname))
    auth = SigV4Auth(creds, service, region)
    if when is None:
        auth.add_auth(req)
    else:  # sign as if at another time (clock skew tests)
        import botocore.auth as ba

        real = ba.get_current_datetime
        ba.get_current_datetime = lambda *a, **k: when.replace(tzinfo=None)
        try:
            auth.add_auth(req)
        finally:
            ba.get_current_datetime = real
    return dict(req.headers.items())


class Aws:
    """Calls one simulator as the real AWS endpoints."""

    def __init__(self, sim: dict, creds: Credentials = ADMIN):
        self.sim, self.creds = sim, creds
        self._conns: dict = {}

    def conn(self, hostname: str) -> HostConnection:
        if hostname not in self._conns:
            self._conns[hostname] = HostConnection(self.sim, hostname)
        return self._conns[hostname]

    def raw(self, hostname: str, body: bytes, headers: dict) -> tuple:
        c = self.conn(hostname)
        try:
            return c.call("POST", "/", body, headers)
        except (http.client.HTTPException, ConnectionError, ssl.SSLError, OSError):
            c.close()
            self._conns.pop(hostname, None)
            raise

    def json(self, service: str, target: str, payload: dict, region: str = "us-east-1",
             creds: Optional[Credentials] = None, **sign_kw: Any) -> tuple[int, dict]:
        host = f"{service}.{region}.amazonaws.com"
        body = json.dumps(payload).encode()
        h = sign(host, service, region, body, {"Content-Type": "application/x-amz-json-1.1",
                                               "X-Amz-Target": target}, creds or self.creds, **sign_kw)
        status, data, _ = self.raw(host, body, h)
        return status, (json.loads(data) if data else {})

    def sm(self, op: str, payload: dict, **kw: Any) -> tuple[int, dict]:
        return self.json("secretsmanager", f"secretsmanager.{op}", payload, **kw)

    def kms(self, op: str, payload: dict, **kw: Any) -> tuple[int, dict]:
        return self.json("kms", f"TrentService.{op}", payload, **kw)

    def query(self, service: str, action: str, params: dict, region: str = "us-east-1",
              creds: Optional[Credentials] = None, signed: bool = True) -> tuple[int, str]:
        version = {"iam": "2010-05-08", "sts": "2011-06-15"}[service]
        host = "iam.amazonaws.com" if service == "iam" else f"sts.{region}.amazonaws.com"
        body = urlencode(dict(params, Action=action, Version=version)).encode()
        h = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        if signed:
            h = sign(host, service, region, body, h, creds or self.creds)
        status, data, _ = self.raw(host, body, h)
        return status, data.decode()

    def iam(self, action: str, **params: Any) -> str:
        status, text = self.query("iam", action, params)
        assert status == 200, text
        return text

    def control(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        c = self.conn("sim.nitrosync.local")
        body = json.dumps(payload).encode() if payload is not None else b""
        status, data, _ = c.call(method, path, body, {"Content-Type": "application/json"})
        return status, json.loads(data) if data else None

    def assume(self, role_arn: str, provider_arn: str, saml_xml: bytes, region: str = "us-east-1",
               **extra: Any) -> tuple[int, str]:
        params = {"RoleArn": role_arn, "PrincipalArn": provider_arn,
                  "SAMLAssertion": base64.b64encode(saml_xml).decode()}
        params.update({k: str(v) for k, v in extra.items()})
        return self.query("sts", "AssumeRoleWithSAML", params, region=region, signed=False)


def xml_field(text: str, name: str) -> str:
    m = re.search(f"<{name}>(.*?)</{name}>", text, re.S)
    return m.group(1) if m else ""


def creds_from(text: str) -> Credentials:
    return Credentials(xml_field(text, "AccessKeyId"), xml_field(text, "SecretAccessKey"),
                       xml_field(text, "SessionToken"))


# ---------------------------------------------------------------------------------------------
# SAML IdP
# ---------------------------------------------------------------------------------------------


class Idp:
    """An IdP signing key (RSA-2048) with a self-signed certificate."""

    def __init__(self, entity_id: str = "https://idp.nitrosync.test/saml"):
        self.entity_id = entity_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nitrosync test idp")])
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                     .sign(self.key, hashes.SHA256()))
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.cert_b64 = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()


def metadata(entity_id: str, idps: list) -> str:
    keys = "".join(
        '<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
        f"{i.cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" for i in idps)
    return ('<?xml version="1.0"?>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
            f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">'
            '<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
            f"{keys}<md:NameIDFormat>{PERSISTENT}</md:NameIDFormat>"
            '<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            'Location="https://idp.nitrosync.test/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def saml_response(idp: Idp, *, subject: str, roles: list, session_name: Optional[str] = "nitrosync",
                  issuer: Optional[str] = None, destination: Optional[str] = ACS, recipient: str = ACS,
                  audience: str = "urn:amazon:webservices", not_before_s: int = -30, not_after_s: int = 300,
                  sc_not_after_s: Optional[int] = None, sign: bool = True, sha1: bool = False,
                  in_response_to: Optional[str] = None, name_id_format: str = PERSISTENT,
                  session_duration: Optional[str] = None, tamper: bool = False) -> bytes:
    """A SAML 2.0 Response as DESIGN §7 describes, the Assertion signed enveloped (exc-c14n,
    RSA-SHA256 / SHA-256 digest unless sha1)."""
    from xml.sax.saxutils import escape, quoteattr

    import xmlsec
    from lxml import etree

    now = dt.datetime.now(dt.timezone.utc)
    issuer = issuer or idp.entity_id
    rid, aid = "_" + uuid.uuid4().hex, "_" + uuid.uuid4().hex
    sc_after = now + dt.timedelta(seconds=not_after_s if sc_not_after_s is None else sc_not_after_s)
    irt = f" InResponseTo={quoteattr(in_response_to)}" if in_response_to else ""
    dest = f" Destination={quoteattr(destination)}" if destination is not None else ""

    def attr(name: str, values: list) -> str:
        vals = "".join(f"<saml:AttributeValue>{escape(v)}</saml:AttributeValue>" for v in values)
        return f'<saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/{name}">{vals}</saml:Attribute>'

    attrs = attr("Role", roles) if roles else ""
    if session_name is not None:
        attrs += attr("RoleSessionName", [session_name])
    if session_duration is not None:
        attrs += attr("SessionDuration", [session_duration])
    xml = (f'<samlp:Response xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{rid}" Version="2.0" '
           f'IssueInstant="{iso(now)}"{dest}{irt}>'
           f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
           '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
           f'<saml:Assertion ID="{aid}" Version="2.0" IssueInstant="{iso(now)}">'
           f"<saml:Issuer>{escape(issuer)}</saml:Issuer>"
           f'<saml:Subject><saml:NameID Format="{name_id_format}">{escape(subject)}</saml:NameID>'
           '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
           f'<saml:SubjectConfirmationData NotOnOrAfter="{iso(sc_after)}" Recipient={quoteattr(recipient)}{irt}/>'
           "</saml:SubjectConfirmation></saml:Subject>"
           f'<saml:Conditions NotBefore="{iso(now + dt.timedelta(seconds=not_before_s))}" '
           f'NotOnOrAfter="{iso(now + dt.timedelta(seconds=not_after_s))}">'
           f"<saml:AudienceRestriction><saml:Audience>{escape(audience)}</saml:Audience>"
           "</saml:AudienceRestriction></saml:Conditions>"
           f'<saml:AuthnStatement AuthnInstant="{iso(now)}" SessionIndex="{aid}"><saml:AuthnContext>'
           "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
           "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
           f"<saml:AttributeStatement>{attrs}</saml:AttributeStatement>"
           "</saml:Assertion></samlp:Response>")
    root = etree.fromstring(xml.encode())
    if sign:
        assertion = root.find(f"{{{NS_SAML}}}Assertion")
        c = xmlsec.constants
        sig = xmlsec.template.create(assertion, c.TransformExclC14N,
                                     c.TransformRsaSha1 if sha1 else c.TransformRsaSha256, ns="ds")
        assertion.find(f"{{{NS_SAML}}}Issuer").addnext(sig)
        ref = xmlsec.template.add_reference(sig, c.TransformSha1 if sha1 else c.TransformSha256, uri="#" + aid)
        xmlsec.template.add_transform(ref, c.TransformEnveloped)
        xmlsec.template.add_transform(ref, c.TransformExclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
        ctx = xmlsec.SignatureContext()
        ctx.register_id(assertion, "ID")
        key = xmlsec.Key.from_memory(idp.key_pem, c.KeyDataFormatPem)
        key.load_cert_from_memory(idp.cert_pem, c.KeyDataFormatPem)
        ctx.key = key
        ctx.sign(sig)
    if tamper:
        nid = root.find(f".//{{{NS_SAML}}}NameID")
        nid.text = nid.text + "x"
    return etree.tostring(root)


# ---------------------------------------------------------------------------------------------
# A Nitro Secure Module for tests: AWS-shaped attestation documents under a throw-away P-384 chain
# ---------------------------------------------------------------------------------------------


class TestNsm:
    """Makes attestation documents exactly as AWS's NSM shapes them (COSE_Sign1, ES384, payload keys
    in AWS's order) under its own chain root -> intermediate -> leaf (P-384, ECDSA-SHA384).
    `root_pem` is what the simulator's --attestation-root must name to trust them."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "nitrosync test nsm", not_before: Optional[dt.datetime] = None):
        from cryptography.hazmat.primitives.asymmetric import ec

        start = not_before or (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
        self._ec = ec

        def cert(subject: str, key: Any, issuer_name: Any, issuer_key: Any, ca: bool, pathlen: Optional[int],
                 days: int) -> x509.Certificate:
            n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
            b = (x509.CertificateBuilder().subject_name(n).issuer_name(issuer_name or n)
                 .public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
                 .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
                 .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                                              key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                              decipher_only=False), critical=True))
            return b.sign(issuer_key or key, hashes.SHA384())

        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = cert(f"{name} root", self.root_key, None, None, True, None, 3650)
        self.int_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = cert(f"{name} intermediate", self.int_key, self.root.subject, self.root_key, True, 1, 30)
        self.leaf_key = ec.generate_private_key(ec.SECP384R1())
        self.leaf = cert(f"{name} leaf", self.leaf_key, self.intermediate.subject, self.int_key, False, None, 3)
        self.root_pem = self.root.public_bytes(serialization.Encoding.PEM)

    def document(self, public_key: Optional[bytes], pcrs: Optional[dict] = None,
                 timestamp: Optional[float] = None, user_data: Optional[bytes] = None,
                 nonce: Optional[bytes] = None) -> bytes:
        """A signed document. `pcrs` defaults to PCR0-15 with PCR0/1/2 set to test values."""
        import cbor
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        if pcrs is None:
            pcrs = {i: bytes(48) for i in range(16)}
            pcrs.update({0: bytes([0xA0]) * 48, 1: bytes([0xA1]) * 48, 2: bytes([0xA2]) * 48})
        ts = int(1000 * (time.time() if timestamp is None else timestamp))
        der = serialization.Encoding.DER
        payload = cbor.dumps({
            "module_id": "i-0123456789abcdef0-enc0123456789abcdef", "digest": "SHA384", "timestamp": ts,
            "pcrs": pcrs, "certificate": self.leaf.public_bytes(der),
            "cabundle": [self.root.public_bytes(der), self.intermediate.public_bytes(der)],
            "public_key": public_key, "user_data": user_data, "nonce": nonce})
        protected = cbor.dumps({1: -35})
        to_sign = cbor.dumps(["Signature1", protected, b"", payload])
        r, s = decode_dss_signature(self.leaf_key.sign(to_sign, self._ec.ECDSA(hashes.SHA384())))
        return cbor.dumps([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])


def rsa_recipient(bits: int = 2048) -> tuple:
    """(private key, DER SubjectPublicKeyInfo) of a throw-away recipient key, as the enclave makes."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, spki
