// SpendSignoff approval pages: starting the passkey ceremonies (which the
// passkey page performs) and recording what comes back, and the rollback
// dialog. Served from /static/app.js (the Content Security Policy
// allows scripts from this origin only; no inline script anywhere).
"use strict";

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

// Every passkey ceremony happens on the passkey page, which computes its
// challenge itself. This app only starts one (remembering, in this tab,
// where to post the result and where to go next, under the ceremony's
// nonce) and records what comes back to /passkey/return.
function toPasskeyPage(started, finish, next, failure) {
  sessionStorage.setItem("passkey:" + started.ceremony, JSON.stringify({ finish, next, failure }));
  window.location.assign(started.redirect);
}

async function enroll(button) {
  const token = button.dataset.token;
  say("enroll-status", "Opening the passkey page…");
  try {
    const started = await post("/enroll/" + token + "/start");
    toPasskeyPage(started, "/enroll/" + token + "/finish", "", "Your passkey was not created: ");
  } catch (e) {
    say("enroll-status", "Your passkey was not created: " + e.message);
  }
}

async function signIn(form) {
  const email = form.querySelector('input[name="email"]').value;
  say("signin-status", "Opening the passkey page…");
  try {
    const started = await post("/signin/start", { email });
    const next = form.dataset.next || "/approvals";
    // A path on this app only (the server checked it too): never `//host`.
    const local = /^\/(?!\/)[\x21-\x7e]*$/.test(next) && !next.includes("\\");
    toPasskeyPage(started, "/signin/finish", local ? next : "/approvals", "You are not signed in: ");
  } catch (e) {
    say("signin-status", "You are not signed in: " + e.message);
  }
}

// "Approve" arms the approval and opens the passkey page's alertdialog.
async function arm(button) {
  say("approve-status", "");
  try {
    const armed = await post(button.dataset.arm);
    toPasskeyPage({ ceremony: armed.approval_id, redirect: armed.redirect }, armed.confirm, window.location.pathname, "Not approved: ");
  } catch (e) {
    say("approve-status", "Not armed: " + e.message);
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

// The request (from the audit view) or the arming of an operator's
// request, then the passkey page, which shows it as the log holds it.
async function confirmRollback() {
  const d = rollbackDialog();
  say("rollback-status", "Opening the passkey page…");
  try {
    const armed = d.dataset.arm
      ? await post(d.dataset.arm)
      : await post("/audit/rollback", { drafts: d.dataset.drafts.split(" "), reason: document.getElementById("rollback-reason").value });
    toPasskeyPage({ ceremony: armed.approval_id, redirect: armed.redirect }, armed.confirm, "/audit", "Not rolled back: ");
  } catch (e) {
    say("rollback-status", "Not rolled back: " + e.message);
  }
}

async function countersign(button) {
  say("approvers-status", "Opening the passkey page…");
  try {
    const started = await post(button.dataset.start);
    toPasskeyPage(started, button.dataset.finish, "/approvers", "Not countersigned: ");
  } catch (e) {
    say("approvers-status", "Not countersigned: " + e.message);
  }
}

// /passkey/return: what the passkey page signed, posted to the ceremony
// this tab began; then on to where it was going.
async function returned() {
  const got = Object.fromEntries(new URLSearchParams(window.location.hash.slice(1)));
  history.replaceState(null, "", window.location.pathname);
  const key = "passkey:" + (got.ceremony || "");
  const pending = JSON.parse(sessionStorage.getItem(key) || "null");
  sessionStorage.removeItem(key);
  if (!pending) {
    say("return-status", "This tab did not start that passkey ceremony: nothing was recorded.");
    return;
  }
  const body = got.attestation_object
    ? got
    : { ceremony: got.ceremony, approval_id: got.ceremony, assertion: {
      credential_id: got.credential_id, authenticator_data: got.authenticator_data,
      client_data_json: got.client_data_json, signature: got.signature } };
  try {
    const done = await post(pending.finish, body);
    if (done.fingerprint) {
      say("fingerprint", done.fingerprint);
      document.getElementById("enrolled").hidden = false;
    }
    say("return-status", done.message || "Done.");
    if (pending.next) window.location.assign(pending.next);
    else document.getElementById("return-next").hidden = false;
  } catch (e) {
    say("return-status", pending.failure + e.message);
    document.getElementById("return-next").hidden = false;
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
  if (document.getElementById("return-status")) returned();
  const en = document.getElementById("create-passkey");
  if (en) en.addEventListener("click", () => enroll(en));
  const si = document.getElementById("signin-form");
  if (si) si.addEventListener("submit", (ev) => { ev.preventDefault(); signIn(si); });
  const ap = document.getElementById("approve");
  if (ap) ap.addEventListener("click", () => arm(ap));
  document.querySelectorAll("button[data-rollback-drafts], button[data-rollback-arm]").forEach((b) => b.addEventListener("click", () => openRollback(b)));
  const cr = document.getElementById("confirm-rollback");
  if (cr) cr.addEventListener("click", confirmRollback);
  const rc = document.getElementById("rollback-cancel");
  if (rc) rc.addEventListener("click", closeRollback);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") closeRollback();
  });
  document.querySelectorAll("button[data-countersign]").forEach((b) => b.addEventListener("click", () => countersign(b)));
});
