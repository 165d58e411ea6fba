#!/usr/bin/env python3
"""A SAML2 identity provider with the ECP profile's SOAP endpoint, built on pysaml2's
saml2.server.Server (pysaml2 ships no ready ECP IdP). Started by ci/peers/saml.sh.

  saml_idp.py metadata     print the IdP metadata (EntityDescriptor) on stdout
  saml_idp.py serve        serve on 127.0.0.1:$IDP_PORT (https when IDP_TLS_CERT is set)

Endpoints: POST /sso/ecp  SOAP envelope holding a <samlp:AuthnRequest>, HTTP Basic user:password
           GET  /metadata
The answer is the ECP profile's SOAP envelope: an <ecp:Response AssertionConsumerServiceURL=...>
header and a signed <samlp:Response> (signed assertion) in the body.

Environment (saml.sh sets it; the fault tests start variants with other values):
  SAML_DIR         keys, SP metadata, user file (idp.key idp.crt sp-metadata.xml users)
  IDP_PORT         port on 127.0.0.1
  IDP_ENTITY_ID    entityID (a variant keeps the real IdP's, so the SP takes it for that IdP)
  IDP_TLS_CERT/KEY serve https with this certificate
  IDP_SIGN_KEY/CERT  sign with this key instead of idp.key (fault: a key the SP does not know)
  IDP_AUDIENCE     put this audience in the assertion instead of the SP's entityID (fault)
  IDP_USERS_FILE   lines user:password (default $SAML_DIR/users)
  IDP_DENY         comma-separated users who authenticate but get a SAML RequestDenied answer
"""
import base64
import hmac
import logging
import os
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lxml import etree
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_PAOS, BINDING_SOAP
from saml2.config import IdPConfig
from saml2.metadata import create_metadata_string
from saml2.profile import ecp  # ecp.Response, the SOAP header block (not saml2.ecp)
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
from saml2.samlp import STATUS_REQUEST_DENIED
from saml2.server import Server

D = os.environ.get("SAML_DIR", "/tmp/fedprobe-peers/saml")
PORT = int(os.environ.get("IDP_PORT", "17088"))
TLS_CERT = os.environ.get("IDP_TLS_CERT")
BASE = f"{'https' if TLS_CERT else 'http'}://127.0.0.1:{PORT}"
ENTITY_ID = os.environ.get("IDP_ENTITY_ID", f"{BASE}/metadata")
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
MAX_BODY = 1 << 20


def config():
    return {
        "entityid": ENTITY_ID,
        "description": "fedprobe peers ECP IdP",
        "service": {
            "idp": {
                "name": "fedprobe peers ECP IdP",
                "endpoints": {
                    # ECP is the SOAP binding; a redirect endpoint is listed because some SPs
                    # refuse an IdP without a browser binding
                    "single_sign_on_service": [(f"{BASE}/sso/ecp", BINDING_SOAP),
                                               (f"{BASE}/sso/redirect", BINDING_HTTP_REDIRECT)],
                },
                "policy": {"default": {"lifetime": {"minutes": 15}, "attribute_restrictions": None,
                                       "name_form": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}},
                "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                "want_authn_requests_signed": False,
                "sign_response": True,
                "sign_assertion": True,
            },
        },
        "key_file": os.environ.get("IDP_SIGN_KEY", f"{D}/idp.key"),
        "cert_file": os.environ.get("IDP_SIGN_CERT", f"{D}/idp.crt"),
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "metadata": {"local": [f"{D}/sp-metadata.xml"]} if os.path.exists(f"{D}/sp-metadata.xml") else {},
        "accepted_time_diff": 60,
    }


def users():
    out = {}
    with open(os.environ.get("IDP_USERS_FILE", f"{D}/users")) as f:
        for line in f:
            u, sep, p = line.strip().partition(":")
            if sep:
                out[u] = p
    return out


class H(BaseHTTPRequestHandler):
    server_version = "fedprobe-saml-idp"

    def _send(self, code, body, ctype="text/plain"):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="fedprobe-saml-idp"')
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/metadata":
            return self._send(200, create_metadata_string(None, IdPConfig().load(config()), valid=4),
                              "application/samlmetadata+xml")
        self._send(404, "not found")

    def do_POST(self):
        try:
            self._post()
        except Exception as e:  # noqa: BLE001 - any failure is a 500 with its name, logged
            logging.exception("ECP SSO")
            self._send(500, f"{type(e).__name__}: {e}")

    def _user(self):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            return None
        try:
            u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            return None
        ok = u in USERS and hmac.compare_digest(USERS[u].encode(), p.encode())
        return u if ok else None

    def _post(self):
        if self.path != "/sso/ecp":
            return self._send(404, "not found")
        n = int(self.headers.get("Content-Length", "0"))
        if n > MAX_BODY:
            return self._send(413, "too large")
        body = self.rfile.read(n)
        user = self._user()
        if not user:
            return self._send(401, "authentication required")
        try:
            # pysaml2's own SOAP unwrapping (parse_authn_request(body, BINDING_SOAP)) re-serialises
            # the AuthnRequest with new namespace prefixes, which breaks mellon's enveloped
            # signature. Cut it out with lxml (tostring keeps its bytes) and hand it over as if it
            # came by HTTP-POST (base64), where the signature still verifies.
            env = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
            ar = env.find(f"{SOAP}Body/{{urn:oasis:names:tc:SAML:2.0:protocol}}AuthnRequest")
            req = IDP.parse_authn_request(base64.b64encode(etree.tostring(ar)).decode(), BINDING_HTTP_POST)
        except Exception as e:  # noqa: BLE001
            logging.exception("parse_authn_request")
            return self._send(400, f"bad AuthnRequest: {type(e).__name__}: {e}")
        msg = req.message
        args = IDP.response_args(msg, [BINDING_PAOS])
        dest = args["destination"]
        args.pop("binding", None)
        if user in DENY:
            resp = IDP.create_error_response(msg.id, dest, (STATUS_REQUEST_DENIED, f"user {user} may not use this service"),
                                             sign=True)
            logging.info("ECP login %s for SP %s: denied", user, args["sp_entity_id"])
        else:
            identity = {"uid": [user], "mail": [f"{user}@idp.example"],
                        "eduPersonEntitlement": ["urn:mace:egi.eu:group:ops.vo.example:role=member#aai.egi.eu"]}
            name_id = NameID(format=NAMEID_FORMAT_PERSISTENT, text=f"{user}-persistent-id",
                             sp_name_qualifier=args["sp_entity_id"], name_qualifier=ENTITY_ID)
            args["name_id_policy"] = None
            resp = IDP.create_authn_response(
                identity, userid=user, name_id=name_id,
                authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
                       "authn_auth": ENTITY_ID},
                sign_response=True, sign_assertion=True, **args)
            logging.info("ECP login %s for SP %s -> %s", user, args["sp_entity_id"], dest)
        # sign=False: already signed; pysaml2 would try to sign the str again and fail
        http_args = IDP.apply_binding(BINDING_PAOS, str(resp), dest, response=True, sign=False,
                                      soap_headers=[ecp.Response(assertion_consumer_service_url=dest)])
        self._send(200, http_args["data"], "text/xml")

    def log_message(self, fmt, *a):
        logging.info("%s %s", self.address_string(), fmt % a)


def wrong_audience(audience):
    """Fault variant: every assertion's AudienceRestriction names `audience`, not the SP."""
    from saml2 import assertion
    orig = assertion.Policy.conditions

    def conditions(self, sp_entity_id):
        c = orig(self, sp_entity_id)
        c.audience_restriction[0].audience[0].text = audience
        return c
    assertion.Policy.conditions = conditions


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if sys.argv[1:] == ["metadata"]:
        sys.stdout.write(create_metadata_string(None, IdPConfig().load(config()), valid=24 * 365).decode())
        sys.exit(0)
    if os.environ.get("IDP_AUDIENCE"):
        wrong_audience(os.environ["IDP_AUDIENCE"])
    IDP = Server(config=IdPConfig().load(config()))
    USERS = users()
    DENY = {u for u in os.environ.get("IDP_DENY", "").split(",") if u}
    srv = ThreadingHTTPServer(("127.0.0.1", PORT), H)
    if TLS_CERT:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS_CERT, os.environ["IDP_TLS_KEY"])
        # handshake in the handler thread, not in accept(): a silent client cannot block the server
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    logging.info("IdP %s listening on %s", ENTITY_ID, BASE)
    srv.serve_forever()
