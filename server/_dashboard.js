// The dashboard's script, served by the app itself (the machine may be offline): loads the history,
// then follows the event stream, and draws the charts as inline SVG. Paths are relative so that the
// app also works behind a proxy under a prefix.
"use strict";

(() => {
  const MAX_DRAWN = 1500; // points per line; longer histories are thinned for drawing
  const RATE_WINDOW = 10; // logged steps the throughput line averages over

  /** Logged steps, ascending, and the steps present. */
  let rows = [];
  const seen = new Set();
  let status = null;
  let scheduled = false;

  const $ = (id) => document.getElementById(id);

  function add(m) {
    if (seen.has(m.step)) return;
    seen.add(m.step);
    if (rows.length === 0 || m.step > rows[rows.length - 1].step) rows.push(m);
    else rows = [...rows, m].sort((a, b) => a.step - b.step);
  }

  function fmt(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
    return String(Number(v.toPrecision(3)));
  }

  function duration(s) {
    if (s === null || s === undefined || !Number.isFinite(s)) return "–";
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (h > 0) return h + "h" + String(m).padStart(2, "0") + "m";
    if (m > 0) return m + "m" + String(s % 60).padStart(2, "0") + "s";
    return s + "s";
  }

  // per-step readings are noisy (asynchronous readback), so the line is averaged over a window that
  // restarts where elapsed_s goes backwards: a resumed run's clock starts again at 0
  function throughput() {
    const out = [];
    let start = 0;
    for (let i = 0; i < rows.length; i++) {
      if (i > 0 && rows[i].elapsed_s < rows[i - 1].elapsed_s) start = i;
      const j = Math.max(start, i - RATE_WINDOW);
      const dt = rows[i].elapsed_s - rows[j].elapsed_s;
      out.push([
        rows[i].step,
        i > j && dt > 0 ? (rows[i].tokens - rows[j].tokens) / dt : rows[i].tokens_per_s,
      ]);
    }
    return out;
  }

  function thin(points) {
    if (points.length <= MAX_DRAWN) return points;
    const stride = Math.ceil(points.length / MAX_DRAWN);
    const out = points.filter((_, i) => i % stride === 0);
    if (out[out.length - 1] !== points[points.length - 1]) out.push(points[points.length - 1]);
    return out;
  }

  function ticks(lo, hi, n) {
    const raw = (hi - lo) / n;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }

  function range(values, pad) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo === hi) {
      lo -= Math.abs(lo) * 0.1 || 1;
      hi += Math.abs(hi) * 0.1 || 1;
    }
    const margin = (hi - lo) * pad;
    return [lo - margin, hi + margin];
  }

  // series: [{ cls, points: [[x, y]], dots }]; each line carries data-points (its full length)
  function chart(svg, series) {
    const [, , W, H] = svg.getAttribute("viewBox").split(" ").map(Number);
    const L = 64, R = 12, T = 10, B = 26;
    const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
    if (all.length === 0) {
      svg.innerHTML = '<text x="' + W / 2 + '" y="' + H / 2 +
        '" text-anchor="middle">waiting for the first logged step…</text>';
      return;
    }
    let [x0, x1] = range(all.map((p) => p[0]), 0);
    if (all.length === 1) [x0, x1] = [all[0][0] - 1, all[0][0] + 1];
    const [y0, y1] = range(all.map((p) => p[1]), 0.05);
    const sx = (x) => (L + ((x - x0) / (x1 - x0)) * (W - L - R)).toFixed(1);
    const sy = (y) => (H - B - ((y - y0) / (y1 - y0)) * (H - T - B)).toFixed(1);
    let out = "";
    for (const y of ticks(y0, y1, 5)) {
      out += '<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + sy(y) + '" y2="' + sy(y) + '"/>';
      out += '<text x="' + (L - 6) + '" y="' + sy(y) + '" dy="4" text-anchor="end">' + fmt(y) + "</text>";
    }
    for (const x of ticks(x0, x1, 8)) {
      if (!Number.isInteger(x)) continue;
      out += '<text x="' + sx(x) + '" y="' + (H - 6) + '" text-anchor="middle">' + fmt(x) + "</text>";
    }
    for (const s of series) {
      const pts = thin(s.points.filter((p) => Number.isFinite(p[1])));
      out += '<polyline class="' + s.cls + '" data-points="' + s.points.length + '" points="' +
        pts.map((p) => sx(p[0]) + "," + sy(p[1])).join(" ") + '"/>';
      if (s.dots) {
        for (const p of pts) {
          out += '<circle class="' + s.cls + '" r="3" cx="' + sx(p[0]) + '" cy="' + sy(p[1]) + '"/>';
        }
      }
    }
    svg.innerHTML = out;
  }

  function render() {
    scheduled = false;
    const last = rows[rows.length - 1];
    const s = status ?? {};
    if (s.name) {
      $("name").textContent = s.name;
      document.title = s.name + " · Inheritune";
    }
    const state = $("state");
    state.className = "badge " + (s.state ?? "");
    state.textContent = (s.state ?? "loading") +
      (s.state === "running" && s.stop_requested ? " (stopping)" : "");
    const step = $("step");
    step.dataset.step = String(last?.step ?? 0);
    step.textContent = (last ? String(last.step) : "0") + (s.total_steps ? " / " + s.total_steps : "");
    $("tokens").textContent = fmt(last?.tokens);
    $("loss").textContent = last ? last.loss.toFixed(4) : "–";
    $("val-loss").textContent = s.val_loss === null || s.val_loss === undefined
      ? "–"
      : s.val_loss.toFixed(4) + " @" + s.val_step;
    $("speed").textContent = fmt(s.tokens_per_s);
    $("eta").textContent = s.state === "running" ? duration(s.eta_s) : "–";
    $("device").textContent = s.device ?? "–";
    $("config").textContent = s.config ? JSON.stringify(s.config, null, 2) : "–";
    chart($("loss-chart"), [
      { cls: "train", points: rows.map((m) => [m.step, m.loss]) },
      {
        cls: "val",
        points: rows.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss]),
        dots: true,
      },
    ]);
    chart($("speed-chart"), [{ cls: "speed", points: throughput() }]);
  }

  function schedule() {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(render);
    }
  }

  async function getJSON(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  // on every (re)connection: what was logged while we were not listening
  async function catchUp() {
    try {
      const since = rows.length > 0 ? rows[rows.length - 1].step : 0;
      const [s, m] = await Promise.all([getJSON("api/status"), getJSON("api/metrics?since=" + since)]);
      status = s;
      for (const r of m.metrics) add(r);
      schedule();
    } catch (e) {
      $("conn").textContent = String(e.message ?? e);
    }
  }

  const events = new EventSource("api/events");
  events.addEventListener("open", () => {
    $("conn").textContent = "live";
    catchUp();
  });
  events.addEventListener("metrics", (e) => {
    const data = JSON.parse(e.data);
    add(data.metrics);
    status = data.status;
    schedule();
  });
  events.addEventListener("status", (e) => {
    status = JSON.parse(e.data);
    schedule();
  });
  events.addEventListener("reset", () => {
    rows = [];
    seen.clear();
    catchUp();
  });
  events.addEventListener("end", () => {
    events.close();
    $("conn").textContent = "server closed";
  });
  events.addEventListener("error", () => {
    if (events.readyState !== EventSource.CLOSED) $("conn").textContent = "reconnecting…";
  });
})();
