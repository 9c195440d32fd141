import Foundation
import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// Facts about the machine the numbers come from.
struct Machine {
    var cpu = "unknown"
    var nproc = 0
    var kernel = ""
    var os = ""
    var memGiB = 0.0
    var swift = ""
    var nice = 0

    static func current() -> Machine {
        var m = Machine()
        if let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
           let colon = line.firstIndex(of: ":") {
            m.cpu = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        m.nproc = workerCount
        errno = 0
        m.nice = Int(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0))
        var u = utsname()
        if uname(&u) == 0 {
            func s<T>(_ t: T) -> String {
                withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            }
            m.kernel = "\(s(u.sysname)) \(s(u.release)) \(s(u.machine))"
        }
        if let osr = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = osr.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            m.os = line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        if let mi = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = mi.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kib = Double(line.split(separator: " ").dropFirst().first ?? "") {
            m.memGiB = kib / 1048576
        }
        if let swift = ExternalBench.swiftExecutable() { m.swift = firstLine(swift, ["--version"]) ?? "" }
        return m
    }

    var json: [String: Any] {
        ["cpu_model": cpu, "nproc": nproc, "kernel": kernel, "os": os, "mem_gib": (memGiB * 10).rounded() / 10, "swift": swift, "nice": nice]
    }
}

/// Builds the combined table, the ratio summary and the JSON report.
struct Report {
    let mode: String
    let runs: Int
    let machine: Machine
    let micro: [MicroResult]
    let dedup: [DedupResult]
    let external: [String: Any]?
    let date: Date

    var rows: [ExternalRow] {
        ((external?["rows"] as? [[String: Any]]) ?? []).map(ExternalRow.init)
    }

    static let opOrder = ["hash", "copy", "init", "add", "status", "checkout", "push", "clone"]
    static let toolOrder = ["mlstore", "openssl", "cp", "git", "lfs", "dvc"]
    static let toolTitle = ["openssl": "openssl", "cp": "cp", "git": "git", "lfs": "git-lfs", "dvc": "dvc"]

    /// The mlstore operation a tool's row is compared with: hashing and copying are the floor for `add`.
    static func mlstoreOp(for op: String) -> String {
        switch op {
        case "hash", "copy": "add"
        default: op
        }
    }

    var workloads: [String] {
        var seen: [String] = []
        for r in rows where !seen.contains(r.workload) { seen.append(r.workload) }
        return seen
    }

    func sorted(_ rs: [ExternalRow]) -> [ExternalRow] {
        rs.sorted {
            let a = (Self.opOrder.firstIndex(of: $0.op) ?? 99, Self.toolOrder.firstIndex(of: $0.toolKey) ?? 99)
            let b = (Self.opOrder.firstIndex(of: $1.op) ?? 99, Self.toolOrder.firstIndex(of: $1.toolKey) ?? 99)
            return a < b
        }
    }

    func mlstoreRow(_ workload: String, _ op: String) -> ExternalRow? {
        rows.first { $0.workload == workload && $0.toolKey == "mlstore" && $0.op == op && $0.status == "ok" }
    }

    struct Comparison {
        var workload: String, op: String, tool: String, toolKey: String
        var mlstore: Double, other: Double
        var storedRatio: Double?
        var ratio: Double { mlstore / other }
    }

    var comparisons: [Comparison] {
        var out: [Comparison] = []
        for r in rows where r.toolKey != "mlstore" && r.status == "ok" {
            guard let other = r.median, other > 0, let ml = mlstoreRow(r.workload, Self.mlstoreOp(for: r.op)),
                  let mlT = ml.median else { continue }
            var sr: Double?
            if r.op == "add" || r.op == "copy" {
                if let a = ml.added, let b = r.added, b > 0 {
                    sr = a / b
                } else if let a = ml.stored, let b = r.stored, b > 0, ml.added == nil {
                    sr = a / b
                }
            }
            out.append(Comparison(workload: r.workload, op: r.op, tool: r.tool, toolKey: r.toolKey, mlstore: mlT, other: other, storedRatio: sr))
        }
        return out
    }

    // MARK: Text

    var header: String {
        var lines: [String] = []
        let ext = external
        let versions = (ext?["versions"] as? [String: Any]) ?? [:]
        let em = (ext?["machine"] as? [String: Any]) ?? [:]
        let disk = micro.first { $0.name.hasPrefix("disk") }
        let iso = ISO8601DateFormatter().string(from: date)
        lines.append("mlstore benchmark, \(mode) mode, \(iso)")
        lines.append("machine: \(machine.cpu), \(machine.nproc) vCPUs, \(fmt(machine.memGiB, 1)) GiB RAM, \(machine.kernel), \(machine.os)")
        var diskLine = "disk: work dir" + ((em["work_fs"] as? String).map { " on " + $0 } ?? "")
        if let disk { diskLine += ", sequential write + fsync \(fmt(disk.mbPerSecond, 0)) MB/s (measured)" }
        lines.append(diskLine)
        if let sha1 = micro.first(where: { $0.name.hasPrefix("SHA-256, 1") }), let shaN = micro.first(where: { $0.name.hasPrefix("SHA-256,") && !$0.name.hasPrefix("SHA-256, 1") }) {
            lines.append("cpu: SHA-256 \(fmt(sha1.mbPerSecond, 0)) MB/s on one thread, \(fmt(shaN.mbPerSecond, 0)) MB/s on \(machine.nproc) (\(fmt(shaN.mbPerSecond / sha1.mbPerSecond, 2))×)")
        }
        if ext != nil {
            let r = (ext?["runs"] as? NSNumber)?.intValue ?? runs
            lines.append("method: median wall seconds of \(r) run(s) per row; page cache warm (inputs read before timing); peak RSS of the largest process (GNU time); stored = du -sb of the store after the last run; mlstore fsyncs its writes, git/git-lfs/dvc do not")
            let tools = ["git", "git-lfs", "dvc", "openssl", "mlstore"].compactMap { k -> String? in
                guard let v = versions[k] as? String, v != "unavailable", v != "not given" else { return nil }
                return k == "dvc" || k == "mlstore" ? "\(k) \(v)" : v
            }
            lines.append("tools: " + tools.joined(separator: "; "))
            if let la = ext?["loadavg"] as? [String: Any], let a = la["start"] as? String, let b = la["end"] as? String {
                lines.append("load average (1/5/15 min) when the external run started: \(a); when it ended: \(b) (a busy machine inflates absolute times)")
            }
        }
        if !machine.swift.isEmpty { lines.append("swift: \(machine.swift)") }
        if machine.nice != 0 { lines.append("scheduling: the benchmark ran at nice \(machine.nice) (a shared machine)") }
        return lines.joined(separator: "\n")
    }

    var microTable: String {
        markdownTable(
            ["micro-benchmark", "input", "MB/s", "median s", "note"],
            micro.map { [$0.name, $0.input, fmt($0.mbPerSecond, 0), fmtSeconds($0.medianSeconds), $0.note] },
            rightAligned: [2, 3])
    }

    var dedupTable: String {
        markdownTable(
            ["chunker", "chunks v1", "new chunks v2", "new chunk bytes", "chunk list", "v2 adds", "% of file", "beyond the edits"],
            dedup.map {
                [
                    $0.label, String($0.chunksV1), String($0.newChunks), human(Double($0.newChunkBytes)),
                    human(Double($0.metadataBytes)), human(Double($0.addedBytes)), fmt($0.addedPercent, 2) + " %",
                    human($0.overheadPerEdit) + " (\(human($0.overheadPerEdit / 4)) per edit)",
                ]
            }, rightAligned: [1, 2, 3, 4, 5, 6])
    }

    var fullTable: String {
        var out: [[String]] = []
        let comps = comparisons
        for w in workloads {
            for r in sorted(rows.filter { $0.workload == w }) {
                let med = r.status == "ok" ? r.median.map(fmtSeconds) ?? "-" : "-"
                let peak = r.peakMiB.map { fmt($0, 0) } ?? "-"
                var stored = r.stored.map { human($0) } ?? "-"
                if let a = r.added, let s = r.stored, s > 0 {
                    let fileBytes = (external?["workloads"] as? [String: Any]).flatMap { ($0[r.workloadKey] as? [String: Any])?["bytes"] as? NSNumber }?.doubleValue
                    stored = "+" + human(a) + (fileBytes.map { " (\(fmt(a * 100 / $0, 2)) %)" } ?? "")
                }
                var ratio = "", sratio = ""
                if r.toolKey == "mlstore" {
                    ratio = r.status == "ok" && r.median != nil ? "1" : ""
                } else if let c = comps.first(where: { $0.workload == w && $0.tool == r.tool }) {
                    ratio = fmtRatio(c.ratio)
                    sratio = c.storedRatio.map(fmtRatio) ?? ""
                }
                var note = r.note
                if r.added != nil { note = "" }  // the stored column says it
                if r.status != "ok" { note = r.status + (note.isEmpty ? "" : ": " + note) }
                out.append([w, r.op, r.tool, med, peak, stored, ratio, sratio, note])
            }
        }
        return markdownTable(
            ["workload", "op", "tool", "median s", "peak MiB", "stored", "mlstore ÷ tool (time)", "mlstore ÷ tool (stored)", "note"],
            out, rightAligned: [3, 4, 5, 6, 7])
    }

    /// One line per workload × operation that mlstore ran: its time and its ratio to every other tool.
    var summaryTable: String {
        let comps = comparisons
        let others = ["openssl", "cp", "git", "lfs", "dvc"]
        var out: [[String]] = []
        for w in workloads {
            for op in Self.opOrder {
                guard op != "hash", op != "copy" else { continue }
                let ml = mlstoreRow(w, op)
                let cs = comps.filter { $0.workload == w && Self.mlstoreOp(for: $0.op) == op }
                guard ml != nil || !cs.isEmpty else { continue }
                let skipped = rows.first { $0.workload == w && $0.toolKey == "mlstore" && $0.op == op && $0.status == "skipped" }
                var line = [w, op, ml?.median.map(fmtSeconds) ?? (skipped != nil ? "not implemented" : "-")]
                for t in others {
                    let c = cs.filter { $0.toolKey == t }
                    line.append(c.isEmpty ? "" : c.map { fmtRatio($0.ratio) }.joined(separator: " / "))
                }
                out.append(line)
            }
        }
        return markdownTable(
            ["workload", "op", "mlstore s", "÷ openssl", "÷ cp", "÷ git", "÷ git-lfs", "÷ dvc"], out,
            rightAligned: [2, 3, 4, 5, 6, 7])
    }

    var text: String {
        var parts = [header, ""]
        if !micro.isEmpty {
            parts += ["## Micro-benchmarks (in-process, median of \(micro.first?.times.count ?? 0) runs; MB = 10^6 bytes)", "", microTable, ""]
        }
        if !dedup.isEmpty {
            let d = dedup[0]
            parts += [
                "## Dedup: version 2 of a \(human(Double(d.fileBytes))) float32 model with 4 × \(human(Double(d.changedBytes / 4))) regions rewritten",
                "", dedupTable, "",
            ]
        }
        if external != nil {
            parts += [
                "## End to end (ratio < 1: mlstore faster / smaller; openssl and cp rows compare with mlstore add)", "",
                summaryTable, "", fullTable, "",
            ]
        }
        return parts.joined(separator: "\n")
    }

    // MARK: JSON

    var json: [String: Any] {
        var j: [String: Any] = [
            "generator": "mlstore-bench", "date": ISO8601DateFormatter().string(from: date), "mode": mode,
            "machine": machine.json,
            "micro": micro.map(\.json), "dedup": dedup.map(\.json),
            "comparisons": comparisons.map {
                var c: [String: Any] = [
                    "workload": $0.workload, "op": $0.op, "tool": $0.tool, "tool_key": $0.toolKey,
                    "mlstore_median_s": $0.mlstore, "tool_median_s": $0.other, "time_ratio": ($0.ratio * 10000).rounded() / 10000,
                ]
                if let s = $0.storedRatio { c["stored_ratio"] = (s * 10000).rounded() / 10000 }
                return c
            },
        ]
        if let external { j["external"] = external }
        return j
    }

    func write(jsonPath: String) throws -> String {
        let dir = (jsonPath as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        let md = (jsonPath.hasSuffix(".json") ? String(jsonPath.dropLast(5)) : jsonPath) + ".md"
        try Data(text.utf8).write(to: URL(fileURLWithPath: md), options: .atomic)
        return md
    }
}
