// Drives the agent's label forms in headless Chromium, as an engineer would: opens a page,
// fills a form or clicks a remove button, waits for the page to show the server's answer,
// and prints one JSON line of what it saw (for tests/web_labels.rs to check).
//
//   node label.mjs '{"action":"label","url":...,"kind":...,"note":...}'
//   node label.mjs '{"action":"maintenance","url":...,"asset":...,"from":...,"to":...,"note":...}'
//   node label.mjs '{"action":"remove","url":...,"id":...}'
// Optional "user"/"password": HTTP Basic credentials, answered when the agent asks;
// "screenshot": a PNG path for the page after the action and a reload.
import { chromium } from "playwright-core";

const job = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});
const out = { console: [] };
try {
  const context = await browser.newContext(
    job.user ? { httpCredentials: { username: job.user, password: job.password } } : {},
  );
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  // Script errors and policy violations show here; the test wants none.
  // (Refused requests are answers the test expects, e.g. /csrf without users: not errors.)
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) out.console.push(m.text());
  });
  page.on("pageerror", (e) => out.console.push(String(e)));
  page.on("dialog", (d) => d.accept());
  const reply = await page.goto(job.url);
  out.status = reply.status();
  out.title = await page.title();
  if (job.action === "label") {
    const form = page.locator("form.label-form");
    out.prefilled = {
      from: await form.locator("input[name=from]").inputValue(),
      to: await form.locator("input[name=to]").inputValue(),
    };
    await form.locator("select[name=as]").selectOption(job.kind);
    await form.locator("input[name=note]").fill(job.note);
    await form.locator("button[type=submit]").click();
    out.result = await answer(form.locator(".result"));
  } else if (job.action === "maintenance") {
    const form = page.locator("form#maintenance-form");
    await form.locator("select[name=asset]").selectOption(job.asset);
    await form.locator("input[name=from]").fill(job.from);
    await form.locator("input[name=to]").fill(job.to);
    await form.locator("input[name=note]").fill(job.note);
    await form.locator("button[type=submit]").click();
    out.result = await answer(form.locator(".result"));
  } else if (job.action === "remove") {
    await page.locator(`button.label-remove[data-id="${job.id}"]`).click();
    out.result = await answer(page.locator("#label-removed"));
    out.row_left = await page.locator(`button.label-remove[data-id="${job.id}"]`).count();
  } else {
    throw new Error(`unknown action ${job.action}`);
  }
  // What the lists show after a reload (server-rendered).
  await page.reload();
  out.after = await page.content();
  if (job.screenshot) await page.screenshot({ path: job.screenshot, fullPage: true });
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

// The status line's text and class once the server has answered.
async function answer(el) {
  await el.evaluate((node) => new Promise((done) => {
    const ready = () => node.textContent !== "" && node.textContent !== "sending";
    if (ready()) return done();
    // No answer (the script did not run, or the server hangs): report what is there.
    setTimeout(done, 15000);
    new MutationObserver(() => { if (ready()) done(); }).observe(node, { childList: true, characterData: true, subtree: true });
  }));
  const ok = await el.evaluate((node) => node.classList.contains("ok"));
  return { text: await el.textContent(), class: ok ? "ok" : "bad" };
}
