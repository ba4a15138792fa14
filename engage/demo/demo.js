// The demo host page's own script: buttons that call the Engage API, and a log of its events.
document.getElementById('origin').textContent = location.origin
document.querySelector('.actions').addEventListener('click', function (e) {
  var b = e.target.closest('button')
  if (!b) return
  if (b.dataset.track) Engage.track(b.dataset.track, { page: location.pathname })
  if (b.dataset.go) {
    history.pushState({}, '', b.dataset.go)
    document.getElementById('title').textContent = b.dataset.go === '/pricing' ? 'Pricing' : 'Reports'
  }
  if (b.dataset.identify) Engage.identify(b.dataset.identify, { plan: 'pro' })
  if (b.hasAttribute('data-reset')) Engage.reset()
})
;['ready', 'shown', 'dismissed', 'answered'].forEach(function (name) {
  Engage.on(name, function (data) {
    var li = document.createElement('li')
    var what = data && (data.question_id ? data.question_id + ' = ' + JSON.stringify(data.value)
      : data.kind ? data.kind + ' ' + data.id + ' (' + data.display + ')' : JSON.stringify(data))
    li.textContent = new Date().toLocaleTimeString() + '  ' + name + ': ' + what
    document.getElementById('log').prepend(li)
  })
})
