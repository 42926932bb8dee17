// SpendSignoff approval pages: the passkey ceremonies, the two-step
// approve dialog and the two-step rollback dialog. Served from /static/app.js (the Content Security Policy
// allows scripts from this origin only; no inline script anywhere).
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
    return out.buffer;
  },
};

function csrf() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

async function post(url, body) {
  const r = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(body || {}),
  });
  let data = {};
  try { data = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error(data.error || ("the server said " + r.status));
  return data;
}

function say(id, text) {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

async function assertion(challengeB64, credentialIds) {
  const cred = await navigator.credentials.get({
    publicKey: {
      challenge: b64u.decode(challengeB64),
      allowCredentials: credentialIds.map((id) => ({ type: "public-key", id: b64u.decode(id) })),
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

async function enroll(button) {
  const token = button.dataset.token;
  say("enroll-status", "Creating your passkey…");
  try {
    const options = await post("/enroll/" + token + "/start");
    const pk = options.publicKey;
    pk.challenge = b64u.decode(pk.challenge);
    pk.user.id = b64u.decode(pk.user.id);
    (pk.excludeCredentials || []).forEach((c) => { c.id = b64u.decode(c.id); });
    const cred = await navigator.credentials.create({ publicKey: pk });
    const done = await post("/enroll/" + token + "/finish", {
      id: cred.id,
      rawId: b64u.encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: b64u.encode(cred.response.attestationObject),
        clientDataJSON: b64u.encode(cred.response.clientDataJSON),
      },
      extensions: {},
    });
    button.hidden = true;
    say("fingerprint", done.fingerprint);
    say("enroll-status", done.message);
    document.getElementById("enrolled").hidden = false;
  } catch (e) {
    say("enroll-status", "Your passkey was not created: " + e.message);
  }
}

async function signIn(form) {
  const email = form.querySelector('input[name="email"]').value;
  say("signin-status", "Waiting for your passkey…");
  try {
    const start = await post("/signin/start", { email });
    const a = await assertion(start.challenge, start.credential_ids);
    await post("/signin/finish", { ceremony: start.ceremony, assertion: a });
    const next = form.dataset.next || "/approvals";
    // A path on this app only (the server checked it too): never `//host`.
    const local = /^\/(?!\/)[\x21-\x7e]*$/.test(next) && !next.includes("\\");
    window.location.assign(local ? next : "/approvals");
  } catch (e) {
    say("signin-status", "You are not signed in: " + e.message);
  }
}

function dialog() { return document.getElementById("confirm-dialog"); }

async function arm(button) {
  say("approve-status", "");
  try {
    const armed = await post(button.dataset.arm);
    const d = dialog();
    d.dataset.approvalId = armed.approval_id;
    d.dataset.challenge = armed.challenge;
    d.dataset.credential = armed.credential_id;
    d.hidden = false;
    document.getElementById("confirm-push").focus();
  } catch (e) {
    say("approve-status", "Not armed: " + e.message);
  }
}

function disarm() {
  const d = dialog();
  if (!d) return;
  d.hidden = true;
  const approve = document.getElementById("approve");
  if (approve) approve.focus();
}

async function confirmPush(button) {
  const d = dialog();
  say("confirm-status", "Confirm with your passkey…");
  try {
    const a = await assertion(d.dataset.challenge, [d.dataset.credential]);
    const done = await post(button.dataset.confirm, { approval_id: d.dataset.approvalId, assertion: a });
    say("confirm-status", done.message);
    window.location.reload();
  } catch (e) {
    say("confirm-status", "Not approved: " + e.message);
  }
}

function rollbackDialog() { return document.getElementById("rollback-dialog"); }

// "Roll back" only opens the dialog: nothing is asked or recorded yet.
function openRollback(button) {
  const d = rollbackDialog();
  d.dataset.drafts = button.dataset.rollbackDrafts || "";
  d.dataset.arm = button.dataset.rollbackArm || "";
  d.dataset.opener = button.id || "";
  document.getElementById("rollback-desc").textContent = button.dataset.summary || "";
  document.getElementById("rollback-payment").hidden = button.dataset.payment !== "1";
  // An operator's request carries its reason already.
  const reason = document.getElementById("rollback-reason");
  reason.hidden = !!d.dataset.arm;
  reason.previousElementSibling.hidden = !!d.dataset.arm;
  say("rollback-status", "");
  d.hidden = false;
  document.getElementById("confirm-rollback").focus();
}

function closeRollback() {
  const d = rollbackDialog();
  if (d) d.hidden = true;
}

// "Confirm rollback": the request (from the audit view) or the arming of
// an operator's request, then a fresh passkey assertion over its challenge.
async function confirmRollback() {
  const d = rollbackDialog();
  say("rollback-status", "Confirm with your passkey…");
  try {
    const armed = d.dataset.arm
      ? await post(d.dataset.arm)
      : await post("/audit/rollback", { drafts: d.dataset.drafts.split(" "), reason: document.getElementById("rollback-reason").value });
    const a = await assertion(armed.challenge, [armed.credential_id]);
    const done = await post(armed.confirm, { approval_id: armed.approval_id, assertion: a });
    say("rollback-status", done.message);
    setTimeout(() => window.location.reload(), 1500);
  } catch (e) {
    say("rollback-status", "Not rolled back: " + e.message);
  }
}

async function countersign(button) {
  say("approvers-status", "Countersign with your passkey…");
  try {
    const start = await post(button.dataset.start);
    const a = await assertion(start.challenge, [start.credential_id]);
    const done = await post(button.dataset.finish, { ceremony: start.ceremony, assertion: a });
    say("approvers-status", done.message);
    window.location.reload();
  } catch (e) {
    say("approvers-status", "Not countersigned: " + e.message);
  }
}

// Times as a person reads them: relative ("in 4 minutes", "2 hours ago"),
// with the exact local time in the tooltip. The page says the RFC 3339
// time without script.
function relativeTimes() {
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  for (const t of document.querySelectorAll("time[datetime]")) {
    const at = new Date(t.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    const secs = Math.round((at.getTime() - Date.now()) / 1000);
    const [unit, size] = units.find(([, s]) => Math.abs(secs) >= s) || ["second", 1];
    t.textContent = rtf.format(Math.round(secs / size), unit);
    t.title = at.toLocaleString();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  relativeTimes();
  const en = document.getElementById("create-passkey");
  if (en) en.addEventListener("click", () => enroll(en));
  const si = document.getElementById("signin-form");
  if (si) si.addEventListener("submit", (ev) => { ev.preventDefault(); signIn(si); });
  const ap = document.getElementById("approve");
  if (ap) ap.addEventListener("click", () => arm(ap));
  const cp = document.getElementById("confirm-push");
  if (cp) cp.addEventListener("click", () => confirmPush(cp));
  const cancel = document.getElementById("confirm-cancel");
  if (cancel) cancel.addEventListener("click", disarm);
  document.querySelectorAll("button[data-rollback-drafts], button[data-rollback-arm]").forEach((b) => b.addEventListener("click", () => openRollback(b)));
  const cr = document.getElementById("confirm-rollback");
  if (cr) cr.addEventListener("click", confirmRollback);
  const rc = document.getElementById("rollback-cancel");
  if (rc) rc.addEventListener("click", closeRollback);
  document.addEventListener("keydown", (ev) => {
    const d = dialog();
    if (ev.key === "Escape" && d && !d.hidden) disarm();
    if (ev.key === "Escape") closeRollback();
  });
  document.querySelectorAll("button[data-countersign]").forEach((b) => b.addEventListener("click", () => countersign(b)));
});
