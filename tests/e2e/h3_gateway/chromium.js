// Shared by the HTTP/3 browser scripts here: their command line, and Debian Chromium (headless,
// driven by npm puppeteer-core) with QUIC forced on for the gateway's origin and its
// self-signed certificate trusted by SPKI hash.
//   const {args, origin, wait, out, withBrowser} = require("./chromium");
//   withBrowser(async (browser) => { ... });   // closes the browser and its profile after
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const puppeteer = require(path.join(__dirname, "..", "node_modules", "puppeteer-core"));

// --port N --spki BASE64 [--chromium PATH] [--timeout MS] [--netlog FILE] and any other --name value pairs.
const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const origin = `https://localhost:${args.port}`;
const wait = Number(args.timeout || 20000);

function out(o) { process.stdout.write(JSON.stringify(o) + "\n"); }

// Runs body(browser) and closes the browser; an error is printed as {"error": ...}, exit 1.
function withBrowser(body) {
  const run = async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "h3-chromium-"));
    const browser = await puppeteer.launch({
      executablePath: args.chromium || "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", `--user-data-dir=${dir}`, "--enable-quic",
             `--origin-to-force-quic-on=localhost:${args.port}`, "--host-resolver-rules=MAP localhost 127.0.0.1",
             `--ignore-certificate-errors-spki-list=${args.spki}`, ...(args.netlog ? [`--log-net-log=${args.netlog}`] : [])],
      timeout: wait,
    });
    try {
      await body(browser);
    } finally {
      await browser.close();
      fs.rmSync(dir, {recursive: true, force: true});
    }
  };
  run().catch((e) => { out({error: String(e && e.stack || e)}); process.exit(1); });
}

module.exports = {args, origin, wait, out, withBrowser};
