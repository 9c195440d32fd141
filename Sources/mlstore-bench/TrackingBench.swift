import Foundation
import MLStoreBasics
import MLStoreCore

/// The tracking benchmark (issue 7): N commits with params and metrics created through the library, then
/// the CLI's `runs` query, `reindex`, `lineage --up` on a deep chain and `log -n 20`, timed as a user would.
enum TrackingBench {
    struct Result: Codable {
        var commits: Int
        var createSeconds: Double
        var firstRunsSeconds: Double
        var runsQuerySeconds: Double
        var reindexSeconds: Double
        var lineageSeconds: Double
        var lineageDepth: Int
        var logSeconds: Double
    }

    static func run(commits n: Int, mlstore: String, scratch: String) throws -> Result {
        let dir = scratch + "/tracking-\(n)"
        try? FileManager.default.removeItem(atPath: dir)
        let repo = try Repository.initialize(at: dir)
        setenv("MLSTORE_AUTHOR_NAME", "bench", 1)
        setenv("MLSTORE_AUTHOR_EMAIL", "bench@example.com", 1)
        let start = Date()
        let batch = repo.objects.batch()
        _ = try batch.add(kind: .tree, payload: Tree.empty.encoded())
        let sig = try repo.identity()
        var parent: ObjectID?
        var rng = SystemRandomNumberGenerator()
        var previousOutput: ObjectID?
        let chainLength = 1000
        for i in 0..<n {
            let params = JSONValue.object(["lr": .number(Double(i % 97 + 1) / 10000), "batch": .number(Double(32 << (i % 4))),
                                           "optimizer": .string(i % 3 == 0 ? "adam" : "sgd")])
            let acc = Double.random(in: 0.5..<1.0, using: &rng)
            let loss = JSONValue.array((0..<5).map { s in .object(["step": .number(Double(s)), "value": .number(1.0 / Double(s + 2))]) })
            let metrics = JSONValue.object(["acc": .number((acc * 1e6).rounded() / 1e6), "loss": loss])
            var c = Commit(tree: Tree.empty.id, author: Signature(name: sig.name, email: sig.email, time: 1_700_000_000 + Int64(i)),
                           committer: Signature(name: sig.name, email: sig.email, time: 1_700_000_000 + Int64(i)), message: "run \(i)\n")
            if let parent { c.parents = [parent] }
            c.params = try batch.add(kind: .blob, payload: params.bytes)
            c.metrics = try batch.add(kind: .blob, payload: metrics.bytes)
            // The last `chainLength` runs form a lineage chain: each consumes the previous one's output.
            if i >= n - chainLength {
                let out = try batch.add(kind: .blob, payload: Array("artifact \(i)".utf8))
                c.outputs = [Artifact(id: out, path: "model.bin")]
                if let prev = previousOutput { c.inputs = [Artifact(id: prev, path: "model.bin")] }
                previousOutput = out
            }
            parent = try batch.add(kind: .commit, payload: c.encoded())
        }
        try batch.commit()
        try repo.refs.update("refs/heads/main", to: parent!, expecting: .absent, actor: sig, message: "bench")
        let created = Date().timeIntervalSince(start)
        func time(_ args: [String]) throws -> Double {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: mlstore)
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            let t = Date()
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw MLStoreError(.failed, "mlstore \(args.joined(separator: " ")) failed with \(p.terminationStatus)") }
            return Date().timeIntervalSince(t)
        }
        let query = ["runs", "--where", "metrics.acc > 0.9", "--sort", "-metrics.acc", "--limit", "20"]
        let first = try time(query)  // builds the index from nothing
        let runs = (0..<5).map { _ in (try? time(query)) ?? .nan }.sorted()[2]
        let reindex = try time(["reindex"])
        let lineage = (0..<3).map { _ in (try? time(["lineage", "HEAD", "--up", "--depth", String(chainLength)])) ?? .nan }.sorted()[1]
        let log = (0..<5).map { _ in (try? time(["log", "-n", "20"])) ?? .nan }.sorted()[2]
        return Result(commits: n, createSeconds: created, firstRunsSeconds: first, runsQuerySeconds: runs, reindexSeconds: reindex,
                      lineageSeconds: lineage, lineageDepth: chainLength, logSeconds: log)
    }
}

/// `mlstore-bench --tracking [N]` entry, called from main before the other benchmarks.
func trackingBenchMain(_ args: [String]) -> Int32? {
    guard let i = args.firstIndex(of: "--tracking") else { return nil }
    let n = i + 1 < args.count ? Int(args[i + 1]) ?? 100_000 : 100_000
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let mlstore = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("mlstore").path
    do {
        let r = try TrackingBench.run(commits: n, mlstore: mlstore, scratch: ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        print("tracking benchmark: \(r.commits) commits with params and metrics (created through the library in \(String(format: "%.1f", r.createSeconds)) s)")
        print(String(format: "  runs --where 'metrics.acc > 0.9' --sort -metrics.acc --limit 20: %.3f s (first call, building the index from nothing: %.2f s)", r.runsQuerySeconds, r.firstRunsSeconds))
        print(String(format: "  reindex: %.2f s", r.reindexSeconds))
        print(String(format: "  lineage --up over a %d-deep chain: %.3f s", r.lineageDepth, r.lineageSeconds))
        print(String(format: "  log -n 20: %.3f s", r.logSeconds))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        if let data = try? enc.encode(r) { print(String(decoding: data, as: UTF8.self)) }
        return 0
    } catch {
        FileHandle.standardError.write(Data("mlstore-bench --tracking: \(error)\n".utf8))
        return 1
    }
}
