import MLStoreCore

/// A plain text table with aligned columns (colors applied per cell after padding).
struct Table {
    var headers: [String]
    var rows: [[String]] = []
    var colors: [Int: Terminal.Color] = [:]

    init(_ headers: [String]) { self.headers = headers }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        var widths = headers.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String], header: Bool) -> String {
            cells.enumerated().map { i, c in
                let padded = i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                if header { return Terminal.paint(padded, .bold) }
                if let color = colors[i] { return Terminal.paint(padded, color) }
                return padded
            }.joined(separator: "  ")
        }
        var out = line(headers, header: true) + "\n"
        for r in rows { out += line(r, header: false) + "\n" }
        return out
    }
}

extension String {
    func padding(toLength n: Int, withPad pad: String, startingAt: Int) -> String {
        count >= n ? self : self + String(repeating: pad, count: n - count)
    }
}

extension Table {
    /// A stage history (`stage log`, `model show`): when, who, stage, action, from → to, reason.
    /// `v2 (1a2b3c4d)` for a model version, the commit's short id otherwise, `-` for nothing.
    static func label(_ commit: ObjectID?, _ version: Int?) -> String {
        guard let commit else { return "-" }
        return version.map { "v\($0) (\(commit.short))" } ?? commit.short
    }

    static func stageHistory(_ events: [StageEvent]) -> Table {
        var t = Table(["WHEN", "WHO", "STAGE", "ACTION", "FROM", "TO", "REASON"])
        t.colors[5] = .yellow
        for e in events {
            t.add([e.actor.isoDate, e.actor.name, e.stage, e.action.rawValue, label(e.from, e.fromVersion), label(e.to, e.toVersion), e.reason])
        }
        return t
    }
}
