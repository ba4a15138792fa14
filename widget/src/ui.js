// Rendering: an open shadow root holding banners (top), slide-ins and the inbox (corner) and at
// most one modal (messages and surveys). Text goes in with textContent; the only HTML inserted
// is the server's `body_html`, sanitised by Engage before it is sent.
import { locale, emit, store } from './state.js'
import { send } from './net.js'
import { uiTexts, dir, CLOSE, MESSAGES, UNREAD } from './i18n.js'
import { survey } from './survey.js'
import css from './style.css'

let host, root, top, corner
let current = {} // kind+id → item queued or shown
let done = {} // kind+id dismissed or completed while this page lives: not shown again
let modals = [] // modal items waiting for the open one to close
let modal, before // the open modal item, the element focused before it opened
let inbox = []
let launcher, badge, panel, read
let ids = 0

export const nextId = () => 'e' + ++ids

export const h = (tag, cls, text, attrs) => {
  const e = document.createElement(tag)
  if (cls) e.className = cls
  if (text) e.textContent = text
  for (const k in attrs) e.setAttribute(k, attrs[k])
  return e
}

export const add = (parent, child) => parent.appendChild(child)

export const attr = (e, name, value) => (e.setAttribute(name, value), e)

export const button = (label, cls, fn, attrs) => {
  const b = h('button', cls, label, { type: 'button', ...attrs })
  b.onclick = fn
  return b
}

// The × in a corner; it comes last in the tab order, after the content and its buttons.
export const closeButton = (T, fn) => button('×', 'x', fn, { 'aria-label': T[CLOSE] })

export const itemLocale = (it) => it.content.locale || locale

export const tabbables = (box) =>
  [...box.querySelectorAll('a[href],button,textarea,input')].filter(
    (e) => e.tabIndex > -1 && !e.disabled && e.offsetParent,
  )

export const focusIn = (box) => (tabbables(box)[0] || box).focus()

const svg = (tag, attrs) => {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag)
  for (const k in attrs) attr(e, k, attrs[k])
  return e
}

const mount = () => {
  if (root) return
  host = document.createElement('engage-widget')
  root = host.attachShadow({ mode: 'open' })
  // A constructed stylesheet needs no CSP style-src; a <style> is the fallback for old browsers.
  try {
    const sheet = new CSSStyleSheet()
    sheet.replaceSync(css)
    root.adoptedStyleSheets = [sheet]
  } catch (e) {
    add(root, h('style', 0, css))
  }
  const attrs = { dir: dir(locale), lang: locale }
  top = add(root, h('div', 'top', 0, attrs))
  corner = add(root, h('div', 'c', 0, attrs))
  document.body.append(host)
}

const delivery = (it, event, button) =>
  it.delivery_id && send({ type: 'delivery', delivery_id: it.delivery_id, event, button }, 1)

const shown = (it) => {
  delivery(it, 'shown')
  emit('shown', it)
}

// A surface for an item: its language and direction are those of its content.
export const surface = (it, cls, attrs) => {
  const l = itemLocale(it)
  return h('div', 'box ' + cls, 0, { dir: dir(l), lang: l, ...attrs })
}

// Take an item off the screen. `dismissed`: the person closed it (reported, unless it was a
// survey they had finished).
export const close = (it, dismissed) => {
  done[it.k] = 1
  delete current[it.k]
  it.el?.remove()
  if (dismissed && !it.finished) {
    delivery(it, 'dismissed')
    emit('dismissed', it)
  }
  if (inbox.includes(it)) {
    inbox = inbox.filter((x) => x != it)
    drawInbox()
    panel && focusIn(panel)
  }
  if (it == modal) {
    modal = 0
    before?.focus()
    openModal()
  }
}

// Escape closes; in a modal, Tab and Shift+Tab cycle inside it.
const keys = (onEscape, box) => (e) => {
  if (e.key == 'Escape') {
    e.stopPropagation()
    onEscape()
  } else if (box && e.key == 'Tab') {
    const f = tabbables(box)
    const last = f.length - 1
    const i = f.indexOf(root.activeElement)
    if (e.shiftKey ? i < 1 : i == last) {
      e.preventDefault()
      f[e.shiftKey ? last : 0]?.focus()
    }
  }
}

const act = (it, b) => {
  if (b.action == 'dismiss') return close(it, 1)
  delivery(it, 'clicked', b.label)
  if (b.action == 'event' && b.event)
    send({ type: 'track', event: b.event, properties: { message_id: it.id } }, 1)
  if (it.display != 'inbox') close(it)
  if (b.action == 'url' && b.url) location.assign(b.url)
}

// Title, the server's sanitised body and the buttons of a message.
const message = (it, box, id, T, inInbox) => {
  const c = it.content
  // In the inbox the title is the row's button. Without a title the body labels the surface.
  if (c.title && !inInbox) add(box, h('h2', 0, c.title, { id }))
  const body = add(box, h('div', 'bd', 0, !c.title && id && { id }))
  body.innerHTML = c.body_html || '' // sanitised server-side (messaging/content.py)
  const row = add(box, h('div', 'bs'))
  for (const b of c.buttons || [])
    add(row, button(b.label, b.action == 'dismiss' ? '' : 'p', () => act(it, b)))
  if (!inInbox) add(box, closeButton(T, () => close(it, 1)))
}

const openModal = () => {
  if (modal || !modals.length) return
  const it = (modal = modals.shift())
  before = document.activeElement == host ? root.activeElement : document.activeElement
  const id = nextId()
  const T = uiTexts(itemLocale(it))
  const box = surface(it, 'modal', {
    role: 'dialog',
    'aria-modal': 'true',
    'aria-labelledby': id,
    tabindex: '-1',
  })
  it.el = h('div', 'ov')
  add(it.el, box).onkeydown = keys(() => close(it, 1), box)
  add(root, it.el)
  if (it.kind == 'survey') survey(it, box, id, T)
  else message(it, box, id, T)
  shown(it)
  focusIn(box)
}

const place = (it) => {
  mount()
  if (it.kind == 'survey' || it.display == 'modal') {
    modals.push(it)
    modals.sort((a, b) => (b.priority || 0) - (a.priority || 0))
    return openModal()
  }
  const banner = it.display == 'banner'
  const id = nextId()
  const box = (it.el = surface(it, banner ? 'banner' : 'slide', {
    role: banner ? 'region' : 'dialog',
    'aria-labelledby': id,
  }))
  message(it, box, id, uiTexts(itemLocale(it)))
  box.onkeydown = keys(() => close(it, 1))
  add(banner ? top : corner, box)
  shown(it)
}

// --- inbox: a launcher with the unread count, and a panel listing the messages -------------

const toggleInbox = () => {
  if (panel) {
    panel.remove()
    panel = 0
    launcher.focus()
  } else {
    panel = add(corner, h('div', 'box ib', 0, { role: 'dialog' }))
    panel.onkeydown = keys(toggleInbox)
    drawInbox()
    focusIn(panel)
  }
  attr(launcher, 'aria-expanded', !!panel)
}

const drawInbox = () => {
  const T = uiTexts(locale)
  if (!inbox.length) {
    launcher?.remove()
    panel?.remove()
    launcher = panel = 0
    return
  }
  if (!launcher) {
    launcher = add(corner, button(0, 'l', toggleInbox, { 'aria-expanded': false }))
    // The button's aria-label names it: the icon and the badge are not read.
    const icon = add(launcher, svg('svg', { viewBox: '0 0 24 24' }))
    add(icon, svg('path', { d: 'M3 4h18v13H9l-6 4z' }))
    badge = add(launcher, h('span', 'k'))
  }
  drawBadge(T)
  if (!panel) return
  const id = nextId()
  attr(panel, 'aria-labelledby', id)
  panel.replaceChildren(h('h2', 0, T[MESSAGES], { id }))
  for (const it of inbox) {
    const row = add(panel, h('div', 'it'))
    const title = it.content.title || it.content.name
    const open = add(row, button(title, read[it.k] ? '' : 'u', 0, { 'aria-expanded': false }))
    open.onclick = () => {
      const content = row.children[1]
      attr(open, 'aria-expanded', !content)
      if (content) return content.remove()
      const box = add(row, h('div', 0, 0, { lang: itemLocale(it), dir: dir(itemLocale(it)) }))
      message(it, box, 0, T, 1)
      if (!read[it.k]) {
        read[it.k] = 1
        store('r', read)
        open.className = ''
        shown(it)
        drawBadge(T)
      }
    }
  }
  add(panel, closeButton(T, toggleInbox))
}

const drawBadge = (T) => {
  const unread = inbox.filter((it) => !read[it.k]).length
  attr(launcher, 'aria-label', T[MESSAGES] + (unread ? ', ' + unread + ' ' + T[UNREAD] : ''))
  badge.textContent = unread || ''
}

// --- what the transport calls ----------------------------------------------------------------

export const show = (items) => {
  read = read || store('r') || {}
  for (const it of items || []) {
    const k = (it.k = it.kind + it.id)
    if (done[k] || current[k]) continue
    current[k] = it
    if (it.display == 'inbox' && it.kind == 'message') {
      mount()
      inbox.push(it)
      drawInbox()
    } else setTimeout(() => current[k] == it && place(it), (it.delay_seconds || 0) * 1000)
  }
}

export const revoke = (kind, id) => {
  const it = current[kind + id]
  if (!it) return
  modals = modals.filter((x) => x != it)
  close(it)
}

// Everything off the screen, for another person (Engage.reset()).
export const clear = () => {
  host?.remove()
  root = modal = panel = launcher = 0
  current = {}
  done = {}
  modals = []
  inbox = []
}
