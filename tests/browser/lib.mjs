// What every browser test of the approval app does the same way: launch
// Debian's Chromium (never a downloaded browser), give each person a
// context with a CDP virtual passkey authenticator, enroll and sign in
// through the passkey page, and read what a page says.
import { chromium } from "playwright-core";

/** The environment variable `k`, which must be set. */
export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * The helpers for one approval app (`origin`) and its passkey page
 * (`passkey`): what they saw goes into `seen`, anything the Content
 * Security Policy blocked into `cspViolations`.
 */
export function approvalApp({ browser, origin, passkey, seen, cspViolations }) {
  /** A person: their own browser context and passkey authenticator. */
  async function person(userVerified = true) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    page.on("console", (m) => {
      if (m.text().includes("Content Security Policy")) cspViolations.push(m.text());
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: userVerified, isUserVerified: userVerified, automaticPresenceSimulation: true },
    });
    return { context, page };
  }

  async function status(page, id) {
    return (await page.locator(`#${id}`).textContent()) || "";
  }

  /** What `#id` says now, "" when the page has none (it may be leaving). */
  async function said(page, id) {
    return page.evaluate((i) => (document.getElementById(i) || {}).textContent || "", id).catch(() => "");
  }

  /** Waits until the app's /passkey/return page has recorded what came back. */
  async function returnedStatus(page) {
    await page.waitForFunction(() => {
      const s = document.getElementById("return-status");
      return s && s.textContent && !s.textContent.startsWith("Recording");
    }, null, { timeout: 15000 });
    return status(page, "return-status");
  }

  /** What the passkey page says went wrong, or "" once it left for the app. */
  async function passkeyPageOutcome(page) {
    for (let i = 0; i < 150; i++) {
      if (page.url().startsWith(origin)) return "";
      // The page may be leaving for the app as it is read.
      const said = await page.evaluate(() => (document.getElementById("passkey-status") || {}).textContent || "").catch(() => "");
      if (said.startsWith("Nothing was signed") || said.startsWith("Your passkey was not created")) return said;
      await page.waitForTimeout(100);
    }
    throw new Error(`the passkey page neither returned nor said why: ${page.url()}`);
  }

  async function enroll(page, link) {
    await page.goto(link);
    await page.getByRole("button", { name: "Continue to create your passkey" }).click();
    await page.waitForURL(`${passkey}/enroll?**`);
    seen.passkey_enroll_page = seen.passkey_enroll_page || (await page.locator("main").textContent()) || "";
    await page.getByRole("button", { name: "Create passkey" }).click();
    const failed = await passkeyPageOutcome(page);
    if (failed) return { status: failed, fingerprint: "" };
    await page.waitForURL(`${origin}/passkey/return`);
    return { status: await returnedStatus(page), fingerprint: (await page.locator("#fingerprint").textContent()) || "" };
  }

  /** The app's sign-in: the email, then the passkey page's "Sign in with passkey". */
  async function startSignIn(page, email) {
    await page.goto(`${origin}/signin`);
    await page.getByLabel("Email").fill(email);
    await page.getByRole("button", { name: "Continue" }).click();
    for (let i = 0; i < 100; i++) {
      if (page.url().startsWith(`${passkey}/signin`)) return "";
      const refused = await said(page, "signin-status");
      if (refused.startsWith("You are not")) return refused;
      await page.waitForTimeout(100);
    }
    throw new Error("sign-in went nowhere");
  }

  async function signIn(page, email) {
    for (let attempt = 0; attempt < 50; attempt++) {
      if ((await startSignIn(page, email)) === "") {
        seen.passkey_signin_page = seen.passkey_signin_page || (await page.locator("main").textContent()) || "";
        await page.getByRole("button", { name: "Sign in with passkey" }).click();
        try {
          await page.waitForURL(`${origin}/approvals`, { timeout: 5000 });
          return true;
        } catch (_) {
          // Refused: the return page says why; try again below.
        }
      }
      // Not trusted yet (the anchor or a countersignature is on its way).
      await page.waitForTimeout(200);
    }
    return false;
  }

  return { person, status, said, returnedStatus, passkeyPageOutcome, enroll, startSignIn, signIn };
}
