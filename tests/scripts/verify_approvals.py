#!/usr/bin/env python3
"""Checks every human approval in a `spend ledger export`, with standard
crypto only (hashlib, json, base64 and the `cryptography` package; none of
SpendSignoff's code), as an auditor would.

    verify_approvals.py EXPORT.jsonl RP_ID ORIGIN

RP_ID and ORIGIN are the passkey page's, as the deployment configures them
(`spend dev`: passkey.localhost and http://passkey.localhost:PORT): an
assertion made on any other RP ID or origin counts for nothing, whatever
an enrollment event says.

For each `spend.approval.granted.v1` and `spend.rollback.approved.v1` (the
same fields, approving a `spend.rollback.requested.v1`) in the export, in
log order:
- the approved event is in the export, and `approved_hash` is the SHA-256
  of its bytes exactly as stored;
- the proof's challenge is SHA-256("spendsignoff-approval-v1\\n" +
  approval_id + "\\n" + approved_hash + "\\n" + policy_version + "\\n" +
  expires_at), carried in client_data_json (type webauthn.get, ORIGIN), and
  the authenticator data names RP_ID with flags UP and UV;
- the ECDSA P-256 signature over authenticator_data || SHA-256(client data)
  verifies with the approver's enrolled key;
- the approver is trusted: an organisation's first admin whose key
  fingerprint the operator anchored, or an approver whose enrollment an
  already trusted admin countersigned (challenge "spendsignoff-enroll-v1"),
  not removed before the approval; an approval id counts once.

Prints one line per approval and a summary; exits 1 if any fails.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def assertion_ok(key_der, rp_id, origin, challenge, ad_b64, cdj_b64, sig_b64):
    ad, cdj, sig = b64url(ad_b64), b64url(cdj_b64), b64url(sig_b64)
    if len(ad) < 37 or ad[:32] != hashlib.sha256(rp_id.encode()).digest():
        return "the authenticator data is for another relying party"
    if ad[32] & 0x01 == 0 or ad[32] & 0x04 == 0:
        return "user presence and verification (UP, UV) are not both set"
    client = json.loads(cdj)
    if client.get("type") != "webauthn.get":
        return "the client data is not of a webauthn.get"
    if client.get("origin") != origin:
        return "the assertion was made on another origin"
    if b64url(client.get("challenge", "")) != challenge:
        return "the assertion signs another challenge"
    try:
        load_der_public_key(key_der).verify(sig, ad + hashlib.sha256(cdj).digest(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the signature does not verify"
    return None


def main(path, rp_id, origin):
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("kind") == "event":
                raw = base64.b64decode(rec["payload_b64"])
                events.append((raw, json.loads(raw)))
    by_hash = {hashlib.sha256(raw).hexdigest(): ev for raw, ev in events}
    approvers = {}  # (org, approver_id) -> enrolled data
    anchors = {}  # org -> set of fingerprints
    removed = set()
    seen = set()
    ok = failed = 0
    for _, ev in events:
        t, org, data = ev.get("type"), ev.get("org"), ev.get("data", {})
        src = ev.get("source")
        if t == "spend.approver.anchored.v1" and src == "spendsignoff/cli" and ev["subject"].startswith("anchor/"):
            if any(a["org"] == org and a["via"] == "anchor" for a in approvers.values()):
                continue  # one first admin per organisation, ever
            anchors.setdefault(org, set()).add(data["fingerprint"])
            for a in approvers.values():
                if a["org"] == org and a["via"] == "pending-anchor" and a["fp"] == data["fingerprint"]:
                    a["via"] = "anchor"
                    break
        elif t == "spend.approver.removed.v1":
            removed.add((org, data["approver_id"]))
        elif t == "spend.approver.enrolled.v1" and src == "spendsignoff/approval":
            if (data.get("rp_id"), data.get("origin")) != (rp_id, origin):
                print(f"UNTRUSTED enrollment of {data['approver_id']}: made on {data.get('rp_id')} / {data.get('origin')}, not the passkey page")
                continue
            key_der = base64.b64decode(data["public_key_spki_b64"])
            fp = hashlib.sha256(key_der).hexdigest()
            cs = data.get("countersignature")
            if cs is None:
                trusted = data["role"] == "admin" and fp in anchors.get(org, set()) and not any(
                    a["org"] == org and a["role"] == "admin" and a["via"] == "anchor" for a in approvers.values()
                )
                via = "anchor"
                if not trusted:
                    # A first admin may enroll before the anchor: kept, trusted once anchored.
                    approvers[(org, data["approver_id"])] = {**data, "key_der": key_der, "via": "pending-anchor", "fp": fp}
                    continue
            else:
                admin = approvers.get((org, cs["approver_id"]))
                if not admin or admin["via"] == "pending-anchor" or admin["role"] != "admin" or (org, cs["approver_id"]) in removed:
                    print(f"UNTRUSTED enrollment of {data['approver_id']}: countersigned by no trusted admin")
                    continue
                text = "spendsignoff-enroll-v1\n" + "\n".join([org, data["approver_id"], data["role"], data["credential_id"], fp])
                why = assertion_ok(admin["key_der"], rp_id, origin, hashlib.sha256(text.encode()).digest(),
                                   cs["authenticator_data"], cs["client_data_json"], cs["signature"])
                if why:
                    print(f"UNTRUSTED enrollment of {data['approver_id']}: {why}")
                    continue
                via = "countersigned by " + cs["approver_id"]
            approvers[(org, data["approver_id"])] = {**data, "key_der": key_der, "via": via, "fp": fp}
        elif t in ("spend.approval.granted.v1", "spend.rollback.approved.v1"):
            p = data["proof"]
            name = f"approval {p['approval_id']} of {p['draft_id']} by {p['approver_id']}"
            a = approvers.get((org, p["approver_id"]))
            why = None
            if not a or a["via"] == "pending-anchor":
                why = "no trusted approver enrolled that key"
            elif (org, p["approver_id"]) in removed:
                why = "the approver was removed before"
            elif p["credential_id"] != a["credential_id"]:
                why = "another credential than the approver's"
            elif (org, p["approval_id"]) in seen:
                why = "a replay of a counted approval"
            elif p["approved_hash"] not in by_hash:
                why = "the approved event is not in the export"
            elif (t == "spend.rollback.approved.v1") != (by_hash[p["approved_hash"]]["type"] == "spend.rollback.requested.v1"):
                why = "a rollback's approval must approve a rollback request, and only it"
            else:
                text = "spendsignoff-approval-v1\n" + "\n".join([p["approval_id"], p["approved_hash"], p["policy_version"], p["expires_at"]])
                why = assertion_ok(a["key_der"], rp_id, origin, hashlib.sha256(text.encode()).digest(),
                                   p["authenticator_data"], p["client_data_json"], p["signature"])
            if why:
                failed += 1
                print(f"FAILED {name}: {why}")
            else:
                seen.add((org, p["approval_id"]))
                ok += 1
                approved = by_hash[p["approved_hash"]]
                print(f"OK {name}: approves {approved['type']} {approved['subject']}; approver {a['via']}")
    print(f"{ok} approval proofs verified, {failed} failed")
    return 1 if failed or ok == 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
