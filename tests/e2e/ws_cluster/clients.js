// npm `ws` 8 clients driven line by line from a test (tests/e2e/ws_cluster_test.py): each stdin
// line is one JSON command, each answer one JSON line on stdout.
//   {"cmd":"open","name":"alice","port":N,"user":"alice"}     -> {"ok":true} or {"error":...}
//     (with "local":"127.0.0.9": from that source address)
//   {"cmd":"ask","name":"alice","req":{"op":"join",...}}      -> the reply frame
//   {"cmd":"wait","name":"bob","type":"message","count":5}    -> {"frames":[...]} (the first `count` of that type)
//   {"cmd":"frames","name":"bob"}                             -> {"frames":[...]} (all so far)
//   {"cmd":"close","name":"bob"}                              -> {"closed":{code,reason}}
// A wait that does not hold within `timeout` ms (default 20000) answers {"error":...}.
"use strict";
const path = require("path");
const readline = require("readline");
const WebSocket = require(path.join(__dirname, "..", "node_modules", "ws"));

const clients = new Map();

class Client {
  constructor(url, local) {
    this.frames = [];
    this.waiters = [];
    this.next = 0;
    this.closed = null;
    this.ws = new WebSocket(url, local ? {localAddress: local} : undefined);
    this.ws.on("message", (d) => { this.frames.push(JSON.parse(d.toString())); this.poke(); });
    this.ws.on("close", (code, reason) => { this.closed = {code, reason: reason.toString()}; this.poke(); });
    this.ws.on("error", (e) => { this.error = e.message; this.poke(); });
    this.ws.on("open", () => this.poke());
  }
  poke() { this.waiters = this.waiters.filter(([cond, done]) => !(cond() && (done(), true))); }
  until(cond, what, ms) {
    return new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const t = setTimeout(() => reject(new Error("timed out waiting for " + what)), ms);
      this.waiters.push([cond, () => { clearTimeout(t); resolve(); }]);
    });
  }
  reply(id) { return this.frames.find((f) => (f.type === "ok" || f.type === "error") && f.id === id); }
  of(type) { return this.frames.filter((f) => f.type === type); }
}

async function run(c) {
  const ms = c.timeout || 20000;
  if (c.cmd === "open") {
    const cl = new Client(`ws://127.0.0.1:${c.port}/?user=${encodeURIComponent(c.user)}`, c.local);
    clients.set(c.name, cl);
    await cl.until(() => cl.ws.readyState === WebSocket.OPEN || cl.closed || cl.error, "open", ms);
    return cl.ws.readyState === WebSocket.OPEN ? {ok: true} : {error: "not open: " + (cl.error || JSON.stringify(cl.closed))};
  }
  const cl = clients.get(c.name);
  if (!cl) return {error: "no client " + c.name};
  if (c.cmd === "ask") {
    const id = ++cl.next;
    cl.ws.send(JSON.stringify(Object.assign({id}, c.req)));
    await cl.until(() => cl.reply(id), `the reply to ${c.req.op}`, ms);
    return cl.reply(id);
  }
  if (c.cmd === "send") {  // no wait: many requests in a row, replies collected later
    for (const r of c.reqs) cl.ws.send(JSON.stringify(Object.assign({id: ++cl.next}, r)));
    return {sent: c.reqs.length};
  }
  if (c.cmd === "wait") {
    const match = (f) => f.type === c.type && (!c.room || f.room === c.room);
    await cl.until(() => cl.frames.filter(match).length >= c.count || cl.closed,
                   `${c.count} ${c.type} frames on ${c.name} (has ${cl.frames.filter(match).length})`, ms);
    const got = cl.frames.filter(match);
    if (got.length < c.count) return {error: `${c.name} closed with ${got.length} ${c.type} frames`, closed: cl.closed};
    return {frames: got.slice(0, c.count)};
  }
  if (c.cmd === "frames") return {frames: cl.frames, closed: cl.closed};
  if (c.cmd === "close") {
    cl.ws.close(1000);
    await cl.until(() => cl.closed, "close", ms);
    return {closed: cl.closed};
  }
  return {error: "unknown command " + c.cmd};
}

let chain = Promise.resolve();
readline.createInterface({input: process.stdin}).on("line", (line) => {
  chain = chain.then(async () => {
    let out;
    try { out = await run(JSON.parse(line)); } catch (e) { out = {error: e.message}; }
    process.stdout.write(JSON.stringify(out) + "\n");
  });
}).on("close", () => chain.then(() => process.exit(0)));
