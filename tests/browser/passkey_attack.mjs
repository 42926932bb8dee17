// An admin uses a compromised approval service: its pages are the
// attacker's (served by services/executor/tests/passkey_attacks.rs), which
// send her to the passkey page with whatever they like and take what comes
// back. She does what a careful person does: she reads what the passkey page
// says she is signing, and signs only what she meant (a sign-in, the draft
// she meant to approve, the approver she meant to vouch for); when the page
// shows anything else, she cancels.
//
// Input (environment): PASSKEY (the passkey page's origin), ATTACKER (the
// compromised app's origin), CREDENTIAL_ID (base64url) and PRIVATE_KEY
// (PKCS#8 DER, base64) of her passkey on the passkey page's RP ID, RP_ID,
// MEANT_DRAFT (the payment she means to approve: its words), MEANT_APPROVER
// (the email she means to countersign).
// Output: one JSON object on stdout with what each page showed and did.
import { chromium } from "playwright-core";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const PASSKEY = env("PASSKEY");
const ATTACKER = env("ATTACKER");
const seen = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

/** Follows the attacker's link to the passkey page; signs there only when
 * the page says `meant`, else cancels. Returns what the page showed. */
async function ceremony(page, path, button, meant) {
  await page.goto(`${ATTACKER}${path}`);
  await page.waitForURL(`${PASSKEY}/**`);
  const shown = (await page.locator("main").textContent()) || "";
  const sign = page.getByRole("button", { name: button });
  if (!shown.includes(meant) || !(await sign.count())) {
    const cancel = page.getByRole("button", { name: "Cancel" });
    if (await cancel.count()) await cancel.click();
    return { shown, signed: false };
  }
  await sign.click();
  await page.waitForURL(`${ATTACKER}/passkey/return**`, { timeout: 15000 });
  await page.waitForFunction(() => document.title === "taken", null, { timeout: 15000 });
  return { shown, signed: true };
}

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  const std = (b64u) => Buffer.from(b64u, "base64url").toString("base64");
  await cdp.send("WebAuthn.addCredential", {
    authenticatorId,
    credential: { credentialId: std(env("CREDENTIAL_ID")), isResidentCredential: false, rpId: env("RP_ID"), privateKey: env("PRIVATE_KEY"), signCount: 0 },
  });

  // 1. "Sign in": the attacker wants a countersignature of its own key out
  //    of it; the page can only sign a sign-in to the attacker's origin.
  seen.signin = await ceremony(page, "/signin", "Sign in with passkey", `Sign in to ${ATTACKER}`);
  // 2. "Approve" the payment she meant.
  seen.approve = await ceremony(page, "/approve", "Confirm and push live", env("MEANT_DRAFT"));
  // 3. "Countersign" the approver she meant.
  seen.countersign = await ceremony(page, "/countersign", `Countersign ${env("MEANT_APPROVER")}`, `Vouch for ${env("MEANT_APPROVER")}`);
  // 4. The attacker swaps the draft: she is sent to approve another one.
  //    The page shows that other draft's words; she cancels.
  seen.swapped = await ceremony(page, "/approve-swapped", "Confirm and push live", env("MEANT_DRAFT"));
  // 5. And a countersignature of the attacker's own key: shown as such.
  seen.swapped_countersign = await ceremony(page, "/countersign-swapped", `Countersign ${env("MEANT_APPROVER")}`, `Vouch for ${env("MEANT_APPROVER")}`);
  console.log(JSON.stringify(seen));
} catch (err) {
  console.log(JSON.stringify({ ...seen, error: String((err && err.stack) || err) }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
