// Debian Chromium resuming HTTP/3 connections to apps/h3-gateway with 0-RTT: one browser, one
// profile; each step waits (bounded poll of the gateway's admin /metrics) until no QUIC
// connection is open, so the next request needs a new connection, which Chromium starts with
// the session ticket and transport parameters it kept from the previous one: 0-RTT when the
// server allows it. The steps, each a top-level navigation:
//   1. GET  /first    (a full handshake: the ticket)
//   2. GET  /early    (resumed: sent in 0-RTT if the gateway accepts early data; up to --attempts times)
//   3. POST /post     (resumed; the navigation's method and body set by request interception)
//   4. PUT  /put      (resumed; likewise: idempotent but not safe, RFC 9110 §9.2)
// Prints one JSON line: each step's status, body (the backend's echo, JSON), protocol and Alt-Svc.
//
// Timing: Chromium (BoringSSL) reports a ticket's age in whole seconds (obfuscated_ticket_age),
// GnuTLS in milliseconds, and GnuTLS refuses early data when the client's age exceeds its own
// (anti_replay.c: ILLEGAL_PARAMETER, then a 1-RTT handshake). So each step starts a whole
// number of seconds (+30 ms) after the previous page loaded (its connection gave the ticket):
// the client's whole seconds are then no more than the real age, unless that load straddled a
// second. Chromium 156 hands a navigation to the QUIC session some 10 ms after it started the
// handshake, so the test puts a 50 ms relay in front of the gateway: on loopback (1 ms) the
// handshake is over by then and the GET goes in 1-RTT (net log: AttemptedAndSucceeded, only the
// control stream in 0-RTT). The GET is tried up to --attempts times (default 20); through the
// relay the first one usually carries it. (Found with GNUTLS_DEBUG_LEVEL=4 on the gateway and
// --netlog FILE here.)
//   node h3_0rtt.js --port N --spki BASE64 --admin ADMIN_PORT [--attempts N] [--chromium PATH] [--timeout MS]
"use strict";
const http = require("http");
const {args, origin, wait, out, withBrowser} = require("./chromium");

function scrape() {
  return new Promise((resolve, reject) => {
    const req = http.get({host: "127.0.0.1", port: Number(args.admin), path: "/metrics", timeout: 2000}, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { text += d; });
      res.on("end", () => resolve(text));
    });
    req.on("timeout", () => req.destroy(new Error("metrics: timeout")));
    req.on("error", reject);
  });
}

// Until the gateway has no QUIC connection open (the idle timeout ended the last one); bounded.
async function noConnections() {
  const until = Date.now() + wait;
  for (;;) {
    const m = /^h3gw_quic_connections_active (\S+)$/m.exec(await scrape());
    if (m && Number(m[1]) === 0) return;
    if (Date.now() > until) throw new Error(`QUIC connections still open after ${wait} ms: ${m && m[1]}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The moment the last page finished loading (the ticket of its connection had come by then).
let lastLoaded = 0;

// Until the wall clock is 30 ms past a whole number of seconds after lastLoaded (at most 1 s
// from now), so the client's whole seconds of ticket age do not exceed the real age.
async function afterWholeSeconds() {
  if (!lastLoaded) return;
  const now = Date.now();
  const target = lastLoaded + 30 + 1000 * Math.max(0, Math.ceil((now - lastLoaded - 30) / 1000));
  if (target > now) await new Promise((r) => setTimeout(r, target - now));
}

async function step(page, path, method, post) {
  await noConnections();
  await afterWholeSeconds();
  if (method !== undefined) {
    await page.setRequestInterception(true);
    const rewrite = (r) => {
      if (r.isNavigationRequest() && r.url() === origin + path)
        r.continue({method, postData: post, headers: {...r.headers(), "content-type": "text/plain"}});
      else r.continue();
    };
    page.on("request", rewrite);
    try {
      return await load(page, path);
    } finally {
      page.off("request", rewrite);
      await page.setRequestInterception(false);
    }
  }
  return load(page, path);
}

async function load(page, path) {
  const resp = await page.goto(origin + path, {waitUntil: "load", timeout: wait});
  const text = await resp.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = text; }
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  lastLoaded = Date.now();
  return {status: resp.status(), body, protocol, alt_svc: resp.headers()["alt-svc"] || null};
}

withBrowser(async (browser) => {
  const page = await browser.newPage();
  const result = {chromium: await browser.version()};
  result.first = await step(page, "/first");
  // Up to --attempts resumptions until one carried the GET in 0-RTT (the backend's echo shows the
  // gateway's Early-Data: 1).
  const attempts = Number(args.attempts || 20);
  result.early_attempts = 0;
  while (result.early_attempts < attempts) {
    ++result.early_attempts;
    result.early = await step(page, "/early");
    if (result.early.body && result.early.body.headers && result.early.body.headers["early-data"] === "1") break;
  }
  result.post = await step(page, "/post", "POST", "payload-0rtt");
  result.put = await step(page, "/put", "PUT", "put-0rtt");
  out(result);
});
