// The installer's page: shelf zones. Draw named polygons over a still of the camera, give each a planogram (products
// and facings), save them into the device's config file (POST /api/zones), and watch each zone's state: products,
// facings and alerts (GET /api/zones). Coordinates are normalised to the frame (0..1), as the config keeps them.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const still = $("zone-still"), canvas = $("zone-canvas"), message = $("zone-message");
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
  let draft = null;        // {name: {polygon: [[x, y]...], expected: {id: n}}}: what Save sends; null until first loaded
  let outline = null;      // corners of the zone being drawn, or null
  let products = [];       // [{id, name}] of the catalog in use
  let editable = false;
  window.zonesLoaded = 0;  // for tests: how many times /api/zones was read

  function takeStill() { still.src = "/snapshot.jpg?zone=" + Date.now(); }
  still.onerror = () => setTimeout(takeStill, 1000);  // no frame yet: try again
  still.onload = () => draw();
  new ResizeObserver(() => draw()).observe(still);  // the canvas covers the still (CSS): redraw at its new size

  function draw() {
    canvas.width = canvas.clientWidth; canvas.height = canvas.clientHeight;  // drawing pixels = displayed pixels
    const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
    g.clearRect(0, 0, w, h);
    g.lineWidth = 2; g.font = "14px system-ui, sans-serif";
    const path = (points, close) => {
      g.beginPath();
      points.forEach(([x, y], i) => (i ? g.lineTo(x * w, y * h) : g.moveTo(x * w, y * h)));
      if (close) g.closePath();
    };
    for (const [name, zone] of Object.entries(draft ?? {})) {
      path(zone.polygon, true);
      g.fillStyle = "#1e88e533"; g.fill(); g.strokeStyle = "#1e88e5"; g.stroke();
      const [x, y] = zone.polygon[0], width = g.measureText(name).width;
      g.fillStyle = "#1e88e5"; g.fillRect(x * w, y * h, width + 8, 20);
      g.fillStyle = "#fff"; g.fillText(name, x * w + 4, y * h + 15);
    }
    if (outline) {
      path(outline, false);
      g.strokeStyle = "#ef6c00"; g.stroke();
      g.fillStyle = "#ef6c00";
      outline.forEach(([x, y]) => g.fillRect(x * w - 3, y * h - 3, 6, 6));
    }
  }

  canvas.addEventListener("click", (e) => {
    if (!outline) return;
    const r = canvas.getBoundingClientRect();
    const round = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
    outline.push([round((e.clientX - r.left) / r.width), round((e.clientY - r.top) / r.height)]);
    draw();
  });

  $("zone-still-button").onclick = takeStill;
  $("zone-new").onclick = () => {
    const name = $("zone-name").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/.test(name)) return say("bad", "a zone name: letters and digits first, then also _ and -");
    if (draft[name]) return say("bad", `there is a zone ${name} already`);
    outline = []; outline.zoneName = name;
    say(null, `click the corners of ${name} on the still, then Finish the outline`);
    draw();
  };
  $("zone-close").onclick = () => {
    if (!outline || outline.length < 3) return say("bad", "a zone needs at least 3 corners");
    draft[outline.zoneName] = {polygon: outline.map((p) => [...p]), expected: {}};
    say(null, `${outline.zoneName} drawn: add its products if it has a planogram, then Save`);
    outline = null;
    render(); draw();
  };
  $("zone-save").onclick = async () => {
    try {
      const r = await fetch("/api/zones", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({areas: draft})});
      const answer = await r.json();
      if (!r.ok) return say("bad", answer.error + (answer.problems?.length ? ": " + answer.problems.join("; ") : ""));
      say("ok", `saved to ${answer.saved} (the previous file is ${answer.backup}); the daemon uses them now`);
    } catch (e) { say("bad", "the device does not answer (" + e.message + ")"); }
  };

  function say(kind, text) {
    message.className = kind === "ok" ? "badge ok" : kind === "bad" ? "badge bad" : "meta";
    message.textContent = text;
  }

  // the list of zones being edited: name, planogram rows, remove buttons
  function render() {
    const options = products.map((p) => `<option value="${esc(p.id)}">${esc(p.name)}</option>`).join("");
    const names = new Map(products.map((p) => [p.id, p.name]));
    $("zone-list").innerHTML = Object.entries(draft).map(([name, zone]) =>
      `<li data-zone="${esc(name)}"><b>${esc(name)}</b> <span class="meta">${zone.polygon.length} corners</span> ` +
      `<button class="zone-delete">remove</button><ul>` +
      Object.entries(zone.expected).map(([id, n]) => `<li data-product="${esc(id)}">${esc(names.get(id) ?? id)} × ${esc(n)} ` +
                                                      `<button class="zone-unexpect" title="remove from the planogram">×</button></li>`).join("") +
      `</ul><select class="zone-product">${options}</select> <input class="zone-facings" type="number" min="1" value="1"> ` +
      `<button class="zone-add">add to planogram</button></li>`).join("");
    for (const li of $("zone-list").children) {
      const zone = draft[li.dataset.zone];
      li.querySelector(".zone-delete").onclick = () => { delete draft[li.dataset.zone]; render(); draw(); };
      li.querySelector(".zone-add").onclick = () => {
        const n = parseInt(li.querySelector(".zone-facings").value, 10);
        if (!(n >= 1)) return say("bad", "facings: a whole number from 1");
        zone.expected[li.querySelector(".zone-product").value] = n;
        render();
      };
      li.querySelectorAll(".zone-unexpect").forEach((b) => { b.onclick = () => { delete zone.expected[b.parentNode.dataset.product]; render(); }; });
    }
    $("zone-save").disabled = !editable;
  }

  // each zone's state as the daemon publishes it: products with facings, and alerts
  function showStates(areas, states) {
    $("zone-states").innerHTML = Object.keys(areas).map((name) => {
      const s = states[name];
      if (!s) return `<div class="zone-state" data-zone="${esc(name)}"><b>${esc(name)}</b> <span class="meta">settling…</span></div>`;
      const alerts = new Map(s.alerts.map((a) => [a.product, a.type]));
      const rows = s.products.map((p) => {
        const alert = alerts.get(p.product.id);
        return `<li>${esc(p.product.name)} <b class="facings">${esc(p.facings)}</b>${p.expected ? ` / ${esc(p.expected)}` : ""}` +
               (alert ? ` <span class="badge ${alert === "gone" ? "bad" : "warn"} alert">${esc(alert)}</span>` : "") + "</li>";
      }).join("");
      return `<div class="zone-state" data-zone="${esc(name)}"><b>${esc(name)}</b> <span class="meta">${esc(new Date(s.ts).toLocaleTimeString())}</span>` +
             `<ul>${rows || "<li class='meta'>nothing</li>"}</ul></div>`;
    }).join("") || `<p class="meta">no zones yet: draw one on the still</p>`;
  }

  async function refresh() {
    try {
      const r = await fetch("/api/zones", {cache: "no-store"});
      if (!r.ok) return;
      const z = await r.json();
      products = z.products; editable = z.editable;
      $("zone-readonly").textContent = z.editable ? "" : z.not_editable;
      if (draft === null) { draft = z.areas; render(); draw(); }
      else if (!$("zone-list").querySelector("select:focus, input:focus")) render();  // new products; not while typing
      showStates(z.areas, z.states);
      window.zonesLoaded++;
    } catch (e) { /* the status line says when the device is gone */ }
  }

  takeStill();
  refresh();
  setInterval(refresh, 2000);
})();
