import MLStoreBasics
import MLStoreCore

/// The runs table (`/`) and the run page (`/runs/<rev>`).
extension WebUI {
    /// Rows shown when the request gives no `limit`.
    static let defaultRunLimit = 1000

    /// The runs table: filter (`q`, the `runs --where` language), sort (`sort`, `[-]key`), `limit`.
    func runsPage(_ query: [String: String]) throws -> WebPage {
        let q = query["q"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        let sort = query["sort"].flatMap { $0.isEmpty ? nil : $0 }
        let limit = try query["limit"].flatMap { $0.isEmpty ? nil : $0 }.map { text -> Int in
            guard let n = Int(text), n > 0 else { throw MLStoreError(.usage, "limit must be a positive number, not '\(text)'") }
            return n
        } ?? Self.defaultRunLimit
        let index = try openIndex()
        let total = try index.count()
        let form = filterForm(q: q, sort: sort)
        if total == 0 {
            let body: SafeHTML = """
                <h1>Runs</h1>
                \(Markup.empty("No runs yet — commit with params/metrics, or push to this server",
                    "<code>mlstore run --params params.yaml --metrics metrics.json -- python train.py</code>, or <code>mlstore remote add origin http://…</code> and <code>mlstore push --all</code>."))
                """
            return page("Runs", nav: .runs, body)
        }
        let rows: [RunRow]
        do {
            rows = try index.runs(where: q, sort: sort, limit: limit, columns: nil).rows
        } catch let e as MLStoreError where e.code == .usage {
            // A malformed filter or sort key: show the parser's message (with its caret) above the form.
            let body: SafeHTML = """
                <h1>Runs</h1>
                \(form)
                <pre class="error" id="query-error">\(e.message)</pre>
                \(e.hint.map { h -> SafeHTML in "<p class=\"hint\">\(h)</p>" } ?? .empty)
                """
            return page("Runs", nav: .runs, body, status: 400)
        }
        let paramKeys = Set(rows.flatMap { $0.params.keys }).sorted()
        let metricKeys = Set(rows.flatMap { $0.metrics.keys }).sorted()

        func header(_ label: String, key: String, defaultDescending: Bool) -> SafeHTML {
            let current = sort == key ? "asc" : sort == "-" + key ? "desc" : nil
            let next = current == "asc" ? "-" + key : current == "desc" ? key : (defaultDescending ? "-" + key : key)
            let aria: SafeHTML = current == "asc" ? " aria-sort=\"ascending\"" : current == "desc" ? " aria-sort=\"descending\"" : ""
            let arrow: SafeHTML = current == "asc" ? " ▲" : current == "desc" ? " ▼" : ""
            return "<th scope=\"col\" data-key=\"\(key)\"\(aria)><a class=\"sort\" href=\"\(Link.runs(q: q, sort: next))\">\(label)</a>\(arrow)</th>"
        }
        let head: SafeHTML = """
            <tr><th scope="col" class="select"><span class="visually-hidden">select</span></th><th scope="col">run</th>\
            \(header("time", key: "date", defaultDescending: true))\(header("subject", key: "subject", defaultDescending: false))\
            <th scope="col">tags / stages</th>\
            \(metricKeys.html { header($0, key: "metrics." + $0, defaultDescending: true) })\
            \(paramKeys.html { header($0, key: "params." + $0, defaultDescending: false) })</tr>
            """
        let groups: SafeHTML = paramKeys.isEmpty && metricKeys.isEmpty ? .empty : """
            <tr class="groups"><th colspan="5"></th>\
            \(metricKeys.isEmpty ? .empty : "<th colspan=\"\(metricKeys.count)\" class=\"group metrics\">metrics</th>")\
            \(paramKeys.isEmpty ? .empty : "<th colspan=\"\(paramKeys.count)\" class=\"group params\">params</th>")</tr>
            """
        let body = rows.html { r in
            """
            <tr class="run-row" data-run="\(r.id.hex)">\
            <td class="select"><input type="checkbox" class="select-run" value="\(r.id.hex)" aria-label="select \(r.id.short)"></td>\
            <td>\(Markup.runLink(r.id))</td><td class="time">\(Markup.time(r.time))</td>\
            <td class="subject"><a href="\(Link.run(r.id))" title="by \(r.author)">\(r.subject.isEmpty ? "(no subject)" : r.subject)</a></td>\
            <td>\(Markup.labels(tags: r.tags, stages: r.stages))</td>\
            \(metricKeys.html { Markup.numberCell(r.metrics[$0]) })\(paramKeys.html { Markup.numberCell(r.params[$0]) })</tr>

            """
        }
        let count: SafeHTML = q == nil && rows.count == total
            ? "<span id=\"run-count\">\(Format.plural(rows.count, "run"))</span>"
            : "<span id=\"run-count\">\(Format.plural(rows.count, "run"))</span> of \(total)\(rows.count == limit ? " (limit \(limit))" : "")"
        let table: SafeHTML = rows.isEmpty
            ? Markup.empty("No runs match this filter", "Change or <a href=\"\(Link.runs(q: nil, sort: sort))\">clear</a> the filter.")
            : """
                <div class="table-wrap"><table class="runs" id="runs">
                <thead>\(groups)\(head)</thead>
                <tbody>
                \(body)</tbody>
                </table></div>
                """
        let page: SafeHTML = """
            <h1>Runs</h1>
            \(form)
            <div class="toolbar">
            <p class="count">\(count)</p>
            <button type="button" id="compare" class="button" disabled>Compare selected</button>
            <span class="hint" id="compare-hint">select two or more runs to chart their metrics together</span>
            </div>
            \(table)
            """
        return self.page("Runs", nav: .runs, page)
    }

    func filterForm(q: String?, sort: String?) -> SafeHTML {
        """
        <form class="filter" method="get" action="/" id="filter">
        <label for="q">Filter</label>
        <input type="search" id="q" name="q" value="\(q ?? "")" placeholder="metrics.acc > 0.9 and params.lr < 0.1" autocomplete="off" spellcheck="false">
        \(sort.map { s -> SafeHTML in "<input type=\"hidden\" name=\"sort\" value=\"\(s)\">" } ?? .empty)
        <button type="submit" class="button">Apply</button>
        \(q == nil ? .empty : "<a href=\"\(Link.runs(q: nil, sort: sort))\">clear</a>")
        <details class="help"><summary>syntax</summary>
        <p>Compare <code>params.&lt;key&gt;</code>, <code>metrics.&lt;key&gt;</code>, <code>tag</code>, <code>stage</code>, <code>author</code>,
        <code>date</code>, <code>message</code>, <code>command</code> or <code>id</code> with <code>= != &lt; &lt;= &gt; &gt;=</code> or
        <code>~</code> (contains); combine with <code>and</code>, <code>or</code>, <code>not</code> and parentheses.
        Examples: <code>stage = fraud@production or tag = v2</code>, <code>date &gt;= 2026-01-01 and author ~ ada</code>.</p>
        </details>
        </form>
        """
    }

    // MARK: Run page

    /// One run: message, who and when, parents, params, metrics (with charts of step series), inputs and
    /// outputs with download links, code, environment, command and exit status.
    func runPage(_ revision: String) throws -> WebPage {
        let id = try repo.resolveCommit(revision)
        let c = try repo.commit(id)
        let index = try openIndex()
        let row = try index.row(id)
        let params = try c.params.map { try repo.json($0).flattened() } ?? [:]
        let metrics = try c.metrics.map { try repo.json($0).object ?? [:] } ?? [:]

        let body = c.message.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var facts: [(String, SafeHTML)] = [
            ("commit", "<code>\(id.hex)</code>"),
            ("author", "\(c.author.name) &lt;\(c.author.email)&gt;"),
            ("time", "<time datetime=\"\(Format.isoUTC(c.author.time))\">\(c.author.isoDate)</time>"),
        ]
        if c.committer.name != c.author.name || c.committer.email != c.author.email {
            facts.append(("committer", "\(c.committer.name) &lt;\(c.committer.email)&gt;, \(c.committer.isoDate)"))
        }
        facts.append(("parents", c.parents.isEmpty ? "none (first commit)" : c.parents.html { p in
            let subject = (try? index.subject(of: p).0) ?? ""
            return "<span class=\"parent\">\(Markup.runLink(p)) \(subject)</span> "
        }))
        if !row.tags.isEmpty || !row.stages.isEmpty { facts.append(("tags / stages", Markup.labels(tags: row.tags, stages: row.stages))) }
        if let cmd = c.command { facts.append(("command", "<code class=\"command\">\(Format.command(cmd))</code>")) }
        if let status = c.extensionValue("exit-status") {
            facts.append(("exit status", "<span class=\"\(status == "0" ? "ok" : "failed")\">\(status)</span>"))
        }
        if let d = c.extensionValue("duration-seconds") { facts.append(("duration", "\(d) s")) }
        for e in c.extensions where !["exit-status", "duration-seconds"].contains(e.key) {
            facts.append((e.key, "<code>\(e.value)</code>"))
        }
        facts.append(("tree", "<code>\(c.tree.hex)</code>"))
        let lineage: SafeHTML = """
            <p class="actions"><a class="button" href="\(Link.lineage(id.hex, direction: "up"))">lineage ↑ upstream</a>
            <a class="button" href="\(Link.lineage(id.hex, direction: "down"))">lineage ↓ downstream</a>\
            \(c.parents.first.map { p -> SafeHTML in " <a class=\"button\" href=\"\(Link.compare([p, id]))\">compare with parent</a>" } ?? .empty)</p>
            """

        let paramsTable: SafeHTML = params.isEmpty ? "<p class=\"none\">No params recorded.</p>" : """
            <table class="kv params" id="params"><thead><tr><th scope="col">key</th><th scope="col">value</th></tr></thead><tbody>
            \(params.sorted { $0.key < $1.key }.html { k, v in "<tr class=\"param\" data-key=\"\(k)\"><th scope=\"row\">\(k)</th><td>\(v.display)</td></tr>\n" })\
            </tbody></table>
            """
        var charts = SafeHTML.empty
        let metricRows = try metrics.keys.sorted().html { k -> SafeHTML in
            let v = metrics[k] ?? .null
            if let n = v.number {
                return "<tr class=\"metric\" data-key=\"\(k)\"><th scope=\"row\">\(k)</th><td class=\"num\" title=\"\(JSONValue.format(n))\">\(Format.number(n))</td><td colspan=\"3\"></td></tr>\n"
            }
            let points = try index.series(id, key: k)
            let values = points.map(\.value)
            if points.count > 1 {
                charts += LineChart(title: k, series: [.init(run: id, label: c.subject, points: points, color: LineChart.palette[0])]).html()
            }
            func cell(_ x: Double?) -> SafeHTML { x.map { "<td class=\"num\" title=\"\(JSONValue.format($0))\">\(Format.number($0))</td>" } ?? "<td></td>" }
            return "<tr class=\"metric series\" data-key=\"\(k)\"><th scope=\"row\">\(k)</th>\(cell(values.last))<td class=\"num\">\(points.count)</td>\(cell(values.min()))\(cell(values.max()))</tr>\n"
        }
        let metricsTable: SafeHTML = metrics.isEmpty ? "<p class=\"none\">No metrics recorded.</p>" : """
            <table class="kv metrics" id="metrics"><thead><tr><th scope="col">key</th><th scope="col">last</th><th scope="col">steps</th>\
            <th scope="col">min</th><th scope="col">max</th></tr></thead><tbody>
            \(metricRows)</tbody></table>
            """

        let page: SafeHTML = """
            <p class="crumbs"><a href="/">Runs</a> / <code>\(id.short)</code></p>
            <h1 class="run-subject">\(c.subject.isEmpty ? "(no subject)" : c.subject)</h1>
            \(body.isEmpty ? .empty : "<pre class=\"message\">\(body)</pre>")
            \(lineage)
            <dl class="facts">\(facts.html { k, v in "<dt>\(k)</dt><dd>\(v)</dd>" })</dl>
            <div class="columns">
            <section><h2>Params</h2>\(paramsTable)</section>
            <section><h2>Metrics</h2>\(metricsTable)</section>
            </div>
            \(charts.text.isEmpty ? .empty : "<section><h2>Metric charts</h2><div class=\"charts\">\(charts)</div></section>")
            <section><h2>Inputs</h2>\(artifactTable(c.inputs, role: "input"))</section>
            <section><h2>Outputs</h2>\(artifactTable(c.outputs, role: "output"))</section>
            <section><h2>Code</h2>\(codeSection(c.code))</section>
            <section><h2>Environment</h2>\(try environmentSection(c.env))</section>
            """
        return self.page(c.subject.isEmpty ? id.short : c.subject, nav: .runs, page)
    }

    /// Inputs or outputs: path, object id, kind and size, a download link and a lineage link.
    func artifactTable(_ artifacts: [Artifact], role: String) -> SafeHTML {
        guard !artifacts.isEmpty else { return "<p class=\"none\">No \(role)s recorded.</p>" }
        let rows = artifacts.html { a -> SafeHTML in
            let info = try? repo.objects.info(a.id)
            let name = String(a.path.split(separator: "/").last ?? Substring(a.path))
            let kind: SafeHTML
            let download: SafeHTML
            switch info?.kind {
            case .tree?:
                kind = "directory"
                download = .empty
            case .blob?, .chunked?:
                kind = "file"
                download = "<a class=\"download\" href=\"\(Link.download(a.id, name: name))\" download>download</a>"
            case let k?:
                kind = "\(k.rawValue)"
                download = .empty
            case nil:
                kind = "<span class=\"missing\">not in this store</span>"
                download = .empty
            }
            // Up from an output means its producers; down from an input means its consumers.
            let lineage = Link.lineage(a.id.hex, direction: role == "output" ? "down" : "up")
            return """
                <tr class="artifact \(role)" data-object="\(a.id.hex)"><td><code>\(a.path)</code></td><td>\(Markup.objectID(a.id))</td>\
                <td>\(kind)</td><td>\(download)</td><td><a href="\(lineage)">\(role == "output" ? "consumers" : "producers")</a></td></tr>

                """
        }
        return """
            <table class="artifacts \(role)s"><thead><tr><th scope="col">path</th><th scope="col">object</th><th scope="col">kind</th>\
            <th scope="col"></th><th scope="col">lineage</th></tr></thead><tbody>
            \(rows)</tbody></table>
            """
    }

    func codeSection(_ code: CodeVersion?) -> SafeHTML {
        guard let code else { return "<p class=\"none\">No code version recorded.</p>" }
        let patch: SafeHTML = code.dirtyPatch.map { p -> SafeHTML in
            "<dt>uncommitted changes</dt><dd>patch \(Markup.objectID(p)) <a class=\"download\" href=\"\(Link.download(p, name: "changes.patch"))\" download>download</a></dd>"
        } ?? "<dt>uncommitted changes</dt><dd>none</dd>"
        return """
            <dl class="facts"><dt>git commit</dt><dd>\(code.gitCommit.map { g -> SafeHTML in "<code>\(g)</code>" } ?? "none (not a git work tree)")</dd>\
            \(patch)<dt>code tree</dt><dd>\(Markup.objectID(code.tree))</dd></dl>
            """
    }

    func environmentSection(_ env: ObjectID?) throws -> SafeHTML {
        guard let env else { return "<p class=\"none\">No environment recorded.</p>" }
        let e = try repo.json(env)
        var facts: [(String, SafeHTML)] = []
        for k in ["os", "kernel", "arch", "cpu", "cpus"] {
            if let v = e[k] { facts.append((k, "\(v.display)")) }
        }
        for (k, v) in (e["tools"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) { facts.append((k, "<code>\(v.display)</code>")) }
        for (k, v) in (e["env_vars"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) { facts.append(("$" + k, "<code>\(v.display)</code>")) }
        for (name, v) in (e["lock_files"]?.object ?? [:]).sorted(by: { $0.key < $1.key }) {
            let link: SafeHTML = v.string.flatMap { ObjectID(hex: $0) }.map { id -> SafeHTML in
                "\(Markup.objectID(id)) <a class=\"download\" href=\"\(Link.download(id, name: name))\" download>download</a>"
            } ?? "\(v.display)"
            facts.append((name, link))
        }
        let pip = e["pip_freeze"]?.array?.compactMap(\.string) ?? []
        let pipList: SafeHTML = pip.isEmpty ? .empty : """
            <details class="pip"><summary>\(Format.plural(pip.count, "pip package"))</summary><ul>\(pip.html { "<li><code>\($0)</code></li>" })</ul></details>
            """
        return "<dl class=\"facts\">\(facts.html { k, v in "<dt>\(k)</dt><dd>\(v)</dd>" })</dl>\(pipList)"
    }
}
