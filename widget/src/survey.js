// Surveys: one question at a time in the modal, with branching, progress, required checks and a
// thank-you screen. After each question the response so far is sent (same response id, so the
// server updates one response); the last one is marked completed.
import { emit, uuid, isEmpty } from './state.js'
import { send } from './net.js'
import { h, add, attr, button, close, closeButton, focusIn, itemLocale, nextId } from './ui.js'
import {
  dir,
  NEXT,
  SUBMIT,
  THANKS,
  REQUIRED,
  OTHER,
  SPECIFY,
  YES,
  NO,
  NPS_LOW,
  NPS_HIGH,
  CSAT_LOW,
  CSAT_HIGH,
  CLOSE,
} from './i18n.js'

const OTHER_CHOICE = 'other'
const lower = (v) => String(v).toLowerCase()
const has = (v, w) => (Array.isArray(v) ? v.includes(w) : lower(v).includes(lower(w)))

// Branching, as the server decides it (surveys/definition.py): an unanswered question matches
// only is_not_set; an "other" answer counts as the choice "other".
const OPS = {
  eq: (v, w) => v === w,
  neq: (v, w) => v !== w,
  gt: (v, w) => v > w,
  gte: (v, w) => v >= w,
  lt: (v, w) => v < w,
  lte: (v, w) => v <= w,
  between: (v, w) => w[0] <= v && v <= w[1],
  in: (v, w) => w.includes(v),
  not_in: (v, w) => !w.includes(v),
  contains: has,
  not_contains: (v, w) => !has(v, w),
  contains_any: (v, w) => w.some((x) => v.includes(x)),
  contains_all: (v, w) => w.every((x) => v.includes(x)),
}
const matches = ({ op, value }, answer) => {
  if (op == 'is_set' || op == 'is_not_set') return isEmpty(answer) == (op == 'is_not_set')
  const v = [].concat(answer).map((x) => (x?.other ? OTHER_CHOICE : x))
  return !isEmpty(answer) && !!OPS[op]?.(Array.isArray(answer) ? v : v[0], value)
}

const shuffle = (a) => {
  for (let i = a.length; i > 1; ) {
    const j = Math.floor(Math.random() * i--)
    ;[a[i], a[j]] = [a[j], a[i]]
  }
  return a
}

// Buttons that act as radios (one value, arrow keys move and select, one tab stop: the
// "roving tabindex") or as checkboxes (several values, each a tab stop).
// options: [[value, label, accessible name?]]; returns () => the chosen value (radios) or
// values (checkboxes).
const choices = (box, options, multi, cls, labelId, rtl, onChange) => {
  const group = add(box, h('div', 'g ' + cls, 0, {
    role: multi ? 'group' : 'radiogroup',
    'aria-labelledby': labelId,
  }))
  let on = []
  const buttons = options.map(([, label, name], k) => {
    const b = add(group, button(label, 0, () => set(k), {
      role: multi ? 'checkbox' : 'radio',
      'aria-checked': false,
      ...(name && { 'aria-label': name }),
    }))
    b.tabIndex = multi || !k ? 0 : -1
    return b
  })
  const set = (k) => {
    on = multi ? ((on[k] = !on[k]), on) : options.map((_, j) => j == k)
    buttons.forEach((b, j) => {
      attr(b, 'aria-checked', !!on[j])
      b.classList.toggle('on', cls == 's' ? j <= k : !!on[j]) // stars light up to the choice
      if (!multi) b.tabIndex = j == k ? 0 : -1
    })
    onChange && onChange()
  }
  if (!multi)
    group.onkeydown = (e) => {
      const n = buttons.length
      const k = buttons.indexOf(e.target)
      let d = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key]
      if (rtl && /Left|Right/.test(e.key)) d = -d // left is forward in right-to-left
      const j = e.key == 'Home' ? 0 : e.key == 'End' ? n - 1 : d ? (k + d + n) % n : -1
      if (j > -1 && k > -1) {
        e.preventDefault()
        set(j)
        buttons[j].focus()
      }
    }
  return () => {
    const v = options.filter((_, j) => on[j]).map((o) => o[0])
    return multi ? v : v[0]
  }
}

// The words at both ends of a scale ("Not likely" … "Very likely").
const ends = (box, low, high) => {
  const id = nextId()
  const row = add(box, h('div', 'lh', 0, { id }))
  add(row, h('span', 0, low))
  add(row, h('span', 0, high))
  attr(box.querySelector('[role=radiogroup]'), 'aria-describedby', id)
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

export const survey = (it, box, titleId, T) => {
  const c = it.content
  const L = itemLocale(it)
  const rtl = dir(L) == 'rtl'
  const questions = c.questions || []
  const answers = {}
  const responseId = uuid()

  // The thank-you screen, or the end when the survey has none (thank_you is null).
  const thanks = () => {
    const ty = c.thank_you
    it.finished = 1
    if (!ty) return close(it)
    box.replaceChildren(h('h2', 0, ty.title || T[THANKS], { id: titleId }))
    const body = add(box, h('div', 'bd'))
    body.innerHTML = ty.body_html || '' // sanitised server-side (surveys/definition.py)
    add(add(box, h('div', 'bs')), button(T[CLOSE], 'p', () => close(it)))
    focusIn(box)
  }

  const ask = (i) => {
    const q = questions[i]
    const type = q.type
    const n = questions.length
    box.replaceChildren()
    if (n > 1) {
      const bar = add(box, h('div', 'pg', 0, {
        role: 'progressbar',
        'aria-label': c.name,
        'aria-valuemax': n,
        'aria-valuenow': i,
        'aria-valuetext': i + 1 + ' / ' + n,
      }))
      add(bar, h('i')).style.width = (100 * i) / n + '%'
    }
    add(box, h('h2', 0, q.text, { id: titleId }))
    if (q.description) add(box, h('p', 'd', q.description))
    const labels = q.labels || {}
    let value = () => undefined
    let other
    if (type == 'open_text') {
      const area = add(box, h('textarea', 0, 0, { 'aria-labelledby': titleId, rows: 3 }))
      if (q.placeholder) area.placeholder = q.placeholder
      value = () => area.value.trim()
    } else if (type == 'cta') value = () => 'clicked'
    else if (type == 'yes_no') {
      const options = [[true, labels.yes || T[YES]], [false, labels.no || T[NO]]]
      value = choices(box, options, 0, 'yn', titleId, rtl)
    } else if (type.includes('choice')) {
      const multi = type[0] == 'm'
      const list = (q.choices || []).map((ch) => [ch.id, ch.label])
      if (q.shuffle) shuffle(list)
      if (q.other) list.push([OTHER_CHOICE, q.other_label || T[OTHER]])
      const chosen = choices(box, list, multi, 'ch', titleId, rtl, () => {
        if (other) other.hidden = ![].concat(chosen()).includes(OTHER_CHOICE)
      })
      if (q.other) {
        other = add(box, h('input', 0, 0, { 'aria-label': T[SPECIFY] }))
        other.hidden = true
      }
      // "Other" is answered {"other": what was typed}.
      value = () => {
        const text = other?.value.trim()
        const v = [].concat(chosen() ?? [])
          .map((x) => (x != OTHER_CHOICE ? x : text && { other: text }))
          .filter((x) => x)
        return multi ? v : v[0]
      }
    } else {
      // nps, csat, rating: whole numbers from scale.min to scale.max, as numbers or stars
      const nps = type == 'nps'
      const stars = q.display == 'stars'
      value = choices(
        box,
        range(q.scale.min, q.scale.max).map((v) => [v, stars ? '' : '' + v, stars && '' + v]),
        0,
        stars ? 's' : 'n',
        titleId,
        rtl,
      )
      const low = labels.low || (nps ? T[NPS_LOW] : type == 'csat' && T[CSAT_LOW])
      const high = labels.high || (nps ? T[NPS_HIGH] : type == 'csat' && T[CSAT_HIGH])
      if (low || high) ends(box, low, high)
    }
    const error = add(box, h('p', 'e', 0, { role: 'alert' }))
    const label = q.button?.label || T[i == n - 1 ? SUBMIT : NEXT]
    add(add(box, h('div', 'bs')), button(label, 'p', () => {
      const v = value()
      if (isEmpty(v)) {
        if (q.required) return (error.textContent = T[REQUIRED])
      } else answers[q.id] = v
      const url = q.button?.url
      if (url) open(url, '_blank', 'noopener')
      let next = i + 1
      for (const rule of q.logic || [])
        if (matches(rule.if, v)) {
          next = rule.jump_to == 'end' ? n : questions.findIndex((x) => x.id == rule.jump_to)
          break
        }
      const completed = !(next > -1 && next < n)
      const response = { id: responseId, survey_id: it.id, delivery_id: it.delivery_id }
      send({ type: 'answer', response: { ...response, answers: { ...answers }, completed, locale: L } }, 1)
      emit('answered', { ...response, response_id: responseId, question_id: q.id, value: v, completed })
      completed ? thanks() : ask(next)
    }))
    add(box, closeButton(T, () => close(it, 1)))
    focusIn(box)
  }

  questions.length ? ask(0) : thanks()
}
