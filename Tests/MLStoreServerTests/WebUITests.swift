import Foundation
import MLStoreBasics
import MLStoreCore
import MLStoreTestSupport
import Synchronization
import Testing

@testable import MLStoreServer

/// A temp store with runs, lineage, a tag and a stage history, and the web UI over it.
struct UIStore {
    let dir: TempDir
    let repo: Repository
    let ws: Workspace
    let ui: WebUI
    /// `prepare` (outputs data/features.csv), then `train 0…3` (input features, output model.bin, params,
    /// acc, a 6-step loss series), then a run whose subject is markup.
    var prepare: ObjectID
    var trains: [ObjectID] = []
    var hostile: ObjectID
    static let hostileSubject = "<script>alert(\"x\")</script> & 'co'"

    init() throws {
        dir = TempDir("webui")
        repo = try Repository.initialize(at: dir.path)
        var cfg = try repo.config()
        cfg.set("user.name", "Ada O'Neil")
        cfg.set("user.email", "ada@example.com")
        try cfg.save()
        ws = try Workspace(repo)
        try TestFiles.write(dir.file("data/features.csv"), "f1,f2\n1,2\n")
        _ = try ws.add(["data"])
        prepare = try Self.commit(ws, "prepare features", outputs: ["data/features.csv"])
        for i in 0..<4 {
            try TestFiles.write(dir.file("model.bin"), "model \(i)\n")
            _ = try ws.add(["model.bin"])
            let params: JSONValue = .object([
                "lr": .number([0.1, 0.01, 0.05, 0.001][i]), "optimizer": .string(i % 2 == 0 ? "adam" : "sgd"),
                "net": .object(["layers": .number(Double(2 + i))]),
            ])
            let loss = JSONValue.array((0..<6).map { s in .object(["step": .number(Double(s)), "value": .number(1.0 / Double(s + i + 1))]) })
            let metrics: JSONValue = .object(["acc": .number(0.8 + Double(i) * 0.05), "loss": loss])
            trains.append(try Self.commit(ws, "train \(i)\n\nlonger notes on run \(i)\n", inputs: ["data/features.csv"], outputs: ["model.bin"],
                                          params: params, metrics: metrics, command: ["python3", "train.py", "--run", "\(i)"]))
        }
        hostile = try Self.commit(ws, Self.hostileSubject, params: .object(["note": .string("<b>bold</b>")]), metrics: .object(["acc": .number(0.5)]))
        try repo.refs.update("refs/tags/best", to: trains[3], expecting: .absent, actor: try repo.identity(), message: "tag")
        try repo.promote(model: "fraud", stage: "staging", to: trains[1].hex, reason: "first candidate")
        try repo.promote(model: "fraud", stage: "staging", to: trains[3].hex, reason: "better <acc>")
        try repo.promote(model: "fraud", stage: "production", to: trains[1].hex, reason: "ship it")
        try repo.rollback(model: "fraud", stage: "staging", reason: "regression on holdout")
        ui = WebUI(repository: repo)
    }

    static func commit(_ ws: Workspace, _ message: String, inputs: [String] = [], outputs: [String] = [], params: JSONValue? = nil,
                       metrics: JSONValue? = nil, command: [String]? = nil) throws -> ObjectID {
        var o = Workspace.CommitOptions(message: message)
        (o.inputs, o.outputs, o.params, o.metrics, o.command) = (inputs, outputs, params, metrics, command)
        (o.captureCode, o.captureEnv, o.allowEmpty) = (false, false, true)
        return try ws.commit(o).id
    }

    /// Renders a page that must exist; returns its status and body.
    func get(_ path: String, _ query: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> (status: Int, html: String) {
        let page = try #require(try ui.render(path: path, query: query), "no page at \(path)", sourceLocation: sourceLocation)
        return (page.status, String(decoding: page.body, as: UTF8.self))
    }
}

/// The values of `attribute` on elements that carry `marker` (e.g. `class="run-row"`), in document order.
private func values(of attribute: String, in html: String, on marker: String) -> [String] {
    var out: [String] = []
    var rest = html[...]
    while let m = rest.range(of: marker) {
        let tagEnd = rest[m.upperBound...].firstIndex(of: ">") ?? rest.endIndex
        let tagStart = rest[..<m.lowerBound].lastIndex(of: "<") ?? m.lowerBound
        let tag = rest[tagStart..<tagEnd]
        if let a = tag.range(of: " \(attribute)=\""), let q = tag[a.upperBound...].firstIndex(of: "\"") {
            out.append(String(tag[a.upperBound..<q]))
        }
        rest = rest[m.upperBound...]
    }
    return out
}

private func occurrences(of needle: String, in html: String) -> Int { html.components(separatedBy: needle).count - 1 }

@Suite struct WebUITests {
    @Test func runsTableHasOneRowPerIndexedRun() throws {
        let s = try UIStore()
        let (status, html) = try s.get("/")
        #expect(status == 200)
        let count = try TrackingIndex.open(s.repo).count()
        #expect(count == 6)
        let rows = values(of: "data-run", in: html, on: "class=\"run-row\"")
        #expect(rows.count == count)
        #expect(Set(rows) == Set(([s.prepare, s.hostile] + s.trains).map(\.hex)))
        #expect(html.contains("<span id=\"run-count\">6 runs</span>"))
        // One column per param and metric key, a checkbox per row, the Compare button.
        for key in ["params.lr", "params.net.layers", "params.optimizer", "metrics.acc", "metrics.loss"] {
            #expect(html.contains("data-key=\"\(key)\""), "column \(key)")
        }
        #expect(occurrences(of: "class=\"select-run\"", in: html) == count)
        #expect(html.contains("id=\"compare\""))
        #expect(html.contains("<span class=\"badge tag\">best</span>") && html.contains(">fraud@production</a>"))
        #expect(html.contains("<link rel=\"stylesheet\" href=\"/static/app.css\">") && html.contains(s.repo.storeDirectory))
        #expect(try s.get("/runs").html == html)
    }

    @Test func filterAndSortFollowTheQueryLanguage() throws {
        let s = try UIStore()
        let index = try TrackingIndex.open(s.repo)
        let q = "metrics.acc > 0.84 and params.optimizer = adam"
        let filtered = values(of: "data-run", in: try s.get("/", ["q": q]).html, on: "class=\"run-row\"")
        #expect(filtered == [s.trains[2].hex])
        #expect(filtered == (try index.runs(where: q, sort: nil, limit: nil, columns: nil)).rows.map(\.id.hex))
        let (_, sorted) = try s.get("/", ["q": "metrics.acc >= 0.8", "sort": "-metrics.acc"])
        #expect(values(of: "data-run", in: sorted, on: "class=\"run-row\"") == s.trains.reversed().map(\.hex))
        #expect(sorted.contains("<span id=\"run-count\">4 runs</span> of 6"))
        // The sorted column says so, and its header link flips the direction (keeping the filter).
        #expect(sorted.contains("data-key=\"metrics.acc\" aria-sort=\"descending\""))
        #expect(sorted.contains("href=\"/?q=metrics.acc%20%3E%3D%200.8&amp;sort=metrics.acc\""))
        let ascending = values(of: "data-run", in: try s.get("/", ["sort": "params.lr"]).html, on: "class=\"run-row\"")
        #expect(Array(ascending.prefix(4)) == [3, 1, 2, 0].map { s.trains[$0].hex })
        #expect(try s.get("/", ["q": "tag = nothing"]).html.contains("No runs match this filter"))
        #expect(values(of: "data-run", in: try s.get("/", ["limit": "2"]).html, on: "class=\"run-row\"").count == 2)
    }

    @Test(arguments: [
        (["q": "metrics.acc >"], "expected a value after"),
        (["q": "bogus = 1"], "expected a field"),
        (["sort": "colour"], "cannot sort by"),
    ])
    func badQueryShowsTheParsersMessage(_ query: [String: String], _ expected: String) throws {
        let s = try UIStore()
        let (status, html) = try s.get("/", query)
        #expect(status == 400)
        #expect(html.contains("<pre class=\"error\" id=\"query-error\">"))
        #expect(html.contains(expected))
        #expect(!html.contains("class=\"run-row\""))
        // The form keeps what was typed.
        if let q = query["q"] { #expect(html.contains("value=\"\(HTML.escape(q))\"")) }
    }

    @Test func runPageShowsWhatTheRunRecorded() throws {
        let s = try UIStore()
        let id = s.trains[2]
        let (status, html) = try s.get("/runs/" + id.hex)
        #expect(status == 200)
        #expect(html.contains("<h1 class=\"run-subject\">train 2</h1>") && html.contains("longer notes on run 2"))
        // The author as recorded (other suites in this process may set MLSTORE_AUTHOR_NAME, which wins over
        // the config), escaped.
        let author = try s.repo.commit(id).author
        #expect(html.contains(HTML.escape("\(author.name) <\(author.email)>")))
        #expect(values(of: "data-key", in: html, on: "class=\"param\"") == ["lr", "net.layers", "optimizer"])
        #expect(html.contains("<tr class=\"param\" data-key=\"lr\"><th scope=\"row\">lr</th><td>0.05</td></tr>"))
        #expect(html.contains("<tr class=\"param\" data-key=\"net.layers\"><th scope=\"row\">net.layers</th><td>4</td></tr>"))
        #expect(values(of: "data-key", in: html, on: "class=\"metric") == ["acc", "loss"])
        #expect(html.contains("title=\"0.9\">0.9</td>"))
        // The loss series is charted; parents link to their run pages; the command is shown.
        #expect(values(of: "data-run", in: html, on: "class=\"series\"") == [id.hex])
        #expect(html.contains("href=\"/runs/\(s.trains[1].hex)\""))
        #expect(html.contains("<code class=\"command\">python3 train.py --run 2</code>"))
        // Inputs and outputs with object ids and download links.
        let c = try s.repo.commit(id)
        let model = try #require(c.outputs.first)
        #expect(html.contains("href=\"/api/v1/download/\(model.id.hex)?name=model.bin\""))
        #expect(values(of: "data-object", in: html, on: "class=\"artifact input\"") == [try #require(c.inputs.first).id.hex])
        #expect(html.contains("<span class=\"badge tag\">") == false)
        // Prefixes and revisions resolve like the CLI's.
        #expect(try s.get("/runs/" + String(id.hex.prefix(10))).html == html)
        #expect(try s.get("/runs/fraud@production").html.contains("<h1 class=\"run-subject\">train 1</h1>"))
        #expect(try s.get("/runs/best").html.contains("<span class=\"badge tag\">best</span>"))
        try s.repo.refs.update("refs/heads/team/exp", to: s.trains[0], expecting: .absent, actor: s.repo.identity(), message: "branch")
        #expect(try s.get("/runs/team/exp").html.contains("<h1 class=\"run-subject\">train 0</h1>"))
    }

    @Test func unknownRunsAndPathsFailCleanly() throws {
        let s = try UIStore()
        #expect { _ = try s.ui.render(path: "/runs/" + String(repeating: "e", count: 64), query: [:]) } throws: {
            ($0 as? MLStoreError)?.code == .notFound
        }
        #expect { _ = try s.ui.render(path: "/runs/nosuchbranch", query: [:]) } throws: { ($0 as? MLStoreError)?.code == .notFound }
        #expect { _ = try s.ui.render(path: "/registry/ghost", query: [:]) } throws: { ($0 as? MLStoreError)?.code == .notFound }
        #expect { _ = try s.ui.render(path: "/lineage/HEAD", query: ["direction": "sideways"]) } throws: { ($0 as? MLStoreError)?.code == .usage }
        #expect { _ = try s.ui.render(path: "/compare", query: ["runs": s.prepare.hex + ",zzzz"]) } throws: { $0 is MLStoreError }
        #expect { _ = try s.ui.render(path: "/runs/origin/main", query: [:]) } throws: { ($0 as? MLStoreError)?.code == .notFound }
        for path in ["/nope", "/static/secret.txt", "/static/../Package.swift", "/api/v1/refs", "/registry/a/b"] {
            #expect(try s.ui.render(path: path, query: [:]) == nil, "\(path)")
        }
        let error = s.ui.errorPage(status: 404, message: "no <such> run")
        #expect(error.status == 404 && String(decoding: error.body, as: UTF8.self).contains("no &lt;such&gt; run"))
    }

    @Test func compareDrawsOneLinePerSelectedRunWithTheSeries() throws {
        let s = try UIStore()
        // prepare has no metrics; the hostile run's acc is a scalar: only the two trains have a loss series.
        let picked = [s.trains[0], s.prepare, s.trains[3], s.hostile]
        let (status, html) = try s.get("/compare", ["runs": picked.map { String($0.hex.prefix(12)) }.joined(separator: ",")])
        #expect(status == 200)
        #expect(values(of: "data-metric", in: html, on: "class=\"chart\"") == ["loss"])
        #expect(values(of: "data-run", in: html, on: "class=\"series\"") == [s.trains[0].hex, s.trains[3].hex])
        #expect(occurrences(of: "<path class=\"series\"", in: html) == 2)
        #expect(values(of: "data-run", in: html, on: "<li data-run") == [s.trains[0].hex, s.trains[3].hex], "legend")
        #expect(html.contains(">step</text>") && html.contains("class=\"tick y\""), "axes with labels")
        // Params and scalar metrics side by side, differing rows highlighted.
        #expect(html.contains("<tr class=\"differs\"><th scope=\"row\">params.lr</th>"))
        #expect(html.contains("<tr class=\"differs\"><th scope=\"row\">metrics.acc</th>"))
        // metric= keeps one chart; an unknown metric is not found.
        let one = try s.get("/compare", ["runs": "\(s.trains[1].hex),\(s.trains[2].hex)", "metric": "loss"]).html
        #expect(occurrences(of: "<path class=\"series\"", in: one) == 2)
        #expect { _ = try s.ui.render(path: "/compare", query: ["runs": s.trains[1].hex, "metric": "f1"]) } throws: {
            ($0 as? MLStoreError)?.code == .notFound
        }
        #expect(try s.get("/compare").html.contains("No runs selected"))
    }

    @Test func registryShowsStagesAndTheirHistoryWithReasons() throws {
        let s = try UIStore()
        let (status, grid) = try s.get("/registry")
        #expect(status == 200)
        #expect(values(of: "data-model", in: grid, on: "class=\"model-row\"") == ["fraud"])
        #expect(values(of: "data-stage", in: grid, on: "class=\"stage-cell\"") == ["staging", "production"])
        #expect(values(of: "data-run", in: grid, on: "class=\"stage-cell\"") == [s.trains[1].hex, s.trains[1].hex])
        #expect(grid.contains("href=\"/registry/fraud\""))

        let (_, history) = try s.get("/registry/fraud")
        let log = try s.repo.stageLog(model: "fraud")
        #expect(values(of: "data-record", in: history, on: "class=\"stage-event\"") == log.map(\.record.hex))
        #expect(values(of: "data-action", in: history, on: "class=\"stage-event\"") == ["rollback", "promote", "promote", "promote"])
        let reasons = ["regression on holdout", "ship it", "better &lt;acc&gt;", "first candidate"]
        let positions = reasons.map { history.range(of: "<td class=\"reason\">\($0)</td>")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil } && positions.map { $0! } == positions.map { $0! }.sorted(), "newest first")
        let staging = try s.get("/registry/fraud", ["stage": "staging"]).html
        #expect(values(of: "data-stage", in: staging, on: "class=\"stage-event\"") == ["staging", "staging", "staging"])
    }

    @Test func lineageLinksProducersAndConsumers() throws {
        let s = try UIStore()
        let (status, up) = try s.get("/lineage/" + s.trains[0].hex, ["direction": "up"])
        #expect(status == 200)
        #expect(Set(values(of: "data-run", in: up, on: "class=\"lineage-node")) == [s.trains[0].hex, s.prepare.hex])
        #expect(up.contains("produced <code>data/features.csv</code>"))
        #expect(up.contains("href=\"/runs/\(s.prepare.hex)\""))
        let (_, down) = try s.get("/lineage/" + s.prepare.hex, ["direction": "down", "depth": "1"])
        #expect(Set(values(of: "data-run", in: down, on: "class=\"lineage-node")) == Set(([s.prepare] + s.trains).map(\.hex)))
        #expect(occurrences(of: "<path class=\"edge\"", in: down) == 4)
        // From an artifact: its producers; from a revision with @ (percent-encoded as browsers may send it).
        let features = try #require(try s.repo.commit(s.prepare).outputs.first).id
        #expect(values(of: "data-run", in: try s.get("/lineage/" + features.hex).html, on: "class=\"lineage-node") == [s.prepare.hex])
        #expect(try s.get("/lineage/fraud%40production").html.contains("data-run=\"\(s.trains[1].hex)\""))
        #expect(try s.get("/lineage/HEAD").html.contains("Nothing upstream"))
        // A store whose HEAD has no commit (as a served bare store) starts at the newest run.
        try TestFiles.write(s.repo.storeDirectory + "/HEAD", "ref: refs/heads/unborn\n")
        let head = try s.get("/lineage/HEAD").html
        let newest = try #require(try TrackingIndex.open(s.repo).runs(where: nil, sort: nil, limit: 1, columns: nil).rows.first).id
        #expect(head.contains("This store has no HEAD") && head.contains("lineage-node root\" data-run=\"\(newest.hex)\""))
    }

    @Test func everyStringIsEscaped() throws {
        let s = try UIStore()
        try s.repo.promote(model: "fraud", stage: "archived", to: s.hostile.hex, reason: "<img src=x onerror=alert(1)>")
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;co&#39;"
        let pages = [
            try s.get("/").html, try s.get("/runs/" + s.hostile.hex).html, try s.get("/compare", ["runs": "\(s.hostile.hex),\(s.trains[0].hex)"]).html,
            try s.get("/registry").html, try s.get("/registry/fraud").html, try s.get("/lineage/" + s.hostile.hex).html,
            try s.get("/", ["q": "message ~ '<script>'"]).html,
        ]
        for (i, html) in pages.enumerated() {
            #expect(!html.contains("<script>alert") && !html.contains("<img src=x") && !html.contains("<b>bold"), "page \(i)")
            // The only script element is the UI's own.
            #expect(occurrences(of: "<script", in: html) == 1, "page \(i)")
        }
        #expect(pages[0].contains(escaped) && pages[1].contains(escaped) && pages[3].contains(escaped))
        #expect(pages[1].contains("&lt;b&gt;bold&lt;/b&gt;") && pages[4].contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(values(of: "data-run", in: pages[6], on: "class=\"run-row\"") == [s.hostile.hex])
    }

    @Test func emptyStoreIsFriendly() throws {
        let dir = TempDir("webui-empty")
        let ui = WebUI(repository: try Repository.initialize(at: dir.path, bare: true))
        func html(_ path: String) throws -> String { String(decoding: try #require(try ui.render(path: path, query: [:])).body, as: UTF8.self) }
        #expect(try html("/").contains("No runs yet — commit with params/metrics, or push to this server"))
        #expect(try html("/registry").contains("No models in any stage yet"))
        #expect(try html("/lineage/HEAD").contains("No runs yet"))
        #expect(try html("/compare").contains("No runs selected"))
    }

    @Test func assetsAndQueryDecoding() throws {
        let s = try UIStore()
        let css = try #require(try s.ui.render(path: "/static/app.css", query: [:]))
        #expect(css.contentType == "text/css; charset=utf-8" && css.body.count > 1000)
        let js = try #require(try s.ui.render(path: "/static/app.js", query: [:]))
        #expect(js.contentType == "text/javascript; charset=utf-8" && String(decoding: js.body, as: UTF8.self).contains("/compare?runs="))
        // Nothing is loaded from elsewhere.
        for page in [css, js, try #require(try s.ui.render(path: "/", query: [:]))] {
            let text = String(decoding: page.body, as: UTF8.self)
            #expect(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"))
        }
        #expect(URLCoding.parseQuery("q=metrics.acc+%3E+0.9+and+params.lr%3C0.1&sort=-metrics.acc&x") == [
            "q": "metrics.acc > 0.9 and params.lr<0.1", "sort": "-metrics.acc", "x": "",
        ])
        #expect(URLCoding.parseQuery("q=a%2Bb") == ["q": "a+b"])
        #expect(URLCoding.decode("%zz") == nil && URLCoding.decode("fraud%40production") == "fraud@production")
        #expect(URLCoding.encode("a b/@~,") == "a%20b%2F%40~%2C")
    }

    @Test func concurrentRendersShareNothing() throws {
        let s = try UIStore()
        let paths = ["/", "/runs/" + s.trains[0].hex, "/registry", "/registry/fraud", "/lineage/HEAD", "/compare"]
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 24) { i in
            let page = try? s.ui.render(path: paths[i % paths.count], query: ["runs": s.trains.map(\.hex).joined(separator: ",")])
            if page?.status != 200 { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test func chartTicksAreRound() {
        #expect(LineChart.ticks(0, 5, count: 6, integral: true) == [0, 1, 2, 3, 4, 5])
        #expect(LineChart.ticks(0.12, 0.93, count: 5, integral: false).map(Format.number) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(LineChart.ticks(3, 3, count: 5, integral: true) == [2, 3, 4])
        #expect(LineChart.thinned((0..<10_000).map { (Double($0), 1.0) }).count <= LineChart.maxPointsPerPath + 1)
        #expect(Format.number(0.30000000000000004) == "0.3" && Format.number(12) == "12" && Format.number(1.5e-7) == "1.5e-07")
    }
}
