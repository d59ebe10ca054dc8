// vlmhb view: conveniences only; every page works without this file.
"use strict";
document.addEventListener("keydown", (event) => {
  // "/" jumps to the search box (as on many sites), unless already typing.
  const search = document.getElementById("q");
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "/" && search && !typing) {
    event.preventDefault();
    search.focus();
  }
});
document.addEventListener("DOMContentLoaded", () => {
  // "all models" clears the model selection (all are shown when none is chosen).
  const clear = document.getElementById("all-models");
  const models = document.getElementById("model");
  if (clear && models) {
    clear.addEventListener("click", (event) => {
      event.preventDefault();
      Array.from(models.options).forEach((option) => { option.selected = false; });
    });
  }
});
