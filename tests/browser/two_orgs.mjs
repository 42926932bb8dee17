// Two organisations on one deployment, in Chromium: acme's admin (ada) and
// evil's admin (eve) enroll on the passkey page and sign in to the same
// approval app; each connects an account of their own on the platform's
// consent page. Then eve tries to reach acme's accounts: she sends ada the
// consent link she began (ada consents in her own browser, signed in to
// acme), and she consents herself to the account acme holds. Called by
// app/spend/tests/two_organisations.rs, which runs every service as its own
// `spend serve` process and checks the log afterwards.
//
// Input (environment): ORIGIN (the app's), PASSKEY (the passkey page's),
// ACME_ENROLL and EVIL_ENROLL (each first admin's enrollment link).
// Protocol: after both enroll it prints one JSON line with their key
// fingerprints and waits for a line on stdin (the operator anchored them).
// Output: one JSON object on stdout (the last line) with what it saw.
import readline from "node:readline";

import { approvalApp, env, launch } from "./lib.mjs";

const ORIGIN = env("ORIGIN");
const PASSKEY = env("PASSKEY");
const seen = {};
const cspViolations = [];
const browser = await launch();
const { person, enroll, signIn } = approvalApp({ browser, origin: ORIGIN, passkey: PASSKEY, seen, cspViolations });
const stdin = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdin.once("line", resolve));

const main = async (page) => (await page.locator("main").textContent()) || "";

/** From the Accounts page: "Connect account", then the platform's link. */
async function beginConnection(page) {
  await page.goto(`${ORIGIN}/accounts`);
  await page.getByRole("button", { name: "Connect account" }).click();
  return page.getByRole("link", { name: "Continue to the platform" }).getAttribute("href");
}

/** On the platform's consent page at `link`: allow `label`; what the app says back. */
async function consent(page, link, label) {
  await page.goto(link);
  await page.getByLabel(label).check();
  await page.getByRole("button", { name: "Allow" }).click();
  await page.waitForURL(/\/accounts\/callback/);
  return main(page);
}

try {
  const ada = await person();
  const eve = await person();
  const acme = await enroll(ada.page, env("ACME_ENROLL"));
  const evil = await enroll(eve.page, env("EVIL_ENROLL"));
  console.log(JSON.stringify({ enrolled: { acme: acme.fingerprint, evil: evil.fingerprint } }));
  await nextLine();
  seen.ada_signed_in = await signIn(ada.page, "ada@acme.example");
  seen.eve_signed_in = await signIn(eve.page, "eve@evil.example");

  // Each organisation connects its own account.
  seen.acme_connected = await consent(ada.page, await beginConnection(ada.page), "Search ads (act_1001)");
  seen.evil_connected = await consent(eve.page, await beginConnection(eve.page), "Team cards (card_1)");

  // 1. Eve sends ada the consent link she began; ada, who manages acme's
  //    Social ads, consents in her own browser.
  const lure = await beginConnection(eve.page);
  seen.lured = await consent(ada.page, lure, "Social ads (act_1002)");

  // 2. Eve, who can also sign in at the platform for acme's Search ads,
  //    consents to it herself, in the browser that began the connection.
  seen.held = await consent(eve.page, await beginConnection(eve.page), "Search ads (act_1001)");

  await ada.page.goto(`${ORIGIN}/accounts`);
  seen.acme_accounts = await main(ada.page);
  await eve.page.goto(`${ORIGIN}/accounts`);
  seen.evil_accounts = await main(eve.page);
  seen.csp_violations = cspViolations;
  console.log(JSON.stringify(seen));
} catch (err) {
  console.log(JSON.stringify({ ...seen, error: String((err && err.stack) || err) }));
  process.exitCode = 1;
} finally {
  stdin.close();
  await browser.close();
}
