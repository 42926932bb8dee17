#!/usr/bin/env python3
"""Writes a ledger export in the pinned format of DESIGN.md, independently of
SpendSignoff's code, as an outside auditor's or exporter's tool would.

    pinned_export.py OUTDIR

Writes OUTDIR/export.jsonl (event and checkpoint lines only: no header line,
no leaf hashes) and OUTDIR/key.pem (the verifying key, SPKI PEM), and prints a
JSON summary: {"events", "checkpoints" (tree sizes), "origin", "root_b64"}.

Uses only the standard library, hashlib and `cryptography`:
- events are CloudEvents-named JSON envelopes (id UUIDv7, type
  spend.<noun>.<verb>.v1, org, actor, correlationid, subject <aggregate>/<id>)
  published on stream subjects spend.evt.<org>.<aggregate>.<id>;
- leaves and roots are RFC 6962 (SHA-256, 0x00 leaf and 0x01 node prefixes);
- checkpoints are C2SP bodies "<origin>\\n<tree size>\\n<base64 root>\\n",
  signed with a fresh ECDSA P-256 key (SHA-256, DER signature).
"""

import base64
import hashlib
import json
import os
import sys
import time

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError as e:  # the Rust test turns this into its own message
    sys.exit(f"the Python package `cryptography` is not importable ({e}); run scripts/test.sh, which installs it")

PREFIX = "spend.evt"
ORIGIN = "auditor.example/pinned-ledger"
CHECKPOINT_SIZES = (4, 7, 9)


def uuid7(ms):
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10."""
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def envelope(ms, org, aggregate, agg_id, event_type, actor, data):
    return {
        "specversion": "1.0",
        "id": uuid7(ms),
        "source": "auditor.example/pinned-export",
        "type": event_type,
        "subject": f"{aggregate}/{agg_id}",
        "time": rfc3339(ms),
        "datacontenttype": "application/json",
        "data": data,
        "org": org,
        "actor": actor,
        "correlationid": uuid7(ms),
    }


def events():
    """(stream subject, payload bytes) for a few drafts of two organisations."""
    now = int(time.time() * 1000)
    out = []
    for n in range(9):
        org = "globex" if n // 3 == 1 else "acme"
        draft = f"d{n // 3}"
        ms = now + n
        if n % 3 == 0:
            aggregate, etype, actor = "draft", "spend.draft.proposed.v1", {"kind": "agent", "id": "ak_test"}
            data = {
                "draft_id": draft,
                "account_id": "act_1",
                "kind": "payment",
                "diff": [{"path": "payment/amount", "before": None, "after": 1200 + n}],
                "spend_impact": {"minor_units": 1200 + n, "currency": "EUR"},
                "rationale": "café supplies, monthly",
            }
        elif n % 3 == 1:
            aggregate, etype, actor = "decision", "spend.policy.evaluated.v1", {"kind": "service", "id": "policy"}
            data = {"draft_id": draft, "outcome": "require_approval", "reasons": [], "policy_version": "sha256:1"}
        else:
            aggregate, etype, actor = "draft", "spend.change.pushed.v1", {"kind": "service", "id": "executor"}
            data = {"change_id": f"c{n}", "draft_id": draft, "platform": "sandbox", "idempotency_key": draft, "diff": []}
        env = envelope(ms, org, aggregate, draft, etype, actor, data)
        payload = json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode()
        out.append((f"{PREFIX}.{org}.{aggregate}.{draft}", payload))
    return out


def leaf_hash(payload):
    return hashlib.sha256(b"\x00" + payload).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves):
    """RFC 6962 Merkle tree hash: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pinned_export.py OUTDIR")
    outdir = sys.argv[1]
    key = ec.generate_private_key(ec.SECP256R1())
    spki_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_id = "auditor-test:" + hashlib.sha256(spki_der).hexdigest()[:16]
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with open(os.path.join(outdir, "key.pem"), "wb") as f:
        f.write(pem)

    leaves = []
    last_root = b""
    with open(os.path.join(outdir, "export.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for i, (subject, payload) in enumerate(events()):
            line = {"kind": "event", "index": i, "seq": i + 1, "subject": subject, "payload_b64": base64.b64encode(payload).decode()}
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
            leaves.append(leaf_hash(payload))
            if len(leaves) in CHECKPOINT_SIZES:
                last_root = root(leaves)
                body = f"{ORIGIN}\n{len(leaves)}\n{base64.b64encode(last_root).decode()}\n"
                signature = key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))  # DER
                cp = {"kind": "checkpoint", "body": body, "signature_b64": base64.b64encode(signature).decode(), "key_id": key_id}
                f.write(json.dumps(cp, separators=(",", ":")) + "\n")
    print(
        json.dumps(
            {"events": len(leaves), "checkpoints": list(CHECKPOINT_SIZES), "origin": ORIGIN, "root_b64": base64.b64encode(last_root).decode()}
        )
    )


if __name__ == "__main__":
    main()
