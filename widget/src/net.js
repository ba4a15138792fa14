// Transport: the websocket protocol v1 (docs/protocol.md), with the widget HTTP endpoints as a
// fallback, and an outbox in localStorage for frames that must reach the server exactly once
// (answers, delivery events, tracked events). An outbox entry leaves only when the server
// confirms it (an `ack`, or a 2xx over HTTP); retrying is safe because each frame carries an id
// the server deduplicates on (the response UUID, the event's message_id).
import { anon, attributes, host, key, locale, userHash, userId, userToken, emit, store, uuid, who, same } from './state.js'
import { show, revoke } from './ui.js'

let ws // the current socket (open or connecting)
let live // the current socket got its `welcome`
let serial = 0 // counts welcomed connections: an entry is sent once per connection
let tries = 0 // reconnect attempts since the last welcome (backoff exponent)
let failures = 0 // sockets in a row that closed before their welcome
let blocked // 4401 (until identify changes) or 4403 (origin refused): do not reconnect
let http // websockets fail: use the HTTP endpoints
let busy // an HTTP outbox request is in flight (they go one at a time, in order)
let timer, beat, heard, started, ready
let decided // the URL whose page view the server has (hello or page): not sent again on reconnect
let outbox = []
let previewing // the token of a preview link, sent once the server can answer it
const sent = {}

const json = JSON.stringify
const raw = (f) => ws.send(json(f))

// `keep`: put the frame in the outbox (it gets an id, and is retried until confirmed).
export const send = (f, keep) => {
  if (keep) {
    f.id = uuid()
    if (f.type == 'track') f.message_id = f.id
    // A newer state of the same survey response replaces one not sent yet.
    if (f.response)
      outbox = outbox.filter((e) => !(e.f.response?.id == f.response.id && !sent[e.f.id]))
    outbox.push({ f, w: who() })
    store('o', outbox)
    flush()
  } else if (live) {
    if (f.url) decided = f.url
    raw(f)
  } else if (http) rest(f, who()).catch(() => {})
}

const drop = (id) => {
  outbox = outbox.filter((e) => e.f.id != id)
  store('o', outbox)
}

const flush = () => {
  for (const e of outbox) {
    const id = e.f.id
    if (sent[id] < 0) continue // in flight over HTTP
    if (live && same(e.w)) {
      if (sent[id] != serial) raw(e.f)
      sent[id] = serial
    } else if ((http || !same(e.w)) && !busy) {
      busy = sent[id] = -1
      rest(e.f, e.w)
        .then(
          () => drop(id),
          (status) => {
            delete sent[id]
            // Refused for good (bad input, unknown survey): retrying cannot help. Otherwise it
            // stays for the next attempt (reconnect timer, `online`, next page load).
            if (status > 399 && status < 500 && status != 408 && status != 429) drop(id)
            else throw 0
          },
        )
        .then(() => {
          busy = 0
          flush()
        }, () => (busy = 0))
    }
  }
}

// HTTP: a status to reject with, or 0 when the network failed.
const api = (path, body, w = who()) =>
  fetch(host + '/api/v1/' + path, {
    method: body ? 'POST' : 'GET',
    headers: {
      'X-Engage-Key': key,
      ...(w.h && { 'X-Engage-User-Hash': w.h }),
      ...(w.t && { 'X-Engage-User-Token': w.t }),
      ...(body && { 'Content-Type': 'application/json' }),
    },
    body: body && json(body),
  }).then(
    (r) => (r.ok ? r.json() : Promise.reject(r.status)),
    () => Promise.reject(0),
  )

// The campaigns for a moment (page view, event, session start) over HTTP.
const pull = (params, w = who()) =>
  api(
    'widget/campaigns?' +
      new URLSearchParams(
        JSON.parse(json({ user_id: w.u, anonymous_id: w.a, locale, ...params })),
      ),
    null, // a GET has no body (0 would be sent as one, and refused)
    w,
  ).then((r) => {
    show(r.items)
    up('http')
  })

// The first time the widget can show campaigns: on('ready') handlers run (once).
const up = (transport) => ready || emit('ready', { transport: (ready = transport) })

// A websocket frame as the equivalent HTTP request.
const rest = (f, w) => {
  const ids = { user_id: w.u, anonymous_id: w.a }
  const t = f.type
  return t == 'answer'
    ? api('responses', { ...f.response, ...ids }, w)
    : t == 'delivery'
      ? api('deliveries/' + f.delivery_id + '/events', { type: f.event, button: f.button, ...ids }, w)
      : t == 'track'
        ? api('events', { events: [{ name: f.event, properties: f.properties, message_id: f.id, ...ids }] }, w)
            .then(() => same(w) && pull({ event: f.event }, w))
        : t == 'identify'
          ? api('identify', { ...ids, attributes: f.attributes }, w)
          : pull({ url: f.url })
}

// A preview link's campaign, over the socket once welcomed, else over HTTP.
export const preview = (token) => {
  previewing = token
  if (live || http) sendPreview()
}

const sendPreview = () => {
  const token = previewing
  if (!token) return
  previewing = 0
  if (live) raw({ type: 'preview', token })
  else
    api('widget/preview', { token, user_id: userId, anonymous_id: anon, locale })
      .then((r) => show(r.items))
      .catch(() => {})
}

const fallback = () => {
  if (!http) {
    http = 1
    sendPreview()
    pull({ url: location.href, session_start: !started }).catch(() => {})
    started = 1
  }
  flush()
}

const receive = (f) => {
  const t = f.type
  if (t == 'welcome') {
    live = 1
    serial++
    tries = failures = http = 0
    clearInterval(beat)
    const s = ws
    // No frame for two and a half beats: the connection is dead even if the socket says not.
    beat = setInterval(
      () => (Date.now() - heard > f.heartbeat_seconds * 2500 ? s.close() : raw({ type: 'ping' })),
      f.heartbeat_seconds * 1000 || 25000,
    )
    flush()
    sendPreview()
    up('websocket')
  } else if (t == 'snapshot') show(f.items)
  else if (t == 'show') show([f.item])
  else if (t == 'revoke') revoke(f.kind, f.id)
  // An error about an outbox frame is final unless the server says a retry may succeed.
  else if (t == 'ack' || (t == 'error' && !f.retryable)) drop(f.id)
}

export const connect = () => {
  clearTimeout(timer)
  if (ws || blocked) return
  if (!window.WebSocket) return fallback()
  let s
  try {
    const url = host.replace(/^http/, 'ws') + '/ws/v1/widget?key=' + encodeURIComponent(key)
    s = ws = new WebSocket(url)
  } catch (e) {}
  // Refused at once, by a host page CSP without the websocket origin in connect-src: the
  // constructor throws, or (Chromium) the socket is born closed and never fires close.
  if (!s || s.readyState == 3) {
    ws = 0
    return fallback()
  }
  let welcomed
  s.onopen = () =>
    raw({
      type: 'hello',
      v: 1,
      anonymous_id: anon,
      user_id: userId,
      user_hash: userHash,
      user_token: userToken,
      attributes,
      // The same page again would decide its page-view campaigns again (new deliveries).
      url: location.href == decided ? undefined : location.href,
      locale,
      device: /Mobi/.test(navigator.userAgent) ? 'mobile' : 'desktop',
      session_start: !started,
    })
  s.onmessage = (e) => {
    if (s != ws) return
    heard = Date.now()
    const f = JSON.parse(e.data)
    if (f.type == 'welcome') {
      welcomed = started = 1
      decided = location.href
    }
    receive(f)
  }
  s.onclose = (e) => {
    if (s != ws) return
    ws = live = 0
    clearInterval(beat)
    if (e.code == 4401 || e.code == 4403) blocked = e.code
    else {
      if (e.code == 4429) tries = 6
      if (!welcomed && ++failures > 1) fallback()
      // Jittered exponential backoff: 0.5 s, 1 s, 2 s … up to 30 s, each between half and all.
      timer = setTimeout(connect, Math.min(3e4, 500 * 2 ** tries++) * (0.5 + Math.random() / 2))
    }
  }
}

// Start over with a new socket (after identify clears a refusal, or reset changes the person,
// whose page view this page then is).
export const reconnect = () => {
  const s = ws
  ws = live = blocked = decided = 0
  tries = 0
  s && s.close()
  connect()
}

export const isBlocked = () => blocked == 4401

export const start = () => {
  outbox = store('o') || []
  try {
    started = sessionStorage.engageSession
    sessionStorage.engageSession = 1
  } catch (e) {}
  addEventListener('online', () => {
    tries = 0
    connect()
    flush()
  })
  connect()
  flush()
}
