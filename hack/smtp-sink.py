#!/usr/bin/env python3
"""A real SMTP server for tests and local use: accepts every message and appends it as one JSON line
to a file.

    python3 hack/smtp-sink.py --port 2525 --out /tmp/mail.jsonl [--auth user:password]
                              [--reject-rcpt TEXT] [--tls-cert CERT.pem --tls-key KEY.pem]

Port 0 picks a free port. Once listening it prints one line `listening 127.0.0.1:PORT` on stdout
(tests wait for it). SIGTERM or SIGINT stops it cleanly; starting it again on the same port works
at once (SO_REUSEADDR), which is how tests simulate an SMTP outage.

With --tls-cert and --tls-key it offers STARTTLS with that certificate and requires it before
MAIL (a client that does not trust the certificate cannot deliver).

Each line: {"mail_from", "rcpt_tos", "subject", "message_id", "headers": {name: value},
"text", "html", "raw"}; text/html are the decoded text/plain and text/html parts.

Needs aiosmtpd (`pip install aiosmtpd`; hack/setup.sh installs it).
"""
import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import signal
import sys
import warnings

try:
    from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
except ImportError:  # pragma: no cover - reported to the caller
    sys.stderr.write("smtp-sink: aiosmtpd is missing; run `pip install aiosmtpd`\n")
    sys.exit(3)


class JsonLinesHandler:
    def __init__(self, path, reject_rcpt=None):
        self.path = path
        self.reject_rcpt = reject_rcpt

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt and self.reject_rcpt in address:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = html = None
        for part in msg.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            if ctype == "text/plain" and text is None:
                text = part.get_content()
            elif ctype == "text/html" and html is None:
                html = part.get_content()
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "headers": {k: str(v) for k, v in msg.items()},
            "text": text,
            "html": html,
            "raw": raw.decode("utf-8", "replace"),
        }
        line = json.dumps(record) + "\n"
        # Written and flushed before the 250 reply: a message the client saw accepted is on disk.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        return "250 Message accepted for delivery"


def make_authenticator(user, password):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd itself answers 535 on a failure.
        return AuthResult(success=ok, handled=False)

    return authenticator


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON lines file (appended)")
    parser.add_argument("--auth", help="require AUTH with USER:PASSWORD (over plain TCP)")
    parser.add_argument("--reject-rcpt", help="answer 550 to recipients containing this text")
    parser.add_argument("--tls-cert", help="PEM certificate (chain) for STARTTLS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args()

    handler = JsonLinesHandler(args.out, args.reject_rcpt)
    kwargs = {}
    if args.auth:
        # Plain-TCP AUTH is the point of this test server: keep aiosmtpd quiet about it.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        user, _, password = args.auth.partition(":")
        kwargs = dict(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            auth_require_tls=False,
        )

    if args.tls_cert:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        kwargs.update(tls_context=context, require_starttls=True)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink", **kwargs),
        host=args.host,
        port=args.port,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"listening {args.host}:{port}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
