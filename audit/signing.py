"""Signing the daily digest of the chain head, and checking a digest's signature.

Ed25519 with the PEM private key in AUDIT_DIGEST_SIGNING_KEY_FILE is the choice for production: anyone
given the public key (IG officers, an auditor, the archive) can check a digest, and nobody without the
private key can make one, so the key can live on the one host that signs. Without a key file the
digests fall back to HMAC-SHA256 keyed from SECRET_KEY (the demo): only holders of SECRET_KEY can check
them, and every web and worker host holds it, so they can forge them too (`check --deploy` says so).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.utils.crypto import salted_hmac


def canonical_bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def private_key() -> Ed25519PrivateKey | None:
    if not settings.AUDIT_DIGEST_SIGNING_KEY_FILE:
        return None
    key = serialization.load_pem_private_key(Path(settings.AUDIT_DIGEST_SIGNING_KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("AUDIT_DIGEST_SIGNING_KEY_FILE must hold an Ed25519 private key (PEM).")
    return key


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _hmacs(blob: bytes) -> list[bytes]:
    # Digests signed before a SECRET_KEY rotation still check against the old key in SECRET_KEY_FALLBACKS.
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [salted_hmac("audit.digest", blob, secret=secret, algorithm="sha256").digest() for secret in secrets]


def sign(payload: dict[str, Any]) -> dict[str, str]:
    blob = canonical_bytes(payload)
    key = private_key()
    if key is not None:
        return {
            "algorithm": "Ed25519",
            "key_id": _key_id(key.public_key()),
            "value": base64.b64encode(key.sign(blob)).decode(),
        }
    return {"algorithm": "HMAC-SHA256", "key_id": "secret-key", "value": base64.b64encode(_hmacs(blob)[0]).decode()}


def signature_valid(document: dict[str, Any], public_key: Ed25519PublicKey | None = None) -> bool:
    """Check a digest document's signature, with the given public key or the configured signing key."""
    payload, signature = document.get("digest"), document.get("signature") or {}
    if not isinstance(payload, dict) or not isinstance(signature, dict):
        return False
    try:
        value = base64.b64decode(str(signature.get("value", "")), validate=True)
    except ValueError:
        return False
    blob = canonical_bytes(payload)
    if signature.get("algorithm") == "Ed25519":
        key = public_key
        if key is None:
            signer = private_key()
            key = signer.public_key() if signer else None
        if key is None:
            return False
        try:
            key.verify(value, blob)
        except InvalidSignature:
            return False
        return True
    if signature.get("algorithm") == "HMAC-SHA256":
        return any(hmac.compare_digest(mac, value) for mac in _hmacs(blob))
    return False
