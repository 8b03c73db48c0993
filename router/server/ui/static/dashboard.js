// Draws the dashboard's charts with uPlot from the page's JSON block (#chart-data).
// No inline code: the page's Content-Security-Policy allows only this file and uPlot.
(function () {
  "use strict";
  var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#6b7280"];

  function money(v) {
    if (v == null) return "-";
    return "$" + (v >= 1 ? v.toFixed(2) : v.toPrecision(3));
  }

  function draw(el, data) {
    var width = Math.max(320, el.clientWidth || 600);
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({
        label: s.label,  // set as text by uPlot (never parsed as HTML)
        stroke: COLORS[i % COLORS.length],
        width: 2,
        points: { show: data.x.length <= 60 },
        value: function (u, v) { return money(v); }
      });
      columns.push(s.y);
    });
    var opts = {
      width: width,
      height: 220,
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { values: function (u, ticks) { return ticks.map(money); }, size: 70 }],
      legend: { live: true }
    };
    return new uPlot(opts, columns, el);
  }

  function main() {
    var block = document.getElementById("chart-data");
    if (!block || typeof uPlot === "undefined") return;
    var all = JSON.parse(block.textContent);
    var drawn = 0;
    document.querySelectorAll(".chart[data-dim]").forEach(function (el) {
      var data = all[el.getAttribute("data-dim")];
      if (!data) return;
      if (!data.series.length) {
        el.classList.add("nodata");
        el.textContent = "No spend in this window.";
        return;
      }
      draw(el, data);
      drawn += 1;
    });
    document.body.setAttribute("data-charts", String(drawn));
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
