"""Make the store identity's certificate on the store PC: ``python -m inventory_agent.certificate --store S042``.

Writes two files into ``--out`` (default: the current folder):

- ``agent.pem``: the private key and the self-signed certificate, what ``certificate_path`` points at. It
  never leaves the PC. On POSIX it is created readable by its owner only; on Windows, restrict it with
  ``icacls`` (docs/agent.md, "Authenticate").
- ``<store>.crt``: the public certificate, for the administrator who registers the store's identity
  (``infra/scripts/store_access.py onboard --stores S042 --cert-dir <folder with S042.crt>``).

The same on Linux and Windows, with no openssl needed: ``cryptography`` comes with azure-identity.
RSA 2048 and SHA-256, which Entra ID accepts for application certificate credentials.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from inventory_agent.errors import AgentError
from inventory_agent.ids import validate_store_id


def make_certificate(store_id: str, out: Path, *, days: int = 730) -> tuple[Path, Path]:
    """Write ``out/agent.pem`` (key + certificate) and ``out/<store_id>.crt``; refuse to overwrite a key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    store_id = validate_store_id(store_id)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pem, crt = out / "agent.pem", out / f"{store_id}.crt"
    if pem.exists():
        raise AgentError(f"{pem} exists: move it away first if you mean to replace the store's key (the old "
                         "certificate keeps working until the administrator removes it)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"inventory-agent store={store_id}")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    public = cert.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(pem, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # owner-only from the start (POSIX)
    with os.fdopen(fd, "wb") as f:
        f.write(private + public)
    crt.write_bytes(public)
    return pem, crt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inventory_agent.certificate",
                                description="Make the store identity's key and certificate (docs/agent.md).")
    p.add_argument("--store", required=True, metavar="ID", help="the store id")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write agent.pem and <store>.crt")
    p.add_argument("--days", type=int, default=730, help="validity in days (default 730)")
    args = p.parse_args(argv)
    try:
        pem, crt = make_certificate(args.store, Path(args.out), days=args.days)
    except (AgentError, OSError) as exc:
        print(f"inventory-agent: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {pem} (private: stays on this PC; certificate_path in agent.toml) and {crt} (public: send it to "
          "the administrator who registers the store's identity)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
