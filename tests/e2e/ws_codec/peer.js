// The npm `ws` package's frame sender and receiver (lib/sender.js, lib/receiver.js,
// lib/permessage-deflate.js) as a filter, the independent side of ws_codec_test.py.
//
//   node peer.js encode   stdin: {"role", "deflate", "items"}  stdout: {"wire": HEX}
//   node peer.js decode   stdin: {"role", "deflate", "wire"}   stdout: {"items", "error"}
//
// role: this endpoint's side ("client" masks what it sends and expects unmasked frames);
// deflate: null or the negotiated parameters {server_no_context_takeover,
// client_no_context_takeover, server_max_window_bits, client_max_window_bits};
// items: [{type: "text"|"binary"|"ping"|"pong"|"close", data: HEX, code, fragments}].
'use strict';

const path = require('path');
const lib = path.join(__dirname, '..', 'node_modules', 'ws', 'lib');
const Sender = require(path.join(lib, 'sender.js'));
const Receiver = require(path.join(lib, 'receiver.js'));
const PerMessageDeflate = require(path.join(lib, 'permessage-deflate.js'));
const { kStatusCode } = require(path.join(lib, 'constants.js'));

function extensions(role, deflate) {
  if (!deflate) return {};
  const pmd = new PerMessageDeflate({ threshold: 0, isServer: role === 'server' });
  pmd.params = deflate;  // as acceptAsServer/acceptAsClient would leave them
  return { [PerMessageDeflate.extensionName]: pmd };
}

async function encode(req) {
  const chunks = [];
  const socket = {
    cork() {},
    uncork() {},
    write(buf, cb) {
      chunks.push(Buffer.from(buf));
      if (cb) process.nextTick(cb);
      return true;
    }
  };
  const mask = req.role === 'client';
  const sender = new Sender(socket, extensions(req.role, req.deflate));
  const done = (fn) => new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
  for (const item of req.items) {
    const data = Buffer.from(item.data, 'hex');
    if (item.type === 'ping') await done((cb) => sender.ping(data, mask, cb));
    else if (item.type === 'pong') await done((cb) => sender.pong(data, mask, cb));
    else if (item.type === 'close') await done((cb) => sender.close(item.code, data, mask, cb));
    else {
      const n = Math.max(1, item.fragments || 1);
      const size = Math.ceil(data.length / n);
      for (let i = 0; i < n; i++) {
        const piece = data.subarray(i * size, Math.min(data.length, (i + 1) * size));
        const opts = { binary: item.type === 'binary', compress: !!req.deflate, fin: i === n - 1, mask };
        await done((cb) => sender.send(piece, opts, cb));
      }
    }
  }
  return { wire: Buffer.concat(chunks).toString('hex') };
}

function decode(req) {
  return new Promise((resolve) => {
    const items = [];
    const receiver = new Receiver({
      isServer: req.role === 'server',
      extensions: extensions(req.role, req.deflate),
      maxPayload: req.max_payload || 0
    });
    receiver.on('message', (data, isBinary) => {
      items.push({ type: isBinary ? 'binary' : 'text', data: Buffer.from(data).toString('hex') });
    });
    receiver.on('ping', (data) => items.push({ type: 'ping', data: data.toString('hex') }));
    receiver.on('pong', (data) => items.push({ type: 'pong', data: data.toString('hex') }));
    receiver.on('conclude', (code, reason) => items.push({ type: 'close', code, data: reason.toString('hex') }));
    receiver.on('error', (err) => resolve({ items, error: { code: err[kStatusCode], message: err.message } }));
    receiver.on('finish', () => resolve({ items, error: null }));
    const wire = Buffer.from(req.wire, 'hex');
    // In pieces, so the receiver's own buffering is exercised too.
    for (let i = 0; i < wire.length; i += 1000) receiver.write(wire.subarray(i, i + 1000));
    receiver.end();
  });
}

async function main() {
  const input = [];
  for await (const chunk of process.stdin) input.push(chunk);
  const req = JSON.parse(Buffer.concat(input).toString('utf8'));
  const out = process.argv[2] === 'encode' ? await encode(req) : await decode(req);
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  process.stderr.write(`peer.js: ${err.stack}\n`);
  process.exit(1);
});
