import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

/// Keeps the query index current after a command that moved refs (derived data: a failure only warns).
enum Tracking {
    static func refresh(_ repo: Repository?) {
        guard let repo else { return }
        do { _ = try TrackingIndex.open(repo) } catch {
            Terminal.warn("could not update the query index (\(error)); `mlstore reindex` rebuilds it")
        }
    }
}

extension MLStoreCommand {
    struct Runs: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "runs",
            abstract: "Find and compare runs: a table of commits with chosen params and metrics.",
            discussion: """
                --where takes comparisons on params.<key>, metrics.<key>, tag, author, date, stage, message, command and \
                id, combined with and / or / not and parentheses; operators = != < <= > >= and ~ (contains). \
                Examples: --where 'metrics.acc > 0.9 and params.lr <= 0.01'   --where "stage = fraud@production or tag = v2" \
                --where 'date >= 2026-11-01 and author ~ ada'. --sort -metrics.acc sorts descending. Grammar: spec/tracking.md.
                """)

        @Option(name: .customLong("where"), help: "Filter expression.") var filter: String?
        @Option(parsing: .unconditional, help: "Sort key: [-]metrics.<k>, [-]params.<k>, date, author or subject (default: newest first).") var sort: String?
        @Option(help: "At most N rows.") var limit: Int?
        @Option(help: "Comma-separated params./metrics. keys to show.") var columns: String?
        @Flag(help: "Print CSV.") var csv = false
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("--limit must be 0 or more") }
            if csv && options.json { throw ValidationError("choose --json or --csv") }
        }

        func run() throws {
            let repo = try options.repository()
            let index = try TrackingIndex.open(repo)
            let cols = columns.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            for c in cols ?? [] where !(c.hasPrefix("params.") || c.hasPrefix("metrics.")) {
                throw ValidationError("--columns takes params.<key> and metrics.<key> names; '\(c)' is neither")
            }
            let (rows, shown) = try index.runs(where: filter, sort: sort, limit: limit, columns: cols)
            if options.json { return try Terminal.printJSON(rows) }
            func value(_ r: RunRow, _ k: String) -> String {
                let v = k.hasPrefix("params.") ? r.params[String(k.dropFirst(7))] : r.metrics[String(k.dropFirst(8))]
                return v?.display ?? ""
            }
            func date(_ t: Int64) -> String { Signature(name: "", email: "", time: t).isoDate.prefix(16).description }
            if csv {
                let header = ["id", "date", "author", "subject"] + shown
                print(header.joined(separator: ","))
                for r in rows {
                    let cells = [r.id.hex, date(r.time), r.author, r.subject] + shown.map { value(r, $0) }
                    print(cells.map { $0.contains(",") || $0.contains("\"") ? "\"" + $0.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : $0 }.joined(separator: ","))
                }
                return
            }
            var t = Table(["COMMIT", "DATE", "AUTHOR"] + shown.map { $0.uppercased() } + ["SUBJECT"])
            t.colors[0] = .yellow
            for r in rows {
                var subject = r.subject
                let labels = r.tags.map { "tag:" + $0 } + r.stages
                if !labels.isEmpty { subject += " (" + labels.joined(separator: ", ") + ")" }
                t.add([r.id.short, date(r.time), r.author] + shown.map { value(r, $0) } + [subject])
            }
            print(t.render(), terminator: "")
            print(Terminal.paint("\(rows.count) run\(rows.count == 1 ? "" : "s")\(limit.map { rows.count == $0 ? " (limit \($0))" : "" } ?? "") of \(try index.count())", .dim))
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "compare", abstract: "Params and metrics of several runs side by side; differing values highlighted.")

        @Argument(help: "Two or more revisions.") var revisions: [String]
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if revisions.count < 2 { throw ValidationError("give at least two revisions to compare") }
        }

        func run() throws {
            let repo = try options.repository()
            let index = try TrackingIndex.open(repo)
            let ids = try revisions.map { try repo.resolveCommit($0) }
            let rows = try ids.map { try index.row($0) }
            let paramKeys = Set(rows.flatMap { $0.params.keys }).sorted()
            let metricKeys = Set(rows.flatMap { $0.metrics.keys }).sorted()
            if options.json {
                struct Out: Encodable {
                    var runs: [RunRow]
                    var differing: [String]
                }
                var differing: [String] = []
                for k in paramKeys where Set(rows.map { $0.params[k]?.canonical }).count > 1 { differing.append("params." + k) }
                for k in metricKeys where Set(rows.map { $0.metrics[k]?.canonical }).count > 1 { differing.append("metrics." + k) }
                return try Terminal.printJSON(Out(runs: rows, differing: differing))
            }
            var t = Table(["KEY"] + rows.map { $0.id.short })
            func add(_ prefix: String, _ keys: [String], _ get: (RunRow, String) -> JSONValue?) {
                for k in keys {
                    let values = rows.map { get($0, k)?.display ?? "-" }
                    let differs = Set(values).count > 1
                    t.add([prefix + k] + values.map { differs ? Terminal.paint($0, .yellow) : $0 })
                }
            }
            t.add(["subject"] + rows.map { $0.subject })
            add("params.", paramKeys) { $0.params[$1] }
            add("metrics.", metricKeys) { $0.metrics[$1] }
            print(t.render(), terminator: "")
        }
    }

    struct Metrics: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "metrics", abstract: "A run's metrics; step series with a terminal plot.")

        @Argument(help: "A revision (default HEAD).") var revision: String = "HEAD"
        @Argument(help: "One metric key (default: all).") var key: String?
        @Flag(help: "Print CSV (commit,key,step,value).") var csv = false
        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let index = try TrackingIndex.open(repo)
            let id = try repo.resolveCommit(revision)
            let keys = try key.map { [$0] } ?? index.metricKeys(id)
            if let key, try index.series(id, key: key).isEmpty {
                throw MLStoreError(.notFound, "run \(id.short) has no metric '\(key)'", hint: "its metrics: " + (try index.metricKeys(id)).joined(separator: ", "))
            }
            let data = try keys.map { ($0, try index.series(id, key: $0)) }
            if options.json {
                struct Point: Encodable { var step: Double; var value: Double }
                return try Terminal.printJSON(Dictionary(uniqueKeysWithValues: data.map { ($0.0, $0.1.map { Point(step: $0.step, value: $0.value) }) }))
            }
            if csv {
                print("commit,key,step,value")
                for (k, s) in data { for p in s { print("\(id.hex),\(k),\(JSONValue.format(p.step)),\(JSONValue.format(p.value))") } }
                return
            }
            for (k, s) in data {
                guard let last = s.last else { continue }
                if s.count == 1 {
                    print("\(Terminal.paint(k, .bold)) = \(JSONValue.format(last.value))")
                    continue
                }
                let values = s.map(\.value)
                print("\(Terminal.paint(k, .bold)): \(s.count) steps, first \(JSONValue.format(values[0])), last \(JSONValue.format(last.value)), min \(JSONValue.format(values.min()!)), max \(JSONValue.format(values.max()!))")
                print("  " + Sparkline.render(values, width: 60))
                if key != nil { print(Plot.render(s)) }
            }
        }
    }

    struct Reindex: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reindex", abstract: "Rebuild the query index (.mlstore/tracking.db) from the objects.")
        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let start = Date()
            let index = try TrackingIndex.open(repo, sync: false)
            try index.rebuild()
            let n = try index.count()
            if options.json { return try Terminal.printJSON(["commits": n]) }
            print("indexed \(n) commits in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        }
    }
}

/// A small terminal line plot (rows of braille-free ASCII) for a metric series.
enum Plot {
    static func render(_ points: [(step: Double, value: Double)], width: Int = 60, height: Int = 10) -> String {
        guard points.count > 1, let lo = points.map(\.value).min(), let hi = points.map(\.value).max() else { return "" }
        let s0 = points.first!.step, s1 = points.last!.step
        var grid = Array(repeating: Array(repeating: Character(" "), count: width), count: height)
        for p in points {
            let x = s1 == s0 ? 0 : Int((p.step - s0) / (s1 - s0) * Double(width - 1))
            let y = hi == lo ? height / 2 : Int((p.value - lo) / (hi - lo) * Double(height - 1))
            grid[height - 1 - y][x] = "•"
        }
        var out = ""
        for (i, row) in grid.enumerated() {
            let label = i == 0 ? JSONValue.format(hi) : (i == height - 1 ? JSONValue.format(lo) : "")
            out += label.padding(toLength: 10, withPad: " ", startingAt: 0) + "│" + String(row) + "\n"
        }
        out += String(repeating: " ", count: 10) + "└" + String(repeating: "─", count: width) + "\n"
        out += String(repeating: " ", count: 11) + "step \(JSONValue.format(s0))" + String(repeating: " ", count: max(1, width - 20)) + JSONValue.format(s1)
        return out
    }
}
