import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The web UI in a real browser: a store made with the CLI, served by `mlstore serve`, checked page by page
/// by `Tests/browser/ui_check.py` in headless Chromium (Debian's chromium, chromium-driver and
/// python3-selenium; nothing is downloaded). Screenshots go to `.build/browser-artifacts/`.
/// `MLSTORE_SKIP_BROWSER=1` skips it; otherwise missing packages fail it.
@Suite("web UI in headless Chromium")
struct BrowserTests {
    static let skip = ProcessInfo.processInfo.environment["MLSTORE_SKIP_BROWSER"] == "1"
    /// Debian's interpreter, which has python3-selenium (a `python3` earlier on PATH may not).
    static let python = "/usr/bin/python3"

    /// The package root, from this file's path (Tests/MLStoreEndToEndTests/BrowserTests.swift).
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// What the browser test needs that is not installed.
    static func missingPackages() -> [String] {
        var missing: [String] = []
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") { missing.append("chromium") }
        if !FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") { missing.append("chromium-driver") }
        if !FileManager.default.isExecutableFile(atPath: python) {
            missing.append("python3")
        } else if (try? CLI.run(python, ["-c", "import selenium"], in: "/"))?.status != 0 {
            missing.append("python3-selenium")
        }
        return missing
    }

    /// Six runs with params and metrics (four with a `loss` step series), lineage raw → features → models,
    /// a tag, and a stage history of four moves with reasons; each command at its own pinned second.
    func makeStore(_ ws: Workspace) throws {
        var clock = 1_767_225_600  // 2026-01-01
        func at() -> [String: String] {
            clock += 60
            return author(at: clock)
        }
        try ws.write("data/raw.csv", "x,y\n1,2\n3,4\n")
        try ws.ok("add", "data")
        try ws.ok(env: at(), "commit", "-m", "import raw data", "--output", "data/raw.csv", "--no-code", "--no-env")
        try ws.ok(env: at(), ["run", "--name", "prepare features", "--input", "data/raw.csv", "--output", "data/features.csv",
                              "--no-code", "--no-env", "--", "sh", "-c", "printf 'f\\n1\\n2\\n' > data/features.csv"])
        for (i, lr) in [0.1, 0.03, 0.01, 0.3].enumerated() {
            let layers = i + 2
            let loss = (0..<12).map { s in ((1 / (1 + Double(s) * lr * 10) + 0.02 * Double(layers)) * 1e4).rounded() / 1e4 }
            let acc = ((0.99 - loss[11] / 3) * 1e4).rounded() / 1e4
            try ws.write("params.json", #"{"lr": \#(lr), "model": {"layers": \#(layers)}, "optimizer": "\#(i % 2 == 0 ? "adam" : "sgd")"}"#)
            // The command writes the metrics file (a step series for loss, nested eval.f1) and the model.
            let metrics = #"{"acc": \#(acc), "loss": [\#(loss.map { "\($0)" }.joined(separator: ", "))], "eval": {"f1": \#(acc - 0.03)}}"#
            try ws.write("metrics-\(i).json", metrics)
            try ws.ok(env: at(), ["run", "--name", "train lr=\(lr)", "--input", "data/features.csv", "--output", "model.bin",
                                  "--params", "params.json", "--metrics", "metrics.json", "--no-code", "--no-env", "--",
                                  "sh", "-c", "cp metrics-\(i).json metrics.json && echo 'weights \(i)' > model.bin"])
        }
        // A plain commit with params and metrics files, whose subject is markup (must show escaped).
        try ws.write("eval.yaml", "split: holdout\nthreshold: 0.5\n")
        try ws.write("eval.json", #"{"acc": 0.91, "auc": 0.95}"#)
        try ws.ok(env: at(), "commit", "-m", "evaluate <holdout> & report", "--input", "model.bin", "--params", "eval.yaml",
                  "--metrics", "eval.json", "--no-code", "--no-env", "--allow-empty")
        try ws.ok(env: at(), "tag", "v1", "-m", "first release", "HEAD~2")
        try ws.ok(env: at(), "promote", "fraud", "HEAD~3", "--stage", "staging", "-m", "best f1 so far")
        try ws.ok(env: at(), "promote", "fraud", "HEAD~2", "--stage", "production", "-m", "ship: passes the holdout check")
        try ws.ok(env: at(), "promote", "fraud", "HEAD~1", "--stage", "staging", "-m", "try a larger learning rate")
        try ws.ok(env: at(), "rollback", "fraud", "--stage", "staging", "-m", "loss diverges")
    }

    /// What the CLI says about the store, for `ui_check.py` to hold the pages to.
    func expectations(_ ws: Workspace) throws -> Data {
        let runs = try #require(try ws.json("runs") as? [[String: Any]])
        var series: [String: [String]] = [:]
        for run in runs {
            let id = try #require(run[string: "id"])
            let metrics = try #require(try ws.json("metrics", id) as? [String: [Any]])
            series[id] = metrics.filter { $0.value.count > 1 }.keys.sorted()
        }
        let q = "metrics.acc > 0.9 and params.lr < 0.2"
        let lineageStart = try ws.commitID("HEAD~1")
        let expected: [String: Any] = [
            "runs": runs,
            "series": series,
            "filter": ["q": q, "runs": try ws.json("runs", "--where", q)],
            "sorted": ["sort": "-metrics.acc", "runs": try ws.json("runs", "--sort", "-metrics.acc")],
            "lineage": ["start": lineageStart, "direction": "up",
                        "tree": try JSONTools.parse(Data(try ws.ok("lineage", lineageStart, "--up", "--format", "json").utf8))],
            "stages": try ws.json("stage", "list"),
            "history": ["model": "fraud", "events": try ws.json("stage", "log", "fraud")],
        ]
        #expect(runs.count == 7 && series.values.filter { $0 == ["loss"] }.count == 4, "store: \(runs.count) runs, series \(series)")
        return try JSONSerialization.data(withJSONObject: expected, options: [.prettyPrinted, .sortedKeys])
    }

    @Test("every page in headless Chromium matches the store: rows, filter, sort, compare lines, run page, lineage, registry",
          .enabled(if: !skip, "MLSTORE_SKIP_BROWSER=1"), .timeLimit(.minutes(5)))
    func pagesMatchTheStore() throws {
        let missing = Self.missingPackages()
        guard missing.isEmpty else {
            Issue.record("the browser test needs the Debian packages \(missing.joined(separator: ", ")): run scripts/install-deps.sh (or set MLSTORE_SKIP_BROWSER=1 to skip it)")
            return
        }
        let ws = try Workspace()
        defer { ws.remove() }
        try makeStore(ws)
        let expectedPath = ws.path("expected.json")
        try expectations(ws).write(to: URL(fileURLWithPath: expectedPath))

        let server = try CLI.start(["serve", "--store", ws.root, "--port", "0", "--anonymous-read"], in: ws.root, outDir: ws.root, tag: "serve")
        defer {
            if server.process.isRunning { kill(server.process.processIdentifier, SIGTERM) }
            server.process.waitUntilExit()
        }
        let base = try #require(Self.listeningURL(server), "mlstore serve did not say where it listens: \(FS.readText(server.errPath) ?? "")")

        let artifacts = Self.packageRoot + "/.build/browser-artifacts"
        try? FileManager.default.removeItem(atPath: artifacts)
        let started = Date()
        let check = try CLI.run(Self.python, [Self.packageRoot + "/Tests/browser/ui_check.py", base, expectedPath, artifacts], in: ws.root)
        print("browser test: \(String(format: "%.1f", Date().timeIntervalSince(started))) s; screenshots in \(artifacts)\n\(check.stdout)")
        #expect(check.status == 0, "ui_check.py failed:\n\(check)\n--- server log ---\n\(FS.readText(server.errPath) ?? "")")
        let shots = (try? FileManager.default.contentsOfDirectory(atPath: artifacts))?.filter { $0.hasSuffix(".png") } ?? []
        #expect(shots.count >= 9, "screenshots: \(shots.sorted())")
    }

    /// The `http://127.0.0.1:<port>` from the server's first stdout line (waits up to 30 s).
    static func listeningURL(_ server: CLI.Running) -> String? {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && server.process.isRunning {
            if let line = FS.readText(server.outPath)?.split(separator: "\n").first, line.hasPrefix("listening on http://") {
                return String(line.dropFirst("listening on ".count))
            }
            usleep(20_000)
        }
        return nil
    }
}
