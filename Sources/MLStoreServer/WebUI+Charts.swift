import Foundation
import MLStoreBasics
import MLStoreCore

/// An inline SVG line chart of step series (x: step, y: value) with axes, tick labels, grid lines and a
/// legend. Each run's line is one `<path class="series" data-run="<hex>">`.
struct LineChart {
    /// One run's series.
    struct Series {
        var run: ObjectID
        var label: String
        var points: [(step: Double, value: Double)]
        var color: String
    }

    /// Distinct line colours (the Tableau 10 palette), assigned to runs in order.
    static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    /// Series longer than this are thinned to about this many points (the last point is always kept).
    static let maxPointsPerPath = 1500
    /// Series up to this long also get a dot per point, with the exact value as a tooltip.
    static let maxMarkedPoints = 60

    var title: String
    var series: [Series]
    var width = 640.0
    var height = 300.0
    let margin = (top: 16.0, right: 20.0, bottom: 46.0, left: 70.0)

    /// The chart as a `<figure>`: the SVG and, for several runs, a legend.
    func html() -> SafeHTML {
        let all = series.flatMap(\.points)
        guard let minStep = all.map(\.step).min(), let maxStep = all.map(\.step).max(),
            let minValue = all.map(\.value).min(), let maxValue = all.map(\.value).max()
        else { return .empty }
        let integralSteps = all.allSatisfy { $0.step == $0.step.rounded() }
        let xTicks = Self.ticks(minStep, maxStep, count: 6, integral: integralSteps)
        let yTicks = Self.ticks(minValue, maxValue, count: 5, integral: false)
        let (x0, x1) = (xTicks.first ?? minStep, xTicks.last ?? maxStep)
        let (y0, y1) = (yTicks.first ?? minValue, yTicks.last ?? maxValue)
        let plotW = width - margin.left - margin.right
        let plotH = height - margin.top - margin.bottom
        func px(_ s: Double) -> Double { margin.left + (x1 == x0 ? 0.5 : (s - x0) / (x1 - x0)) * plotW }
        func py(_ v: Double) -> Double { margin.top + (1 - (y1 == y0 ? 0.5 : (v - y0) / (y1 - y0))) * plotH }
        let bottom = margin.top + plotH
        let right = margin.left + plotW

        let grid: SafeHTML = yTicks.html { t in
            "<line class=\"grid\" x1=\"\(coordinate: margin.left)\" y1=\"\(coordinate: py(t))\" x2=\"\(coordinate: right)\" y2=\"\(coordinate: py(t))\"/>"
                + "<text class=\"tick y\" x=\"\(coordinate: margin.left - 6)\" y=\"\(coordinate: py(t) + 4)\" text-anchor=\"end\">\(Format.number(t))</text>\n"
        } + xTicks.html { t in
            "<line class=\"tick\" x1=\"\(coordinate: px(t))\" y1=\"\(coordinate: bottom)\" x2=\"\(coordinate: px(t))\" y2=\"\(coordinate: bottom + 5)\"/>"
                + "<text class=\"tick x\" x=\"\(coordinate: px(t))\" y=\"\(coordinate: bottom + 18)\" text-anchor=\"middle\">\(Format.number(t))</text>\n"
        }
        let lines = series.html { s -> SafeHTML in
            let points = Self.thinned(s.points)
            var d = ""
            for (i, p) in points.enumerated() {
                d += (i == 0 ? "M" : " L") + SafeHTML.coordinate(px(p.step)) + "," + SafeHTML.coordinate(py(p.value))
            }
            let dots: SafeHTML = s.points.count > Self.maxMarkedPoints ? .empty : s.points.html { p in
                """
                <circle class="point" data-run="\(s.run.hex)" cx="\(coordinate: px(p.step))" cy="\(coordinate: py(p.value))" r="2.5" fill="\(s.color)">\
                <title>\(s.run.short) · step \(Format.number(p.step)): \(JSONValue.format(p.value))</title></circle>
                """
            }
            return """
                <path class="series" data-run="\(s.run.hex)" d="\(d)" stroke="\(s.color)">\
                <title>\(s.run.short) \(s.label)</title></path>
                \(dots)
                """
        }
        let label = "\(title) by step, " + Format.plural(series.count, "run")
        let legend: SafeHTML = series.count < 2 ? .empty : """
            <ul class="legend">\(series.html { s in
                "<li data-run=\"\(s.run.hex)\"><span class=\"swatch\" style=\"background:\(s.color)\"></span>\(Markup.runLink(s.run)) \(s.label)</li>"
            })</ul>
            """
        return """
            <figure class="chart" data-metric="\(title)">
            <figcaption>\(title)</figcaption>
            <svg class="chart-svg" viewBox="0 0 \(Int(width)) \(Int(height))" width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(label)">
            \(grid)\
            <line class="axis" x1="\(coordinate: margin.left)" y1="\(coordinate: bottom)" x2="\(coordinate: right)" y2="\(coordinate: bottom)"/>
            <line class="axis" x1="\(coordinate: margin.left)" y1="\(coordinate: margin.top)" x2="\(coordinate: margin.left)" y2="\(coordinate: bottom)"/>
            <text class="axis-label" x="\(coordinate: margin.left + plotW / 2)" y="\(coordinate: height - 6)" text-anchor="middle">step</text>
            <text class="axis-label" transform="translate(14 \(coordinate: margin.top + plotH / 2)) rotate(-90)" text-anchor="middle">\(title)</text>
            <g class="lines">
            \(lines)</g>
            </svg>
            \(legend)
            </figure>

            """
    }

    /// "Nice" tick values (steps of 1, 2 or 5 × 10ⁿ) covering `lo...hi`; whole numbers only when `integral`.
    static func ticks(_ lo: Double, _ hi: Double, count: Int, integral: Bool) -> [Double] {
        var (lo, hi) = (lo, hi)
        if lo == hi {
            let pad = lo == 0 ? 1 : abs(lo) * 0.1
            (lo, hi) = integral ? (lo - 1, hi + 1) : (lo - pad, hi + pad)
        }
        let raw = (hi - lo) / Double(max(1, count))
        let magnitude = pow(10, floor(log10(raw)))
        let n = raw / magnitude
        var step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * magnitude
        if integral { step = max(1, step.rounded()) }
        let first = (lo / step).rounded(.down)
        let last = (hi / step).rounded(.up)
        guard last - first < 100 else { return [lo, hi] }
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    /// Every k-th point so a path has at most about ``maxPointsPerPath`` points, keeping the last one.
    static func thinned(_ points: [(step: Double, value: Double)]) -> [(step: Double, value: Double)] {
        guard points.count > maxPointsPerPath else { return points }
        let k = (points.count + maxPointsPerPath - 1) / maxPointsPerPath
        var out = stride(from: 0, to: points.count, by: k).map { points[$0] }
        if let last = points.last, out.last?.step != last.step { out.append(last) }
        return out
    }
}

/// `/compare?runs=a,b,c&metric=key`: one chart per step-series metric with a line per run, and the runs'
/// params and metrics side by side.
extension WebUI {
    /// At most this many runs on one compare page.
    static let maxComparedRuns = 50

    func comparePage(_ query: [String: String]) throws -> WebPage {
        let specs = (query["runs"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !specs.isEmpty else {
            let body: SafeHTML = """
                <h1>Compare runs</h1>
                \(Markup.empty("No runs selected", "Tick two or more runs in the <a href=\"/\">runs table</a> and press Compare."))
                """
            return page("Compare runs", nav: .runs, body)
        }
        guard specs.count <= Self.maxComparedRuns else {
            throw MLStoreError(.usage, "too many runs to compare (\(specs.count)); at most \(Self.maxComparedRuns)")
        }
        var ids: [ObjectID] = []
        for s in specs {
            let id = try repo.resolveCommit(s)
            if !ids.contains(id) { ids.append(id) }
        }
        let index = try openIndex()
        let rows = try ids.map { try index.row($0) }
        let color = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, LineChart.palette[$0 % LineChart.palette.count]) })
        // Which metrics each run records as a step series (not a scalar).
        let seriesKeys = try ids.map { id -> Set<String> in
            guard let m = try repo.commit(id).metrics, let o = try repo.json(m).object else { return [] }
            return Set(o.filter { $0.value.array != nil }.keys)
        }
        let allSeriesKeys = seriesKeys.reduce(into: Set<String>()) { $0.formUnion($1) }.sorted()
        let metric = query["metric"].flatMap { $0.isEmpty ? nil : $0 }
        if let metric, !allSeriesKeys.contains(metric), !rows.contains(where: { $0.metrics[metric] != nil }) {
            throw MLStoreError(.notFound, "none of the selected runs records a metric '\(metric)'",
                               hint: "their metrics: " + Set(rows.flatMap { $0.metrics.keys }).sorted().joined(separator: ", "))
        }
        let chartKeys = metric.map { m in allSeriesKeys.filter { $0 == m } } ?? allSeriesKeys
        let charts = try chartKeys.html { key in
            let series = try ids.enumerated().filter { seriesKeys[$0.offset].contains(key) }.map { i, id in
                LineChart.Series(run: id, label: rows[i].subject, points: try index.series(id, key: key), color: color[id] ?? "#000")
            }
            return LineChart(title: key, series: series).html()
        }
        let tabs: SafeHTML = allSeriesKeys.count < 2 ? .empty : """
            <nav class="tabs" aria-label="metric"><a href="\(Link.compare(ids))"\(metric == nil ? Markup.active : .empty)>all metrics</a>\
            \(allSeriesKeys.html { k in "<a href=\"\(Link.compare(ids, metric: k))\"\(metric == k ? Markup.active : .empty)>\(k)</a>" })</nav>
            """
        let chartSection: SafeHTML = allSeriesKeys.isEmpty
            ? Markup.empty("No step series to chart", "None of these runs records a metric as a series of steps; their values are in the table below.")
            : "<div class=\"charts\">\(charts)</div>"

        // Params and metrics side by side; values that differ between runs are highlighted.
        func keyRows(_ prefix: String, _ keys: [String], _ get: (RunRow, String) -> JSONValue?) -> SafeHTML {
            keys.html { k in
                let values = rows.map { get($0, k) }
                let differs = Set(values.map { $0?.canonical ?? "" }).count > 1
                return "<tr\(differs ? SafeHTML(" class=\"differs\"") : .empty)><th scope=\"row\">\(prefix)\(k)</th>\(values.html { Markup.numberCell($0) })</tr>\n"
            }
        }
        let paramKeys = Set(rows.flatMap { $0.params.keys }).sorted()
        let metricKeys = Set(rows.flatMap { $0.metrics.keys }).sorted()
        let table: SafeHTML = """
            <div class="table-wrap"><table class="compare" id="compare-table">
            <thead><tr><th scope="col">key</th>\(rows.html { r in
                "<th scope=\"col\" data-run=\"\(r.id.hex)\"><span class=\"swatch\" style=\"background:\(color[r.id] ?? "#000")\"></span>\(Markup.runLink(r.id))</th>"
            })</tr></thead>
            <tbody>
            <tr><th scope="row">subject</th>\(rows.html { "<td>\($0.subject)</td>" })</tr>
            <tr><th scope="row">time</th>\(rows.html { "<td>\(Markup.time($0.time))</td>" })</tr>
            <tr><th scope="row">tags / stages</th>\(rows.html { "<td>\(Markup.labels(tags: $0.tags, stages: $0.stages))</td>" })</tr>
            \(keyRows("metrics.", metricKeys) { $0.metrics[$1] })\(keyRows("params.", paramKeys) { $0.params[$1] })</tbody>
            </table></div>
            """
        let body: SafeHTML = """
            <p class="crumbs"><a href="/">Runs</a> / compare</p>
            <h1>Compare \(Format.plural(ids.count, "run"))</h1>
            \(tabs)
            \(chartSection)
            <h2>Metrics and params</h2>
            <p class="hint">Rows whose values differ are highlighted; series show their last value.</p>
            \(table)
            """
        return page("Compare runs", nav: .runs, body)
    }
}
