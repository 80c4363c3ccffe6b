// Charts of the admin's analytics section (analytics/templates/analytics/admin/dashboard_section.html).
// The figures come from the page's JSON block; each chart has a data table next to it. Colours follow
// the admin's light or dark theme and are redrawn when the theme changes.
(() => {
  const source = document.getElementById("analytics-chart-data");
  if (!source || typeof window.Chart === "undefined") return;
  const specs = JSON.parse(source.textContent);
  const palette = ["#4f46e5", "#0891b2", "#16a34a", "#ca8a04", "#9333ea", "#dc2626", "#64748b"];
  const drawn = [];

  function themeColours() {
    const dark = document.documentElement.classList.contains("dark");
    return {
      text: dark ? "#d4d4d8" : "#3f3f46",
      grid: dark ? "rgba(255, 255, 255, 0.08)" : "rgba(0, 0, 0, 0.08)",
    };
  }

  function config(spec, colours) {
    const datasets = spec.datasets.map((dataset, i) => ({
      label: dataset.label,
      data: dataset.data,
      borderColor: palette[i % palette.length],
      backgroundColor: palette[i % palette.length],
      borderWidth: 2,
      pointRadius: spec.labels.length > 31 ? 0 : 2,
      spanGaps: true,
      tension: 0.2,
      // The cost chart shows answers on a second axis: dollars and counts do not share a scale.
      yAxisID: spec.id === "cost" && i === 1 ? "y2" : "y",
    }));
    const axis = (extra) => ({
      ticks: { color: colours.text },
      grid: { color: colours.grid },
      stacked: spec.stacked,
      beginAtZero: true,
      ...extra,
    });
    // Days as "11-04" (the year is in the heading and the data table), unrotated, as many as fit.
    const dayTicks = {
      color: colours.text,
      maxRotation: 0,
      autoSkip: true,
      callback(value) {
        const label = this.getLabelForValue(value);
        return /^\d{4}-\d{2}-\d{2}$/.test(label) ? label.slice(5) : label;
      },
    };
    const scales = { x: axis({ ticks: dayTicks }), y: axis({}) };
    if (spec.unit) scales.y.title = { display: true, text: spec.unit, color: colours.text };
    if (spec.id === "cost") scales.y2 = axis({ position: "right", grid: { drawOnChartArea: false } });
    return {
      type: spec.kind,
      data: { labels: spec.labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { color: colours.text } } },
        scales,
      },
    };
  }

  function draw() {
    for (const chart of drawn.splice(0)) chart.destroy();
    const colours = themeColours();
    for (const spec of specs) {
      const canvas = document.getElementById(`chart-${spec.id}`);
      if (canvas) drawn.push(new window.Chart(canvas, config(spec, colours)));
    }
  }

  draw();
  new MutationObserver(draw).observe(document.documentElement, {
    attributes: true,
    attributeFilter: ["class"],
  });

  // The filter form: dates only for a custom period, and apply a choice at once.
  const form = document.getElementById("analytics-filters");
  if (form) {
    const custom = form.querySelectorAll("[data-custom-range]");
    const showDates = () => {
      const hide = form.elements.range.value !== "custom";
      for (const label of custom) label.style.display = hide ? "none" : "";
    };
    showDates();
    form.elements.range.addEventListener("change", () => {
      showDates();
      if (form.elements.range.value !== "custom") form.submit();
    });
    form.elements.bot.addEventListener("change", () => form.submit());
  }
})();
