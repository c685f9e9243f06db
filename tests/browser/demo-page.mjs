// A visitor on the demo page, in Debian's headless Chromium driven by playwright-core:
//
//   node demo-page.mjs <page URL> <phone number> <en|fr> <screenshot.png> [follow|retry|twice|at=YYYY-MM-DD]
//
// types the number, picks the language, clicks "Call me back", waits for the status message, saves a
// screenshot and prints one JSON line: { status, message, messageClass, stages: { socket: "✔", … }, pageErrors }.
// With `follow` it then watches the live call status until a final state and adds `live`: every state and
// sentence the status line showed, in order, the history list, the final state, whether the retry button
// is offered, and the event streams the page opened. With `retry` it also clicks the retry button once the
// call has ended and adds `retried`: the second POST's status and its call followed the same way. With
// `twice` it clicks "Call me back" again at once and adds `again`: that POST's status, its Retry-After and
// the message shown. With `at=YYYY-MM-DD` it picks "call me at", that day and its first slot before clicking,
// and adds `slots` (the times the picker offered, as their values) and `scheduledFor` (what the page was
// told on a 202).
// Exits non-zero on any error; the browser is closed in every case, and nothing waits without a deadline.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP_TIMEOUT_MS = 15_000; // each page action; the real callback answers in about a second
const CALL_TIMEOUT_MS = 45_000; // a followed call, from its POST to a final state
const OVERALL_TIMEOUT_MS = 110_000; // the whole visit, launch and close included
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const LANGUAGES = { en: "English", fr: "Français" };
const MODES = ["post", "follow", "retry", "twice"];

const [url, phoneNumber, language, screenshot, mode = "post"] = process.argv.slice(2);
const atDay = /^at=(\d{4}-\d{2}-\d{2})$/.exec(mode)?.[1];
if (!url || phoneNumber === undefined || !LANGUAGES[language] || !screenshot || !(MODES.includes(mode) || atDay)) {
  console.error("usage: node demo-page.mjs <page URL> <phone number> <en|fr> <screenshot.png> [follow|retry|twice|at=YYYY-MM-DD]");
  process.exit(64);
}

// Without the background-networking flags Chromium keeps trying hosts a closed network refuses.
const flags = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

// Records every state and sentence the live status line shows, in order, as the page changes it.
async function watchStatusLine(page) {
  const seen = [];
  await page.exposeFunction("demoPageSeen", (state, text) => seen.push({ state, text }));
  await page.evaluate(() => {
    const line = document.getElementById("call-state");
    let last = "";
    new MutationObserver(() => {
      const now = `${line.dataset.state}\n${line.textContent}`;
      if (line.textContent && now !== last) {
        last = now;
        window.demoPageSeen(line.dataset.state, line.textContent);
      }
    }).observe(line, { attributes: true, childList: true, characterData: true, subtree: true });
  });
  return seen;
}

// Waits until the live status is final (or says the call is not tracked) and reads what it shows.
async function followCall(page, seen, streams) {
  const line = page.locator("#call-state");
  await page
    .locator('#call-state[data-state="ended"], #call-state[data-state="failed"], #call-state[data-state="placed"]')
    .waitFor({ state: "visible", timeout: CALL_TIMEOUT_MS });
  // The page closes the stream itself on a final state; if it did not, EventSource would reconnect after
  // its default 3 s (the sidecar sends no `retry:`): wait long enough to see that second request.
  await page.waitForTimeout(3_500);
  const retry = page.locator("#retry");
  return {
    seen: seen.splice(0),
    history: await page.locator("#call-history li").evaluateAll((items) => items.map((i) => i.dataset.state)),
    historyText: (await page.locator("#call-history li").allInnerTexts()).map((t) => t.trim()),
    state: await line.getAttribute("data-state"),
    outcome: await line.getAttribute("data-outcome"),
    text: (await line.innerText()).trim(),
    className: await line.getAttribute("class"),
    lang: await page.locator("#call").getAttribute("lang"),
    retry: (await retry.isVisible()) ? (await retry.innerText()).trim() : null,
    eventStreams: streams.splice(0),
  };
}

async function visit(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
  const streams = [];
  page.on("request", (r) => {
    if ((r.headers()["accept"] || "").includes("text/event-stream")) streams.push(new URL(r.url()).pathname);
  });

  await page.goto(url, { waitUntil: "load", timeout: STEP_TIMEOUT_MS });
  const seen = await watchStatusLine(page);
  await page.getByLabel("Phone number").fill(phoneNumber);
  await page.getByRole("radio", { name: LANGUAGES[language] }).check();
  let slots = null;
  if (atDay) {
    // By value: the option's label is in the visitor's language.
    await page.locator('input[name="when"][value="at"]').check();
    await page.locator("#slot-date").fill(atDay);
    await page.locator(`#slot[data-loaded="${atDay}"]`).waitFor({ state: "attached" });
    slots = await page.locator("#slot option").evaluateAll((options) => options.map((o) => o.value));
    if (slots[0]) await page.locator("#slot").selectOption(slots[0]);
  }

  const isCallback = (r) => new URL(r.url()).pathname.endsWith("/callback");
  const answer = page.waitForResponse(isCallback);
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
  const seenAfterPost = {
    status,
    message: (await message.innerText()).trim(),
    messageClass: await message.getAttribute("class"),
    stages,
    slots,
    scheduledFor: await message.getAttribute("data-scheduled-for"),
  };

  let live = null;
  let retried = null;
  let again = null;
  if (mode === "twice") {
    const second = page.waitForResponse(isCallback);
    await page.getByRole("button", { name: "Call me back" }).click();
    const secondAnswer = await second;
    await page.locator("#message.error").waitFor({ state: "visible" });
    again = {
      status: secondAnswer.status(),
      retryAfter: secondAnswer.headers()["retry-after"] ?? null,
      message: (await message.innerText()).trim(),
    };
  }
  if (mode === "follow" || mode === "retry") live = await followCall(page, seen, streams);
  if (mode === "retry") {
    const again = page.waitForResponse(isCallback);
    await page.locator("#retry").click();
    const retryStatus = (await again).status();
    retried = { status: retryStatus, live: await followCall(page, seen, streams) };
  }

  await page.screenshot({ path: screenshot, fullPage: true });
  return { ...seenAfterPost, live, retried, again, pageErrors };
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
