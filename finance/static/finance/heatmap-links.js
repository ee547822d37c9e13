// A click on a heatmap row opens that row's page: elements with data-row-link="/finance/sectors/__row__/".
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-row-link]").forEach((element) => {
    if (typeof element.on !== "function") return;
    element.on("plotly_click", (event) => {
      const point = event && event.points && event.points[0];
      if (!point || point.y === undefined) return;
      window.location.href = element.dataset.rowLink.replace("__row__", encodeURIComponent(String(point.y)));
    });
  });
});
