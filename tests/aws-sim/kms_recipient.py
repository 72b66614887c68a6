"""KMS as it treats Nitro Enclaves: `Recipient`, attestation, key policies (moto has none of it).

For `Decrypt`, `GenerateDataKey`, `GenerateDataKeyPair` and `GenerateRandom` (`OPS`):

1. `Recipient` = `{"AttestationDocument": <base64>, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}`
   is validated and its document verified (nitro_attestation.py) against the configured roots
   (`--attestation-root`, default the AWS Nitro Enclaves root), at most `max_age_s` old; its
   `public_key` must be an RSA (>= 2048 bits) DER SubjectPublicKeyInfo. Any failure: 400
   ValidationException (AWS does not document the error it uses; see README).
2. The caller is authorised against the KMS key's key policy, with `kms:RecipientAttestation:
   ImageSha384` (PCR0) and `kms:RecipientAttestation:PCR<n>` (every PCR in the document, lowercase
   hex) in the condition context when a Recipient is given, plus `aws:RequestedRegion`,
   `aws:PrincipalArn`, `aws:PrincipalAccount`, `kms:CallerAccount`, `kms:EncryptionContext:<k>` and
   `kms:EncryptionContextKeys`. An explicit Deny (key policy or IAM) wins; a key policy that allows
   the caller's account defers to the caller's IAM policies (assumed-role callers) as on AWS.
   Admin callers (access keys this simulator did not issue) are the account's root user
   `arn:aws:iam::<account>:root`: the key policy applies to them, IAM does not. GenerateRandom has
   no key: only the caller's IAM policies (resource "*") apply. Refused: 400 AccessDeniedException
   with AWS's wording ("... with an explicit deny in a resource-based policy", "... because no
   resource-based policy allows the kms:Decrypt action", ...).
   Every other operation on a key (DescribeKey, GetKeyPolicy, ListGrants, Encrypt, ReEncrypt,
   CreateGrant, PutKeyPolicy, ScheduleKeyDeletion, aliases, tags, ...) is authorised the same way
   for assumed-role callers, as AWS evaluates the key policy for every KMS operation on a key;
   admin callers (test set-up) are not checked for those. GetKeyPolicy without PolicyName means
   "default" (moto requires it), and its answer carries `PolicyName`.
3. With a Recipient the answer carries `CiphertextForRecipient` (cms_recipient.py) and no
   `Plaintext` / `PrivateKeyPlaintext`. `CiphertextBlob` / `PrivateKeyCiphertextBlob` stay moto's
   ciphertext under the KMS key, which `Decrypt` (with or without Recipient) opens.

Decrypt with a KeyId that is not the ciphertext's key: 400 IncorrectKeyException, as AWS (moto
alone says AccessDeniedException), after authorisation on the ciphertext's key.

moto 5.2.5 has no GenerateDataKeyPair: it is served here (all of AWS's RSA and ECC specs), its
private key encrypted under the KMS key by moto's own backend, so Decrypt opens it.
Plaintext and key material never reach a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import cms_recipient
import iam_eval
import moto_state
import nitro_attestation

OPS = ("Decrypt", "GenerateDataKey", "GenerateDataKeyPair", "GenerateRandom")
# Operations that no key policy authorises (IAM policies only, resource "*" or an alias/key store).
KEYLESS_OPS = ("CreateKey", "ListKeys", "ListAliases", "ListRetirableGrants", "GenerateRandom",
               "ConnectCustomKeyStore", "CreateCustomKeyStore", "DeleteCustomKeyStore", "DescribeCustomKeyStores",
               "DisconnectCustomKeyStore", "UpdateCustomKeyStore")
KEY_ENCRYPTION_ALGORITHMS = ("RSAES_OAEP_SHA_256",)
# The error AWS KMS gives for a document it cannot accept is not documented; this is ours.
BAD_ATTESTATION = "ValidationException"
KEY_PAIR_SPECS: dict[str, Callable[[], Any]] = {
    "RSA_2048": lambda: rsa.generate_private_key(65537, 2048),
    "RSA_3072": lambda: rsa.generate_private_key(65537, 3072),
    "RSA_4096": lambda: rsa.generate_private_key(65537, 4096),
    "ECC_NIST_P256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ECC_NIST_P384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ECC_NIST_P521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "ECC_SECG_P256K1": lambda: ec.generate_private_key(ec.SECP256K1()),
}
ALL_KEY_PAIR_SPECS = ("RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
                      "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519", "ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _b64decode(s: Any) -> Optional[bytes]:
    if not isinstance(s, str):
        return None
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


class KmsRecipient:
    def __init__(self, errors: Any, root_paths: Optional[list] = None,
                 max_age_s: float = nitro_attestation.MAX_AGE_S, clock: Callable[[], float] = time.time):
        self.err = errors
        self.root_paths = [os.path.abspath(p) for p in (root_paths or [nitro_attestation.AWS_ROOT_PEM])]
        self.max_age_s = max_age_s
        self.clock = clock
        self._lock = threading.Lock()
        self._roots_key: Any = None
        self._roots: list = []

    # -- configuration ------------------------------------------------------------------------

    def roots(self) -> list:
        """The trusted roots, re-read whenever a root file appears or changes (the simulated NSM
        writes its root at the enclave's first start, which may come after the simulator's)."""
        key = []
        for p in self.root_paths:
            try:
                st = os.stat(p)
                key.append((p, st.st_mtime_ns, st.st_size))
            except OSError:
                key.append((p, None, None))
        with self._lock:
            if key != self._roots_key:
                try:
                    self._roots = nitro_attestation.load_roots(self.root_paths)
                except ValueError as e:  # e.g. a file caught half-written: trust nothing until it is whole
                    self._roots = []
                    self.err.log(f"KMS attestation roots unreadable: {e}")
                self._roots_key = key
            return list(self._roots)

    # -- errors -------------------------------------------------------------------------------

    def _validation(self, msg: str) -> Any:
        return self.err.aws_json_error("ValidationException", msg)

    # -- the check ----------------------------------------------------------------------------

    def check(self, req: Any) -> Any:
        if req.service != "kms":
            return None
        try:
            payload = req.json()
        except ValueError:
            return None  # moto answers the malformed body
        if not isinstance(payload, dict):
            return None
        if req.action not in OPS:
            return self._check_key_operation(req, payload)
        if req.action == "GenerateDataKeyPair" and payload.get("KeyPairSpec") not in ALL_KEY_PAIR_SPECS:
            return self._validation(  # input validation comes before authorisation
                f"1 validation error detected: Value '{payload.get('KeyPairSpec')}' at 'keyPairSpec' failed to "
                f"satisfy constraint: Member must satisfy enum value set: [{', '.join(ALL_KEY_PAIR_SPECS)}]")
        att_ctx: dict = {}
        if "Recipient" in payload and payload["Recipient"] is not None:
            got = self._verify_recipient(payload["Recipient"])
            if not isinstance(got, tuple):
                return got
            public_key, ski, att = got
            req.ctx["kms_recipient"] = (public_key, ski)
            att_ctx = att.condition_context()
        denied = self._authorize(req, payload, att_ctx)
        if denied is not None:
            return denied
        if req.action == "Decrypt":
            wrong = self._incorrect_key(req, payload)
            if wrong is not None:
                return wrong
        if req.action == "GenerateDataKeyPair":
            return self._generate_data_key_pair(req, payload)
        return None

    def _incorrect_key(self, req: Any, payload: dict) -> Any:
        """Decrypt with a KeyId that is not the key of the ciphertext: AWS answers
        IncorrectKeyException (moto would say AccessDeniedException)."""
        if not payload.get("KeyId"):
            return None
        sess = req.ctx.get("session")
        account = sess.account if sess is not None else moto_state.default_account()
        named = moto_state.find_kms_key(account, req.region, str(payload["KeyId"]))
        blob_key = self._blob_key(req, payload, account)
        if named is None or blob_key is None or named.id == blob_key.id:
            return None  # moto answers an unknown KeyId (NotFoundException) or a bad blob
        return self.err.aws_json_error(
            "IncorrectKeyException",
            "The key ID in the request does not identify a KMS key that can perform this operation.")

    # -- every other operation on a key, for assumed-role callers ----------------------------

    def _key_targets(self, action: str, payload: dict) -> list:
        """[(IAM action, key id as given)] that AWS authorises on a key (key policy and IAM) for
        one operation; [] for the operations that IAM alone authorises (CreateKey, ListKeys,
        ListAliases, ListRetirableGrants, custom key stores, ...) or when no key is named."""
        if action in KEYLESS_OPS:
            return []
        if action == "ReEncrypt":
            source = payload.get("SourceKeyId") or ""
            return [("kms:ReEncryptFrom", ("blob", source)), ("kms:ReEncryptTo", payload.get("DestinationKeyId") or "")]
        if action in ("CreateAlias", "UpdateAlias"):
            target = payload.get("TargetKeyId")
            return [(f"kms:{action}", target)] if target else []
        if action == "DeleteAlias":  # the key the alias points to
            alias = payload.get("AliasName")
            return [("kms:DeleteAlias", alias)] if alias else []
        key_id = payload.get("KeyId")
        return [(f"kms:{action}", key_id)] if key_id else []

    def _check_key_operation(self, req: Any, payload: dict) -> Any:
        """AWS evaluates the key policy for every operation on a key, not only for the Recipient
        operations: DescribeKey, GetKeyPolicy, ListGrants, Encrypt, ReEncrypt, CreateGrant,
        PutKeyPolicy, ScheduleKeyDeletion, ... For assumed-role callers (the product's) the key
        policy and the role's IAM policies are evaluated together here, as in `_authorize`. Admin
        callers are test set-up and stay unchecked outside `OPS` (README)."""
        if req.action == "GetKeyPolicy" and payload.get("KeyId") and payload.get("PolicyName") is None:
            # PolicyName is optional on AWS (default "default"); moto requires it.
            payload = dict(payload, PolicyName="default")
            req.replace_body(json.dumps(payload).encode())
        sess = req.ctx.get("session")
        if sess is None:
            return None
        targets = []
        for action, ident in self._key_targets(req.action, payload):
            if isinstance(ident, tuple):  # ReEncryptFrom: the ciphertext's key, else SourceKeyId
                key = self._blob_key(req, payload, sess.account) or \
                    moto_state.find_kms_key(sess.account, req.region, str(ident[1]))
            else:
                key = moto_state.find_kms_key(sess.account, req.region, str(ident))
            if key is None:
                # No such key in the caller's account and region: no policy to evaluate, moto
                # answers NotFoundException as AWS does.
                req.ctx["kms_authorized"] = True
                return None
            targets.append((action, key))
        if not targets:
            return None
        ctx = self._context(req, payload, sess, sess.account)
        docs = self._identity_docs(sess)
        for action, key in targets:
            denied = self._decide(req, sess, sess.account, action, key, ctx, docs)
            if denied is not None:
                return denied
        req.ctx["kms_authorized"] = True
        return None

    def _verify_recipient(self, recipient: Any) -> Any:
        if not isinstance(recipient, dict):
            return self.err.aws_json_error("SerializationException", "Recipient must be a structure")
        alg = recipient.get("KeyEncryptionAlgorithm", KEY_ENCRYPTION_ALGORITHMS[0])
        if alg not in KEY_ENCRYPTION_ALGORITHMS:
            return self._validation(
                f"1 validation error detected: Value '{alg}' at 'recipient.keyEncryptionAlgorithm' failed to "
                "satisfy constraint: Member must satisfy enum value set: [RSAES_OAEP_SHA_256]")
        doc = _b64decode(recipient.get("AttestationDocument"))
        if doc is None or not 1 <= len(doc) <= nitro_attestation.MAX_DOC:
            return self._validation(
                "1 validation error detected: Value at 'recipient.attestationDocument' failed to satisfy "
                "constraint: Member must be base64 of length between 1 and 262144")
        try:
            att = nitro_attestation.verify(doc, self.roots(), self.clock(), self.max_age_s)
            public_key, spki = nitro_attestation.recipient_key(att)
        except nitro_attestation.AttestationError as e:
            return self.err.aws_json_error(BAD_ATTESTATION, f"Invalid attestation document: {e}")
        return public_key, nitro_attestation.subject_key_identifier(spki), att

    # -- authorisation ------------------------------------------------------------------------

    def _blob_key(self, req: Any, payload: dict, account: str) -> Any:
        """The key a moto CiphertextBlob names (its first 36 bytes are the key id), or None."""
        blob = _b64decode(payload.get("CiphertextBlob"))
        if blob is None or len(blob) < 36:
            return None
        try:
            return moto_state.find_kms_key(account, req.region, blob[:36].decode("ascii"))
        except UnicodeDecodeError:
            return None

    def _key_of(self, req: Any, payload: dict, account: str) -> Any:
        if req.action == "Decrypt":
            key = self._blob_key(req, payload, account)
            if key is not None:
                return key
        return moto_state.find_kms_key(account, req.region, str(payload.get("KeyId") or ""))

    @staticmethod
    def _identity_docs(sess: Any) -> list:
        if sess is None:
            return []
        role = moto_state.find_role(sess.role_arn)
        return moto_state.role_identity_policies(role) if role is not None else []

    @staticmethod
    def _context(req: Any, payload: dict, sess: Any, account: str) -> dict:
        root = f"arn:aws:iam::{account}:root"
        ctx: dict = {"aws:RequestedRegion": req.region, "aws:PrincipalArn": sess.role_arn if sess else root,
                     "aws:PrincipalAccount": account, "kms:CallerAccount": account}
        enc = payload.get("EncryptionContext")
        if isinstance(enc, dict):
            ctx["kms:EncryptionContextKeys"] = [str(k) for k in enc]
            for k, v in enc.items():
                ctx[f"kms:EncryptionContext:{k}"] = str(v)
        return ctx

    def _deny(self, req: Any, sess: Any, account: str, action: str, resource: str, why: str) -> Any:
        shown = sess.arn if sess is not None else f"arn:aws:iam::{account}:root"
        return self.err.aws_json_error(
            "AccessDeniedException", f"User: {shown} is not authorized to perform: {action} on resource: {resource} {why}")

    def _decide(self, req: Any, sess: Any, account: str, action: str, key: Any, ctx: dict, identity_docs: list) -> Any:
        """Key policy and (assumed-role callers) IAM together, as AWS evaluates a KMS request on a
        key in the caller's account: None if allowed, else the AccessDeniedException."""
        caller_arns = [sess.role_arn, sess.arn] if sess is not None else [f"arn:aws:iam::{account}:root"]
        kp, needs_iam = iam_eval.key_policy_evaluate(key.policy, caller_arns, account, action, key.arn, ctx)
        iam = iam_eval.evaluate(identity_docs, action, key.arn, ctx) if sess is not None else iam_eval.ALLOW
        if kp == iam_eval.EXPLICIT_DENY:
            return self._deny(req, sess, account, action, key.arn, "with an explicit deny in a resource-based policy")
        if iam == iam_eval.EXPLICIT_DENY:
            return self._deny(req, sess, account, action, key.arn, "with an explicit deny in an identity-based policy")
        if kp != iam_eval.ALLOW:
            return self._deny(req, sess, account, action, key.arn,
                              f"because no resource-based policy allows the {action} action")
        if needs_iam and iam != iam_eval.ALLOW:
            return self._deny(req, sess, account, action, key.arn,
                              f"because no identity-based policy allows the {action} action")
        return None

    def _authorize(self, req: Any, payload: dict, att_ctx: dict) -> Any:
        sess = req.ctx.get("session")
        account = sess.account if sess is not None else moto_state.default_account()
        action = f"kms:{req.action}"
        ctx = self._context(req, payload, sess, account)
        ctx.update(att_ctx)
        identity_docs = self._identity_docs(sess)

        if req.action == "GenerateRandom":
            if sess is not None:
                decision = iam_eval.evaluate(identity_docs, action, "*", ctx)
                if decision == iam_eval.EXPLICIT_DENY:
                    return self._deny(req, sess, account, action, "*", "with an explicit deny in an identity-based policy")
                if decision != iam_eval.ALLOW:
                    return self._deny(req, sess, account, action, "*",
                                      f"because no identity-based policy allows the {action} action")
            req.ctx["kms_authorized"] = True
            return None

        key = self._key_of(req, payload, account)
        if key is None:
            if req.action == "GenerateDataKeyPair":
                return self.err.aws_json_error("NotFoundException", f"Key '{payload.get('KeyId')}' does not exist")
            req.ctx["kms_authorized"] = True  # no key, no policy to evaluate
            return None  # moto answers NotFoundException / InvalidCiphertextException
        denied = self._decide(req, sess, account, action, key, ctx, identity_docs)
        if denied is not None:
            return denied
        req.ctx["kms_authorized"] = True
        return None

    # -- GenerateDataKeyPair (moto 5.2.5 lacks it) --------------------------------------------

    def _generate_data_key_pair(self, req: Any, payload: dict) -> Any:
        sess = req.ctx.get("session")
        account = sess.account if sess is not None else moto_state.default_account()
        spec = payload.get("KeyPairSpec")
        if spec not in KEY_PAIR_SPECS:
            return self.err.aws_json_error("UnsupportedOperationException",
                                           f"{spec} key pairs are not supported by this simulator")
        key = moto_state.find_kms_key(account, req.region, str(payload.get("KeyId") or ""))
        if key is None:
            return self.err.aws_json_error("NotFoundException", f"Key '{payload.get('KeyId')}' does not exist")
        if key.key_state == "Disabled":
            return self.err.aws_json_error("DisabledException", f"{key.arn} is disabled.")
        if key.key_state != "Enabled":
            return self.err.aws_json_error("KMSInvalidStateException", f"{key.arn} is {key.key_state.lower()}.")
        usage = key.key_usage or "ENCRYPT_DECRYPT"  # moto keeps None when CreateKey had no KeyUsage
        if usage != "ENCRYPT_DECRYPT" or (key.key_spec or "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            return self.err.aws_json_error("InvalidKeyUsageException",
                                           f"{key.arn} key usage is {usage} which is not valid for GenerateDataKeyPair.")
        enc = payload.get("EncryptionContext") or {}
        if not isinstance(enc, dict):
            return self.err.aws_json_error("SerializationException", "EncryptionContext must be a map")
        private = KEY_PAIR_SPECS[spec]()
        private_der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        public_der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo)
        blob, arn = moto_state.kms(account, req.region).encrypt(key.id, private_der, {str(k): str(v) for k, v in enc.items()})
        out = {"KeyId": arn, "KeyPairSpec": spec, "PublicKey": _b64(public_der), "PrivateKeyCiphertextBlob": _b64(blob)}
        recipient = req.ctx.get("kms_recipient")
        if recipient is not None:
            out["CiphertextForRecipient"] = _b64(cms_recipient.envelope(private_der, recipient[0], recipient[1]))
        else:
            out["PrivateKeyPlaintext"] = _b64(private_der)
        del private, private_der
        return self.err.SimResponse(200, json.dumps(out).encode(), "application/x-amz-json-1.1")

    # -- after moto ---------------------------------------------------------------------------

    def after(self, req: Any, status: int, body: bytes) -> tuple[int, bytes]:
        """Replaces moto's Plaintext with CiphertextForRecipient when a Recipient was verified;
        adds the PolicyName that AWS's GetKeyPolicy answer carries and moto's lacks."""
        if req.service == "kms" and req.action == "GetKeyPolicy" and status == 200:
            try:
                out = json.loads(body)
            except ValueError:
                return status, body
            if isinstance(out, dict) and "PolicyName" not in out:
                out["PolicyName"] = "default"
                return status, json.dumps(out).encode()
            return status, body
        recipient = req.ctx.get("kms_recipient")
        if recipient is None or status != 200 or req.service != "kms" or req.action not in OPS:
            return status, body
        out = json.loads(body)
        plaintext = _b64decode(out.pop("Plaintext", None))
        if plaintext is None:
            return 500, json.dumps({"__type": "KMSInternalException", "message": "no plaintext to encrypt"}).encode()
        out["CiphertextForRecipient"] = _b64(cms_recipient.envelope(plaintext, recipient[0], recipient[1]))
        del plaintext
        return status, json.dumps(out).encode()
