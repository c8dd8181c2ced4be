// wss scenarios against apps/ws-server with npm `ws` 8 clients; each prints one JSON line with
// what it saw, and tests/e2e/ws_server_tls_test.py checks it.
//   node tls_client.js SCENARIO --port N --tls_port M [--ca FILE]
"use strict";
const fs = require("fs");
const path = require("path");
const WebSocket = require(path.join(__dirname, "..", "node_modules", "ws"));

const args = {};
for (let i = 3; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const plain = `ws://127.0.0.1:${args.port}/`;
const secure = `wss://127.0.0.1:${args.tls_port}/`;
const ca = args.ca ? fs.readFileSync(args.ca) : undefined;

function out(o) { process.stdout.write(JSON.stringify(o) + "\n"); }
function fail(why) { out({error: why}); process.exit(1); }
setTimeout(() => fail("scenario timed out"), Number(args.timeout || 30000)).unref();

class Client {
  constructor(url, opts = {}) {
    this.frames = [];
    this.waiters = [];
    this.next = 0;
    this.pings = 0;
    this.ws = new WebSocket(url, opts);
    this.closed = null;
    this.ws.on("message", (d) => { this.frames.push(JSON.parse(d.toString())); this.poke(); });
    this.ws.on("ping", () => { ++this.pings; this.poke(); });
    this.ws.on("close", (code, reason) => { this.closed = {code, reason: reason.toString()}; this.poke(); });
    this.ws.on("error", (e) => { this.error = e.message; this.poke(); });
  }
  poke() { this.waiters = this.waiters.filter(([cond, done]) => !(cond() && (done(), true))); }
  until(cond, what) {
    return new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const t = setTimeout(() => reject(new Error("timed out waiting for " + what + " " + JSON.stringify(this.frames.slice(-2)).slice(0, 300))), 20000);
      this.waiters.push([cond, () => { clearTimeout(t); resolve(); }]);
    });
  }
  opened() {
    return new Promise((res, rej) => {
      this.ws.once("open", res);
      this.ws.once("close", () => rej(new Error("closed before open: " + this.error)));
    });
  }
  async ask(o) {
    o.id = ++this.next;
    this.ws.send(JSON.stringify(o));
    await this.until(() => this.reply(o.id), `the reply to ${o.op} ${o.id}`);
    return this.reply(o.id);
  }
  reply(id) { return this.frames.find((f) => (f.type === "ok" || f.type === "error") && f.id === id); }
  of(type) { return this.frames.filter((f) => f.type === type); }
  /// The server certificate's SHA-256 fingerprint (wss only).
  fingerprint() { return this.ws._socket && this.ws._socket.getPeerCertificate ? this.ws._socket.getPeerCertificate().fingerprint256 : null; }
}

async function open(url, opts) { const c = new Client(url, opts); await c.opened(); return c; }

const scenarios = {
  /// Two wss members (one with permessage-deflate) and a plain ws member in one room: messages
  /// both ways, history replay on join, a private message from ws to wss, a burst of large
  /// messages from a ws member that every wss member gets whole and in order, then the close.
  async mixed() {
    const alice = await open(secure + "?user=alice", {ca});
    const bob = await open(secure + "?user=bob", {ca, perMessageDeflate: true});
    const carol = await open(plain + "?user=carol");
    const created = await alice.ask({op: "create", room: "mixed"});
    await alice.ask({op: "message", room: "mixed", text: "before bob"});
    const bj = await bob.ask({op: "join", room: "mixed"});
    await bob.until(() => bob.of("message").length === 1, "bob's replayed history");
    const cj = await carol.ask({op: "join", room: "mixed"});
    await carol.ask({op: "message", room: "mixed", text: "from ws"});
    await bob.ask({op: "message", room: "mixed", text: "from wss"});
    await alice.until(() => alice.of("message").length === 3, "alice's three messages");
    await carol.until(() => carol.of("message").length === 3, "carol's three messages");
    const pm = await carol.ask({op: "private_message", user: "alice", text: "psst"});
    await alice.until(() => alice.of("private_message").length === 1, "alice's private message");
    const burst = Number(args.burst || 20);  // 600 KB: under the send queue's 1 MiB, so nothing is dropped
    const big = "x".repeat(30000);
    for (let i = 0; i < burst; ++i) carol.ws.send(JSON.stringify({op: "message", room: "mixed", text: `${i}:${big}`}));
    for (const c of [alice, bob]) await c.until(() => c.of("message").length === 3 + burst, `the burst (${c.of("message").length - 3} of ${burst})`);
    const order = (c) => c.of("message").slice(3).every((m, i) => m.text === `${i}:${big}`);
    out({created, bob_join: bj, carol_join: cj, pm,
         alice_texts: alice.of("message").slice(0, 3).map((m) => m.text),
         bob_texts: bob.of("message").slice(0, 3).map((m) => m.text),
         carol_texts: carol.of("message").slice(0, 3).map((m) => m.text),
         alice_private: alice.of("private_message"), burst_in_order: [order(alice), order(bob)],
         bob_deflate: bob.ws.extensions, fingerprint: alice.fingerprint()});
    for (const c of [alice, bob, carol]) c.ws.close(1000);
    await Promise.all([alice, bob, carol].map((c) => c.until(() => c.closed, "close")));
    out({closes: [alice, bob, carol].map((c) => c.closed)});
  },

  /// One wss connection: the certificate's fingerprint, or why it failed.
  async connect() {
    const c = new Client(secure + "?user=probe", ca ? {ca} : {});
    try {
      await c.opened();
    } catch (e) {
      out({opened: false, error_message: c.error || e.message});
      return;
    }
    out({opened: true, fingerprint: c.fingerprint()});
    c.ws.close(1000);
    await c.until(() => c.closed, "close");
  },

  /// A wss client that stays silent: the server's idle ping comes (ws answers it) and the
  /// connection stays open.
  async idle() {
    const c = await open(secure + "?user=idle", {ca});
    await c.until(() => c.pings >= 2, "two pings");
    out({pings: c.pings, closed: c.closed});
    c.ws.close(1000);
    await c.until(() => c.closed, "close");
  },
};

const s = scenarios[process.argv[2]];
if (!s) fail("unknown scenario " + process.argv[2]);
s().catch((e) => fail(e.message));
