#!/usr/bin/env node
// bench/mc/load.js: load generator for bench/mc/run. Raw Minecraft bytes over node's net (no
// library on the hot path), so the generator costs little next to what it measures.
//
//   node load.js status --port P --host VHOST [--secs 3] [--conc 64] [--proto 765]
//       connect, handshake + Status Request, read the response, Ping, read the Pong, close
//   node load.js login  --port P --host VHOST [--secs 3] [--conc 32] [--proto 47]
//       connect, handshake + Login Start, read until Login Success (after Set Compression too), close
//   node load.js bulk   --port P --host VHOST [--secs 3]
//       one connection: handshake + Login Start, then count the bytes the sink (sink.js blast)
//       sends back for --secs seconds
//   node load.js idle   --port P --host VHOST --count N [--sources 16]
//       N connections, each with handshake + Login Start sent, then idle; prints "ready N" when all
//       are open, holds them until SIGTERM
// Prints one JSON line: {"mode":..,"ops":..,"secs":..,"rate":..,"errors":..} (bulk: "gbps").
'use strict'
const net = require('net')

function args (argv) {
  const o = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[i + 1], i++
    else o._.push(argv[i])
  }
  return o
}
const o = args(process.argv.slice(2))
const mode = o._[0]
const port = Number(o.port)
const host = o.host || 'bench.example.com'
const secs = Number(o.secs || 3)

function varint (n) {
  const out = []
  n >>>= 0
  do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b) } while (n)
  return Buffer.from(out)
}
function str (s) { const b = Buffer.from(s); return Buffer.concat([varint(b.length), b]) }
function packet (id, payload) {
  const body = Buffer.concat([varint(id), payload])
  return Buffer.concat([varint(body.length), body])
}
function handshake (proto, next) {
  const port = Buffer.alloc(2); port.writeUInt16BE(25565)
  return packet(0, Buffer.concat([varint(proto), str(host), port, varint(next)]))
}
function loginStart (name, proto) {
  if (proto >= 764) return packet(0, Buffer.concat([str(name), Buffer.alloc(16, 7)]))
  return packet(0, str(name))
}

// Read framed packets from a byte stream; `compressed` adds the data-length field.
function reader (onPacket) {
  let buf = Buffer.alloc(0)
  const st = { compressed: false }
  st.feed = (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
    for (;;) {
      let len = 0; let shift = 0; let i = 0
      for (;;) {
        if (i >= buf.length) return
        const b = buf[i++]; len |= (b & 0x7f) << shift; shift += 7
        if (!(b & 0x80)) break
        if (i > 5) throw new Error('bad varint')
      }
      if (buf.length < i + len) return
      let body = buf.subarray(i, i + len)
      buf = buf.subarray(i + len)
      if (st.compressed) {               // data length 0: uncompressed (small login packets)
        let j = 0; while (body[j] & 0x80) j++
        body = body.subarray(j + 1)
      }
      let j = 0; let id = 0; shift = 0
      for (;;) { const b = body[j++]; id |= (b & 0x7f) << shift; shift += 7; if (!(b & 0x80)) break }
      if (onPacket(id, body.subarray(j), st) === false) return
    }
  }
  return st
}

const sources = Number(o.sources || 1)
let srcIndex = 0
function localAddress () {
  if (sources <= 1) return undefined
  srcIndex = (srcIndex + 1) % sources
  return '127.0.1.' + (1 + srcIndex)
}

function runLoop (conc, oneOp) {
  let ops = 0; let errors = 0; let running = true
  const t0 = process.hrtime.bigint()
  const deadline = Date.now() + secs * 1000
  return new Promise((resolve) => {
    let live = conc
    const next = () => {
      if (!running || Date.now() >= deadline) {
        running = false
        if (--live === 0) {
          const s = Number(process.hrtime.bigint() - t0) / 1e9
          resolve({ mode, ops, secs: +s.toFixed(3), rate: +(ops / s).toFixed(1), errors })
        }
        return
      }
      oneOp((ok) => { if (ok) ops++; else errors++; setImmediate(next) })
    }
    for (let i = 0; i < conc; i++) next()
  })
}

let seq = 0
function statusOp (proto) {
  const hello = Buffer.concat([handshake(proto, 1), packet(0, Buffer.alloc(0))])
  const ping = packet(1, Buffer.alloc(8, 1))
  return (done) => {
    let finished = false
    const fin = (ok) => { if (!finished) { finished = true; clearTimeout(t); s.destroy(); done(ok) } }
    const s = net.connect({ port, host: '127.0.0.1', localAddress: localAddress() })
    const t = setTimeout(() => fin(false), 5000)
    s.setNoDelay(true)
    const r = reader((id) => {
      if (id === 0) s.write(ping)
      else if (id === 1) { fin(true); return false }
    })
    s.on('connect', () => s.write(hello))
    s.on('data', (c) => { try { r.feed(c) } catch (_) { fin(false) } })
    s.on('error', () => fin(false))
    s.on('close', () => fin(false))
  }
}

function loginOp (proto) {
  const hs = handshake(proto, 2)
  return (done) => {
    let finished = false
    const fin = (ok) => { if (!finished) { finished = true; clearTimeout(t); s.destroy(); done(ok) } }
    const s = net.connect({ port, host: '127.0.0.1', localAddress: localAddress() })
    const t = setTimeout(() => fin(false), 5000)
    s.setNoDelay(true)
    const name = 'b' + (process.pid % 1000) + '_' + (seq++ % 100000)
    const r = reader((id, body, st) => {
      if (id === 3) { st.compressed = true; return }          // Set Compression
      if (id === 2) { fin(true); return false }             // Login Success
      if (id === 0) { fin(false); return false }            // Disconnect
    })
    s.on('connect', () => s.write(Buffer.concat([hs, loginStart(name, proto)])))
    s.on('data', (c) => { try { r.feed(c) } catch (_) { fin(false) } })
    s.on('error', () => fin(false))
    s.on('close', () => fin(false))
  }
}

async function main () {
  if (mode === 'status') {
    out(await runLoop(Number(o.conc || 64), statusOp(Number(o.proto || 765))))
  } else if (mode === 'login') {
    out(await runLoop(Number(o.conc || 32), loginOp(Number(o.proto || 47))))
  } else if (mode === 'bulk') {
    const s = net.connect({ port, host: '127.0.0.1' })
    let bytes = 0; let t0 = null
    s.on('connect', () => s.write(Buffer.concat([handshake(47, 2), loginStart('bulk', 47)])))
    s.on('data', (c) => {
      if (t0 === null) t0 = process.hrtime.bigint()
      bytes += c.length
    })
    const stop = () => {
      const sec = t0 === null ? secs : Number(process.hrtime.bigint() - t0) / 1e9
      out({ mode, bytes, secs: +sec.toFixed(3), gbps: +(bytes * 8 / sec / 1e9).toFixed(2) })
      s.destroy()
      process.exit(0)
    }
    s.on('error', () => stop())
    setTimeout(stop, secs * 1000 + 200)
  } else if (mode === 'idle') {
    const count = Number(o.count || 5000)
    const socks = []
    let open = 0; let failed = 0
    const proto = 47
    const hs = handshake(proto, 2)
    const onDone = () => {
      if (open + failed === count) process.stdout.write(`ready ${open} failed ${failed}\n`)
    }
    let i = 0
    const step = () => {                       // open in batches: no SYN flood on the backlog
      for (let k = 0; k < 200 && i < count; k++, i++) {
        const s = net.connect({ port, host: '127.0.0.1', localAddress: localAddress() })
        s.on('connect', () => { s.write(Buffer.concat([hs, loginStart('idle' + (i % 100000), proto)])); open++; onDone() })
        s.on('error', () => { failed++; onDone() })
        s.on('data', () => {})
        socks.push(s)
      }
      if (i < count) setTimeout(step, 20)
    }
    step()
    setInterval(() => {}, 1 << 30)          // hold until SIGTERM
    process.on('SIGTERM', () => process.exit(0))
  } else {
    process.stderr.write('usage: load.js status|login|bulk|idle --port P [--host VHOST] [--secs S] [--conc C]\n')
    process.exit(64)
  }
}
function out (x) { process.stdout.write(JSON.stringify(x) + '\n') }
main()
