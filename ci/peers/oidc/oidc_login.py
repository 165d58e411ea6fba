#!/usr/bin/env python3
"""Scripted authorization-code login against the local oidc-provider (op.mjs), stdlib only.

Drives /auth -> /interaction/<uid>/login (login + consent) -> redirect with ?code= ->
/token (authorization_code) and writes the refresh token to a file (mode 600). Then checks
that grant_type=refresh_token gives a JWT access token, as EGI monitoring hosts do.

usage: oidc_login.py ISSUER CLIENT_ID CLIENT_SECRET_FILE USER PASSWORD_FILE REDIRECT_URI CA_FILE OUT_FILE
"""
import base64
import http.cookiejar
import json
import os
import secrets
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

SCOPE = "openid offline_access email profile eduperson_entitlement"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main():
    if len(sys.argv) != 9:
        sys.exit(__doc__)
    iss, client_id, secret_file, user, pw_file, redirect_uri, ca, out = sys.argv[1:]
    secret = open(secret_file).read().strip()
    password = open(pw_file).read().strip()
    ctx = ssl.create_default_context(cafile=ca)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=ctx), urllib.request.HTTPCookieProcessor(jar), NoRedirect()
    )

    def req(url, data=None, headers=None):
        """returns (status, headers, body) without following redirects"""
        r = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with opener.open(r, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    state = secrets.token_urlsafe(16)
    q = urllib.parse.urlencode({
        "client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
        "scope": SCOPE, "prompt": "consent", "state": state, "nonce": secrets.token_urlsafe(16),
    })
    url = f"{iss}/auth?{q}"
    code = None
    for _ in range(10):
        status, hdrs, body = req(url)
        if status not in (302, 303):
            sys.exit(f"oidc_login: GET {url} -> {status}: {body[:300]!r}")
        loc = urllib.parse.urljoin(url, hdrs["Location"])
        if loc.startswith(redirect_uri):
            qs = urllib.parse.parse_qs(urllib.parse.urlparse(loc).query)
            if "error" in qs:
                sys.exit(f"oidc_login: authorization error {qs}")
            if qs.get("state", [None])[0] != state:
                sys.exit("oidc_login: state mismatch")
            code = qs["code"][0]
            break
        path = urllib.parse.urlparse(loc).path
        if path.startswith("/interaction/"):
            form = urllib.parse.urlencode({"login": user, "password": password}).encode()
            status, hdrs, body = req(loc.split("?")[0].rstrip("/") + "/login", data=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
            if status not in (302, 303):
                sys.exit(f"oidc_login: POST login -> {status}: {body[:300]!r}")
            url = urllib.parse.urljoin(loc, hdrs["Location"])
        else:
            url = loc
    if not code:
        sys.exit("oidc_login: no authorization code after 10 redirects")

    basic = base64.b64encode(f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()).decode()
    th = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = req(f"{iss}/token", urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}).encode(), th)
    if status != 200:
        sys.exit(f"oidc_login: code exchange -> {status}: {body[:300]!r}")
    tok = json.loads(body)
    rt = tok.get("refresh_token")
    if not rt:
        sys.exit(f"oidc_login: no refresh_token in token response (keys {sorted(tok)})")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(rt)  # no trailing newline, like the other secret files

    # check: the refresh grant (as monitoring uses it) gives a JWT access token
    status, _, body = req(f"{iss}/token", urllib.parse.urlencode({
        "grant_type": "refresh_token", "refresh_token": rt,
        "scope": "openid email profile eduperson_entitlement"}).encode(), th)
    if status != 200:
        sys.exit(f"oidc_login: refresh grant -> {status}: {body[:300]!r}")
    at = json.loads(body)["access_token"]
    if at.count(".") != 2:
        sys.exit("oidc_login: refresh grant gave an opaque access token, expected a JWT")
    claims = json.loads(base64.urlsafe_b64decode(at.split(".")[1] + "=="))
    print(f"oidc_login: refresh token written to {out}; refreshed access token sub={claims.get('sub')} "
          f"aud={claims.get('aud')} scope={claims.get('scope')!r}")


if __name__ == "__main__":
    main()
