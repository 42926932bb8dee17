// Drives Debian's Chromium (headless, through playwright-core, never a
// downloaded browser) through SpendSignoff's approval app and its passkey
// page (a site of its own: every passkey is created and signs there) with
// CDP virtual passkey authenticators, as a first admin, a second approver and a
// presence-only authenticator would use it. Called by
// app/spend/tests/approval_browser.rs, which prepares `spend dev`, the
// agent's drafts and the links, and checks the log afterwards.
//
// Input (environment): ORIGIN (the app's), PASSKEY (the passkey page's), ADMIN_ENROLL (the first admin's enrollment
// link), LINK_APPROVE, LINK_REJECT, LINK_DUAL, LINK_EXPIRE (approval
// links of drafts), LINK_POLICY (of a SPEND.md proposal), LINK_BUDGET and
// DRAFT_BUDGET (a budget raise, pushed and rolled back), SANDBOX (the
// sandbox platform's URL) and SANDBOX_CONTROL (its test-control token), MCP_URL (the gateway's MCP URL) and MCP_AGENT
// (the MCP Python SDK client that signs in with it), and SCREENSHOTS (a
// folder; optional).
// Output: one JSON object on stdout with what it saw.
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import http from "node:http";

import { approvalApp, env, launch } from "./lib.mjs";

const ORIGIN = env("ORIGIN");
const PASSKEY = env("PASSKEY");
const shots = process.env.SCREENSHOTS || "";
const seen = {};
// Anything the Content Security Policy blocked (an inline style or script
// slipped into a page): the test expects none.
const cspViolations = [];

const browser = await launch();
const { person, status, said, returnedStatus, passkeyPageOutcome, enroll, startSignIn, signIn } = approvalApp({
  browser,
  origin: ORIGIN,
  passkey: PASSKEY,
  seen,
  cspViolations,
});

/** The metadata-document client's whole flow, in `page` (bob's). */
async function metadataDocumentClient(page) {
  const out = {};
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  const clientId = `http://127.0.0.1:${port}/client.json`;
  const redirectUri = `http://127.0.0.1:${port}/callback`;
  let answered = null;
  server.on("request", (req, res) => {
    const u = new URL(req.url, `http://127.0.0.1:${port}`);
    if (u.pathname === "/client.json") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ client_id: clientId, client_name: "Metadata-document client", redirect_uris: [redirectUri], grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], token_endpoint_auth_method: "none" }));
    } else if (u.pathname === "/callback") {
      answered = Object.fromEntries(u.searchParams);
      res.end("You can close this window.");
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  try {
    const mcpUrl = env("MCP_URL");
    const mcp = async (token, body, session) => {
      const r = await fetch(mcpUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...(session ? { "mcp-session-id": session } : {}) },
        body: JSON.stringify(body),
      });
      return { status: r.status, session: r.headers.get("mcp-session-id"), text: await r.text() };
    };
    const init = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "cimd", version: "1" } } };
    const first = await fetch(mcpUrl, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream" }, body: JSON.stringify(init) });
    out.unauthenticated = first.status;
    const prmUrl = /resource_metadata="([^"]+)"/.exec(first.headers.get("www-authenticate") || "")[1];
    const prm = await (await fetch(prmUrl)).json();
    const as = await (await fetch(`${prm.authorization_servers[0]}/.well-known/oauth-authorization-server`)).json();
    const verifier = crypto.randomBytes(32).toString("base64url");
    const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
    const authorize = new URL(as.authorization_endpoint);
    const params = { response_type: "code", client_id: clientId, redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: "S256", scope: "mcp.read mcp.draft", state: "cimd-1", resource: prm.resource };
    for (const [k, v] of Object.entries(params)) authorize.searchParams.set(k, v);

    await page.goto(`${ORIGIN}/approvals`);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(`${ORIGIN}/signin`);
    await page.goto(authorize.toString());
    out.asked_to_sign_in = page.url().startsWith(`${ORIGIN}/signin?next=`);
    await page.getByLabel("Email").fill("bob@dev.localhost");
    await page.getByRole("button", { name: "Continue" }).click();
    await page.waitForURL(`${PASSKEY}/signin?**`);
    await page.getByRole("button", { name: "Sign in with passkey" }).click();
    const allow = page.getByRole("button", { name: "Allow" });
    await allow.waitFor({ timeout: 15000 });
    out.consent = (await page.locator("main").textContent()) || "";
    await allow.click();
    for (let i = 0; i < 100 && !answered; i++) await page.waitForTimeout(100);
    out.state = answered && answered.state;
    const form = (o) => ({ method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(o).toString() });
    const tokens = await (await fetch(as.token_endpoint, form({ grant_type: "authorization_code", code: answered.code, redirect_uri: redirectUri, client_id: clientId, code_verifier: verifier, resource: prm.resource }))).json();
    out.scope = tokens.scope;
    const opened = await mcp(tokens.access_token, init);
    out.initialize = opened.status;
    await mcp(tokens.access_token, { jsonrpc: "2.0", method: "notifications/initialized" }, opened.session);
    out.tools_list_has_propose = (await mcp(tokens.access_token, { jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }, opened.session)).text.includes("propose_change");
    const refreshed = await (await fetch(as.token_endpoint, form({ grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: clientId }))).json();
    out.refreshed = Boolean(refreshed.access_token) && refreshed.refresh_token !== tokens.refresh_token;
    out.after_refresh = (await mcp(refreshed.access_token, init)).status;

    await page.goto(`${ORIGIN}/clients`);
    await page.getByRole("row").filter({ hasText: "Metadata-document client" }).getByRole("button", { name: "Revoke Metadata-document client" }).click();
    const revokedAt = Date.now();
    out.refused_after_ms = null;
    for (let i = 0; i < 300; i++) {
      if ((await mcp(refreshed.access_token, init)).status === 401) {
        out.refused_after_ms = Date.now() - revokedAt;
        break;
      }
      await page.waitForTimeout(10);
    }
    await page.waitForURL(`${ORIGIN}/clients`);
    out.clients_after = (await page.locator("main").textContent()) || "";
  } finally {
    server.close();
  }
  return out;
}

/** Waits (up to 30 s) until the sandbox platform shows `campaign` at `minor`. */
async function campaignBudget(campaign, minor) {
  for (let i = 0; i < 60; i++) {
    const applied = await (await fetch(`${env("SANDBOX")}/sandbox/applied`, { headers: { "x-sandbox-control": env("SANDBOX_CONTROL") } })).json();
    const c = (applied.campaigns || []).find((x) => x.id === campaign);
    if (c && c.daily_budget_minor === minor) return true;
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

/** "Approve" in the app, then the passkey page's alertdialog. */
async function openApproval(page, link) {
  // A request the service has not opened yet is "not armed": a person
  // reloads in a moment, and so does this.
  for (let attempt = 0; attempt < 40; attempt++) {
    await page.goto(link);
    await page.getByRole("button", { name: "Approve" }).click();
    for (let i = 0; i < 100 && !page.url().startsWith(`${PASSKEY}/approve?`); i++) {
      if ((await said(page, "approve-status")).startsWith("Not armed")) break;
      await page.waitForTimeout(100);
    }
    if (page.url().startsWith(`${PASSKEY}/approve?`)) break;
    seen.not_armed = await said(page, "approve-status");
    await page.waitForTimeout(250);
  }
  await page.waitForURL(`${PASSKEY}/approve?**`);
  const dialog = page.getByRole("alertdialog");
  await dialog.waitFor();
  return dialog;
}

async function approve(page, link, shotName) {
  const dialog = await openApproval(page, link);
  const shown = (await dialog.textContent()) || "";
  if (shots && shotName) await page.screenshot({ path: `${shots}/${shotName}`, fullPage: true });
  await dialog.getByRole("button", { name: "Confirm and push live" }).click();
  const failed = await passkeyPageOutcome(page);
  if (failed) return { shown, status: failed };
  // Approved: back on the draft's page. Refused: the return page says why.
  const back = new URL(link).pathname;
  await page.waitForFunction((path) => {
    const s = document.getElementById("return-status");
    return window.location.pathname !== "/passkey/return" || (s && s.textContent.startsWith("Not approved"));
  }, null, { timeout: 15000 });
  if (page.url().includes("/passkey/return")) return { shown, status: await status(page, "return-status") };
  await page.waitForURL((u) => u.pathname === back || u.pathname.startsWith("/approvals/"));
  return { shown, status: (await page.locator("p.status").textContent()) || "" };
}

try {
  // The first admin enrolls; `spend dev` anchors her and she signs in.
  const ada = await person();
  const e = await enroll(ada.page, env("ADMIN_ENROLL"));
  seen.admin_enroll = e;
  seen.admin_signed_in = await signIn(ada.page, "admin@dev.localhost");

  // A SPEND.md version, proposed by the operator: the page says what
  // changes in practice; approved through the same two steps.
  await ada.page.goto(env("LINK_POLICY"));
  seen.policy_page = (await ada.page.locator("main").textContent()) || "";
  seen.policy_status = await approve(ada.page, env("LINK_POLICY"), null);

  // The agent's budget raise, approved while its request is young (the
  // timeout is two minutes: every passkey step is a round trip to the
  // passkey page, and a loaded machine is slow); pushed and rolled back
  // further down.
  seen.budget_first = await approve(ada.page, env("LINK_BUDGET"), null);
  seen.budget2_first = await approve(ada.page, env("LINK_BUDGET2"), null);

  // A GET of the approval link changes nothing; the page shows the draft.
  await ada.page.goto(env("LINK_APPROVE"));
  seen.draft_page_has_approve = await ada.page.getByRole("button", { name: "Approve" }).isVisible();
  seen.draft_page = (await ada.page.locator("main").textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/draft.png`, fullPage: true });

  // Arming opens the passkey page's alertdialog; Cancel goes back to the
  // draft and approves nothing.
  await openApproval(ada.page, env("LINK_APPROVE"));
  await ada.page.getByRole("alertdialog").getByRole("button", { name: "Cancel" }).click();
  await ada.page.waitForURL((u) => u.origin === ORIGIN && u.pathname.startsWith("/approvals/")).catch((e) => {
    throw new Error(`Cancel went to ${ada.page.url()}: ${e}`);
  });
  seen.cancel_closes = !(await ada.page.getByRole("alertdialog").count()) && (await ada.page.getByRole("button", { name: "Approve" }).isVisible());

  // A POST without its CSRF token is refused.
  seen.post_without_csrf = await ada.page.evaluate(async (url) => (await fetch(url, { method: "POST" })).status, new URL(env("LINK_APPROVE")).origin + "/approvals/none/arm");

  // Approve and push live: a fresh assertion over the pinned challenge.
  seen.approved_status = await approve(ada.page, env("LINK_APPROVE"), "alertdialog.png");

  // The link of a decided approval shows what happened.
  await ada.page.goto(env("LINK_APPROVE"));
  seen.decided_link = (await ada.page.locator("p.status").textContent()) || "";
  seen.decided_has_no_approve = (await ada.page.getByRole("button", { name: "Approve" }).count()) === 0;

  // Reject asks for a reason.
  await ada.page.goto(env("LINK_REJECT"));
  await ada.page.getByLabel("Reason").fill("Not this quarter <b>really</b>");
  await ada.page.getByRole("button", { name: "Reject" }).click();
  await ada.page.waitForLoadState("load");
  seen.rejected_status = (await ada.page.locator("p.status").count())
    ? (await ada.page.locator("p.status").textContent()) || ""
    : `no status on ${ada.page.url()}: ${(await ada.page.locator("body").textContent() || "").slice(0, 300)}`;

  // A second approver: invited in the app, enrolled, countersigned by the admin.
  await ada.page.goto(`${ORIGIN}/approvers`);
  await ada.page.getByLabel("Email").fill("bob@dev.localhost");
  await ada.page.getByRole("button", { name: "Invite" }).click();
  const bobLink = (await ada.page.locator("#invite-link").textContent()) || "";
  const bob = await person();
  seen.bob_enroll = await enroll(bob.page, bobLink);
  // Before the countersignature bob is no trusted approver: the app says
  // so to no one (the same answer as for any email), and his passkey finds
  // nothing to sign in with.
  seen.bob_before_countersign = await startSignIn(bob.page, "bob@dev.localhost");
  if (seen.bob_before_countersign === "") {
    await bob.page.getByRole("button", { name: "Sign in with passkey" }).click();
    seen.bob_before_countersign = await passkeyPageOutcome(bob.page);
  }
  await ada.page.goto(`${ORIGIN}/approvers`);
  await ada.page.getByRole("button", { name: "Review bob@dev.localhost to countersign" }).click();
  await ada.page.waitForURL(`${PASSKEY}/countersign?**`);
  seen.passkey_countersign_page = (await ada.page.locator("main").textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/countersign.png`, fullPage: true });
  await ada.page.getByRole("button", { name: "Countersign bob@dev.localhost" }).click();
  await ada.page.waitForURL(`${ORIGIN}/approvers`, { timeout: 15000 });
  seen.approvers_page = (await ada.page.locator("main").textContent()) || "";
  seen.bob_signed_in = await signIn(bob.page, "bob@dev.localhost");

  // Dual control: two distinct approvers.
  seen.dual_first = await approve(ada.page, env("LINK_DUAL"), null);
  await ada.page.goto(env("LINK_DUAL"));
  seen.dual_same_person_again = (await ada.page.getByRole("button", { name: "Approve" }).count()) === 0;
  seen.dual_second = await approve(bob.page, env("LINK_DUAL"), null);
  // The budget raises are over require_confirmation_over at their daily
  // rate: bob is their second approver.
  seen.budget_status = await approve(bob.page, env("LINK_BUDGET"), null);
  seen.budget2_status = await approve(bob.page, env("LINK_BUDGET2"), null);

  // The queue.
  await ada.page.goto(`${ORIGIN}/approvals`);
  if (shots) await ada.page.screenshot({ path: `${shots}/queue.png`, fullPage: true });
  seen.queue = (await ada.page.locator("main").textContent()) || "";

  // A presence-only authenticator cannot create a passkey.
  await ada.page.goto(`${ORIGIN}/approvers`);
  await ada.page.getByLabel("Email").fill("tap@dev.localhost");
  await ada.page.getByRole("button", { name: "Invite" }).click();
  const tapLink = (await ada.page.locator("#invite-link").textContent()) || "";
  const tap = await person(false);
  seen.presence_only = (await enroll(tap.page, tapLink)).status;

  // Connected accounts: listed with their health; the admin connects one
  // (read access) on the platform's consent page, and disconnects one.
  await ada.page.goto(`${ORIGIN}/accounts`);
  seen.accounts_page = (await ada.page.locator("main").textContent()) || "";
  await ada.page.getByRole("button", { name: "Connect account" }).click();
  seen.connect_page = (await ada.page.locator("main").textContent()) || "";
  await ada.page.getByRole("link", { name: "Continue to the platform" }).click();
  seen.platform_consent = (await ada.page.locator("body").textContent()) || "";
  await ada.page.getByLabel("Social ads (act_1002)").check();
  await ada.page.getByRole("button", { name: "Allow" }).click();
  await ada.page.waitForURL(/\/accounts\/callback/);
  seen.connected = (await ada.page.locator("main").textContent()) || "";
  await ada.page.goto(`${ORIGIN}/accounts`);
  await ada.page.getByRole("button", { name: "Disconnect act_1002" }).click();
  await ada.page.waitForURL(`${ORIGIN}/accounts`);

  // A consent link sent to someone else (another organisation's admin
  // luring the manager of an account): it comes back in their browser,
  // without the binding of the browser that began it: nothing connected.
  await ada.page.getByRole("button", { name: "Connect account" }).click();
  const lure = await ada.page.getByRole("link", { name: "Continue to the platform" }).getAttribute("href");
  const victim = await person();
  await victim.page.goto(lure);
  await victim.page.getByLabel("Social ads (act_1002)").check();
  await victim.page.getByRole("button", { name: "Allow" }).click();
  await victim.page.waitForURL(/\/accounts\/callback/);
  seen.lured = (await victim.page.locator("main").textContent()) || "";
  await victim.context.close();
  await ada.page.goto(`${ORIGIN}/accounts`);
  seen.accounts_after_lure = (await ada.page.locator("main").textContent()) || "";
  seen.after_disconnect = (await ada.page.locator("main").textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/accounts.png`, fullPage: true });

  // The budget raises wait for write access: the admin grants it on the
  // platform's consent page for each, and the executor pushes that one.
  const grant = async (draft) => {
    const button = ada.page.getByRole("button", { name: `Grant write access to act_1001 for ${draft}` });
    for (let i = 0; i < 60; i++) {
      await ada.page.goto(`${ORIGIN}/accounts`);
      if (await button.count()) break;
      await ada.page.waitForTimeout(500);
    }
    await button.click();
    await ada.page.getByRole("link", { name: "Continue to the platform" }).click();
    await ada.page.getByRole("button", { name: "Allow" }).click();
    await ada.page.waitForURL(/\/accounts\/callback/);
  };
  await grant(env("DRAFT_BUDGET"));
  seen.budget_pushed = await campaignBudget("cmp_1", 6000);
  // The grant named the first raise: the second still waits for its own.
  await ada.page.waitForTimeout(2000);
  seen.budget2_waits = await campaignBudget("cmp_2", 12000);
  await ada.page.goto(`${ORIGIN}/accounts`);
  seen.budget2_still_asked = await ada.page.getByRole("button", { name: `Grant write access to act_1001 for ${env("DRAFT_BUDGET2")}` }).count();
  await grant(env("DRAFT_BUDGET2"));
  seen.budget2_pushed = await campaignBudget("cmp_2", 12500);

  // The audit view: "Roll back" opens the alertdialog; Cancel closes it;
  // "Continue to your passkey" opens the passkey page's alertdialog, whose
  // "Confirm rollback" asks the passkey, and the old budget is back.
  await ada.page.goto(`${ORIGIN}/audit`);
  const row = ada.page.getByRole("row").filter({ hasText: env("DRAFT_BUDGET") });
  await row.getByRole("button", { name: "Roll back" }).click();
  const rollback = ada.page.getByRole("alertdialog");
  await rollback.waitFor();
  seen.rollback_dialog = (await rollback.textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/rollback.png`, fullPage: true });
  await rollback.getByRole("button", { name: "Cancel" }).click();
  seen.rollback_cancel_closes = !(await rollback.isVisible());
  await row.getByRole("button", { name: "Roll back" }).click();
  await rollback.waitFor();
  await rollback.getByRole("button", { name: "Continue to your passkey" }).click();
  await ada.page.waitForURL(`${PASSKEY}/approve?**`);
  const onPasskey = ada.page.getByRole("alertdialog");
  seen.passkey_rollback_dialog = (await onPasskey.textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/rollback-passkey.png`, fullPage: true });
  await onPasskey.getByRole("button", { name: "Confirm rollback" }).click();
  seen.rollback_status = (await passkeyPageOutcome(ada.page)) || "returned";
  await ada.page.waitForURL(`${ORIGIN}/audit`, { timeout: 15000 });
  seen.budget_restored = await campaignBudget("cmp_1", 5000);
  for (let i = 0; i < 40; i++) {
    await ada.page.goto(`${ORIGIN}/audit`);
    seen.audit_after = (await ada.page.getByRole("row").filter({ hasText: env("DRAFT_BUDGET") }).textContent()) || "";
    if (seen.audit_after.includes("rolled back")) break;
    await ada.page.waitForTimeout(500);
  }

  // Nobody answers the last draft: it expires (the timeout is two minutes),
  // and its link says so.
  const until = Date.now() + 180000;
  for (;;) {
    await ada.page.goto(env("LINK_EXPIRE"));
    seen.expired_status = (await ada.page.locator("p.status").textContent()) || "";
    if (seen.expired_status.startsWith("Expired") || Date.now() > until) break;
    await ada.page.waitForTimeout(2000);
  }
  seen.expired_has_no_approve = (await ada.page.getByRole("button", { name: "Approve" }).count()) === 0;

  // Kill switches: the admin freezes every card, pauses the agents and
  // resumes them (a resume in the app lifts only the app's pause).
  await ada.page.goto(`${ORIGIN}/killswitches`);
  await ada.page.getByRole("radio", { name: "Every card of dev" }).check();
  await ada.page.getByLabel("Why").fill("suspected card testing");
  await ada.page.getByRole("button", { name: "Freeze cards" }).click();
  for (let i = 0; i < 20; i++) {
    await ada.page.goto(`${ORIGIN}/killswitches`);
    seen.frozen_page = (await ada.page.locator("main").textContent()) || "";
    if (seen.frozen_page.includes("suspected card testing")) break;
    await ada.page.waitForTimeout(250);
  }
  await ada.page.getByLabel("Reason").fill("runaway agent");
  await ada.page.getByRole("button", { name: "Pause agents" }).click();
  await ada.page.waitForURL(`${ORIGIN}/killswitches`);
  seen.paused_page = (await ada.page.locator("main").textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/killswitches.png`, fullPage: true });
  await ada.page.getByRole("button", { name: "Resume agents" }).click();
  await ada.page.waitForURL(`${ORIGIN}/killswitches`);
  seen.resumed_page = (await ada.page.locator("main").textContent()) || "";

  // MCP sign-in: an agent on the official MCP Python SDK, given only the
  // gateway's URL, prints where its human should go; ada consents in her
  // browser, and the browser carries the code back to the agent's loopback
  // callback. Its second sign-in asks to approve, and is sent back refused.
  const agent = spawn("python3", [env("MCP_AGENT"), env("MCP_URL"), ORIGIN], { stdio: ["ignore", "pipe", "pipe"] });
  let agentOut = "";
  let agentErr = "";
  const authorize = [];
  agent.stdout.on("data", (d) => (agentOut += d));
  agent.stderr.on("data", (d) => {
    agentErr += d;
    authorize.length = 0;
    for (const line of agentErr.split("\n")) if (line.startsWith("AUTHORIZE ")) authorize.push(line.slice("AUTHORIZE ".length).trim());
  });
  const agentDone = new Promise((resolve) => agent.on("exit", resolve));
  const nth = async (n) => {
    for (let i = 0; i < 300 && authorize.length < n; i++) await ada.page.waitForTimeout(100);
    if (authorize.length < n) throw new Error(`the MCP agent printed no authorization URL ${n}: ${agentErr}`);
    return authorize[n - 1];
  };
  await ada.page.goto(await nth(1));
  seen.consent_page = (await ada.page.locator("main").textContent()) || "";
  seen.consent_boxes = await ada.page.getByRole("checkbox").count();
  if (shots) await ada.page.screenshot({ path: `${shots}/consent.png`, fullPage: true });
  await ada.page.getByRole("button", { name: "Allow" }).click();
  await ada.page.goto(await nth(2));
  seen.mcp_agent_exit = await agentDone;
  try {
    seen.mcp_agent = JSON.parse(agentOut.trim().split("\n").pop());
  } catch (_) {
    seen.mcp_agent = { unparsed: agentOut, stderr: agentErr };
  }
  await ada.page.goto(`${ORIGIN}/clients`);
  seen.clients_page = (await ada.page.locator("main").textContent()) || "";
  if (shots) await ada.page.screenshot({ path: `${shots}/clients.png`, fullPage: true });

  // MCP sign-in by hand, the other way to register: a client whose id is
  // the URL of its metadata document (served on loopback: `spend dev`
  // allows that). Discovery from the gateway's 401; bob signs out, opens
  // the authorization URL, signs in with his passkey and consents; the
  // code, the token, tools/list, a refresh; then he revokes the client on
  // the Clients page and the gateway refuses its token (measured).
  seen.cimd = await metadataDocumentClient(bob.page);

  seen.csp_violations = cspViolations;
  console.log(JSON.stringify(seen));
} catch (err) {
  console.log(JSON.stringify({ ...seen, error: String(err && err.stack || err) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
