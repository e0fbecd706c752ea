"""Ed25519 keys and manifest signatures (cryptography): the catalog server signs, devices verify."""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.core.errors import ConfigFileError
from models.safe_write import write_bytes_atomic
from sync_agent.errors import SignatureError, SyncError


def generate_keypair(folder: Path) -> tuple[Path, Path]:
    """signing-key.pem (private, mode 600) and signing-key.pub.pem in `folder`; refuses to overwrite."""
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "signing-key.pem", folder / "signing-key.pub.pem"
    if private.exists() or public.exists():
        raise SyncError(f"{folder}: a signing key is already there; move it away first (devices trust its public half)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_bytes_atomic(private, pem, mode=0o600)  # the temp file is created 0600 too: the key is never readable by others
    write_bytes_atomic(public, key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:  # a file named on the command line: a bad invocation (exit 2), said in one line
        raise ConfigFileError(f"--signing-key {path}: {exc.strerror or exc} (make a key pair with `shelfid catalog keygen`)") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SyncError(f"{path}: not a PEM private key (make one with `shelfid catalog keygen`)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SyncError(f"{path}: not an Ed25519 private key (make one with `shelfid catalog keygen`)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SyncError(f"{path}: cannot read the public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SyncError(f"{path}: not an Ed25519 public key")
    return key


def verify(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> None:
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise SignatureError("manifest signature does not verify with the configured public key "
                             "(tampered, or signed by another key)") from None
