"""STS AssumeRoleWithSAML as AWS checks it, and IAM SAML provider metadata.

`SamlChecks.check` (a StrictFront check) validates:
  1. parameters (presence, lengths, DurationSeconds)                       -> ValidationError 400
  2. SAMLAssertion is base64                                               -> InvalidIdentityToken 400
  3. PrincipalArn names a provider made with CreateSAMLProvider             -> InvalidIdentityToken 400
  4. the Response, with python3-saml in strict mode against the provider's metadata (signature by
     any of its signing certs, SHA-1 refused, Destination/Recipient = an AWS ACS URL, Audience
     urn:amazon:webservices, Issuer = metadata entityID, timestamps, XSD), no InResponseTo
                                                                           -> InvalidIdentityToken 400
     (expired Conditions/SessionNotOnOrAfter/SubjectConfirmationData)      -> ExpiredToken 400
  5. Role attribute holds "RoleArn,PrincipalArn" (either order)            -> AccessDenied 403
     RoleSessionName present and [A-Za-z0-9_+=,.@-]{2,64}                  -> InvalidIdentityToken 400
     SessionDuration, if present, an integer 900..43200                    -> InvalidIdentityToken 400
  6. the role exists and its trust policy allows Federated=PrincipalArn sts:AssumeRoleWithSAML with
     the saml:* context                                                    -> AccessDenied 403
     DurationSeconds <= the role's MaxSessionDuration                      -> ValidationError 400
Then moto issues the credentials from a normalised assertion (moto's own SAML parsing is fragile),
and `after` records the access key as an assumed-role session and puts the real Subject,
SubjectType, Issuer, Audience and NameQualifier into moto's answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from typing import Any, Optional
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import iam_eval
import moto_state
from auth import Session, Sessions

SP_ENTITY_ID = "urn:amazon:webservices"
ACS_GLOBAL = "https://signin.aws.amazon.com/saml"
ACS_REGIONAL_RE = re.compile(r"^https://([a-z]{2}(?:-[a-z]+)+-\d+)\.signin\.aws\.amazon\.com/saml$")
ATTR = "https://aws.amazon.com/SAML/Attributes/"
ROLE_ATTR, SESSION_ATTR, DURATION_ATTR = ATTR + "Role", ATTR + "RoleSessionName", ATTR + "SessionDuration"
SESSION_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{2,64}$")
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
MAX_ASSERTION = 100_000
DEFAULT_DURATION = 3600


class MetadataError(ValueError):
    pass


def parse_metadata(xml: str) -> dict:
    """IdP settings for python3-saml from an EntityDescriptor with an IDPSSODescriptor and at least
    one signing certificate; MetadataError otherwise."""
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

    try:
        data = OneLogin_Saml2_IdPMetadataParser.parse(xml)
    except Exception as e:
        raise MetadataError(f"Could not parse metadata: {e}") from None
    idp = data.get("idp") or {}
    if not idp.get("entityId"):
        raise MetadataError("Could not parse metadata: no EntityDescriptor with an IDPSSODescriptor")
    certs = [idp["x509cert"]] if idp.get("x509cert") else list((idp.get("x509certMulti") or {}).get("signing") or [])
    if not certs:
        raise MetadataError("Could not parse metadata: no signing certificate")
    return {"entityId": idp["entityId"], "certs": certs}


def saml_settings(idp: dict, acs: str) -> Any:
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    idp_cfg: dict = {"entityId": idp["entityId"],
                     "singleSignOnService": {"url": "https://idp.invalid/sso",
                                             "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"}}
    if len(idp["certs"]) == 1:
        idp_cfg["x509cert"] = idp["certs"][0]
    else:
        idp_cfg["x509certMulti"] = {"signing": idp["certs"]}
    return OneLogin_Saml2_Settings({
        "strict": True,
        "debug": False,
        "sp": {"entityId": SP_ENTITY_ID,
               "assertionConsumerService": {"url": acs,
                                            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
               "NameIDFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"},
        "idp": idp_cfg,
        "security": {"wantAssertionsSigned": True, "wantMessagesSigned": False,
                     "requestedAuthnContext": False, "rejectDeprecatedAlgorithm": True,
                     "wantNameId": True, "wantAttributeStatement": True},
    }, sp_validation_only=True)


def name_qualifier(issuer: str, account: str, provider_name: str) -> str:
    return base64.b64encode(hashlib.sha1(f"{issuer}{account}/{provider_name}".encode()).digest()).decode()


class Reject(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _validation(field: str, value: Any, constraint: str) -> Reject:
    shown = "null" if value is None else f"'{value}'"
    return Reject("ValidationError",
                  f"1 validation error detected: Value {shown} at '{field}' failed to satisfy constraint: {constraint}")


class SamlChecks:
    def __init__(self, sessions: Sessions, errors: Any):
        self.sessions = sessions
        self.err = errors
        self._meta_cache: dict[str, dict] = {}

    # -- IAM: metadata must parse, as AWS requires --------------------------------------------

    def check_provider(self, req: Any) -> Any:
        if req.service != "iam" or req.action not in ("CreateSAMLProvider", "UpdateSAMLProvider"):
            return None
        doc = req.form.get("SAMLMetadataDocument")
        if doc is None:
            return None  # moto reports the missing parameter
        if not 1000 <= len(doc) <= 10_000_000:
            return self.err.aws_query_error(
                "ValidationError", "1 validation error detected: Value at 'sAMLMetadataDocument' failed to "
                "satisfy constraint: Member must have length between 1000 and 10000000")
        try:
            parse_metadata(doc)
        except MetadataError:
            return self.err.aws_query_error("InvalidInput", "Could not parse metadata")
        return None

    # -- STS AssumeRoleWithSAML ------------------------------------------------------------------

    def check(self, req: Any) -> Any:
        if req.service != "sts" or req.action != "AssumeRoleWithSAML":
            return None
        try:
            info = self.validate(req.form, req.region)
        except Reject as r:
            return self.err.aws_query_error(r.code, r.message, r.status)
        req.ctx["saml"] = info
        params = dict(req.form)
        params["SAMLAssertion"] = base64.b64encode(self.moto_assertion(info).encode()).decode()
        params["DurationSeconds"] = str(info["duration"])
        req.replace_body(urlencode(params).encode(), "application/x-www-form-urlencoded; charset=utf-8")
        return None

    def _metadata(self, provider: Any) -> dict:
        doc = provider.saml_metadata_document or ""
        key = hashlib.sha256(doc.encode()).hexdigest()
        if key not in self._meta_cache:
            self._meta_cache[key] = parse_metadata(doc)
        return self._meta_cache[key]

    def validate(self, form: dict, region: str) -> dict:
        from onelogin.saml2.errors import OneLogin_Saml2_ValidationError
        from onelogin.saml2.response import OneLogin_Saml2_Response
        from onelogin.saml2.utils import OneLogin_Saml2_Utils

        role_arn, principal_arn = form.get("RoleArn"), form.get("PrincipalArn")
        assertion = form.get("SAMLAssertion")
        for field, value in (("roleArn", role_arn), ("principalArn", principal_arn), ("sAMLAssertion", assertion)):
            if value is None:
                raise _validation(field, None, "Member must not be null")
        assert role_arn is not None and principal_arn is not None and assertion is not None
        for field, value in (("roleArn", role_arn), ("principalArn", principal_arn)):
            if not 20 <= len(value) <= 2048:
                raise _validation(field, value, "Member must have length between 20 and 2048")
        if len(assertion) > MAX_ASSERTION:
            raise Reject("ValidationError", "1 validation error detected: Value at 'sAMLAssertion' failed to satisfy "
                         f"constraint: Member must have length less than or equal to {MAX_ASSERTION}")
        if len(assertion) < 4:
            raise _validation("sAMLAssertion", assertion, "Member must have length greater than or equal to 4")
        duration: Optional[int] = None
        if form.get("DurationSeconds") not in (None, ""):
            try:
                duration = int(form["DurationSeconds"])
            except ValueError:
                raise Reject("ValidationError", f"Invalid value for DurationSeconds: {form['DurationSeconds']}")
            if not 900 <= duration <= 43200:
                raise _validation("durationSeconds", duration,
                                  "Member must have value " + ("greater than or equal to 900" if duration < 900
                                                               else "less than or equal to 43200"))
        if not moto_state.ROLE_ARN_RE.match(role_arn) or not principal_arn.startswith("arn:"):
            raise Reject("ValidationError", "Request ARN is invalid")
        try:
            raw = base64.b64decode("".join(assertion.split()), validate=True)
        except (binascii.Error, ValueError):
            raise Reject("InvalidIdentityToken", "SAMLAssertion is not valid base64")

        provider = moto_state.find_saml_provider(principal_arn)
        if provider is None:
            raise Reject("InvalidIdentityToken", "Specified provider doesn't exist")
        try:
            idp = self._metadata(provider)
        except MetadataError as e:
            raise Reject("InvalidIdentityToken", str(e))

        b64 = base64.b64encode(raw).decode()
        try:
            resp = OneLogin_Saml2_Response(saml_settings(idp, ACS_GLOBAL), b64)
        except Exception as e:
            raise Reject("InvalidIdentityToken", f"Invalid SAML response: {e}")
        destination = resp.document.get("Destination")
        acs = ACS_GLOBAL
        if destination and ACS_REGIONAL_RE.match(destination):
            acs = destination
            resp = OneLogin_Saml2_Response(saml_settings(idp, acs), b64)
        if destination is not None and destination != acs:
            raise Reject("InvalidIdentityToken", f"Invalid Destination {destination!r}: must be {ACS_GLOBAL} "
                         "or https://<region>.signin.aws.amazon.com/saml")
        if resp.document.get("InResponseTo") is not None or \
                resp.document.xpath("//*[local-name()='SubjectConfirmationData'][@InResponseTo]"):
            raise Reject("InvalidIdentityToken", "InResponseTo is not allowed: AWS accepts only IdP-initiated "
                         "(unsolicited) responses")
        host = acs.split("/")[2]
        try:
            resp.is_valid({"https": "on", "http_host": host, "script_name": "/saml"}, raise_exceptions=True)
        except OneLogin_Saml2_ValidationError as e:
            if e.code in (OneLogin_Saml2_ValidationError.ASSERTION_EXPIRED,
                          OneLogin_Saml2_ValidationError.SESSION_EXPIRED) or (
                    e.code == OneLogin_Saml2_ValidationError.WRONG_SUBJECTCONFIRMATION
                    and self._subject_confirmation_expired(resp)):
                raise Reject("ExpiredToken", f"Token is expired: {e}")
            raise Reject("InvalidIdentityToken", f"Invalid SAML response: {e}")
        except Exception as e:
            raise Reject("InvalidIdentityToken", f"Invalid SAML response: {e}")
        # python3-saml matches Recipient as a substring; AWS wants the ACS URL itself.
        recipients = resp.document.xpath("//*[local-name()='SubjectConfirmationData']/@Recipient")
        if any(r != acs for r in recipients):
            raise Reject("InvalidIdentityToken", f"Invalid SubjectConfirmationData Recipient: must be {acs}")

        attrs = resp.get_attributes()
        issuer = (resp.get_issuers() or [""])[0]
        name_id = resp.get_nameid() or ""
        fmt = resp.get_nameid_format() or ""
        sub_type = {NAMEID_PERSISTENT: "persistent", NAMEID_TRANSIENT: "transient"}.get(fmt, fmt or "unspecified")

        roles = attrs.get(ROLE_ATTR) or []
        if not roles:
            raise Reject("InvalidIdentityToken", f"No {ROLE_ATTR} attribute in AuthnResponse")
        pairs = [{p.strip() for p in str(v).split(",")} for v in roles]
        if {role_arn, principal_arn} not in pairs:
            raise Reject("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML", 403)
        session_names = attrs.get(SESSION_ATTR) or []
        if not session_names:
            raise Reject("InvalidIdentityToken", "RoleSessionName is required in AuthnResponse")
        session_name = str(session_names[0])
        if not SESSION_NAME_RE.match(session_name):
            raise Reject("InvalidIdentityToken", "RoleSessionName in AuthnResponse must match [a-zA-Z_0-9+=,.@-]{2,64}")
        for v in attrs.get(DURATION_ATTR) or []:
            if not re.fullmatch(r"\d{1,6}", str(v)) or not 900 <= int(v) <= 43200:
                raise Reject("InvalidIdentityToken", "SessionDuration in AuthnResponse must be an integer "
                             "between 900 and 43200")

        role = moto_state.find_role(role_arn)
        if role is None:
            raise Reject("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML", 403)
        account, provider_name = moto_state.PROVIDER_ARN_RE.match(principal_arn).groups()  # type: ignore[union-attr]
        ctx = {
            "saml:sub": name_id, "saml:sub_type": sub_type, "saml:aud": acs, "saml:iss": issuer,
            "saml:namequalifier": name_qualifier(issuer, account, provider_name),
            "saml:doc": f"{account}/{provider_name}",
        }
        if not iam_eval.trust_allows(role.assume_role_policy_document, "Federated", principal_arn,
                                     "sts:AssumeRoleWithSAML", ctx):
            raise Reject("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML", 403)
        max_duration = int(role.max_session_duration or DEFAULT_DURATION)
        if duration is not None and duration > max_duration:
            raise Reject("ValidationError",
                         "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
        effective = duration or DEFAULT_DURATION
        session_end = resp.get_session_not_on_or_after()
        if session_end:
            effective = max(1, min(effective, int(session_end - OneLogin_Saml2_Utils.now())))
        return {"role_arn": role_arn, "provider_arn": principal_arn, "account": moto_state.ROLE_ARN_RE.match(
                    role_arn).group(1),  # type: ignore[union-attr]
                "session_name": session_name, "subject": name_id, "sub_type": sub_type,
                "issuer": issuer, "audience": acs, "name_qualifier": ctx["saml:namequalifier"],
                "duration": effective}

    @staticmethod
    def _subject_confirmation_expired(resp: Any) -> bool:
        from onelogin.saml2.utils import OneLogin_Saml2_Utils

        now = OneLogin_Saml2_Utils.now()
        for v in resp.document.xpath("//*[local-name()='SubjectConfirmationData']/@NotOnOrAfter"):
            try:
                if OneLogin_Saml2_Utils.parse_SAML_to_time(v) <= now:
                    return True
            except Exception:
                pass
        return False

    @staticmethod
    def moto_assertion(info: dict) -> str:
        """What moto's own (non-validating) parser needs: Role first, session name, duration."""
        def attr(name: str, value: str) -> str:
            return (f'<saml:Attribute Name="{ATTR}{name}"><saml:AttributeValue>{escape(value)}'
                    "</saml:AttributeValue></saml:Attribute>")

        return ('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
                'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"><saml:Assertion><saml:AttributeStatement>'
                + attr("Role", f"{info['role_arn']},{info['provider_arn']}")
                + attr("RoleSessionName", info["session_name"])
                + attr("SessionDuration", str(info["duration"]))
                + "</saml:AttributeStatement></saml:Assertion></samlp:Response>")

    # -- after moto answered ---------------------------------------------------------------------

    def after(self, req: Any, status: int, body: bytes) -> tuple[int, bytes]:
        info = req.ctx.get("saml")
        if info is None or status != 200:
            return status, body
        text = body.decode("utf-8")

        def field(name: str) -> str:
            m = re.search(f"<{name}>(.*?)</{name}>", text, re.S)
            return m.group(1) if m else ""

        from xml.sax.saxutils import unescape

        self.sessions.add(Session(
            access_key_id=field("AccessKeyId"), secret_access_key=unescape(field("SecretAccessKey")),
            session_token=unescape(field("SessionToken")),
            expiration=time.time() + info["duration"], account=info["account"],
            role_arn=info["role_arn"], session_name=info["session_name"], subject=info["subject"],
            provider_arn=info["provider_arn"]))
        for name, value in (("Subject", info["subject"]), ("SubjectType", info["sub_type"]),
                            ("Issuer", info["issuer"]), ("Audience", info["audience"]),
                            ("NameQualifier", info["name_qualifier"])):
            text = re.sub(f"<{name}>.*?</{name}>", lambda _m: f"<{name}>{escape(value)}</{name}>", text,
                          count=1, flags=re.S)
        return status, text.encode("utf-8")
