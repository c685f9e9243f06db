// A visitor on the demo page, in Debian's headless Chromium driven by playwright-core:
//
//   node demo-page.mjs <page URL> <phone number> <en|fr> <screenshot.png>
//
// types the number, picks the language, clicks "Call me back", waits for the status message, saves a
// screenshot and prints one JSON line: { status, message, messageClass, stages: { socket: "✔", … }, pageErrors }.
// Exits non-zero on any error; the browser is closed in every case, and nothing waits without a deadline.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP_TIMEOUT_MS = 15_000; // each page action; the real callback answers in about a second
const OVERALL_TIMEOUT_MS = 60_000; // the whole visit, launch and close included
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const LANGUAGES = { en: "English", fr: "Français" };

const [url, phoneNumber, language, screenshot] = process.argv.slice(2);
if (!url || phoneNumber === undefined || !LANGUAGES[language] || !screenshot) {
  console.error("usage: node demo-page.mjs <page URL> <phone number> <en|fr> <screenshot.png>");
  process.exit(64);
}

// Without the background-networking flags Chromium keeps trying hosts a closed network refuses.
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

async function visit(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });

  await page.goto(url, { waitUntil: "load", timeout: STEP_TIMEOUT_MS });
  await page.getByLabel("Phone number").fill(phoneNumber);
  await page.getByRole("radio", { name: LANGUAGES[language] }).check();

  const answer = page.waitForResponse((r) => new URL(r.url()).pathname.endsWith("/callback"));
  await page.getByRole("button", { name: "Call me back" }).click();
  const status = (await answer).status();

  const message = page.locator("#message");
  await page.locator("#message.ok, #message.error").waitFor({ state: "visible" });
  await page.locator("#stages tr").first().waitFor({ state: "visible" });

  const stages = {};
  for (const row of await page.locator("#stages tr").all()) {
    const [name, value] = await row.locator("td").allInnerTexts();
    stages[name.trim()] = value.trim().split(/\s+/)[0];
  }

  await page.screenshot({ path: screenshot, fullPage: true });
  return {
    status,
    message: (await message.innerText()).trim(),
    messageClass: await message.getAttribute("class"),
    stages,
    pageErrors,
  };
}

const profile = mkdtempSync(join(tmpdir(), "demo-page-chromium-"));
let browser;
let context;
const watchdog = setTimeout(() => {
  console.error(`demo-page: gave up after ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exitCode = 3;
  const closing = context ? context.close() : browser ? browser.close() : Promise.resolve();
  closing.finally(() => process.exit(3));
  setTimeout(() => process.exit(3), 5_000).unref();
}, OVERALL_TIMEOUT_MS);

try {
  // A persistent context is how playwright gives Chromium a user data dir of our own: a fresh, empty one.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: flags,
    timeout: 30_000,
    viewport: { width: 800, height: 720 },
  });
  console.log(JSON.stringify(await visit(context)));
} catch (error) {
  console.error(`demo-page: ${error?.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await context?.close().catch(() => {});
  clearTimeout(watchdog);
  rmSync(profile, { recursive: true, force: true });
}
