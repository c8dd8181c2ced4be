// Debian Chromium (headless, npm puppeteer-core) opening a WebSocket through h3-gateway's TLS
// listener over HTTP/2: Chromium sends RFC 8441 extended CONNECT on an HTTP/2 connection it
// already has when the server's SETTINGS allow it, so the page is loaded first (HTTP/2 by ALPN),
// then `new WebSocket("wss://...")` from it. The backend (ws_peer.js server) welcomes and echoes.
// Prints one JSON line: {"protocol":...,"messages":[...],"code":N} or {"error":...}.
//   node h2_ws_browser.js --origin https://localhost:PORT --page /path --ws /path --spki BASE64
//                         [--chromium /usr/bin/chromium] [--timeout MS]
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const puppeteer = require(path.join(__dirname, "..", "node_modules", "puppeteer-core"));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const wait = Number(args.timeout || 20000);  // every wait is bounded by this

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rproxy-chromium-"));
  // The gateway's certificate is trusted by its public key (a test CA is not in Chromium's store).
  const browser = await puppeteer.launch({
    executablePath: args.chromium || "/usr/bin/chromium",
    headless: true,
    timeout: wait,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`,
           `--ignore-certificate-errors-spki-list=${args.spki}`],
  });
  try {
    const page = await browser.newPage();
    const resp = await page.goto(args.origin + args.page, {waitUntil: "load", timeout: wait});
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    const result = await page.evaluate((url, t) => new Promise((resolve) => {
      const messages = [];
      const ws = new WebSocket(url);
      const timer = setTimeout(() => resolve({messages, timeout: true}), t);
      ws.onmessage = (e) => {
        messages.push(e.data);
        if (messages.length === 1) ws.send("hello over h2");
        else if (messages.length === 2) ws.close(1000, "done");
      };
      ws.onclose = (e) => { clearTimeout(timer); resolve({messages, code: e.code}); };
    }), args.origin.replace(/^https/, "wss") + args.ws, wait);
    process.stdout.write(JSON.stringify({page_status: resp.status(), protocol, ...result}) + "\n");
  } catch (e) {
    process.stdout.write(JSON.stringify({error: String(e && e.stack || e)}) + "\n");
    process.exitCode = 1;
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
})();
