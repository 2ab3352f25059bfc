// Drives Debian's Chromium (headless, through playwright-core; no browser download) for the
// dashboard tests, one JSON command per line on stdin, one JSON answer per line on stdout:
// {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
//
// Usage: node driver.js [--chromium /usr/bin/chromium]
//
// Commands (each in the current page unless it opens one):
//   {"cmd": "page", "name": "ana"}                 a new browser context (own cookies) and page
//   {"cmd": "use", "name": "ana"}                  switch to that page
//   {"cmd": "goto", "url": "http://..."}           navigate and wait for the load
//   {"cmd": "fill", "selector": "...", "value": "..."}
//   {"cmd": "click", "selector": "..."}            waits for it to be visible first
//   {"cmd": "submit", "selector": "..."}           click and wait for the navigation it starts
//   {"cmd": "wait", "selector": "...", "timeout_ms": 10000}   until visible
//   {"cmd": "gone", "selector": "...", "timeout_ms": 10000}   until absent or hidden
//   {"cmd": "text", "selector": "..."}             its text content
//   {"cmd": "count", "selector": "..."}            how many elements match
//   {"cmd": "dialogs"}                             messages of alert() boxes so far (accepted)
//   {"cmd": "screenshot", "path": "..."}           the whole page, PNG
//   {"cmd": "close"}
// Prints {"ok": true, "value": "ready"} once the browser runs.
"use strict";
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const chromiumPath = (() => {
  const i = process.argv.indexOf("--chromium");
  return i > 0 ? process.argv[i + 1] : "/usr/bin/chromium";
})();

function reply(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

async function main() {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const pages = new Map();
  const dialogs = [];
  let page = null;
  const handlers = {
    async page(c) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      page = await context.newPage();
      page.on("dialog", async (d) => {
        dialogs.push(d.message());
        await d.accept();
      });
      pages.set(c.name, page);
    },
    async use(c) {
      page = pages.get(c.name);
      if (!page) throw new Error(`no page ${c.name}`);
    },
    async goto(c) {
      const response = await page.goto(c.url, { waitUntil: "load" });
      return response ? response.status() : null;
    },
    async fill(c) {
      await page.fill(c.selector, c.value);
    },
    async click(c) {
      await page.click(c.selector, { timeout: c.timeout_ms || 10000 });
    },
    async submit(c) {
      await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click(c.selector)]);
      return page.url();
    },
    async wait(c) {
      await page.waitForSelector(c.selector, { state: "visible", timeout: c.timeout_ms || 10000 });
    },
    async gone(c) {
      await page.waitForSelector(c.selector, { state: "hidden", timeout: c.timeout_ms || 10000 });
    },
    async text(c) {
      return await page.textContent(c.selector, { timeout: c.timeout_ms || 10000 });
    },
    async count(c) {
      return await page.locator(c.selector).count();
    },
    async dialogs() {
      return dialogs.splice(0);
    },
    async screenshot(c) {
      await page.screenshot({ path: c.path, fullPage: true });
    },
    async close() {
      await browser.close();
      process.exit(0);
    },
  };
  reply({ ok: true, value: "ready" });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    let command;
    try {
      command = JSON.parse(line);
      const handler = handlers[command.cmd];
      if (!handler) throw new Error(`unknown command ${command.cmd}`);
      const value = await handler(command);
      reply({ ok: true, value: value === undefined ? null : value });
    } catch (e) {
      reply({ ok: false, error: String(e && e.message ? e.message : e) });
    }
  }
  await browser.close();
}

main().catch((e) => {
  reply({ ok: false, error: String(e) });
  process.exit(1);
});
