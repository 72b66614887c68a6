"""Secrets Manager rules that moto does not enforce (DESIGN §8), a write log, and inspection.

Checks, in the order StrictFront runs them:
  * `limits` (before authorisation, like AWS's input validation): parameter shapes -> 400
    ValidationException / InvalidParameterException / InvalidRequestException;
  * `state` (after authorisation): a name scheduled for deletion, writes to a secret scheduled for
    deletion -> InvalidRequestException; the KMS key of the write -> EncryptionFailure or
    AccessDeniedException "Access to KMS is not allowed".
`after` turns moto's HTTP 404 for not-found errors into AWS's 400 and logs writes per secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from typing import Any, Optional

import moto_state

NAME_RE = re.compile(r"^[A-Za-z0-9/_+=.@-]+$")
MAX_VALUE = 65_536
MAX_TAGS = 50
WRITE_ACTIONS = ("CreateSecret", "PutSecretValue", "UpdateSecret", "DeleteSecret", "RestoreSecret",
                 "TagResource", "UntagResource", "UpdateSecretVersionStage", "RotateSecret",
                 "PutResourcePolicy", "DeleteResourcePolicy", "ReplicateSecretToRegions",
                 "RemoveRegionsFromReplication")
# Operations refused on a secret that is scheduled for deletion.
REFUSED_WHEN_DELETED = ("PutSecretValue", "UpdateSecret", "TagResource", "UntagResource", "GetSecretValue",
                        "UpdateSecretVersionStage", "RotateSecret", "PutResourcePolicy", "DeleteResourcePolicy",
                        "ReplicateSecretToRegions", "RemoveRegionsFromReplication", "CancelRotateSecret")
DEFAULT_KEYS = ("alias/aws/secretsmanager",)
KMS_ENCRYPTION_FAILURE = ("Secrets Manager can't encrypt the protected secret text using the provided KMS key. "
                          "Check that the KMS key is available, enabled, and not in an invalid state.")
MARKED_FOR_DELETION = "You can't perform this operation on the secret because it was marked for deletion."
WRITES_KEPT = 1000
# Reads logged per secret with their arrival time, so tests can check a client's call rate.
READ_ACTIONS = ("DescribeSecret", "GetSecretValue")
READS_KEPT = 1000


def _constraint(field: str, what: str, value: Any = None) -> str:
    shown = "" if value is None else f" '{value}'"
    return f"1 validation error detected: Value{shown} at '{field}' failed to satisfy constraint: Member must {what}"


class SmRules:
    def __init__(self, errors: Any, auth: Any):
        self.err = errors
        self.auth = auth
        self.lock = threading.Lock()
        self.writes: dict[str, list] = {}
        self.reads: dict[str, list] = {}

    def _v(self, msg: str) -> Any:
        return self.err.aws_json_error("ValidationException", msg)

    def _payload(self, req: Any) -> Optional[dict]:
        if req.service != "secretsmanager":
            return None
        try:
            p = req.json()
        except ValueError:
            return None
        return p if isinstance(p, dict) else None

    # -- limits -------------------------------------------------------------------------------

    def limits(self, req: Any) -> Any:
        p = self._payload(req)
        if p is None:
            return None
        op = req.action
        if op == "CreateSecret":
            name = p.get("Name")
            if not isinstance(name, str) or not 1 <= len(name) <= 512:
                return self._v(_constraint("name", "have length between 1 and 512"))
            if not NAME_RE.match(name):
                return self._v("Invalid name. Must be a valid name containing alphanumeric characters, "
                               "or any of the following: -/_+=.@!")
        elif "SecretId" in p or op in ("PutSecretValue", "UpdateSecret", "TagResource", "UntagResource",
                                       "DeleteSecret", "GetSecretValue", "DescribeSecret"):
            sid = p.get("SecretId")
            if not isinstance(sid, str) or not 1 <= len(sid) <= 2048:
                return self._v(_constraint("secretId", "have length between 1 and 2048"))
        if op in ("CreateSecret", "PutSecretValue", "UpdateSecret"):
            s, b = p.get("SecretString"), p.get("SecretBinary")
            if s is not None and b is not None:
                return self.err.aws_json_error("InvalidParameterException", "You can't specify both a binary "
                                               "secret value and a string secret value in the same secret.")
            if s is not None:
                size = len(str(s).encode("utf-8"))
                if size > MAX_VALUE:
                    return self._v(_constraint("secretString", f"have length less than or equal to {MAX_VALUE}"))
                if size < 1:
                    return self._v(_constraint("secretString", "have length greater than or equal to 1"))
            if b is not None:
                try:
                    size = len(base64.b64decode(str(b), validate=True))
                except (binascii.Error, ValueError):
                    return self.err.aws_json_error("SerializationException", "Invalid base64 in SecretBinary")
                if not 1 <= size <= MAX_VALUE:
                    return self._v(_constraint("secretBinary", f"have length between 1 and {MAX_VALUE}"))
            if op == "PutSecretValue" and s is None and b is None:
                return self.err.aws_json_error("InvalidRequestException",
                                               "You must provide either SecretString or SecretBinary.")
            token = p.get("ClientRequestToken")
            if token is not None and not 32 <= len(str(token)) <= 64:
                return self._v(_constraint("clientRequestToken",
                                           "have length " + ("greater than or equal to 32" if len(str(token)) < 32
                                                             else "less than or equal to 64"), token))
            if p.get("Description") is not None and len(str(p["Description"])) > 2048:
                return self._v(_constraint("description", "have length less than or equal to 2048"))
            if p.get("KmsKeyId") is not None and not 0 <= len(str(p["KmsKeyId"])) <= 2048:
                return self._v(_constraint("kmsKeyId", "have length less than or equal to 2048"))
        if op in ("CreateSecret", "TagResource") and "Tags" in p:
            return self._tags(req, p)
        if op == "UntagResource":
            for k in p.get("TagKeys") or []:
                if str(k).lower().startswith("aws:"):
                    return self.err.aws_json_error("InvalidParameterException",
                                                   "Tag keys starting with 'aws:' are reserved for AWS use.")
        return None

    def _tags(self, req: Any, p: dict) -> Any:
        tags = p.get("Tags")
        if not isinstance(tags, list):
            return self.err.aws_json_error("SerializationException", "Tags must be a list")
        if len(tags) > MAX_TAGS:
            return self._v(_constraint("tags", f"have length less than or equal to {MAX_TAGS}"))
        for t in tags:
            key = t.get("Key") if isinstance(t, dict) else None
            value = t.get("Value", "") if isinstance(t, dict) else None
            if not isinstance(key, str) or not 1 <= len(key) <= 128:
                return self._v(_constraint("tags.member.key", "have length between 1 and 128"))
            if not isinstance(value, str) or len(value) > 256:
                return self._v(_constraint("tags.member.value", "have length less than or equal to 256"))
            if key.lower().startswith("aws:"):
                return self.err.aws_json_error("InvalidParameterException",
                                               "Tag keys starting with 'aws:' are reserved for AWS use.")
        if req.action == "TagResource":
            secret = moto_state.find_secret(self._account(req), req.region, str(p.get("SecretId") or ""))
            if secret is not None:
                keys = {k for k in moto_state.secret_tags(secret) if not str(k).lower().startswith("aws:")}
                keys |= {t["Key"] for t in tags}
                if len(keys) > MAX_TAGS:
                    return self._v(f"The secret would have {len(keys)} tags; the maximum is {MAX_TAGS}.")
        return None

    # -- state: pending deletion and KMS -----------------------------------------------------------

    @staticmethod
    def _account(req: Any) -> str:
        sess = req.ctx.get("session")
        return sess.account if sess is not None else moto_state.default_account()

    def state(self, req: Any) -> Any:
        p = self._payload(req)
        if p is None:
            return None
        account, op = self._account(req), req.action
        ident = str(p.get("Name") if op == "CreateSecret" else p.get("SecretId") or "")
        secret = moto_state.find_secret(account, req.region, ident)
        if secret is not None and secret.is_deleted():
            if op == "CreateSecret":
                return self.err.aws_json_error("InvalidRequestException", "You can't create this secret because "
                                               "a secret with this name is already scheduled for deletion.")
            if op in REFUSED_WHEN_DELETED:
                return self.err.aws_json_error("InvalidRequestException", MARKED_FOR_DELETION)
        key_id = None
        if op in ("CreateSecret", "UpdateSecret") and p.get("KmsKeyId"):
            key_id = str(p["KmsKeyId"])
        elif op in ("PutSecretValue", "UpdateSecret") and secret is not None and secret.kms_key_id:
            has_value = p.get("SecretString") is not None or p.get("SecretBinary") is not None
            key_id = secret.kms_key_id if has_value else None
        if key_id is None or key_id in DEFAULT_KEYS or key_id.endswith(":alias/aws/secretsmanager"):
            return None
        key = moto_state.find_kms_key(account, req.region, key_id)
        if key is None or not key.enabled or key.key_state != "Enabled":
            return self.err.aws_json_error("EncryptionFailure", KMS_ENCRYPTION_FAILURE)
        sess = req.ctx.get("session")
        if sess is not None and not self.auth.kms_allowed_for_secret(sess, req.region, key.arn):
            return self.err.aws_json_error("AccessDeniedException", "Access to KMS is not allowed")
        return None

    # -- after: status fix, write log -----------------------------------------------------------

    def after(self, req: Any, status: int, body: bytes) -> tuple[int, bytes]:
        if req.service in ("secretsmanager", "kms") and status == 404:
            try:
                if "__type" in json.loads(body):
                    status = 400  # AWS answers every JSON-protocol client error with 400
            except ValueError:
                pass
        if req.service == "secretsmanager" and req.action == "DescribeSecret" and status == 200:
            body = self._labelled_versions_only(body)
        return status, body

    @staticmethod
    def _labelled_versions_only(body: bytes) -> bytes:
        """AWS's DescribeSecret lists in VersionIdsToStages only the versions that have staging
        labels; moto lists every version ever written, so its answer grew with each write."""
        try:
            out = json.loads(body)
        except ValueError:
            return body
        versions = out.get("VersionIdsToStages")
        if not isinstance(versions, dict):
            return body
        out["VersionIdsToStages"] = {v: stages for v, stages in versions.items() if stages}
        return json.dumps(out).encode()

    def log_write(self, req: Any, status: str) -> None:
        """Called by the front for every Secrets Manager request that reached it (answered, refused
        by a check or fault, or dropped): logs the writes, and the reads of `READ_ACTIONS`."""
        if req.service != "secretsmanager" or req.action not in WRITE_ACTIONS + READ_ACTIONS:
            return
        p = self._payload(req) or {}
        ident = str(p.get("Name") if req.action == "CreateSecret" else p.get("SecretId") or "")
        account = self._account(req)
        secret = moto_state.find_secret(account, req.region, ident)
        name = secret.name if secret is not None else ident
        if req.action in READ_ACTIONS:
            # When the request arrived, not when it was answered: requests queue behind each
            # other in the front, and the arrival is what the client's pacing decides.
            arrived = req.ctx.get("arrived", time.time())
            entry = {"action": req.action, "secret": name, "region": req.region, "account": account,
                     "status": status, "time": round(arrived, 3),
                     "caller": "assumed-role" if req.ctx.get("session") is not None else "admin"}
            with self.lock:
                log = self.reads.setdefault(name, [])
                log.append(entry)
                del log[:-READS_KEPT]
            return
        entry = {"action": req.action, "secret": name, "region": req.region, "status": status,
                 "client_request_token": p.get("ClientRequestToken"), "time": round(time.time(), 3),
                 "caller": "assumed-role" if req.ctx.get("session") is not None else "admin"}
        with self.lock:
            log = self.writes.setdefault(name, [])
            log.append(entry)
            del log[:-WRITES_KEPT]

    def writes_snapshot(self) -> dict:
        with self.lock:
            return {k: list(v) for k, v in self.writes.items()}

    def reads_snapshot(self) -> dict:
        with self.lock:
            return {k: list(v) for k, v in self.reads.items()}

    def clear_writes(self) -> None:
        """Clears the write log and the read log."""
        with self.lock:
            self.writes.clear()
            self.reads.clear()

    # -- GET /_sim/secrets/<name> ------------------------------------------------------------------

    @staticmethod
    def inspect(name: str, region: str, account: Optional[str] = None) -> Optional[dict]:
        secret = moto_state.find_secret(account or moto_state.default_account(), region, name)
        if secret is None:
            return None
        versions = dict(secret.versions)
        return {
            "name": secret.name, "arn": secret.arn, "region": region,
            "versions": len(versions),
            "version_ids": {vid: list(v.get("version_stages", [])) for vid, v in versions.items()},
            "current_version": secret.default_version_id,
            "tags": moto_state.secret_tags(secret),
            "deleted": bool(secret.is_deleted()),
            "kms_key_id": secret.kms_key_id,
        }
