// The passkey page's one script: it computes the challenge of each
// ceremony itself (the formulas of ../shared/DESIGN.md, "Human approval"),
// asks the passkey, and gives the result back to the approval app in the
// URL's fragment (which no server sees). It never signs a challenge that
// it was handed. Served from /static/passkey.js (the Content Security
// Policy allows scripts from this origin only).
"use strict";

const b64u = {
  encode(buf) {
    const bytes = new Uint8Array(buf);
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  decode(str) {
    const s = str.replace(/-/g, "+").replace(/_/g, "/");
    const pad = s.length % 4 ? "=".repeat(4 - (s.length % 4)) : "";
    const bin = atob(s + pad);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  },
};

const utf8 = (s) => new TextEncoder().encode(s);
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function bytesOf(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function say(text) {
  const el = document.getElementById("passkey-status");
  if (el) el.textContent = text;
}

/** The challenge of this ceremony, from the page's own inputs. */
async function challengeOf(d) {
  switch (d.purpose) {
    case "signin":
      return sha256(utf8("spendsignoff-signin-v1\n" + d.app + "\n" + d.nonce));
    case "create":
      return sha256(utf8("spendsignoff-create-v1\n" + d.app + "\n" + d.nonce));
    case "approve": {
      // The exact bytes of the approved event, as the log holds them:
      // what the page shows was rendered from these.
      const approved = hex(await sha256(bytesOf(d.bytes)));
      return sha256(utf8("spendsignoff-approval-v1\n" + d.approvalId + "\n" + approved + "\n" + d.policyVersion + "\n" + d.expiresAt));
    }
    case "countersign":
      return sha256(utf8("spendsignoff-enroll-v1\n" + d.org + "\n" + d.approver + "\n" + d.role + "\n" + d.credentialId + "\n" + d.fingerprint));
    default:
      throw new Error("this page does not know that ceremony");
  }
}

async function assertion(challenge, ids) {
  const cred = await navigator.credentials.get({
    publicKey: {
      challenge,
      allowCredentials: ids.map((id) => ({ type: "public-key", id: b64u.decode(id) })),
      userVerification: "required",
      timeout: 120000,
    },
  });
  return {
    credential_id: b64u.encode(cred.rawId),
    authenticator_data: b64u.encode(cred.response.authenticatorData),
    client_data_json: b64u.encode(cred.response.clientDataJSON),
    signature: b64u.encode(cred.response.signature),
  };
}

async function creation(challenge, d) {
  const cred = await navigator.credentials.create({
    publicKey: {
      challenge,
      rp: { id: d.rp, name: "SpendSignoff" },
      user: { id: crypto.getRandomValues(new Uint8Array(16)), name: d.email, displayName: d.email },
      pubKeyCredParams: [{ type: "public-key", alg: -7 }],
      authenticatorSelection: { userVerification: "required", residentKey: "discouraged" },
      attestation: "none",
      timeout: 120000,
    },
  });
  return {
    id: cred.id,
    raw_id: b64u.encode(cred.rawId),
    attestation_object: b64u.encode(cred.response.attestationObject),
    client_data_json: b64u.encode(cred.response.clientDataJSON),
  };
}

/** Back to the app, with what was signed in the fragment. */
function giveBack(d, fields) {
  const f = new URLSearchParams({ ceremony: d.nonce, ...fields });
  window.location.assign(d.app + "/passkey/return#" + f.toString());
}

async function sign(button, el) {
  const d = el.dataset;
  button.disabled = true;
  say(d.purpose === "create" ? "Creating your passkey…" : "Confirm with your passkey…");
  try {
    const challenge = await challengeOf(d);
    if (d.purpose === "create") {
      giveBack(d, await creation(challenge, d));
    } else {
      giveBack(d, await assertion(challenge, d.credentials.split(",")));
    }
  } catch (e) {
    button.disabled = false;
    say((d.purpose === "create" ? "Your passkey was not created: " : "Nothing was signed: ") + e.message);
  }
}

// Times as a person reads them: local, with the exact time in the tooltip.
function localTimes() {
  for (const t of document.querySelectorAll("time[datetime]")) {
    const at = new Date(t.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    t.textContent = at.toLocaleString();
    t.title = t.getAttribute("datetime");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  const el = document.getElementById("ceremony");
  if (!el) return;
  const button = document.getElementById("sign");
  if (button) {
    button.addEventListener("click", () => sign(button, el));
    button.focus();
  }
  const cancel = document.getElementById("cancel");
  const back = () => window.location.assign(el.dataset.app + el.dataset.back);
  if (cancel) cancel.addEventListener("click", back);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && cancel) back();
  });
});
