import Foundation
import Testing

@Suite("model registry: promote, rollback, gates, names, stage log, locks and concurrent promotions")
struct RegistryTests {
    /// Commits that change `model.bin` and record `acc` (and `loss`), at pinned times; returns their ids.
    func models(_ ws: Workspace, _ accs: [Double], start: Int = 1_750_000_000) throws -> [String] {
        var ids: [String] = []
        for (i, acc) in accs.enumerated() {
            try ws.write("model.bin", "model \(i)\n")
            try ws.ok("add", "model.bin")
            try ws.ok(env: author(at: start + i), "commit", "-m", "model \(i)", "--metric", "acc=\(acc)", "--metric", "loss=\(1 - acc)",
                      "--param", "lr=0.1", "--no-code", "--no-env")
            ids.append(try ws.commitID())
        }
        return ids
    }

    func stageLog(_ ws: Workspace, _ args: String...) throws -> [[String: Any]] {
        let r = try ws.run(["stage", "log"] + args + ["--json"])
        try #require(r.status == 0, "stage log \(args): \(r)")
        return try #require(try JSONTools.parse(r.stdoutData) as? [[String: Any]])
    }

    /// The `previous` of a stage record object, nil for the first one.
    func previous(_ ws: Workspace, _ record: String) throws -> String? {
        let text = try ws.ok("cat-object", "-p", record)
        return text.split(separator: "\n").first { $0.hasPrefix("previous ") }.map { String($0.dropFirst(9)) }
    }

    @Test("promote, promote, rollback: three records in order with reasons; rollbacks pop promotions until none is left")
    func promoteAndRollback() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let c = try models(ws, [0.7, 0.8, 0.9, 0.95])
        var clock = 1_750_001_000
        func at() -> [String: String] {
            clock += 10
            return author(at: clock)
        }
        let promoted = try #require(try JSONTools.parse(Data(try ws.ok(env: at(), "promote", "m", c[0], "--stage", "production", "-m", "first", "--json").utf8))
                                    as? [String: Any])
        let t1 = clock
        #expect(Set(promoted.keys) == ["record", "model", "stage", "target"] && promoted[string: "target"] == c[0]
                && promoted[string: "model"] == "m" && promoted[string: "stage"] == "production", "\(promoted)")
        let text = try ws.ok(env: at(), "promote", "m", "HEAD~2", "--stage", "production", "-m", "second")
        let t2 = clock
        #expect(text.hasPrefix("m@production → \(c[1].prefix(12)) (record "), "\(text)")
        let rb = try ws.ok(env: at(), "rollback", "m", "--stage", "production", "-m", "model 1 regressed")
        let t3 = clock
        #expect(rb.hasPrefix("m@production rolled back to \(c[0].prefix(12))"), "\(rb)")
        #expect(try ws.commitID("m@production") == c[0])

        var log = try stageLog(ws, "m")
        try #require(log.count == 3, "\(log)")
        // Each record carries nanoseconds within its second (x-time-ns), which order same-second moves.
        for (i, e) in log.enumerated() {
            let ns = try #require(e["timeNanos"] as? Int64 ?? (e["timeNanos"] as? Int).map(Int64.init), "\(e)")
            let secs = try #require((e["actor"] as? [String: Any])?["time"] as? Int)
            #expect(ns / 1_000_000_000 == Int64(secs))
            log[i].removeValue(forKey: "timeNanos")
        }
        func actor(_ t: Int) -> String { #"{"name": "Ada Lovelace", "email": "ada@example.com", "time": \#(t), "offsetMinutes": 0}"# }
        let expected = [
            #"{"record": "\#(log[0][string: "record"] ?? "")", "model": "m", "stage": "production", "action": "rollback", "from": "\#(c[1])", "to": "\#(c[0])", "actor": \#(actor(t3)), "reason": "model 1 regressed"}"#,
            #"{"record": "\#(log[1][string: "record"] ?? "")", "model": "m", "stage": "production", "action": "promote", "from": "\#(c[0])", "to": "\#(c[1])", "actor": \#(actor(t2)), "reason": "second"}"#,
            #"{"record": "\#(promoted[string: "record"] ?? "")", "model": "m", "stage": "production", "action": "promote", "to": "\#(c[0])", "actor": \#(actor(t1)), "reason": "first"}"#,
        ]
        for (i, e) in expected.enumerated() { #expect(JSONTools.equal(log[i], e), "record \(i): \(JSONTools.canonical(log[i]))") }
        // The ref names the newest record; each record chains to the one before.
        let records = log.map { $0[string: "record"] ?? "" }
        #expect(ws.read(".mlstore/refs/stages/m/production") == records[0] + "\n")
        #expect(try previous(ws, records[0]) == records[1] && (try previous(ws, records[1])) == records[2])
        #expect(try previous(ws, records[2]) == nil)
        #expect(try ws.ok("cat-object", "-p", records[0]).contains("\naction rollback\n"))

        // Two more promotions, then two rollbacks go back twice: c3 → c2 → c0.
        try ws.ok(env: at(), "promote", "m", c[2], "--stage", "production", "-m", "third")
        try ws.ok(env: at(), "promote", "m", c[3], "--stage", "production", "-m", "fourth")
        #expect(try ws.commitID("m@production") == c[3])
        try ws.ok(env: at(), "rollback", "m", "--stage", "production", "-m", "r1")
        #expect(try ws.commitID("m@production") == c[2])
        try ws.ok(env: at(), "rollback", "m", "--stage", "production", "-m", "r2")
        #expect(try ws.commitID("m@production") == c[0])
        let after = try stageLog(ws, "m", "--stage", "production")
        #expect(after.map { $0[string: "reason"] ?? "" } == ["r2", "r1", "fourth", "third", "model 1 regressed", "second", "first"])
        #expect(after.map { $0[string: "action"] ?? "" } == ["rollback", "rollback", "promote", "promote", "rollback", "promote", "promote"])
        #expect(after[0][string: "from"] == c[2] && after[0][string: "to"] == c[0] && after[1][string: "from"] == c[3] && after[1][string: "to"] == c[2])

        // Nothing earlier is in effect: refused (exit 5), nothing written.
        let objects = ws.looseObjects().map(\.id)
        let none = try ws.run(env: at(), "rollback", "m", "--stage", "production", "-m", "r3")
        #expect(none.status == 5 && none.stderr.contains("nothing to roll back"), "\(none)")
        #expect(Set(ws.looseObjects().map(\.id)).subtracting(objects).isEmpty, "a refused rollback must not write a record")
        #expect(try stageLog(ws, "m").count == 7)
        #expect(try ws.commitID("m@production") == c[0])
        // No history at all in a stage: not found.
        #expect(try ws.run("rollback", "m", "--stage", "staging").status == 3)
        #expect(try ws.run("stage", "log", "m", "--stage", "staging").status == 3)
        #expect(try ws.run("stage", "log", "other").status == 3)
        // The stage ref's reflog has one entry per record.
        let reflog = try #require(try ws.json("reflog", "refs/stages/m/production") as? [[String: Any]])
        #expect(reflog.count == 7 && reflog.first?[string: "new"] == records.first.map { _ in after[0][string: "record"] ?? "" }, "\(reflog.count)")
        let table = try ws.ok("stage", "log", "m")
        #expect(table.split(separator: "\n").count == 8 && table.hasPrefix("WHEN") && table.contains("model 1 regressed"), "\(table)")
        try ws.expectFsckClean("promotions")
    }

    @Test("--require gates on metrics and params: a failing gate exits 5 and writes nothing")
    func requireGates() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let c = try models(ws, [0.8])[0]
        try ws.write("series.json", #"{"loss": [0.5, 0.3, 0.15]}"#)
        try ws.ok(env: author(), "commit", "-m", "with series", "--metrics", "series.json", "--no-code", "--no-env")
        let s = try ws.commitID()

        let passing: [(String, String, String)] = [
            (c, "staging", "metrics.acc>=0.8"),
            (c, "qa", "metrics.acc>=0.5, metrics.loss<0.5"),
            (c, "canary", "metrics.acc>0.5 and params.lr<=0.1"),
            (c, "shadow", "metrics.acc==0.8"),
            (s, "staging", "metrics.loss<0.2"),  // the last point of a series
        ]
        for (rev, stage, req) in passing {
            let r = try ws.run("promote", "m", rev, "--stage", stage, "--require", req, "-m", "gated")
            #expect(r.status == 0, "--require \(req): \(r)")
        }
        let objects = ws.looseObjects().map(\.id)
        let refs = FS.snapshot(ws.path(".mlstore/refs"))
        let logs = FS.snapshot(ws.path(".mlstore/logs"))
        let failing: [(String, Int32, String)] = [
            ("metrics.acc>0.8", 5, "metrics.acc = 0.8"),
            ("metrics.acc>=0.5 and metrics.loss<0.1", 5, "metrics.loss"),
            ("metrics.f1>=0.1", 5, "metrics.f1 is not recorded"),
            ("params.lr>0.5", 5, "params.lr"),
            ("metrics.acc!=0.8", 5, "metrics.acc"),
            ("acc>=0.5", 2, "metrics."),
            ("metrics.acc>=high", 2, "high"),
            ("metrics.acc", 2, "comparison"),
        ]
        for (req, status, mentions) in failing {
            let r = try ws.run("promote", "m", c, "--stage", "production", "--require", req, "-m", "should not happen")
            #expect(r.status == status, "--require \(req): \(r)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains(mentions), "--require \(req): \(r.stderr)")
        }
        let written = Set(ws.looseObjects().map(\.id)).subtracting(objects).sorted()
        #expect(written.isEmpty, "a refused promotion must not write a record; new objects: \(written)")
        #expect(FS.snapshot(ws.path(".mlstore/refs")) == refs && FS.snapshot(ws.path(".mlstore/logs")) == logs)
        #expect(try ws.run("show", "m@production").status == 3)
        #expect(try stageLog(ws, "m").count == 5)
    }

    @Test("model and stage names, --path, repeated and unknown targets")
    func namesAndPaths() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("models/a.bin", "a\n")
        try ws.ok("add", "models")
        let c = try models(ws, [0.5, 0.6])
        // Custom stages and model names with capitals, digits, dots and dashes.
        try ws.ok("promote", "ResNet-50.v2", c[0], "--stage", "shadow-1", "-m", "custom")
        #expect(try ws.commitID("ResNet-50.v2@shadow-1") == c[0])
        try ws.ok("promote", "m", c[0], "--stage", "archived")
        let bad: [([String], String)] = [
            (["promote", "bad/name", c[0], "--stage", "production"], "bad/name"),
            (["promote", ".m", c[0], "--stage", "production"], ".m"),
            (["promote", "m m", c[0], "--stage", "production"], "m m"),
            (["promote", "m@x", c[0], "--stage", "production"], "m@x"),
            (["promote", String(repeating: "m", count: 101), c[0], "--stage", "production"], "model name"),
            (["promote", "clf.lock", c[0], "--stage", "production"], "clf.lock"),
            (["promote", "a..b", c[0], "--stage", "production"], "a..b"),
            (["show", "clf.lock@production"], "clf.lock"),
            (["promote", "m", c[0], "--stage", "Prod"], "Prod"),
            (["promote", "m", c[0], "--stage", "1st"], "1st"),
            (["promote", "m", c[0], "--stage", "a/b"], "a/b"),
            (["promote", "m", c[0], "--stage", "_x"], "_x"),
            (["promote", "m", c[0], "--stage", ""], "stage"),
            (["rollback", "bad/name", "--stage", "production"], "bad/name"),
            (["rollback", "m", "--stage", "Prod"], "Prod"),
            (["stage", "log", "bad/name"], "bad/name"),
            (["stage", "log", "m", "--stage", "Prod"], "Prod"),
            (["show", "bad/name@production"], "bad/name"),
        ]
        let objects = ws.looseObjects().map(\.id)
        for (args, mentions) in bad {
            let r = try ws.run(args)
            #expect(r.status == 2, "\(args): \(r)")
            #expect(r.stderr.contains(mentions), "\(args): \(r.stderr)")
        }
        let written = Set(ws.looseObjects().map(\.id)).subtracting(objects).sorted()
        #expect(written.isEmpty, "a refused promotion must not write a stage record; new objects: \(written)")
        #expect(Set(FS.listFiles(ws.path(".mlstore/refs/stages"))) == ["ResNet-50.v2/shadow-1", "m/archived"])

        // Promoting what the stage already holds is a no-op refused with exit 2; an unknown revision is exit 3.
        let same = try ws.run("promote", "m", c[0], "--stage", "archived")
        #expect(same.status == 2 && same.stderr.contains("already points"), "\(same)")
        #expect(try ws.run("promote", "m", "nosuch", "--stage", "archived").status == 3)
        #expect(try ws.run("promote", "m", "m@nosuch", "--stage", "archived").status == 3)
        // Another stage as the source.
        try ws.ok("promote", "m", "m@archived", "--stage", "production")
        #expect(try ws.commitID("m@production") == c[0])

        // --path must exist in the commit; it is recorded and shown; rollback restores the previous path.
        let missing = try ws.run("promote", "m", c[1], "--stage", "production", "--path", "nope.bin")
        #expect(missing.status == 3 && missing.stderr.contains("nope.bin"), "\(missing)")
        #expect(try ws.run("promote", "m", c[1], "--stage", "production", "--path", "../x").status != 0)
        try ws.ok("promote", "m", c[1], "--stage", "production", "--path", "model.bin", "-m", "with path")
        let log = try stageLog(ws, "m", "--stage", "production")
        #expect(log.first?[string: "path"] == "model.bin" && log.last?["path"] == nil, "\(log)")
        let list = try #require(try ws.json("stage", "list") as? [[String: Any]])
        #expect(list.first { $0[string: "stage"] == "production" }?[string: "path"] == "model.bin", "\(list)")
        // The same commit under a different path is a new promotion.
        try ws.ok("promote", "m", c[1], "--stage", "production", "--path", "models/a.bin")
        try ws.ok("rollback", "m", "--stage", "production")
        #expect(try stageLog(ws, "m", "--stage", "production").first?[string: "path"] == "model.bin")
        try ws.expectFsckClean("registry names")
    }

    @Test("a stale lock on the stage ref: promote and rollback exit 8 naming the lock; nothing changes")
    func staleLock() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let c = try models(ws, [0.5, 0.6])
        try ws.ok("promote", "m", c[0], "--stage", "production")
        try ws.ok("promote", "m", c[1], "--stage", "production")
        let ref = ws.path(".mlstore/refs/stages/m/production")
        let before = try #require(FS.readText(ref))
        try FS.write(ref + ".lock", "")
        for args in [["promote", "m", c[0], "--stage", "production", "-m", "blocked"], ["rollback", "m", "--stage", "production"]] {
            let r = try ws.run(args)
            #expect(r.status == 8, "\(args): \(r)")
            #expect(r.stderr.contains("refs/stages/m/production.lock") && r.stderr.contains("hint:"), "\(args): \(r.stderr)")
        }
        #expect(FS.readText(ref) == before && FS.exists(ref + ".lock"), "the ref and the lock must be left alone")
        #expect(try stageLog(ws, "m").count == 2)
        #expect(try ws.commitID("m@production") == c[1], "reads work while the ref is locked")
        // A lock on a fresh stage too.
        try FS.write(ws.path(".mlstore/refs/stages/m/staging.lock"), "")
        let fresh = try ws.run("promote", "m", c[0], "--stage", "staging")
        #expect(fresh.status == 8 && fresh.stderr.contains("staging.lock"), "\(fresh)")
        #expect(!FS.exists(ws.path(".mlstore/refs/stages/m/staging")))
        // Stage listings ignore lock files.
        let list = try #require(try ws.json("stage", "list") as? [[String: Any]])
        #expect(list.map { $0[string: "stage"] ?? "" } == ["production"])
        // Once the lock is gone, promotion works again.
        try FS.remove(ref + ".lock")
        try ws.ok("promote", "m", c[0], "--stage", "production", "-m", "unblocked")
        #expect(try ws.commitID("m@production") == c[0])
        #expect(try stageLog(ws, "m").first?[string: "reason"] == "unblocked")
    }

    @Test("concurrent promotions to one stage: each succeeds or fails with exit 5/8; every success is in the chain")
    func concurrentPromotions() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let outDir = try TempDir(prefix: "mlstore-e2e-out")
        defer { outDir.remove() }
        let rounds = 4, width = 4
        let c = try models(ws, (0..<(rounds * width)).map { 0.5 + Double($0) / 100 })
        var successes: [(commit: String, reason: String)] = []
        var failures: [Int32: Int] = [:]
        for round in 0..<rounds {
            var running: [(String, String, CLI.Running)] = []
            for i in 0..<width {
                let commit = c[round * width + i]
                let reason = "round \(round) process \(i)"
                running.append((commit, reason, try CLI.start(["promote", "m", commit, "--stage", "production", "-m", reason],
                                                               in: ws.root, outDir: outDir.path, tag: "p\(round)-\(i)")))
            }
            var won = 0
            for (commit, reason, p) in running {
                let r = p.wait()
                if r.status == 0 {
                    successes.append((commit, reason))
                    won += 1
                } else {
                    #expect(r.status == 5 || r.status == 8, "\(reason): \(r)")
                    #expect(r.status != 5 || r.stderr.contains("moved") || r.stderr.contains("exists"), "\(reason): \(r.stderr)")
                    #expect(r.status != 8 || r.stderr.contains("production.lock"), "\(reason): \(r.stderr)")
                    failures[r.status, default: 0] += 1
                }
            }
            #expect(won >= 1, "round \(round): no promotion succeeded")
            #expect(!FS.exists(ws.path(".mlstore/refs/stages/m/production.lock")), "round \(round): lock left behind")
        }
        // Every successful promotion is a record in the chain: none was lost, none invented.
        let log = try stageLog(ws, "m", "--stage", "production")
        #expect(log.count == successes.count, "\(log.count) records for \(successes.count) successes (failures: \(failures))")
        #expect(Set(log.map { $0[string: "reason"] ?? "" }) == Set(successes.map(\.reason)))
        #expect(log.allSatisfy { $0[string: "action"] == "promote" })
        for e in log {
            let s = successes.first { $0.reason == e[string: "reason"] }
            #expect(s?.commit == e[string: "to"], "\(e)")
        }
        // The chain is linked newest → oldest, the ref names its head, and "from" is the previous record's target.
        let records = log.map { $0[string: "record"] ?? "" }
        #expect(ws.read(".mlstore/refs/stages/m/production") == (records.first ?? "") + "\n")
        for i in 0..<records.count {
            #expect(try previous(ws, records[i]) == (i + 1 < records.count ? records[i + 1] : nil), "record \(i)")
            if i + 1 < log.count { #expect(log[i][string: "from"] == log[i + 1][string: "to"]) }
        }
        #expect(try ws.commitID("m@production") == log.first?[string: "to"])
        let reflog = try #require(try ws.json("reflog", "refs/stages/m/production") as? [[String: Any]])
        #expect(reflog.count == successes.count)
        try ws.expectFsckClean("concurrent promotions")
    }

    @Test("stage log of several stages is newest first even when promotions share a second")
    func stageLogOrderAcrossStages() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let c = try models(ws, [0.5, 0.6])
        // A script promotes within one second (the record time has one-second resolution).
        let sameSecond = author(at: 1_760_000_000)
        try ws.ok(env: sameSecond, "promote", "m", c[0], "--stage", "staging", "-m", "s1")
        try ws.ok(env: sameSecond, "promote", "m", c[0], "--stage", "production", "-m", "p1")
        try ws.ok(env: sameSecond, "promote", "m", c[1], "--stage", "staging", "-m", "s2")
        let reasons = try stageLog(ws, "m").map { $0[string: "reason"] ?? "" }
        #expect(reasons == ["s2", "p1", "s1"], "stage log m (newest first) gave \(reasons)")
    }
}
