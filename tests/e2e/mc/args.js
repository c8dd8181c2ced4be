'use strict'
// Command-line flags of the mc test tools: `--name value`, `--name=value`, a bare `--flag`
// (true); other words go to `_`.
module.exports = function parseArgs (argv) {
  const o = { _: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) { o._.push(a); continue }
    const eq = a.indexOf('=')
    if (eq > 0) { o[a.slice(2, eq)] = a.slice(eq + 1); continue }
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) o[a.slice(2)] = true
    else { o[a.slice(2)] = next; i++ }
  }
  return o
}
