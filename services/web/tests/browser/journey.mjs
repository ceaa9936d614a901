// The web app as a learner meets it, in Debian's Chromium: signing up, a deck, cards, studying
// by keyboard, maths typeset by KaTeX (in the cloze preview, the card list and studying), a page
// of notes uploaded and read (after a refused file type and an oversized file), cards made from
// it and a draft accepted with an edit, signing out, a wrong password, and a backend that is
// down. Every page is checked with axe-core (no serious or critical violation) and photographed
// at 390 and 1280 px wide. Any console error (a CSP violation among them) fails the run. Started by ../browser.rs with
// WEB_URL, DOWN_URL (a web app whose backend is down), SCREENSHOTS (a folder), UPLOAD_FILE (a
// rendered page of notes about photosynthesis) and UPLOAD_LIMIT (the backend's, in bytes).

import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const { WEB_URL, DOWN_URL, SCREENSHOTS, UPLOAD_FILE, UPLOAD_LIMIT } = process.env;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const WIDTHS = [390, 1280];

if (!WEB_URL || !DOWN_URL || !SCREENSHOTS || !UPLOAD_FILE || !UPLOAD_LIMIT) {
  throw new Error("WEB_URL, DOWN_URL, SCREENSHOTS, UPLOAD_FILE and UPLOAD_LIMIT must be set");
}
/** Longest wait for OCR and card generation on two cores. */
const GENERATION_TIMEOUT_MS = 240_000;
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
    // a failed load of the document itself: that one is expected, but never a CSP violation.
    const expected = message.location().url === page.url() && !message.text().includes("Content Security Policy");
    if (message.type() !== "error" || expected) return;
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
  // A cloze card first: its preview follows the typing, rendered by the server.
  await page.getByRole("radio", { name: /Cloze/ }).check();
  await page.getByRole("textbox", { name: "Front", exact: true }).fill("{{c1::Lima}} is the capital of {{c2::Peru}}.");
  const preview = page.locator("[data-cloze-prompts]");
  await preview.getByText("c2:").waitFor();
  const prompts = await preview.innerText();
  expect(prompts.includes("[...] is the capital of Peru.") && prompts.includes("Lima is the capital of [...]."), `the cloze preview: ${prompts}`);
  await check(page, "deck-cloze-preview");
  await page.getByRole("button", { name: "Add card" }).click();
  await page.waitForURL(/#new-card$/);
  // Then a basic card, by keyboard alone from the kind's radio button.
  await page.getByRole("radio", { name: /Basic/ }).check();
  await page.getByRole("textbox", { name: "Front", exact: true }).fill("Capital of Peru?");
  await page.getByRole("textbox", { name: /^Back/ }).fill("Lima");
  await page.getByRole("textbox", { name: /^Tags/ }).fill("capitals");
  await page.getByRole("textbox", { name: /^Tags/ }).press("Enter");
  await page.waitForLoadState("load");
  await page.goto(page.url().replace(/#.*$/, ""));
  expect((await text(page)).includes("Study now (3 due)"), `the deck shows its due items: ${await text(page)}`);
  await check(page, "deck");
  await page.goto(`${WEB_URL}/decks`);
  expect((await text(page)).includes("3 due"), "the deck list shows the due count");
  await check(page, "decks");
  await page.getByRole("link", { name: "Capitals" }).click();

  await page.getByRole("link", { name: /Study now/ }).click();
  await page.waitForURL(/\/study$/);
  let shown = await text(page);
  expect(shown.includes("3 left: 3 new"), `the counts: ${shown}`);
  await check(page, "study-front");

  // Three items, each revealed with Space and rated by key: Good, Easy, Again.
  for (const [round, key] of [[1, "3"], [2, "4"], [3, "1"]]) {
    const front = await page.locator(".prompt").innerText();
    expect(!(await text(page)).includes("Lima is the capital of Peru."), `round ${round}: the answer waits`);
    await page.keyboard.press("Space");
    await page.waitForURL(/reveal=1/);
    shown = await text(page);
    expect(/Again\s*10 min/.test(shown), `round ${round}: Again shows its interval: ${shown}`);
    if (round === 1) await check(page, "study-answer");
    await page.keyboard.press(key);
    await page.waitForURL((url) => !url.search.includes("reveal=1"));
    expect(front.length > 0, "each round shows a front");
  }
  shown = await text(page);
  // Again brings its item back in ten minutes, so the sitting ends with it still to come later.
  expect(shown.includes("Done for now: 3 reviews in this sitting."), `the summary: ${shown}`);
  await check(page, "study-summary");

  // The statistics show those reviews.
  await page.getByRole("link", { name: /^← Capitals/ }).click();
  await page.getByRole("link", { name: "Statistics" }).click();
  await page.waitForURL(/\/stats$/);
  const todays = await page.locator("#reviews-title + svg rect.bar").last().locator("title").textContent();
  expect(todays === "today: 3", `today's bar counts the three reviews: ${todays}`);
  await check(page, "statistics");

  // Maths, in a deck of its own so the counts above stay as they are. The deck shows none yet,
  // so the cloze preview loads KaTeX itself when some is typed.
  await page.goto(`${WEB_URL}/decks`);
  await page.getByLabel("Name").fill("Algebra");
  await page.getByRole("button", { name: "Create deck" }).click();
  await page.waitForURL(/\/decks\/[\w-]+$/);
  const cardFront = page.getByRole("textbox", { name: "Front", exact: true });
  await page.getByRole("radio", { name: /Cloze/ }).check();
  await cardFront.fill(String.raw`{{c1::Euler}}'s identity: \(e^{i\pi} + 1 = 0\)`);
  await page.locator("[data-cloze-prompts] .katex").waitFor();
  await check(page, "deck-maths-preview");
  await page.getByRole("radio", { name: /Basic/ }).check();
  await cardFront.fill(String.raw`What is \(\frac{d}{dx} x^2\)?`);
  await page.getByRole("textbox", { name: /^Back/ }).fill(String.raw`\[2x\] (not $2 or $x)`);
  await page.getByRole("button", { name: "Add card" }).click();
  await page.waitForURL(/#new-card$/);
  await page.goto(page.url().replace(/#.*$/, ""));
  await page.locator("table.cards .katex").first().waitFor();
  expect((await page.locator("table.cards .katex").count()) === 2, "the card list typesets its maths");
  await check(page, "deck-maths");
  await page.getByRole("link", { name: /Study now/ }).click();
  await page.waitForURL(/\/study$/);
  await page.locator(".prompt .katex .mfrac").waitFor();
  await check(page, "study-maths-front");
  await page.keyboard.press("Space");
  await page.waitForURL(/reveal=1/);
  await page.locator(".answer .katex-display").waitFor();
  shown = await text(page);
  expect(shown.includes("(not $2 or $x)"), `prices stay text beside maths: ${shown}`);
  // The stylesheet's fonts load from the hashed folder beside it.
  const fonts = await page.evaluate(async () => {
    await document.fonts.ready;
    return [...document.fonts].filter((font) => font.family.includes("KaTeX") && font.status === "loaded").length;
  });
  expect(fonts > 0, "KaTeX's fonts load");
  await check(page, "study-maths-answer");

  // Notes: refused uploads say why; a page of notes is read, with its words boxed.
  await page.getByRole("link", { name: "Notes" }).click();
  await page.waitForURL(/\/documents$/);
  await check(page, "notes-empty");
  const picker = page.getByLabel("Photo, scan or PDF");
  await picker.setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("plain text") });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.getByRole("alert").waitFor();
  let alert = await page.getByRole("alert").innerText();
  expect(alert.includes("cannot be read"), `a refused file type is named: ${alert}`);
  await check(page, "upload-refused-type");
  await page.getByLabel("Photo, scan or PDF").setInputFiles({
    name: "huge.png",
    mimeType: "image/png",
    buffer: Buffer.alloc(Number(UPLOAD_LIMIT) + 1024),
  });
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.getByRole("alert").waitFor();
  alert = await page.getByRole("alert").innerText();
  expect(alert.includes("too large"), `an oversized file is named: ${alert}`);
  await check(page, "upload-too-large");
  await page.getByLabel("Photo, scan or PDF").setInputFiles(UPLOAD_FILE);
  await page.getByRole("button", { name: "Upload", exact: true }).click();
  await page.waitForURL(/\/documents\/[\w-]+$/);
  await page.getByRole("button", { name: "Make cards" }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
  shown = await text(page);
  expect(/photosynthesis/i.test(shown), `the recognised text appears: ${shown}`);
  expect((await page.locator("svg rect.word").count()) > 10, "the words are boxed over the page");
  await check(page, "document");

  await page.getByLabel("Into deck").selectOption({ label: "Capitals" });
  await page.getByLabel("At most this many cards").fill("3");
  await page.getByRole("button", { name: "Make cards" }).click();
  await page.waitForURL(/\/jobs\/[\w-]+$/);
  await check(page, "job");
  await page.getByRole("link", { name: "Review the drafts" }).waitFor({ timeout: GENERATION_TIMEOUT_MS });
  await page.getByRole("link", { name: "Review the drafts" }).click();
  await page.waitForURL(/\/drafts$/);
  expect((await page.locator("mark").count()) > 0, "each draft's passage is marked in the page text");
  expect(
    (await page.locator("svg.source-image rect.source-word").count()) > 0,
    "and boxed on the page image",
  );
  await check(page, "drafts");
  const drafts = page.locator("li.draft");
  const before = await drafts.count();
  expect(before > 0, "the test LLM made drafts");
  const first = drafts.first();
  const front = first.getByRole("textbox").first();
  const edited = `${(await front.inputValue()).trim()} (edited)`;
  await front.fill(edited);
  await first.getByRole("button", { name: "Accept" }).click();
  await page.waitForURL(/\/drafts$/);
  expect((await drafts.count()) === before - 1, "the accepted draft leaves the list");
  await page.goto(`${WEB_URL}/decks`);
  await page.getByRole("link", { name: "Capitals" }).click();
  expect((await text(page)).includes("(edited)"), "the edited draft is a card in the deck");

  // The deck exports for Anki: a zip package, downloaded through the same origin.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export for Anki (.apkg)" }).click(),
  ]);
  expect(download.suggestedFilename() === "Capitals.apkg", `the package's name: ${download.suggestedFilename()}`);
  const packaged = readFileSync(await download.path());
  expect(packaged.subarray(0, 2).toString() === "PK", "an .apkg is a zip file");

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
