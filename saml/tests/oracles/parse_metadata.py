"""Oracle: parse our IdP metadata with python3-saml and validate it against the SAML metadata XSD.

usage: parse_metadata.py METADATA.xml
Prints JSON {entityId, x509cert, x509certs, sso, schema_valid}.
"""
import json
import sys

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

with open(sys.argv[1]) as f:
    xml = f.read()

default = OneLogin_Saml2_IdPMetadataParser.parse(xml)["idp"]
post = OneLogin_Saml2_IdPMetadataParser.parse(xml, required_sso_binding=C.BINDING_HTTP_POST)["idp"]
schema = OneLogin_Saml2_XML.validate_xml(xml, "saml-schema-metadata-2.0.xsd", False)
print(json.dumps({
    "entityId": default.get("entityId"),
    "x509cert": default.get("x509cert"),
    "x509certs": default.get("x509certMulti", {}).get("signing"),
    "sso": post.get("singleSignOnService"),
    "schema_valid": not isinstance(schema, str),
    "schema_error": schema if isinstance(schema, str) else None,
}))
