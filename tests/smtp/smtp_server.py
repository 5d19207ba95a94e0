"""A real SMTP server for idledger's SMTP connector tests (tests/api/smtp_server.rs starts it).

    smtp_server.py --dir DIR [--port N] [--tls none|starttls|implicit] [--user U --password P]
                   [--mechanisms LOGIN,PLAIN,XOAUTH2] [--token T]

Listens on 127.0.0.1 (port 0 picks one) and prints `READY <port>` once it accepts connections.
With TLS, its certificate comes from a test CA made now with trustme (DIR/ca.pem; the
certificate names localhost and 127.0.0.1). With --user, AUTH is required: LOGIN/PLAIN check the
password, XOAUTH2 checks --token as the bearer token. Each accepted message is written to
DIR/<n>.json: envelope, whether TLS was on, who authenticated, and the message decoded
(headers, subject, content type, body).
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import os
import logging
import ssl
import sys
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd warns about its own deprecated `login_data` on every login; the test log needs none.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--token")
    parser.add_argument("--mechanisms", default="LOGIN")
    return parser.parse_args()


class Recorder:
    def __init__(self, directory: Path, token):
        self.directory = directory
        self.token = token

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        login = getattr(session, "auth_data", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
            "login": login if isinstance(login, str) else None,
            "headers": [[name, str(value)] for name, value in message.items()],
            "subject": str(message["subject"]),
            "content_type": message.get_content_type(),
            "body": message.get_content(),
        }
        count = len(list(self.directory.glob("*.json")))
        target = self.directory / f"{count:05}.json"
        partial = self.directory / f".{count:05}.tmp"
        partial.write_text(json.dumps(record, ensure_ascii=False))
        os.replace(partial, target)
        return "250 Message accepted for delivery"

    async def auth_XOAUTH2(self, server, args):
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        decoded = base64.b64decode(args[1]).decode()
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        ok = fields.get("auth") == f"Bearer {self.token}"
        return AuthResult(success=ok, handled=False, auth_data=fields.get("user"))


def tls_context(directory: Path):
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def main():
    args = parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    context = tls_context(directory) if args.tls != "none" else None
    recorder = Recorder(directory, args.token)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            ok = login == args.user and auth_data.password.decode() == args.password
            return AuthResult(success=ok, handled=False, auth_data=login)
        return AuthResult(success=False, handled=False)

    mechanisms = {"LOGIN", "PLAIN", "XOAUTH2"} - set(args.mechanisms.split(","))

    def factory():
        return SMTP(
            recorder,
            hostname="smtp.test",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticator if args.user else None,
            auth_required=bool(args.user or args.token),
            auth_require_tls=False,
            auth_exclude_mechanism=sorted(mechanisms),
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.tls == "implicit" else None,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
