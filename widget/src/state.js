// Shared state and small helpers used by every part of the widget.

// Who and where, set only through configure() and person() below: the App's public key, the
// Engage host, the UI locale, UI texts given by the host page ({locale: "Close|Next|…"}), the
// known user (id, hash or signed token, attributes) and the anonymous id this browser keeps per
// App key.
export let key, host, locale, texts, userId, userHash, userToken, attributes, anon

export const configure = (o, script) => {
  key = o.key
  host = (o.host || new URL(script).origin).replace(/\/+$/, '')
  locale = o.locale || navigator.language
  texts = o.texts || {}
  person(o.userId, o.userHash, o.attributes, 0, o.userToken)
  store('a', (anon = store('a') || uuid()))
}

// identify() merges attributes; reset() (`fresh`) starts a new anonymous person.
export const person = (id, hash, attrs, fresh, token) => {
  userId = id
  userHash = hash
  userToken = token
  attributes = { ...(!fresh && attributes), ...attrs }
  if (fresh) store('a', (anon = uuid()))
}

const handlers = {}

export const on = (name, fn) => {
  ;(handlers[name] = handlers[name] || []).push(fn)
}

// Handlers run on their own task: one that throws breaks neither the widget nor the others.
export const emit = (name, data) => {
  for (const fn of handlers[name] || []) setTimeout(fn, 0, data)
}

// localStorage as JSON, namespaced per App key; storage may be unavailable (privacy modes).
export const store = (name, value) => {
  const k = 'engage:' + key + ':' + name
  try {
    if (value === undefined) return JSON.parse(localStorage.getItem(k))
    localStorage.setItem(k, JSON.stringify(value))
  } catch (e) {}
}

// RFC 4122 version 4; crypto.randomUUID exists only in secure contexts.
export const uuid = () =>
  '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (c) =>
    (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16),
  )

// Who a frame was made for, kept with queued frames so that they are sent as that person.
export const who = () => ({ u: userId, a: anon, h: userHash, t: userToken })
export const same = (w) => w.u == userId && w.a == anon

export const isEmpty = (v) => v == null || v === '' || (Array.isArray(v) && !v.length)
