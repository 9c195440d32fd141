/// The UI's stylesheet and script, compiled in (no resources, nothing fetched from elsewhere).
enum Assets {
    /// `/static/<name>`, nil for an unknown name.
    static func page(_ name: String) -> WebPage? {
        switch name {
        case "app.css": WebPage(contentType: "text/css; charset=utf-8", body: Array(css.utf8))
        case "app.js": WebPage(contentType: "text/javascript; charset=utf-8", body: Array(js.utf8))
        default: nil
        }
    }

    static let css = """
        :root {
          --fg: #1d2330; --muted: #5f6b7a; --line: #d9dee5; --bg: #ffffff; --panel: #f5f7fa; --accent: #2458c6;
          --ok: #1a7f37; --bad: #c62828; --warn-bg: #fff4d6;
          font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 15px;
        }
        * { box-sizing: border-box; }
        body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.45; }
        a { color: var(--accent); text-decoration: none; }
        a:hover { text-decoration: underline; }
        code, pre, .num, time { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
        .topbar { display: flex; align-items: center; gap: 28px; padding: 10px 24px; background: #17202e; }
        .topbar .brand { color: #fff; font-weight: 700; font-size: 1.15em; letter-spacing: 0.02em; }
        .topbar nav a { color: #c9d3e3; margin-right: 18px; padding: 4px 0; }
        .topbar nav a.active { color: #fff; border-bottom: 2px solid #7aa7ff; }
        main { padding: 18px 24px 40px; max-width: 1400px; }
        footer { padding: 12px 24px; color: var(--muted); border-top: 1px solid var(--line); font-size: 0.9em; }
        h1 { font-size: 1.5em; margin: 6px 0 14px; }
        h2 { font-size: 1.15em; margin: 26px 0 10px; }
        .crumbs { color: var(--muted); margin: 0; font-size: 0.9em; }
        .hint { color: var(--muted); font-size: 0.92em; }
        .none, .missing { color: var(--muted); font-style: italic; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
        .button { display: inline-block; padding: 5px 12px; border: 1px solid var(--accent); border-radius: 5px; background: var(--accent);
          color: #fff; font: inherit; cursor: pointer; }
        .button:disabled { background: #9aa9c4; border-color: #9aa9c4; cursor: default; }
        a.button { background: #fff; color: var(--accent); margin-right: 6px; }
        a.button:hover { background: #eef3ff; text-decoration: none; }
        form.filter { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; margin-bottom: 10px; }
        form.filter input[type=search] { flex: 1 1 420px; max-width: 720px; padding: 6px 8px; font: inherit; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
          border: 1px solid var(--line); border-radius: 5px; }
        form.filter select, form.filter input[type=number] { padding: 5px; font: inherit; }
        details.help { flex-basis: 100%; color: var(--muted); font-size: 0.9em; }
        details.help summary { cursor: pointer; }
        pre.error { background: #fdecea; color: #8a1c1c; border: 1px solid #f5c2c0; border-radius: 5px; padding: 10px 12px; white-space: pre-wrap; }
        pre.message { background: var(--panel); padding: 10px 12px; border-radius: 5px; white-space: pre-wrap; }
        .toolbar { display: flex; align-items: center; gap: 14px; margin: 8px 0; }
        .toolbar .count { margin: 0; font-weight: 600; }
        .table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
        table { border-collapse: collapse; width: 100%; }
        th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; white-space: nowrap; }
        thead th { background: var(--panel); position: sticky; top: 0; font-weight: 600; }
        th a.sort { color: var(--fg); }
        th[aria-sort] a.sort { color: var(--accent); }
        tr.groups th { font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.05em; color: var(--muted); padding: 3px 10px; }
        tr.groups th.group { border-left: 2px solid var(--line); }
        td.num { text-align: right; }
        td.subject { white-space: normal; min-width: 220px; }
        tbody tr:hover { background: #f8fafe; }
        tr.run-row.selected { background: #eef3ff; }
        td.select, th.select { width: 28px; }
        .badge { display: inline-block; padding: 0 7px; border-radius: 10px; background: #e8edf5; color: var(--fg); font-size: 0.85em; margin: 1px 2px 1px 0; }
        .badge.tag { background: #e6f4ea; }
        .badge.stage { background: #fff0d9; }
        .empty { border: 1px dashed var(--line); border-radius: 8px; padding: 22px 24px; background: var(--panel); max-width: 900px; }
        .empty .empty-title { font-weight: 600; font-size: 1.1em; margin-top: 0; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 10px 0; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; word-break: break-all; }
        .ok { color: var(--ok); font-weight: 600; }
        .failed { color: var(--bad); font-weight: 600; }
        .columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 0 32px; }
        table.kv th { font-weight: 500; }
        .charts { display: flex; flex-wrap: wrap; gap: 18px; }
        figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; background: #fff; }
        figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
        svg.chart-svg { display: block; max-width: 100%; height: auto; }
        svg .grid { stroke: #e7ebf0; stroke-width: 1; }
        svg .axis, svg line.tick { stroke: #8993a1; stroke-width: 1; }
        svg text { fill: var(--muted); font-size: 11px; font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
        svg text.axis-label { fill: var(--fg); font-size: 12px; font-family: system-ui, sans-serif; }
        svg path.series { fill: none; stroke-width: 2; stroke-linejoin: round; stroke-linecap: round; }
        figure.chart.focus path.series:not(.hi), figure.chart.focus circle.point:not(.hi) { opacity: 0.15; }
        ul.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 0.9em; }
        ul.legend li { cursor: default; }
        .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
        nav.tabs { display: flex; flex-wrap: wrap; gap: 6px; margin: 8px 0 14px; }
        nav.tabs a { padding: 3px 10px; border: 1px solid var(--line); border-radius: 14px; color: var(--fg); }
        nav.tabs a.active { background: var(--accent); border-color: var(--accent); color: #fff; }
        table.compare tr.differs td { background: var(--warn-bg); }
        .graph-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fbfcfe; }
        svg.lineage .lineage-node rect { fill: #fff; stroke: #7d8da6; stroke-width: 1.2; }
        svg.lineage .lineage-node.root rect { stroke: var(--accent); stroke-width: 2.4; }
        svg.lineage .lineage-node:hover rect { fill: #eef3ff; }
        svg.lineage text.node-id { fill: var(--accent); font-size: 12px; }
        svg.lineage text.node-subject { fill: var(--fg); font-size: 12px; font-family: system-ui, sans-serif; }
        svg.lineage path.edge { fill: none; stroke: #8a97ab; stroke-width: 1.5; }
        svg.lineage marker path { fill: #8a97ab; }
        svg.lineage text.edge-label { fill: var(--muted); font-size: 11px; }
        ul.tree, ul.tree ul { list-style: none; padding-left: 22px; margin: 4px 0; }
        ul.tree { padding-left: 0; }
        ul.tree li { position: relative; padding: 2px 0; }
        ul.tree ul li::before { content: "└─"; position: absolute; left: -20px; color: var(--muted); }
        .via { color: var(--muted); font-size: 0.9em; margin-left: 6px; }
        table.registry td.stage-cell { white-space: normal; min-width: 200px; }
        table.registry .since { color: var(--muted); font-size: 0.85em; }
        .action { font-weight: 600; }
        .action.rollback { color: var(--bad); }
        .action.promote { color: var(--ok); }
        td.reason { white-space: normal; min-width: 240px; }
        td.arrow { color: var(--muted); padding: 6px 0; }
        """

    static let js = """
        // mlstore web UI: run selection for Compare, form-safe filter URLs, chart legend highlighting.
        (function () {
          "use strict";
          var compare = document.getElementById("compare");
          if (compare) {
            var boxes = Array.prototype.slice.call(document.querySelectorAll("input.select-run"));
            var update = function () {
              var n = 0;
              boxes.forEach(function (b) {
                var row = b.closest("tr");
                if (row) { row.classList.toggle("selected", b.checked); }
                if (b.checked) { n += 1; }
              });
              compare.disabled = n < 2;
              compare.textContent = n > 0 ? "Compare selected (" + n + ")" : "Compare selected";
            };
            boxes.forEach(function (b) { b.addEventListener("change", update); });
            compare.addEventListener("click", function () {
              var ids = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
              if (ids.length > 0) { window.location.href = "/compare?runs=" + ids.join(","); }
            });
            update();
          }
          // Submit the filter with %20 for spaces, so the query reads the same whatever decodes it.
          var filter = document.getElementById("filter");
          if (filter) {
            filter.addEventListener("submit", function (event) {
              event.preventDefault();
              var parts = [];
              Array.prototype.forEach.call(filter.elements, function (el) {
                if (el.name && el.value) { parts.push(encodeURIComponent(el.name) + "=" + encodeURIComponent(el.value)); }
              });
              window.location.href = filter.getAttribute("action") + (parts.length ? "?" + parts.join("&") : "");
            });
          }
          // Hovering a legend entry brings that run's line forward.
          Array.prototype.forEach.call(document.querySelectorAll("figure.chart ul.legend li"), function (li) {
            var fig = li.closest("figure");
            var run = li.getAttribute("data-run");
            li.addEventListener("mouseenter", function () {
              fig.classList.add("focus");
              Array.prototype.forEach.call(fig.querySelectorAll("[data-run='" + run + "']"), function (el) { el.classList.add("hi"); });
            });
            li.addEventListener("mouseleave", function () {
              fig.classList.remove("focus");
              Array.prototype.forEach.call(fig.querySelectorAll(".hi"), function (el) { el.classList.remove("hi"); });
            });
          });
        })();
        """
}
