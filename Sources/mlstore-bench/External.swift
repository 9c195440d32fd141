import Foundation

/// One row of bench/external.sh's JSON report.
struct ExternalRow {
    var workload: String
    var workloadKey: String
    var op: String
    var toolKey: String
    var tool: String
    var status: String
    var runs: Int
    var median: Double?
    var peakMiB: Double?
    var stored: Double?
    var added: Double?
    var note: String

    init(_ j: [String: Any]) {
        workload = j["workload"] as? String ?? ""
        workloadKey = j["workload_key"] as? String ?? ""
        op = j["op"] as? String ?? ""
        toolKey = j["tool_key"] as? String ?? ""
        tool = j["tool"] as? String ?? ""
        status = j["status"] as? String ?? ""
        runs = (j["runs"] as? NSNumber)?.intValue ?? 0
        median = (j["median_s"] as? NSNumber)?.doubleValue
        peakMiB = (j["peak_rss_mib"] as? NSNumber)?.doubleValue
        stored = (j["stored_bytes"] as? NSNumber)?.doubleValue
        added = (j["added_bytes"] as? NSNumber)?.doubleValue
        note = j["note"] as? String ?? ""
    }
}

/// Finds and runs bench/external.sh with the mlstore binary and the pass-through flags.
struct ExternalBench {
    let options: Options
    let packageRoot: String?

    /// The package root: the directory above this executable (or this source file) holding bench/external.sh.
    static func findPackageRoot() -> String? {
        findUpward("bench/external.sh", from: executableDirectory())
            ?? findUpward("bench/external.sh", from: (#filePath as NSString).deletingLastPathComponent)
            ?? findUpward("bench/external.sh", from: FileManager.default.currentDirectoryPath)
    }

    /// The mlstore binary to time: --mlstore, else the one next to this executable, rebuilt first.
    func mlstoreBinary() -> String? {
        if let given = options.mlstore { return given }
        let beside = executableDirectory() + "/mlstore"
        if options.build, let root = packageRoot, let swift = Self.swiftExecutable() {
            stderrPrint("== building mlstore: swift build -c release --product mlstore")
            let rc = (try? runProcess(swift, ["build", "-c", "release", "--product", "mlstore", "--package-path", root])) ?? -1
            if rc != 0 { stderrPrint("mlstore-bench: warning: building mlstore failed (exit \(rc)); using what is there") }
        }
        for candidate in [beside] + (packageRoot.map { [$0 + "/.build/release/mlstore"] } ?? [])
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return nil
    }

    static func swiftExecutable() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/opt/swift/usr/bin"] {
            let p = dir + "/swift"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs the script; returns its parsed JSON report.
    func run(mlstore: String?, reportPath: String) throws -> [String: Any] {
        guard let root = packageRoot else {
            throw UsageError("bench/external.sh not found above \(executableDirectory()) or this source file")
        }
        var args = [root + "/bench/external.sh", "--out", reportPath]
        if options.quick { args.append("--quick") }
        if options.install { args.append("--install") }
        if options.keep { args.append("--keep") }
        if let r = options.runs { args += ["--runs", String(r)] }
        if let w = options.work { args += ["--work", w] }
        if let o = options.only { args += ["--only", o] }
        if let t = options.tools { args += ["--tools", t] }
        if let mlstore { args += ["--mlstore", mlstore] }
        stderrPrint("== running bench/external.sh " + args.dropFirst().joined(separator: " "))
        try? FileManager.default.removeItem(atPath: reportPath)
        let rc = try runProcess("/bin/bash", args)
        guard rc == 0 else { throw UsageError("bench/external.sh failed (exit \(rc))") }
        let data = try Data(contentsOf: URL(fileURLWithPath: reportPath))
        guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw UsageError("\(reportPath) is not a JSON object")
        }
        return json
    }
}
