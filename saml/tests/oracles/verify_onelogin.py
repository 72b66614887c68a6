"""Oracle: validate a SAML Response as AWS would, with OneLogin python3-saml in strict mode.

usage: verify_onelogin.py METADATA.xml RESPONSE.b64
The IdP settings come from our metadata (entityId + x509cert via OneLogin_Saml2_IdPMetadataParser);
the SP is AWS (entityId urn:amazon:webservices, ACS https://signin.aws.amazon.com/saml).
Exit 0 and print the NameID and attributes only if is_valid() returns True.
"""
import json
import sys

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

metadata_path, b64_path = sys.argv[1:3]
with open(metadata_path) as f:
    idp = OneLogin_Saml2_IdPMetadataParser.parse(
        f.read(), required_sso_binding=C.BINDING_HTTP_POST
    )["idp"]
with open(b64_path) as f:
    b64 = f.read().strip()

acs = sys.argv[3] if len(sys.argv) > 3 else "https://signin.aws.amazon.com/saml"
settings = OneLogin_Saml2_Settings(
    {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": "urn:amazon:webservices",
            "assertionConsumerService": {"url": acs, "binding": C.BINDING_HTTP_POST},
            "NameIDFormat": C.NAMEID_PERSISTENT,
        },
        "idp": {
            "entityId": idp["entityId"],
            "singleSignOnService": idp["singleSignOnService"],
            "x509cert": idp["x509cert"],
        },
        "security": {
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            "wantNameId": True,
            "rejectDeprecatedAlgorithm": True,
        },
    },
    sp_validation_only=True,
)
host = acs.removeprefix("https://").split("/", 1)[0]
request_data = {"https": "on", "http_host": host, "script_name": "/saml", "server_port": "443"}
response = OneLogin_Saml2_Response(settings, b64)
if not response.is_valid(request_data, raise_exceptions=False):
    print("invalid:", response.get_error(), file=sys.stderr)
    sys.exit(1)
print(json.dumps({
    "nameid": response.get_nameid(),
    "nameid_format": response.get_nameid_format(),
    "attributes": response.get_attributes(),
}))
