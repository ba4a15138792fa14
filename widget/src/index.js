// Engage's widget: the public API (window.Engage) and the replay of calls queued by the snippet.
import { key, locale, userId, userHash, userToken, configure, person, on } from './state.js'
import { send, start, reconnect, isBlocked, preview } from './net.js'
import { clear } from './ui.js'

const w = window
// Only while this file runs is currentScript set: Engage is served from where it was loaded.
const script = document.currentScript?.src

let lastUrl
const waiting = [] // calls made before init

// `auto`: history changed; a page view only when the URL did (replaceState often does not).
const page = (auto) => {
  const url = location.href
  if (auto !== 1 || url != lastUrl) send({ type: 'page', url: (lastUrl = url), locale })
}

const methods = {
  init(o) {
    if (key) return
    configure(o, script)
    // A preview link (?engage_preview=TOKEN): show that campaign once, then drop the token from
    // the address bar so that a reload or a shared URL does not try it again.
    const u = new URL(location.href)
    const token = u.searchParams.get('engage_preview')
    if (token) {
      u.searchParams.delete('engage_preview')
      history.replaceState(history.state, '', u)
      preview(token)
    }
    lastUrl = location.href
    for (const m of ['pushState', 'replaceState']) {
      const original = history[m]
      history[m] = function () {
        const r = original.apply(this, arguments)
        page(1)
        return r
      }
    }
    addEventListener('popstate', () => page(1))
    start()
    for (const [m, args] of waiting.splice(0)) api[m](...args)
  },
  identify(id, attributes, hash, token) {
    const changed = id != userId || hash != userHash || token != userToken
    person(id, hash, attributes, 0, token)
    // A refused identity (4401) is retried only with a different one.
    if (isBlocked()) changed && reconnect()
    else send({ type: 'identify', user_id: id, user_hash: hash, user_token: token, attributes })
  },
  track(event, properties) {
    send({ type: 'track', event, properties }, 1)
  },
  page() {
    page()
  },
  reset() {
    person(undefined, undefined, {}, true)
    clear()
    reconnect()
  },
  on,
}

const api = { v: 1 }
for (const m in methods)
  api[m] = (...args) =>
    key || m == 'init' || m == 'on' ? methods[m](...args) : waiting.push([m, args])

if (!w.Engage?.v) {
  const queued = w.Engage?.q || []
  w.Engage = api
  for (const [m, ...args] of queued) api[m]?.(...args)
}
