// Typeset the formulas that pymdownx.arithmatex marked (class "arithmatex"), on every
// page load, including Material's instant navigation (document$).
function gradchainTypeset() {
  document.querySelectorAll(".arithmatex").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(gradchainTypeset);
} else {
  document.addEventListener("DOMContentLoaded", gradchainTypeset);
}
