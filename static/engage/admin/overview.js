/* App overview (admin): draws the panels' data from a json_script element with the vendored
 * Chart.js (static/engage/vendor/chart.umd.js). Every label is set as text, never as HTML. */
(function () {
  "use strict";

  var PALETTE = ["#417690", "#79aec8", "#2e7d32", "#f9a825", "#c62828", "#6a1b9a"];

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shortDate(iso) {
    var d = new Date(iso + "T00:00:00Z");
    return d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  }

  function number(value) {
    return typeof value === "number" ? value.toLocaleString() : String(value);
  }

  function chart(body, data, title) {
    var holder = el("div", "overview-chart");
    var canvas = el("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title);
    holder.appendChild(canvas);
    body.appendChild(holder);
    if (data.note) body.appendChild(el("p", "overview-meta", data.note));
    if (!window.Chart) return;
    var scales = {
      x: { ticks: { autoSkip: true, maxRotation: 0, maxTicksLimit: 8 }, grid: { display: false }, stacked: !!data.stacked },
      y: Object.assign({ beginAtZero: true, ticks: { precision: 0 }, stacked: !!data.stacked }, data.y || {}),
    };
    if (data.y2) {
      scales.y2 = Object.assign({ position: "right", grid: { drawOnChartArea: false } }, data.y2);
    }
    var datasets = data.series.map(function (s, i) {
      var color = s.color || PALETTE[i % PALETTE.length];
      return {
        type: s.type || data.type,
        label: s.label,
        data: s.data,
        yAxisID: s.axis || "y",
        stack: s.stack,
        borderColor: color,
        backgroundColor: (s.type || data.type) === "line" ? color : color + "cc",
        borderWidth: (s.type || data.type) === "line" ? 2 : 0,
        pointRadius: 2,
        spanGaps: true,
        tension: 0.25,
        order: (s.type || data.type) === "line" ? 0 : 1,
      };
    });
    new window.Chart(canvas, {
      type: data.type,
      data: { labels: data.categorical ? data.labels : data.labels.map(shortDate), datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { display: datasets.length > 1, position: "bottom", labels: { boxWidth: 12 } } },
        scales: scales,
      },
    });
  }

  function numbers(body, data) {
    var list = el("div", "overview-numbers");
    data.items.forEach(function (item) {
      var box = el("div", "overview-number");
      box.appendChild(el("div", "value", number(item.value)));
      box.appendChild(el("div", "label", item.label));
      if (item.note) box.appendChild(el("div", "note", item.note));
      list.appendChild(box);
    });
    body.appendChild(list);
  }

  function table(body, data) {
    if (data.note) body.appendChild(el("p", "overview-meta", data.note));
    if (!data.rows.length) {
      body.appendChild(el("p", "overview-empty", data.empty || "Nothing yet."));
      return;
    }
    var t = el("table", "overview-table");
    var head = el("tr");
    data.columns.forEach(function (c, i) { head.appendChild(el("th", i ? "num" : null, c)); });
    t.appendChild(el("thead")).appendChild(head);
    var tbody = el("tbody");
    data.rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (cell, i) {
        tr.appendChild(el("td", i && typeof cell === "number" ? "num" : null, number(cell)));
      });
      tbody.appendChild(tr);
    });
    t.appendChild(tbody);
    body.appendChild(t);
  }

  function quotes(body, data) {
    if (!data.items.length) {
      body.appendChild(el("p", "overview-empty", data.empty || "Nothing yet."));
      return;
    }
    var list = el("ul", "overview-quotes");
    data.items.forEach(function (item) {
      var li = el("li");
      li.appendChild(el("blockquote", null, item.text));
      var meta = el("div", "overview-meta", item.meta);
      if (item.score !== null && item.score !== undefined) {
        meta.appendChild(el("span", "overview-score", Number(item.score).toFixed(2)));
      }
      li.appendChild(meta);
      list.appendChild(li);
    });
    body.appendChild(list);
  }

  function draw() {
    var source = document.getElementById("overview-data");
    if (!source) return;
    var panels = JSON.parse(source.textContent);
    panels.forEach(function (panel) {
      var card = document.querySelector('[data-panel="' + panel.key + '"] .overview-body');
      if (!card) return;
      var data = panel.data;
      if (data.type === "line" || data.type === "bar") chart(card, data, panel.title);
      else if (data.type === "numbers") numbers(card, data);
      else if (data.type === "table") table(card, data);
      else if (data.type === "quotes") quotes(card, data);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
