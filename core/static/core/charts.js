// Draws the Plotly figures the server put on the page as JSON (json_script); the tables hold the same numbers.
window.parlanceCharts = {
  config: { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] },

  render(element, figure) {
    if (!window.Plotly || !element || !figure) return;
    element.hidden = false;
    const layout = Object.assign({ autosize: true, font: { family: "system-ui, sans-serif", size: 13 } }, figure.layout);
    window.Plotly.react(element, figure.data, layout, this.config);
  },
};

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-figure]").forEach((element) => {
    const source = document.getElementById(element.dataset.figure);
    const figure = source ? JSON.parse(source.textContent) : null;
    if (figure) window.parlanceCharts.render(element, figure);
  });
});
