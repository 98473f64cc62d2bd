// Wharf UI: the copy buttons and the confirmation before a delete. The
// pages work without it (the copy field can be selected by hand).
"use strict";

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  // Plain http on a non-local host: the older way.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "absolute";
  area.style.left = "-9999px";
  document.body.appendChild(area);
  area.select();
  const ok = document.execCommand("copy");
  document.body.removeChild(area);
  return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  const status = document.getElementById("copy-status");
  copyText(text).then(
    () => {
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      if (status) status.textContent = "Copied: " + text;
    },
    () => {
      if (status) status.textContent = "Copy failed; select the command and copy it by hand.";
    },
  );
});

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
