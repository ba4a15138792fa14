// The host page of the browser tests: embeds the widget with the snippet of DESIGN.md, configured
// from the query string (engage=URL&key=pk_…&user=&locale=&css=hostile&nowidget=1).
(function () {
  var p = new URLSearchParams(location.search)
  if (p.get('css')) document.write('<link rel="stylesheet" href="/' + p.get('css') + '.css">')
  window.seen = []
  window.violations = []
  document.addEventListener('securitypolicyviolation', function (e) {
    window.violations.push(e.violatedDirective + ' ' + e.blockedURI)
  })
  if (p.get('nowidget')) return
  var s = document.createElement('script')
  s.async = true
  s.src = p.get('engage') + '/static/engage/widget.js'
  document.head.appendChild(s)

  window.Engage = window.Engage || { q: [] }
  ;['init', 'identify', 'track', 'page', 'reset', 'on'].forEach(function (m) {
    Engage[m] = Engage[m] || function () { Engage.q.push([m].concat([].slice.call(arguments))) }
  })
  Engage.init({ host: p.get('engage'), key: p.get('key'), userId: p.get('user') || undefined,
                userHash: p.get('hash') || undefined, locale: p.get('locale') || 'en' })
  ;['ready', 'shown', 'dismissed', 'answered'].forEach(function (name) {
    Engage.on(name, function (e) { window.seen.push([name, e]) })
  })
  if (p.get('early')) Engage.track(p.get('early'), { queued: true })

  document.addEventListener('click', function (e) {
    if (e.target.id === 'track') Engage.track('export_clicked', { format: 'csv' })
    if (e.target.id === 'navigate') history.pushState({}, '', '/reports/2' + location.search)
    if (e.target.id === 'identify') Engage.identify('u_2', { plan: 'pro' })
  })
})()
