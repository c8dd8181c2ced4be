// Debian Chromium (headless, driven by npm puppeteer-core) on apps/ws-server's chat page: two
// browser pages and one npm `ws` client in one room, each sending a message the others must
// see. Prints one JSON line with what each saw; tests/e2e/ws_server_browser_test.py checks it.
//   node chat.js --port N [--chromium /usr/bin/chromium] [--timeout MS]
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const modules = path.join(__dirname, "..", "node_modules");
const puppeteer = require(path.join(modules, "puppeteer-core"));
const WebSocket = require(path.join(modules, "ws"));

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const origin = `http://127.0.0.1:${args.port}`;
const wait = Number(args.timeout || 20000);  // every wait is bounded by this

function out(o) { process.stdout.write(JSON.stringify(o) + "\n"); }

/// Opens the chat page as `user` in `room` and connects (the page joins, or creates the room).
async function open_page(browser, user, room) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const resp = await page.goto(origin + "/", {waitUntil: "load", timeout: wait});
  if (resp.status() !== 200) throw new Error(`GET / answered ${resp.status()}`);
  await page.evaluate((u, r) => { document.getElementById("user").value = u; document.getElementById("room").value = r; }, user, room);
  await page.click("#connect");
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected", {timeout: wait, polling: "mutation"});
  await page.waitForFunction((r) => [...document.querySelectorAll("#log div")].some((d) => d.textContent.startsWith("in " + r + " as ")),
                             {timeout: wait, polling: "mutation"}, room);
  return {page, errors};
}

/// Types `text` into the page's message box and presses Enter, as a user would.
async function type_message(page, text) {
  await page.bringToFront();
  await page.type("#text", text);
  await page.keyboard.press("Enter");
}

/// Waits until the page's log has a line equal to `line`. Waits re-check on each DOM change
/// ("mutation"): the default, requestAnimationFrame, never runs in a page that is not in front.
function page_shows(page, line) {
  return page.waitForFunction((l) => [...document.querySelectorAll("#log div")].some((d) => d.textContent === l), {timeout: wait, polling: "mutation"}, line);
}

const log_of = (page) => page.evaluate(() => [...document.querySelectorAll("#log div")].map((d) => d.textContent));

/// An npm ws client that records the room's messages.
function ws_client(user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${args.port}/?user=${user}`);
    const c = {ws, frames: [], waiters: []};
    c.poke = () => { c.waiters = c.waiters.filter(([cond, done]) => !(cond() && (done(), true))); };
    c.until = (cond, what) => new Promise((res, rej) => {
      if (cond()) return res();
      const t = setTimeout(() => rej(new Error("timed out waiting for " + what)), wait);
      c.waiters.push([cond, () => { clearTimeout(t); res(); }]);
    });
    ws.on("message", (d) => { c.frames.push(JSON.parse(d.toString())); c.poke(); });
    ws.on("open", () => resolve(c));
    ws.on("error", reject);
  });
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "rproxy-chromium-"));
  const browser = await puppeteer.launch({
    executablePath: args.chromium || "/usr/bin/chromium",
    headless: true,
    timeout: wait,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", `--user-data-dir=${profile}`],
  });
  const pages = {};
  try {
    const version = await browser.version();
    const room = "browsers";
    const alice = await open_page(browser, "alice", room);   // creates the room (its join is not_found)
    const carol = await open_page(browser, "carol", room);   // joins it
    Object.assign(pages, {alice: alice.page, carol: carol.page});
    const bob = await ws_client("bob");
    bob.ws.send(JSON.stringify({op: "join", room, id: 1}));
    await bob.until(() => bob.frames.some((f) => f.id === 1), "bob's join reply");
    const joined = bob.frames.find((f) => f.id === 1);

    // Each sends one message; everyone must see all three, in the room's order.
    await type_message(alice.page, "hello from alice");
    await page_shows(carol.page, `[${room}] alice: hello from alice`);
    await type_message(carol.page, "carol <b>here</b> & there");
    await page_shows(alice.page, `[${room}] carol: carol <b>here</b> & there`);
    bob.ws.send(JSON.stringify({op: "message", room, text: "bob says hi", id: 2}));
    for (const p of [alice.page, carol.page]) await page_shows(p, `[${room}] bob: bob says hi`);
    await bob.until(() => bob.frames.filter((f) => f.type === "message").length >= 3, "bob's three messages");

    // The markup in carol's text stayed text: no element was made from it.
    const markup = await alice.page.evaluate(() => document.querySelectorAll("#log b").length);
    const presence = await alice.page.evaluate(() => [...document.querySelectorAll("#log div.sys")].map((d) => d.textContent));
    out({
      chromium: version,
      bob_join: joined,
      bob_messages: bob.frames.filter((f) => f.type === "message").map((f) => ({from: f.from, text: f.text, msg_id: f.msg_id})),
      alice_log: await log_of(alice.page),
      carol_log: await log_of(carol.page),
      alice_presence: presence,
      markup_elements: markup,
      page_errors: alice.errors.concat(carol.errors),
    });
    bob.ws.close();
  } catch (e) {
    // What each page showed, and what was left in its message box: the test prints it.
    const seen = {};
    for (const [who, p] of Object.entries(pages))
      seen[who] = await p.evaluate(() => ({log: [...document.querySelectorAll("#log div")].map((d) => d.textContent),
                                           text: document.getElementById("text").value,
                                           status: document.getElementById("status").textContent})).catch((x) => String(x));
    e.message += " | pages: " + JSON.stringify(seen);
    throw e;
  } finally {
    await browser.close();
    fs.rmSync(profile, {recursive: true, force: true});
  }
}

main().catch((e) => { out({error: String(e && e.stack || e)}); process.exit(1); });
