/* Results page of a campaign in the Engage admin: two Chart.js charts drawn from the JSON the
 * server put in #engage-results-data (conversion rate with 95% interval per group, and what
 * people did per variant). Needs static/engage/vendor/chart.umd.js loaded first. */
(function () {
  "use strict";

  var CONTROL = "#9aa0a6";
  var VARIANTS = ["#4f46e5", "#0d9488", "#d97706", "#db2777", "#2563eb", "#65a30d"];
  var FUNNEL = {
    eligible: "#c7d2fe",
    shown: "#818cf8",
    clicked: "#4f46e5",
    dismissed: "#f59e0b",
    converted: "#16a34a"
  };

  function themeColour(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // Draws each bar's 95% interval as a whisker with caps.
  var intervalWhiskers = {
    id: "engageIntervals",
    afterDatasetsDraw: function (chart, _args, options) {
      var intervals = options.intervals || [];
      var meta = chart.getDatasetMeta(0);
      var y = chart.scales.y;
      var ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = options.color || "#222";
      ctx.lineWidth = 1.5;
      meta.data.forEach(function (bar, index) {
        var range = intervals[index];
        if (!range) return;
        var top = y.getPixelForValue(range[1]);
        var bottom = y.getPixelForValue(range[0]);
        var half = Math.min(10, bar.width / 4);
        ctx.beginPath();
        ctx.moveTo(bar.x, top);
        ctx.lineTo(bar.x, bottom);
        ctx.moveTo(bar.x - half, top);
        ctx.lineTo(bar.x + half, top);
        ctx.moveTo(bar.x - half, bottom);
        ctx.lineTo(bar.x + half, bottom);
        ctx.stroke();
      });
      ctx.restore();
    }
  };

  function start() {
    var source = document.getElementById("engage-results-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var text = themeColour("--body-fg", "#333");
    var grid = themeColour("--hairline-color", "#e8e8e8");
    Chart.defaults.color = text;
    Chart.defaults.borderColor = grid;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;

    var colours = data.labels.map(function (_label, index) {
      if (data.control && index === 0) return CONTROL;
      return VARIANTS[(index - (data.control ? 1 : 0)) % VARIANTS.length];
    });
    var highest = 0;
    data.intervals.forEach(function (range, index) {
      highest = Math.max(highest, range ? range[1] : 0, data.rates[index] || 0);
    });

    new Chart(document.getElementById("engage-chart-rates"), {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [{
          label: "Conversion rate (%)",
          data: data.rates,
          backgroundColor: colours,
          borderRadius: 4,
          maxBarThickness: 90
        }]
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {
          y: {
            beginAtZero: true,
            suggestedMax: Math.min(100, Math.ceil(highest * 1.15) || 10),
            title: {display: true, text: "converted (%)"},
            ticks: {callback: function (v) { return v + "%"; }}
          }
        },
        plugins: {
          legend: {display: false},
          engageIntervals: {intervals: data.intervals, color: text},
          tooltip: {
            callbacks: {
              label: function (item) {
                var range = data.intervals[item.dataIndex];
                var rate = item.raw === null ? "no data" : item.raw.toFixed(1) + "%";
                return range ? rate + " (95%: " + range[0].toFixed(1) + "–" + range[1].toFixed(1) + "%)" : rate;
              }
            }
          }
        }
      },
      plugins: [intervalWhiskers]
    });

    var keys = ["eligible", "shown", "clicked", "dismissed", "converted"];
    new Chart(document.getElementById("engage-chart-funnel"), {
      type: "bar",
      data: {
        labels: data.funnel_labels,
        datasets: keys.map(function (key) {
          return {
            label: key.charAt(0).toUpperCase() + key.slice(1),
            data: data.funnel[key],
            backgroundColor: FUNNEL[key],
            borderRadius: 3,
            maxBarThickness: 42
          };
        })
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        scales: {y: {beginAtZero: true, title: {display: true, text: "people"}, ticks: {precision: 0}}},
        plugins: {legend: {position: "bottom"}}
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
