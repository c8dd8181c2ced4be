#!/usr/bin/env node
// A Minecraft test client made from npm minecraft-protocol (a third-party client), for the
// mc-proxy e2e tests and bench/mc. The TCP connection goes to --host:--port (the proxy); the
// handshake carries --vhost (default: --host), as a player who typed that name would send.
//
//   node client.js ping  --port P [--host 127.0.0.1] [--vhost NAME] [--version V] [--timeout MS]
//       prints the status JSON (plus "latency"), exit 0; on failure {"error": ...}, exit 1
//   node client.js login --port P [--host ..] [--vhost ..] [--version V] [--username U]
//                        [--chat TEXT] [--timeout MS] [--local SRC_IP]
//       prints JSON lines {"event":"login"|"message"|"echo"|"kick"|"error"|"timeout", ...};
//       exit 0 once the echo of TEXT came back, 2 when kicked ("reason" is the kick text),
//       3 on a connection error, 4 on timeout; with --stay 1 it stays connected after the echo
//       until kicked, the connection ends or the timeout
//   node client.js serve
//       reads one JSON request a line on stdin ({"id":..,"cmd":"ping"|"login",...same options})
//       and writes one JSON result a line ({"id":..,"ok":bool,...}): one process for many
//       requests, so tests do not pay Node's start-up for each login.
// --local binds the client socket to a source address (e.g. 127.0.0.7: a distinct "player IP").
// --vport sets the port written into the handshake (default: --port).
// A timeout always ends a request; nothing waits forever.
'use strict'
const net = require('net')
const readline = require('readline')
const mc = require('minecraft-protocol')
const nbt = require('prismarine-nbt')

process.on('uncaughtException', (e) => { out({ event: 'error', error: 'uncaught: ' + String(e && e.message || e) }); process.exit(3) })
process.stdout.on('error', () => {})

function out (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }

const parseArgs = require('./args')

// A chat component (JSON string, parsed object or NBT) as plain text.
function componentText (c) {
  if (c === undefined || c === null) return ''
  if (Buffer.isBuffer(c)) return c.toString()
  if (typeof c === 'string') {
    const s = c.trim()
    if (s.startsWith('{') || s.startsWith('[') || s.startsWith('"')) {
      try { return componentText(JSON.parse(s)) } catch (_) {}
    }
    return c
  }
  if (typeof c === 'object' && c.type && c.value !== undefined && !('text' in c) && !('translate' in c)) {
    try { return componentText(nbt.simplify(c)) } catch (_) {}
  }
  if (Array.isArray(c)) return c.map(componentText).join('')
  if (typeof c === 'object') {
    let s = ''
    if (c.text !== undefined) s += componentText(c.text)
    else if (c[''] !== undefined) s += componentText(c[''])
    if (c.translate !== undefined) s += c.translate + (c.with ? ' ' + c.with.map(componentText).join(' ') : '')
    if (c.extra) s += c.extra.map(componentText).join('')
    return s
  }
  return String(c)
}

function common (o) {
  const host = o.host || '127.0.0.1'
  const port = Number(o.port || 25565)
  const vhost = o.vhost || host
  const version = o.version || '1.20.4'
  const timeout = Number(o.timeout || 10000)
  // The handshake carries vhost; the TCP connection goes to host:port (no DNS, no SRV lookup).
  const connect = (client) => {
    const sock = net.connect({ port, host, localAddress: o.local || undefined })
    sock.on('error', (e) => client.emit('error', e))
    client.setSocket(sock)      // setSocket emits 'connect' when the socket connects
  }
  return { host, port, vhost, version, timeout, connect }
}

function doPing (o) {
  const c = common(o)
  return new Promise((resolve) => {
    let done = false
    const finish = (r) => { if (!done) { done = true; clearTimeout(t); resolve(r) } }
    const t = setTimeout(() => finish({ ok: false, error: 'timeout' }), c.timeout)
    mc.ping({
      host: c.vhost,
      port: Number(o['vport'] || c.port),
      version: c.version,
      closeTimeout: c.timeout,
      noPongTimeout: Math.min(c.timeout, 3000),
      validateChannelProtocol: false,
      connect: c.connect
    }).then((status) => {
      finish({ ok: true, status, motd: componentText(status.description) })
    }).catch((e) => finish({ ok: false, error: String(e && e.message || e) }))
  })
}

// events: callback for each event (for the CLI's streaming output)
function doLogin (o, events = () => {}) {
  const c = common(o)
  const username = String(o.username || 'tester')
  const chat = o.chat === undefined ? 'hello-' + Math.random().toString(36).slice(2, 8) : String(o.chat)
  return new Promise((resolve) => {
    const messages = []
    let done = false
    let client = null
    const finish = (r) => {
      if (done) return
      done = true
      clearTimeout(t)
      r.messages = messages
      try { client && client.end() } catch (_) {}
      try { client && client.socket && client.socket.destroy() } catch (_) {}
      resolve(r)
    }
    const t = setTimeout(() => { events({ event: 'timeout' }); finish({ ok: false, code: 4, error: 'timeout' }) }, c.timeout)
    const t0 = Date.now()
    try {
      client = mc.createClient({
        host: c.host,
        port: Number(o['vport'] || c.port),
        fakeHost: c.vhost,
        username,
        version: c.version,
        auth: 'offline',
        validateChannelProtocol: false,
        hideErrors: true,
        connect: c.connect
      })
    } catch (e) {
      return finish({ ok: false, code: 3, error: String(e && e.message || e) })
    }
    let joined = false
    const onText = (raw) => {
      const text = componentText(raw)
      messages.push(text)
      events({ event: 'message', text })
      if (joined && text.endsWith(' ' + chat) && text.startsWith('[')) {
        events({ event: 'echo', text })
        if (!o.stay) finish({ ok: true, code: 0, echo: text, ms: Date.now() - t0, welcome: messages[0] })
      }
    }
    client.on('chat', (p) => onText(p.message))               // pre-1.19
    client.on('system_chat', (p) => onText(p.content))         // 1.19+
    client.on('playerJoin', () => {
      joined = true
      events({ event: 'login', username, version: c.version, compression: client.compressionThreshold })
      try { client.chat(chat) } catch (e) { finish({ ok: false, code: 3, error: 'chat: ' + e.message }) }
    })
    const kick = (p) => {
      const reason = componentText(p.reason)
      events({ event: 'kick', reason })
      finish({ ok: false, code: 2, kicked: true, reason })
    }
    client.on('disconnect', kick)          // login / configuration state
    client.on('kick_disconnect', kick)     // play state
    client.on('error', (e) => {
      events({ event: 'error', error: String(e && e.message || e) })
      finish({ ok: false, code: 3, error: String(e && e.message || e) })
    })
    client.on('end', (reason) => {
      // give a kick packet that arrived with the FIN a moment to be parsed
      setTimeout(() => finish({ ok: false, code: 3, error: 'connection closed: ' + String(reason) }), 50)
    })
  })
}

async function main () {
  const o = parseArgs(process.argv.slice(2))
  const cmd = o._[0]
  if (cmd === 'ping') {
    const r = await doPing(o)
    if (r.ok) { out(r.status); process.exit(0) }
    out({ error: r.error }); process.exit(1)
  } else if (cmd === 'login') {
    const r = await doLogin(o, out)
    if (r.kicked) process.stdout.write('kicked: ' + r.reason + '\n')
    else if (!r.ok) process.stdout.write('failed: ' + r.error + '\n')
    process.exit(r.code)
  } else if (cmd === 'serve') {
    const rl = readline.createInterface({ input: process.stdin, terminal: false })
    rl.on('line', async (line) => {
      if (!line.trim()) return
      let req
      try { req = JSON.parse(line) } catch (e) { return out({ ok: false, error: 'bad request: ' + e.message }) }
      let r
      try {
        r = req.cmd === 'ping' ? await doPing(req) : req.cmd === 'login' ? await doLogin(req) : { ok: false, error: 'unknown cmd' }
      } catch (e) { r = { ok: false, error: String(e && e.message || e) } }
      out({ id: req.id, ...r })
    })
    rl.on('close', () => setTimeout(() => process.exit(0), 100))
  } else {
    process.stderr.write('usage: client.js ping|login|serve [--host H] [--port P] [--vhost V] [--version V] [--username U] [--chat T] [--timeout MS]\n')
    process.exit(64)
  }
}
main()
