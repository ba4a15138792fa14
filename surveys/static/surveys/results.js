/* Survey results charts (admin). Data comes from a json_script element; every label is set
 * as text, never as HTML. Chart.js is the vendored static/engage/vendor/chart.umd.js. */
(function () {
  "use strict";

  var COLORS = {
    primary: "#417690",
    accent: "#79aec8",
    promoter: "#2e7d32",
    passive: "#f9a825",
    detractor: "#c62828",
    neutral: "#9e9e9e",
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits === undefined ? 0 : digits);
  }

  function pct(rate) {
    return rate === null || rate === undefined ? "–" : Math.round(rate * 100) + "%";
  }

  function chart(canvas, config) {
    config.options = Object.assign(
      { responsive: true, maintainAspectRatio: false, animation: false },
      config.options || {}
    );
    return new window.Chart(canvas, config);
  }

  function card(parent, title, meta, wide) {
    var box = el("div", "card" + (wide ? " wide" : ""));
    box.appendChild(el("h3", null, title));
    if (meta) box.appendChild(el("p", "meta", meta));
    var holder = el("div", "chart");
    var canvas = el("canvas");
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", title);
    holder.appendChild(canvas);
    box.appendChild(holder);
    parent.appendChild(box);
    return canvas;
  }

  function npsColor(score) {
    if (score >= 9) return COLORS.promoter;
    if (score >= 7) return COLORS.passive;
    return COLORS.detractor;
  }

  var noLegend = { plugins: { legend: { display: false } } };
  // Time axes: horizontal labels, thinned out, rather than a fence of rotated dates.
  var timeX = { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } };
  var integerY = { y: { beginAtZero: true, ticks: { precision: 0 } } };

  function distributionChart(canvas, stats, colorOf) {
    var labels = Object.keys(stats.distribution);
    chart(canvas, {
      type: "bar",
      data: {
        labels: labels,
        datasets: [{
          label: "Answers",
          data: labels.map(function (k) { return stats.distribution[k]; }),
          backgroundColor: labels.map(function (k) { return colorOf ? colorOf(Number(k)) : COLORS.primary; }),
        }],
      },
      options: Object.assign({ scales: integerY }, noLegend),
    });
  }

  var latestTexts = {};

  function questionCard(parent, question, stats) {
    var title = question.text + " (" + question.id + ")";
    var answered = stats.answered + " answered";
    if (stats.dropped_off) answered += ", " + stats.dropped_off + " dropped off here";
    switch (question.type) {
      case "nps":
        distributionChart(
          card(parent, title, "NPS " + fmt(stats.score) + " · mean " + fmt(stats.mean, 1) + " · " + answered),
          stats, npsColor);
        break;
      case "csat":
        distributionChart(
          card(parent, title, "CSAT " + fmt(stats.score) + "% satisfied · mean " + fmt(stats.mean, 2) + " · " + answered),
          stats, function (k) { return k >= 4 ? COLORS.promoter : (k === 3 ? COLORS.passive : COLORS.detractor); });
        break;
      case "rating":
        distributionChart(
          card(parent, title, "Mean " + fmt(stats.mean, 2) + " of " + stats.scale + " · " + answered),
          stats, null);
        break;
      case "single_choice":
      case "multiple_choice":
        var choices = stats.choices || [];
        chart(card(parent, title, answered + (stats.selections !== undefined ? " · " + stats.selections + " choices picked" : "")), {
          type: "bar",
          data: {
            labels: choices.map(function (c) { return c.label; }),
            datasets: [{
              label: "Answers",
              data: choices.map(function (c) { return c.count; }),
              backgroundColor: choices.map(function (c) { return c.id === "other" ? COLORS.neutral : COLORS.primary; }),
            }],
          },
          options: Object.assign({
            indexAxis: "y",
            scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
          }, noLegend),
        });
        break;
      case "yes_no":
        chart(card(parent, title, "Yes " + pct(stats.yes_rate) + " · " + answered), {
          type: "doughnut",
          data: { labels: ["Yes", "No"], datasets: [{ data: [stats.yes, stats.no], backgroundColor: [COLORS.promoter, COLORS.detractor] }] },
        });
        break;
      case "cta":
        chart(card(parent, title, "Clicked " + pct(stats.click_rate) + " · " + answered), {
          type: "doughnut",
          data: { labels: ["Clicked", "Dismissed"], datasets: [{ data: [stats.clicked, stats.dismissed], backgroundColor: [COLORS.primary, COLORS.neutral] }] },
        });
        break;
      default:
        var box = el("div", "card");
        box.appendChild(el("h3", null, title));
        box.appendChild(el("p", "meta", answered));
        var latest = latestTexts[question.id] || [];
        if (latest.length) {
          var list = el("ul", "latest");
          latest.forEach(function (text) { list.appendChild(el("li", null, text)); });
          box.appendChild(list);
        }
        var link = el("a", null, "Read and search all answers below ↓");
        link.href = "#text-answers";
        box.appendChild(link);
        parent.appendChild(box);
    }
  }

  function draw() {
    var source = document.getElementById("survey-results-data");
    if (!source || !window.Chart) return;
    var data = JSON.parse(source.textContent);
    latestTexts = data.latest_texts || {};
    var summary = data.summary;
    var buckets = summary.timeline.buckets;
    var starts = buckets.map(function (b) { return b.start; });
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

    chart(document.getElementById("chart-timeline"), {
      data: {
        labels: starts,
        datasets: [
          { type: "bar", label: "Responses", data: buckets.map(function (b) { return b.responses; }), backgroundColor: COLORS.accent, order: 2 },
          { type: "line", label: "Completed", data: buckets.map(function (b) { return b.completed; }), borderColor: COLORS.primary, backgroundColor: COLORS.primary, pointRadius: 0, tension: 0.2, order: 1 },
        ],
      },
      options: { scales: Object.assign({ x: timeX }, integerY), interaction: { mode: "index", intersect: false } },
    });

    if (summary.nps) {
      chart(document.getElementById("chart-nps"), {
        type: "doughnut",
        data: {
          labels: ["Promoters (9–10)", "Passives (7–8)", "Detractors (0–6)"],
          datasets: [{
            data: [summary.nps.promoters, summary.nps.passives, summary.nps.detractors],
            backgroundColor: [COLORS.promoter, COLORS.passive, COLORS.detractor],
          }],
        },
        options: { plugins: { legend: { position: "right" } } },
      });
      chart(document.getElementById("chart-nps-trend"), {
        type: "line",
        data: {
          labels: starts,
          datasets: [{ label: "NPS", data: buckets.map(function (b) { return b.nps; }), borderColor: COLORS.promoter, backgroundColor: COLORS.promoter, pointRadius: 0, spanGaps: true, tension: 0.2 }],
        },
        options: Object.assign({ scales: { x: timeX, y: { min: -100, max: 100, ticks: { stepSize: 50 } } } }, noLegend),
      });
    }
    if (summary.csat) {
      chart(document.getElementById("chart-csat-trend"), {
        type: "line",
        data: {
          labels: starts,
          datasets: [{ label: "CSAT %", data: buckets.map(function (b) { return b.csat; }), borderColor: COLORS.primary, backgroundColor: COLORS.primary, pointRadius: 0, spanGaps: true, tension: 0.2 }],
        },
        options: Object.assign({ scales: { x: timeX, y: { min: 0, max: 100, ticks: { stepSize: 25 } } } }, noLegend),
      });
    }

    var ids = data.questions.map(function (q) { return q.id; });
    chart(document.getElementById("chart-dropoff"), {
      type: "bar",
      data: {
        labels: ids,
        datasets: [
          { label: "Answered", data: ids.map(function (id) { return summary.questions[id].answered; }), backgroundColor: COLORS.primary },
          { label: "Dropped off after this question", data: ids.map(function (id) { return summary.questions[id].dropped_off; }), backgroundColor: COLORS.detractor },
        ],
      },
      options: { scales: integerY, interaction: { mode: "index", intersect: false } },
    });

    var cards = document.getElementById("question-cards");
    data.questions.forEach(function (question) {
      questionCard(cards, question, summary.questions[question.id]);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
