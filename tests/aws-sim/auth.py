"""Callers and authorisation: who signed a request, is the signature right, may they do it?

Callers are told apart by the access key id in the SigV4 `Credential`:
  * an access key id that the simulator's AssumeRoleWithSAML or AssumeRole issued (kept in
    `Sessions`) is an *assumed-role* caller: its signature, session token and expiry are verified
    (it is the only kind whose secret key the front knows), and Secrets Manager / KMS calls are
    authorised against the role's identity policies (inline and attached managed, read from moto's
    IAM backend) and, for KMS, the key policy (kms_recipient.py);
  * any other access key id is an *admin* caller: no signature or policy check (test setup).

AssumeRole (`assume_role` + `after_assume_role`) is what stands in for an EC2 instance role: the
admin assumes the role (its trust policy names `ec2.amazonaws.com`; the admin plays EC2, whose
instance metadata service hands out exactly such session credentials) and the session is then an
assumed-role caller like any other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
import string
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import parse_qsl, quote

import iam_eval
import moto_state

JSON_SERVICES = ("secretsmanager", "kms")
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})\s*$")
MAX_SKEW_S = 300
ROLE_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
# Operations whose target is not one secret: authorised against resource "*".
SM_UNSCOPED = {"ListSecrets", "GetRandomPassword", "BatchGetSecretValue"}


@dataclass
class Session:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: float  # epoch seconds
    account: str
    role_arn: str
    session_name: str
    subject: str = ""  # AssumeRoleWithSAML only
    provider_arn: str = ""  # AssumeRoleWithSAML only

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{self.account}:assumed-role/{self.role_name}/{self.session_name}"


class Sessions:
    """access key id -> Session, for credentials issued through AssumeRoleWithSAML or AssumeRole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}

    def add(self, s: Session) -> None:
        with self._lock:
            self._by_key[s.access_key_id] = s

    def get(self, access_key_id: str) -> Optional[Session]:
        with self._lock:
            return self._by_key.get(access_key_id)

    def clear(self) -> None:
        with self._lock:
            self._by_key.clear()


def credential_of(req: Any) -> tuple[str, list]:
    """(access key id, credential scope parts) from the Authorization header or a presigned query."""
    m = AUTH_RE.match(req.headers.get("authorization", ""))
    if m:
        parts = m.group(1).split("/")
        return parts[0], parts[1:]
    cred = dict(parse_qsl(req.query)).get("X-Amz-Credential", "")
    if cred:
        parts = cred.split("/")
        return parts[0], parts[1:]
    return "", []


# ---------------------------------------------------------------------------------------------
# SigV4 verification (assumed-role callers only)
# ---------------------------------------------------------------------------------------------


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def _canonical_uri(raw_path: str) -> str:
    # Non-S3 services: each segment URI-encoded once more (the client sent it encoded once).
    return quote(raw_path or "/", safe="/-_.~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def expected_signature(req: Any, secret_key: str, amz_date: str, scope: list, signed_headers: str) -> str:
    headers = dict(req.headers)
    headers["content-length"] = str(len(req.body))
    canon_headers = ""
    for h in signed_headers.split(";"):
        canon_headers += f"{h}:{' '.join(str(headers.get(h, '')).split())}\n"
    payload_hash = headers.get("x-amz-content-sha256") or hashlib.sha256(req.body).hexdigest()
    raw_path = req.environ.get("RAW_URI", req.path).split("?", 1)[0]
    canonical = "\n".join([req.method, _canonical_uri(raw_path), _canonical_query(req.query),
                           canon_headers, signed_headers, payload_hash])
    scope_str = "/".join(scope)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope_str,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret_key).encode(), scope[0])
    for part in scope[1:]:
        k = _hmac(k, part)
    return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------


def access_denied_message(sess: Session, action: str, resource: str, decision: str) -> str:
    why = ("with an explicit deny in an identity-based policy" if decision == iam_eval.EXPLICIT_DENY
           else f"because no identity-based policy allows the {action} action")
    return f"User: {sess.arn} is not authorized to perform: {action} on resource: {resource} {why}"


def random_suffix() -> str:
    return "".join(random.choice(string.ascii_letters) for _ in range(6))


def secret_resource(account: str, region: str, ident: str) -> tuple[str, str, Any]:
    """(ARN to evaluate policies against, resource named in messages, moto secret or None).

    An existing secret is evaluated by its full ARN (name + '-' + 6 random characters). For a
    secret that does not exist yet (CreateSecret, or a name that is not there) the ARN is the one it
    would get: name + '-' + 6 fresh random letters, so `name-??????` and `name*` match but a pinned
    ARN of some earlier secret does not."""
    secret = moto_state.find_secret(account, region, ident)
    if secret is not None:
        return secret.arn, secret.arn, secret
    if ident.startswith("arn:"):
        return ident, ident, None
    return f"arn:aws:secretsmanager:{region}:{account}:secret:{ident}-{random_suffix()}", ident, None


class AuthChecks:
    def __init__(self, sessions: Sessions, errors: Any):
        self.sessions = sessions
        self.err = errors  # aws_sim module: aws_json_error / aws_query_error

    # -- identify: signature, token, expiry -----------------------------------------------------

    def _fail(self, req: Any, json_type: str, query_code: str, msg: str, query_status: int = 403) -> Any:
        if req.service in JSON_SERVICES:
            return self.err.aws_json_error(json_type, msg, 400)
        return self.err.aws_query_error(query_code, msg, query_status)

    def identify(self, req: Any) -> Any:
        if req.service not in ("secretsmanager", "kms", "sts", "iam"):
            return None
        akid, scope = credential_of(req)
        req.ctx["access_key_id"] = akid
        if req.service in JSON_SERVICES and not akid:
            return self.err.aws_json_error("MissingAuthenticationTokenException", "Missing Authentication Token")
        sess = self.sessions.get(akid) if akid else None
        req.ctx["session"] = sess
        if sess is None or "authorization" not in req.headers:
            return None  # admin caller (or presigned query: identified, not verified)
        token = req.headers.get("x-amz-security-token", "")
        if token != sess.session_token:
            return self._fail(req, "UnrecognizedClientException", "InvalidClientTokenId",
                              "The security token included in the request is invalid.")
        if time.time() >= sess.expiration:
            return self._fail(req, "ExpiredTokenException", "ExpiredToken",
                              "The security token included in the request is expired", 400)
        m = AUTH_RE.match(req.headers["authorization"])
        assert m is not None
        signed_headers, signature = m.group(2), m.group(3)
        amz_date = req.headers.get("x-amz-date", "")
        try:
            t = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return self._fail(req, "IncompleteSignatureException", "IncompleteSignature",
                              "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                              400)
        now = dt.datetime.now(dt.timezone.utc)
        fmt = "%Y%m%dT%H%M%SZ"
        if t < now - dt.timedelta(seconds=MAX_SKEW_S):
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              f"Signature expired: {amz_date} is now earlier than "
                              f"{(now - dt.timedelta(seconds=MAX_SKEW_S)).strftime(fmt)} "
                              f"({now.strftime(fmt)} - 5 min.)")
        if t > now + dt.timedelta(seconds=MAX_SKEW_S):
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              f"Signature not yet current: {amz_date} is still later than "
                              f"{(now + dt.timedelta(seconds=MAX_SKEW_S)).strftime(fmt)} "
                              f"({now.strftime(fmt)} + 5 min.)")
        if len(scope) != 4 or scope[3] != "aws4_request" or scope[0] != amz_date[:8]:
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              f"Credential should be scoped to a valid date: '{'/'.join(scope)}'")
        if scope[1] != req.region:
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              f"Credential should be scoped to a valid region, not '{scope[1]}'. ")
        if scope[2] != req.service:
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              f"Credential should be scoped to correct service: '{req.service}'. ")
        if "host" not in signed_headers.split(";"):
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        want = expected_signature(req, sess.secret_access_key, amz_date, scope, signed_headers)
        if not hmac.compare_digest(want, signature):
            return self._fail(req, "InvalidSignatureException", "SignatureDoesNotMatch",
                              "The request signature we calculated does not match the signature you provided. "
                              "Check your AWS Secret Access Key and signing method. Consult the service "
                              "documentation for details.")
        return None

    # -- STS AssumeRole: the stand-in for an EC2 instance role ----------------------------------

    def assume_role(self, req: Any) -> Any:
        """Validates AssumeRole and remembers what to record once moto has issued the credentials.

        moto issues credentials for any ARN; AWS requires the role to exist and its trust policy
        to allow the caller. An admin caller is not checked against the trust policy (it plays
        the principal the trust policy names, e.g. EC2 for an instance role); an assumed-role
        caller (role chaining) must be allowed by a trust policy statement naming its role ARN,
        its session ARN or its account (then its IAM policies must allow sts:AssumeRole too)."""
        if req.service != "sts" or req.action != "AssumeRole":
            return None
        form = req.form
        role_arn = form.get("RoleArn") or ""
        session_name = form.get("RoleSessionName") or ""

        def invalid(msg: str) -> Any:
            return self.err.aws_query_error("ValidationError", msg, 400)

        if not role_arn or not session_name:
            field = "roleArn" if not role_arn else "roleSessionName"
            return invalid(f"1 validation error detected: Value null at '{field}' failed to satisfy constraint: "
                           "Member must not be null")
        if not ROLE_SESSION_NAME_RE.match(session_name):
            return invalid(f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to "
                           "satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*")
        duration = 3600
        if form.get("DurationSeconds") not in (None, ""):
            try:
                duration = int(form["DurationSeconds"])
            except ValueError:
                return invalid(f"Invalid value for DurationSeconds: {form['DurationSeconds']}")
            if not 900 <= duration <= 43200:
                return invalid(f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed to "
                               "satisfy constraint: Member must have value "
                               + ("greater than or equal to 900" if duration < 900 else "less than or equal to 43200"))
        m = moto_state.ROLE_ARN_RE.match(role_arn)
        if not m:
            return invalid("Request ARN is invalid")
        sess: Optional[Session] = req.ctx.get("session")
        caller_account = sess.account if sess is not None else moto_state.default_account()
        caller = sess.arn if sess is not None else f"arn:aws:iam::{caller_account}:root"
        denied = self.err.aws_query_error(
            "AccessDenied", f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}", 403)
        role = moto_state.find_role(role_arn)
        if role is None:
            return denied
        if sess is not None and not self._trusts(role, sess, role_arn, req.region):
            return denied
        max_duration = int(getattr(role, "max_session_duration", None) or 3600)
        if duration > max_duration:
            return invalid("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        req.ctx["assume_role"] = {"role_arn": role_arn, "session_name": session_name, "duration": duration,
                                  "account": m.group(1)}
        return None

    @staticmethod
    def _trusts(role: Any, sess: Session, role_arn: str, region: str) -> bool:
        ctx = {"aws:PrincipalArn": sess.role_arn, "aws:PrincipalAccount": sess.account,
               "aws:RequestedRegion": region}
        doc = role.assume_role_policy_document
        if any(iam_eval.trust_allows(doc, "AWS", who, "sts:AssumeRole", ctx) for who in (sess.role_arn, sess.arn)):
            return True
        via_account = any(iam_eval.trust_allows(doc, "AWS", who, "sts:AssumeRole", ctx)
                          for who in (sess.account, f"arn:aws:iam::{sess.account}:root"))
        if not via_account:
            return False
        own = moto_state.find_role(sess.role_arn)
        docs = moto_state.role_identity_policies(own) if own is not None else []
        return iam_eval.evaluate(docs, "sts:AssumeRole", role_arn, ctx) == iam_eval.ALLOW

    def after_assume_role(self, req: Any, status: int, body: bytes) -> tuple[int, bytes]:
        """Records the session moto issued, so that its calls are assumed-role calls."""
        info = req.ctx.get("assume_role")
        if info is None or status != 200:
            return status, body
        from xml.sax.saxutils import unescape

        text = body.decode("utf-8")

        def field(name: str) -> str:
            m = re.search(f"<{name}>(.*?)</{name}>", text, re.S)
            return unescape(m.group(1)) if m else ""

        self.sessions.add(Session(
            access_key_id=field("AccessKeyId"), secret_access_key=field("SecretAccessKey"),
            session_token=field("SessionToken"), expiration=time.time() + info["duration"],
            account=info["account"], role_arn=info["role_arn"], session_name=info["session_name"]))
        return status, body

    # -- authorise: identity policies of the assumed role ---------------------------------------

    def authorize(self, req: Any) -> Any:
        sess: Optional[Session] = req.ctx.get("session")
        if sess is None or req.service not in JSON_SERVICES or req.ctx.get("kms_authorized"):
            return None  # kms_authorized: kms_recipient.py evaluated key policy and IAM together
        role = moto_state.find_role(sess.role_arn)
        docs = moto_state.role_identity_policies(role) if role is not None else []
        try:
            payload = req.json()
        except ValueError:
            return None  # moto answers the malformed body
        ctx: dict = {"aws:RequestedRegion": req.region, "aws:PrincipalArn": sess.role_arn,
                     "aws:PrincipalAccount": sess.account}
        if req.service == "secretsmanager":
            action = f"secretsmanager:{req.action}"
            actions = [action]
            if req.action in SM_UNSCOPED:
                resource = shown = "*"
            else:
                ident = str(payload.get("Name" if req.action == "CreateSecret" else "SecretId") or "")
                resource, shown, secret = secret_resource(sess.account, req.region, ident)
                ctx["secretsmanager:SecretId"] = ident
                if req.action == "CreateSecret":
                    ctx["secretsmanager:Name"] = ident
                if secret is not None:
                    for k, v in moto_state.secret_tags(secret).items():
                        ctx[f"aws:ResourceTag/{k}"] = v
                        ctx[f"secretsmanager:ResourceTag/{k}"] = v
                if req.action == "DeleteSecret":
                    # Condition keys AWS documents for DeleteSecret.
                    force = bool(payload.get("ForceDeleteWithoutRecovery"))
                    ctx["secretsmanager:ForceDeleteWithoutRecovery"] = "true" if force else "false"
                    if payload.get("RecoveryWindowInDays") is not None:
                        ctx["secretsmanager:RecoveryWindowInDays"] = str(payload["RecoveryWindowInDays"])
                tags = payload.get("Tags") if req.action in ("CreateSecret", "TagResource") else None
                if isinstance(tags, list):
                    ctx["aws:TagKeys"] = [str(t.get("Key")) for t in tags if isinstance(t, dict)]
                    for t in tags:
                        if isinstance(t, dict):
                            ctx[f"aws:RequestTag/{t.get('Key')}"] = str(t.get("Value"))
                    if req.action == "CreateSecret" and tags:
                        actions.append("secretsmanager:TagResource")  # AWS requires it for tags on create
        else:
            action = f"kms:{req.action}"
            actions = [action]
            key = moto_state.find_kms_key(sess.account, req.region, str(payload.get("KeyId") or ""))
            resource = shown = key.arn if key is not None else "*"
        for a in actions:
            decision = iam_eval.evaluate(docs, a, resource, ctx)
            if decision != iam_eval.ALLOW:
                return self.err.aws_json_error("AccessDeniedException",
                                               access_denied_message(sess, a, shown, decision))
        return None

    def kms_allowed_for_secret(self, sess: Session, region: str, key_arn: str) -> bool:
        """May this role use the key through Secrets Manager (kms:GenerateDataKey + kms:Decrypt)?"""
        role = moto_state.find_role(sess.role_arn)
        docs = moto_state.role_identity_policies(role) if role is not None else []
        ctx = {"aws:RequestedRegion": region, "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
               "kms:CallerAccount": sess.account, "aws:PrincipalArn": sess.role_arn}
        return all(iam_eval.evaluate(docs, a, key_arn, ctx) == iam_eval.ALLOW
                   for a in ("kms:GenerateDataKey", "kms:Decrypt"))
