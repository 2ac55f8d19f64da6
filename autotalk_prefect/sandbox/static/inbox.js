// Live view of the sandbox inbox: no framework, nothing fetched but this sandbox's own pages.
// Every second it polls /_sandbox/inbox/summary; when its version changes, it re-fetches the
// current page and swaps in the regions marked data-refresh (forms are left alone).
(() => {
  "use strict";
  const body = document.body;
  const summaryUrl = body.dataset.live;
  if (!summaryUrl) return;
  let version = body.dataset.version;
  async function refresh() {
    const answer = await fetch(location.href, { cache: "no-store" });
    if (!answer.ok) return;
    const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
    for (const region of document.querySelectorAll("[data-refresh]")) {
      const replacement = fresh.getElementById(region.id);
      if (replacement) region.replaceWith(document.importNode(replacement, true));
    }
  }
  async function tick() {
    try {
      const answer = await fetch(summaryUrl, { cache: "no-store" });
      const summary = await answer.json();
      if (String(summary.version) !== version) {
        version = String(summary.version);
        await refresh();
      }
    } catch (error) {
      // the sandbox stopped or restarted: keep polling quietly
    }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();
