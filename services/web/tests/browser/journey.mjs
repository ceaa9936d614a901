// The web app as a learner meets it, in Debian's Chromium: signing up, a deck, a card, studying it
// by keyboard, signing out, a wrong password, and a backend that is down. Every page is checked
// with axe-core (no serious or critical violation) and photographed at 390 and 1280 px wide.
// Any console error (a CSP violation among them) fails the run. Started by ../browser.rs with
// WEB_URL, DOWN_URL (a web app whose backend is down) and SCREENSHOTS (a folder).

import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const { WEB_URL, DOWN_URL, SCREENSHOTS } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WIDTHS = [390, 1280];

if (!WEB_URL || !DOWN_URL || !SCREENSHOTS) {
  throw new Error("WEB_URL, DOWN_URL and SCREENSHOTS must be set");
}
mkdirSync(SCREENSHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const problems = [];
let pages = 0;

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** A fresh context (its own cookies) with console and script errors collected. */
async function visitor() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (message) => {
    // A page answered with the status it means (401 for a wrong password, 404, 503) is logged as
    // a failed load of the document itself: that one is expected.
    if (message.type() !== "error" || message.location().url === page.url()) return;
    problems.push(`console error on ${page.url()}: ${message.text()} (${message.location().url})`);
  });
  page.on("pageerror", (error) => problems.push(`script error on ${page.url()}: ${error.message}`));
  return page;
}

/** axe-core on the page as it is, then a full-page screenshot at each width. */
async function check(page, name) {
  pages += 1;
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((violation) => ["serious", "critical"].includes(violation.impact))
      .map(
        (violation) =>
          `${violation.id} (${violation.impact}): ${violation.nodes.map((node) => node.target.join(" ")).join(", ")}`,
      );
  });
  for (const violation of violations) problems.push(`${name}: ${violation}`);
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    await page.screenshot({ path: `${SCREENSHOTS}/${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 900 });
  console.log(`ok - ${name} (${page.url()})`);
}

async function text(page) {
  return page.locator("main").innerText();
}

try {
  const page = await visitor();
  await page.goto(`${WEB_URL}/`);
  expect(page.url().endsWith("/sign-in"), `signed out, / leads to signing in, not ${page.url()}`);
  await check(page, "sign-in");

  await page.getByRole("link", { name: "Make an account" }).click();
  await page.waitForURL(/\/sign-up$/);
  await check(page, "sign-up");
  await page.getByLabel("Email").fill("ada@example.org");
  await page.getByLabel("Password").fill("correct horse battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.waitForURL(/\/decks$/);
  expect((await text(page)).includes("No decks yet"), "a new account has no decks");
  await check(page, "decks-empty");

  await page.getByLabel("Name").fill("Capitals");
  await page.getByRole("button", { name: "Create deck" }).click();
  await page.waitForURL(/\/decks\/[\w-]+$/);
  const deckId = page.url().split("/").pop();
  // Cards are added through the API on the same origin, with the session cookie.
  const status = await page.evaluate(async (id) => {
    const response = await fetch(`/api/decks/${id}/cards`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ front: "Capital of Peru?", back: "Lima" }),
    });
    return response.status;
  }, deckId);
  expect(status === 201, `adding a card answered ${status}`);
  await page.reload();
  expect((await text(page)).includes("Study now (1 due)"), "the deck shows its due card");
  await check(page, "deck");

  await page.getByRole("link", { name: /Study now/ }).click();
  await page.waitForURL(/\/study$/);
  let shown = await text(page);
  expect(shown.includes("Capital of Peru?") && !shown.includes("Lima"), `the front alone: ${shown}`);
  await check(page, "study-front");

  await page.keyboard.press("Space");
  await page.waitForURL(/reveal=1/);
  shown = await text(page);
  expect(shown.includes("Lima"), `Space shows the answer: ${shown}`);
  expect(/Again\s*10 min/.test(shown), `Again shows its interval: ${shown}`);
  await check(page, "study-answer");

  await page.keyboard.press("3");
  await page.waitForURL(/good=1/);
  shown = await text(page);
  expect(shown.includes("Done for now: 1 review in this sitting."), `the summary: ${shown}`);
  await check(page, "study-summary");

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/sign-in$/);
  await page.getByLabel("Email").fill("ada@example.org");
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").waitFor();
  expect(
    (await page.getByRole("alert").innerText()).includes("Wrong email or password."),
    "the wrong password is named",
  );
  expect((await page.getByLabel("Email").inputValue()) === "ada@example.org", "the email is kept");
  await check(page, "sign-in-wrong-password");

  const down = await visitor();
  await down.goto(`${DOWN_URL}/sign-in`);
  await down.getByLabel("Email").fill("ada@example.org");
  await down.getByLabel("Password").fill("correct horse battery");
  await down.getByRole("button", { name: "Sign in" }).click();
  await down.getByRole("alert").waitFor();
  expect(
    (await down.getByRole("alert").innerText()).includes("cannot be reached"),
    "a clear message when the backend is down",
  );
  expect((await down.getByLabel("Email").inputValue()) === "ada@example.org", "the email is kept");
  await check(down, "backend-down");

  const missing = await visitor();
  const answer = await missing.goto(`${WEB_URL}/no/such/page`);
  expect(answer.status() === 404, `an unknown page is 404, not ${answer.status()}`);
  await check(missing, "not-found");
} catch (error) {
  problems.push(error.stack ?? String(error));
} finally {
  await browser.close();
}

if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(
  `browser journey: ${pages} pages checked at ${WIDTHS.join(" and ")} px wide, no serious or critical accessibility violations, screenshots in ${SCREENSHOTS}`,
);
