"""Tests of the AWS simulator process (run: .venv/bin/python -m pytest tests/aws-sim -q)."""

import base64
import json
import signal
import ssl
import time

import pytest

from simlib import HostConnection, sign, start_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    # Its own process: the last test stops it with SIGTERM.
    info = start_sim(tmp_path_factory.mktemp("aws-sim"))
    yield info
    if info["proc"].poll() is None:
        info["proc"].kill()
        info["proc"].wait()


def sts_call(conn, action, region="us-east-1"):
    body = f"Action={action}&Version=2011-06-15".encode()
    h = sign(conn.hostname, "sts", region, body,
             {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    return conn.call("POST", "/", body, h)


def sm_call(conn, op, payload, region="us-east-1"):
    body = json.dumps(payload).encode()
    h = sign(conn.hostname, "secretsmanager", region, body,
             {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"secretsmanager.{op}"})
    return conn.call("POST", "/", body, h)


def test_tls_verifies_for_real_hostnames(sim):
    for name in ("sts.us-east-1.amazonaws.com", "secretsmanager.eu-west-1.amazonaws.com",
                 "kms.us-east-1.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com"):
        conn = HostConnection(sim, name)
        conn.connect()
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        conn.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        HostConnection(sim, "sts.ap-south-1.amazonaws.com").connect()  # region not served
    with pytest.raises(ssl.SSLCertVerificationError):
        HostConnection(sim, "sts.us-east-1.amazonaws.com", ssl.create_default_context()).connect()


def test_sts_get_caller_identity(sim):
    conn = HostConnection(sim, "sts.us-east-1.amazonaws.com")
    status, body, _ = sts_call(conn, "GetCallerIdentity")
    assert status == 200, body
    assert b"<Account>123456789012</Account>" in body


def test_unsigned_assume_role_with_saml_reaches_the_strict_front(sim):
    saml = f"""<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"
        xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion><saml:AttributeStatement>
      <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/Role"><saml:AttributeValue
        >arn:aws:iam::123456789012:role/r,arn:aws:iam::123456789012:saml-provider/p</saml:AttributeValue></saml:Attribute>
      <saml:Attribute Name="https://aws.amazon.com/SAML/Attributes/RoleSessionName"><saml:AttributeValue
        >s</saml:AttributeValue></saml:Attribute>
    </saml:AttributeStatement></saml:Assertion></samlp:Response>"""
    from urllib.parse import urlencode
    body = urlencode({
        "Action": "AssumeRoleWithSAML", "Version": "2011-06-15",
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "PrincipalArn": "arn:aws:iam::123456789012:saml-provider/p",
        "SAMLAssertion": base64.b64encode(saml.encode()).decode(),
    }).encode()
    conn = HostConnection(sim, "sts.eu-west-1.amazonaws.com")
    status, resp, _ = conn.call("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded"})
    # Routed to STS (not S3) and checked: the provider was never created, so AWS's answer.
    assert status == 400, resp
    assert b"<Code>InvalidIdentityToken</Code>" in resp and b"Specified provider doesn't exist" in resp


def test_secrets_manager_round_trip(sim):
    conn = HostConnection(sim, "secretsmanager.us-east-1.amazonaws.com")
    status, body, _ = sm_call(conn, "CreateSecret", {
        "Name": "app/db", "SecretString": '{"password":"hunter2"}',
        "ClientRequestToken": "a" * 32,
        "Tags": [{"Key": "nitrosync:managed-by", "Value": "nitrosync"}],
    })
    assert status == 200, body
    arn = json.loads(body)["ARN"]
    assert arn.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-")
    status, body, _ = sm_call(conn, "GetSecretValue", {"SecretId": "app/db"})
    assert status == 200, body
    assert json.loads(body)["SecretString"] == '{"password":"hunter2"}'
    status, body, _ = sm_call(conn, "GetSecretValue", {"SecretId": "nope"})
    # moto 5.2.5 answers 404; the front turns it into AWS's 400.
    assert status == 400 and json.loads(body)["__type"] == "ResourceNotFoundException"
    # Regions are separate.
    conn_eu = HostConnection(sim, "secretsmanager.eu-west-1.amazonaws.com")
    status, body, _ = sm_call(conn_eu, "GetSecretValue", {"SecretId": "app/db"}, region="eu-west-1")
    assert json.loads(body)["__type"] == "ResourceNotFoundException", body


def test_keep_alive(sim):
    conn = HostConnection(sim, "sts.us-east-1.amazonaws.com")
    status, _, resp = sts_call(conn, "GetCallerIdentity")
    assert status == 200 and not resp.will_close
    sock = conn.sock
    assert sock is not None
    status, _, _ = sts_call(conn, "GetCallerIdentity")
    assert status == 200
    assert conn.sock is sock  # same TLS connection reused
    status, body, _ = conn.call("GET", "/_sim/health")
    assert status == 200 and json.loads(body)["ok"] is True
    assert conn.sock is sock


def test_control_api(sim):
    conn = HostConnection(sim, "sim.nitrosync.local")
    status, body, _ = conn.call("GET", "/requests")
    assert status == 200
    counts = json.loads(body)
    assert counts["by_action"].get("sts:GetCallerIdentity", 0) >= 1
    assert counts["by_action"].get("secretsmanager:CreateSecret", 0) == 1
    status, _, _ = conn.call("GET", "/nope")
    assert status == 404


def test_sigterm_exits_cleanly(sim):
    proc = sim["proc"]
    ready = sim["state"] / "ready.json"
    assert ready.exists()
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0
    assert time.monotonic() - t0 < 1.5
    assert not ready.exists()
    assert (sim["state"] / "ca.pem").exists()
