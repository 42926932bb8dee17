#!/usr/bin/env python3
"""Checks a SpendSignoff approval proof with standard crypto only.

An auditor's independent check of the proof pinned in DESIGN.md ("Human
approval"), written without the project's code: hashlib, json, base64 and
the `cryptography` package. Usage:

    verify_proof.py CASE.json

CASE.json holds {"proof": {...}, "public_key_spki_b64": "...", "rp_id": "...",
"origin": "...", "approved_hash": "..."}. Prints "OK" and exits 0 when the
proof verifies, else prints the reason and exits 1. (Expiry, the sign
counter and replays are the verifier's state, not the proof's bytes.)
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


def b64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def check(case: dict) -> str:
    p = case["proof"]
    if p["approved_hash"] != case["approved_hash"]:
        return "approves other bytes"
    text = "spendsignoff-approval-v1\n" + "\n".join(
        [p["approval_id"], p["approved_hash"], p["policy_version"], p["expires_at"]]
    )
    challenge = hashlib.sha256(text.encode()).digest()
    ad = b64url(p["authenticator_data"])
    cdj = b64url(p["client_data_json"])
    client = json.loads(cdj)
    if client.get("type") != "webauthn.get":
        return "not an assertion"
    if client.get("origin") != case["origin"]:
        return "another origin"
    if b64url(client.get("challenge", "")) != challenge:
        return "another challenge"
    if ad[:32] != hashlib.sha256(case["rp_id"].encode()).digest():
        return "another relying party"
    if ad[32] & 0x01 == 0 or ad[32] & 0x04 == 0:
        return "user not present and verified"
    key = load_der_public_key(base64.b64decode(case["public_key_spki_b64"]))
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return "not a P-256 key"
    try:
        key.verify(b64url(p["signature"]), ad + hashlib.sha256(cdj).digest(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "bad signature"
    return "OK"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        verdict = check(json.load(f))
    print(verdict)
    sys.exit(0 if verdict == "OK" else 1)
