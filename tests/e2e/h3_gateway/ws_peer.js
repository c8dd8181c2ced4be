// npm ws 8 peers for the h3-gateway upstream tests (h3_gateway_upstream_test.py).
//
//   node ws_peer.js server
//     A WebSocket backend on 127.0.0.1 (port printed as {"port":N}). Each upgrade request it
//     sees is printed as {"upgrade":PATH,"headers":{...}} before it is answered. Paths:
//       /refused...   the upgrade is refused: 403 with body "backend says no"
//       /close-first  after the welcome, the server closes with code 4001
//       anything else welcome message {"welcome":PATH,"headers":{...}}, then every message is
//                     echoed back (text: "echo:" + text; binary: the same bytes)
//   node ws_peer.js client URL [--header NAME:VALUE]... [--messages N] [--binary BYTES] [--wait-close] [--ca PEM]
//     Opens URL, waits for the welcome, sends N text messages and one binary message, checks
//     each echo, then closes with 1000 (or, with --wait-close, waits for the peer to close).
//     wss:// URLs are verified against --ca.
//     Prints one JSON line: {"welcome":...,"echoes":N,"binary_ok":bool,"close":CODE} or
//     {"status":S,"body":...} when the upgrade was refused, or {"error":...}.
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { WebSocket, WebSocketServer } = require(path.join(__dirname, '..', 'node_modules', 'ws'));

function server() {
  const srv = http.createServer((req, res) => { res.writeHead(404); res.end('not a websocket'); });
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 * 1024 });
  srv.on('upgrade', (req, socket, head) => {
    process.stdout.write(JSON.stringify({ upgrade: req.url, headers: req.headers }) + '\n');
    if (req.url.startsWith('/refused')) {
      const body = 'backend says no';
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ welcome: req.url, headers: req.headers }));
      if (req.url === '/close-first') {
        ws.close(4001, 'server closes');
        return;
      }
      ws.on('message', (data, isBinary) => {
        if (isBinary) ws.send(data, { binary: true });
        else ws.send('echo:' + data.toString());
      });
    });
  });
  srv.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: srv.address().port }) + '\n'));
}

function client(url, args) {
  const headers = {};
  let messages = 5, binary = 0, waitClose = false, ca;
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === '--header') {
      const [k, ...v] = args[++i].split(':');
      headers[k] = v.join(':');
    } else if (args[i] === '--messages') messages = Number(args[++i]);
    else if (args[i] === '--binary') binary = Number(args[++i]);
    else if (args[i] === '--wait-close') waitClose = true;
    else if (args[i] === '--ca') ca = fs.readFileSync(args[++i]);
  }
  const out = { echoes: 0, binary_ok: binary === 0 };
  const done = (extra) => {
    process.stdout.write(JSON.stringify(Object.assign(out, extra)) + '\n');
    process.exit(0);
  };
  const timer = setTimeout(() => done({ error: 'timed out' }), 20000);
  const ws = new WebSocket(url, { headers, maxPayload: 64 * 1024 * 1024, ca });
  const blob = crypto.randomBytes(binary);
  let state = 'welcome';
  ws.on('unexpected-response', (req, res) => {
    let body = '';
    res.on('data', (d) => { body += d; });
    res.on('end', () => { clearTimeout(timer); done({ status: res.statusCode, headers: res.headers, body }); });
  });
  ws.on('error', (e) => { clearTimeout(timer); done({ error: String(e) }); });
  ws.on('close', (code, reason) => { clearTimeout(timer); done({ close: code, reason: reason.toString() }); });
  ws.on('message', (data, isBinary) => {
    if (state === 'welcome') {
      out.welcome = JSON.parse(data.toString());
      if (waitClose) return;
      state = 'text';
      for (let i = 0; i < messages; ++i) ws.send('m' + i);
      if (messages === 0) state = 'binary';
      if (binary > 0) ws.send(blob, { binary: true });
      if (messages === 0 && binary === 0) ws.close(1000, 'bye');
      return;
    }
    if (!isBinary && data.toString() === 'echo:m' + out.echoes) {
      if (++out.echoes === messages && binary === 0) ws.close(1000, 'bye');
      return;
    }
    if (isBinary && out.echoes === messages) {
      out.binary_ok = Buffer.compare(Buffer.from(data), blob) === 0;
      ws.close(1000, 'bye');
      return;
    }
    out.unexpected = (out.unexpected || 0) + 1;
  });
}

if (process.argv[2] === 'server') server();
else client(process.argv[3], process.argv.slice(4));
