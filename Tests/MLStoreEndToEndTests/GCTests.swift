import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Workspaces around one directory remote (CLI.swift), plus gc helpers.
private typealias Site = RemoteSite
private extension RemoteSite {
    init() throws { try self.init(prefix: "mlstore-gc") }

    func commit(_ message: String, in name: String) throws -> String {
        try ok("commit", "-m", message, "--no-env", "--no-code", in: name)
        return try #require(try json("show", "HEAD", in: name)["id"] as? String)
    }

    /// Object files of a store with size and mtime: any change shows.
    static func storeSnapshot(_ store: String) -> [String: String] {
        var out: [String: String] = [:]
        guard let e = FileManager.default.enumerator(atPath: store) else { return out }
        while let rel = e.nextObject() as? String {
            guard let st = FS.lstatInfo(store + "/" + rel) else { continue }
            out[rel] = "\(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_mode)"
        }
        return out
    }
}

@Suite("garbage collection, remote gc, cache, du") struct GCEndToEndTests {
    @Test("gc removes what was never committed and keeps history; --dry-run changes nothing")
    func localGC() throws {
        let s = try Site()
        defer { s.remove() }
        try s.workspace("a")
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 700_000, seed: 1))
        try s.ok("add", "model.bin", in: "a")
        let staged = try s.ok("hash-object", "model.bin", in: "a").trimmingCharacters(in: .whitespacesAndNewlines)
        // Replaced before any commit: the first version is garbage.
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 700_000, seed: 2))
        try s.ok("add", "model.bin", in: "a")
        let v2 = try s.commit("v2", in: "a")
        try s.ok("promote", "fraud", "HEAD", "--stage", "production", "-m", "ship", in: "a")

        let before = Site.storeSnapshot(s.dir("a/.mlstore"))
        let dry = try s.json("gc", "--dry-run", "--prune", "now", in: "a")
        #expect(dry["dryRun"] as? Bool == true)
        #expect((dry["removedObjects"] as? Int ?? 0) >= 5, "\(dry)")
        #expect(Site.storeSnapshot(s.dir("a/.mlstore")) == before, "gc --dry-run changed the store")

        // Default grace period: the garbage is young, nothing unreachable goes.
        let kept = try s.json("gc", in: "a")
        #expect(kept["removedObjects"] as? Int == 0 && (kept["keptYoungObjects"] as? Int ?? 0) >= 5)
        #expect(try s.run(["cat-object", "-t", staged], in: "a").status == 0)
        let now = try s.json("gc", "--prune", "now", in: "a")
        #expect(now["removedObjects"] as? Int == dry["removedObjects"] as? Int)
        #expect((now["freedBytes"] as? Int ?? 0) > 600_000)
        #expect(try s.run(["cat-object", "-t", staged], in: "a").status == 3)
        #expect(try s.ok("fsck", in: "a").contains("0 problems"))
        try FS.remove(s.dir("a/model.bin"))
        try s.ok("checkout", "fraud@production", "--", "model.bin", in: "a")
        #expect(FS.read(s.dir("a/model.bin")) == FS.randomData(count: 700_000, seed: 2))
        #expect(try s.json("show", "fraud@production", in: "a")["id"] as? String == v2)
        // Text output names what was freed.
        #expect(try s.ok("gc", "--dry-run", in: "a").contains("would free"))
    }

    @Test("gc --remote keeps every past stage target, deletes force-pushed-away history")
    func remoteGCKeepsStageHistory() throws {
        let s = try Site()
        defer { s.remove() }
        try s.workspace("a")
        try FS.write(s.dir("a/base.txt"), "base\n")
        try s.ok("add", "base.txt", in: "a")
        _ = try s.commit("base", in: "a")
        // v1 and v2 on side branches, each promoted; only main and the stage go to the remote, so v1 is
        // reachable on the remote only through the stage's record chain.
        try s.ok("switch", "-c", "x", in: "a")
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 500_000, seed: 11))
        try s.ok("add", "model.bin", in: "a")
        let v1 = try s.commit("v1", in: "a")
        try s.ok("promote", "fraud", v1, "--stage", "production", "-m", "v1", in: "a")
        try s.ok("switch", "-c", "y", "main", in: "a")
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 500_000, seed: 12))
        try s.ok("add", "model.bin", in: "a")
        let v2 = try s.commit("v2", in: "a")
        try s.ok("promote", "fraud", v2, "--stage", "production", "-m", "v2", in: "a")
        try s.ok("push", "origin", "main", "--stages", in: "a")
        // Junk pushed to a branch, then force-pushed away.
        try s.ok("switch", "-c", "junk", "main", in: "a")
        try FS.write(s.dir("a/junk.bin"), FS.randomData(count: 300_000, seed: 13))
        try s.ok("add", "junk.bin", in: "a")
        let junk = try s.commit("junk", in: "a")
        try s.ok("push", "origin", "junk", in: "a")
        try s.ok("switch", "main", in: "a")
        try s.ok("branch", "-d", "junk", in: "a")
        try s.ok("branch", "junk", "main", in: "a")
        try s.ok("push", "--force", "origin", "junk", in: "a")

        let r = try s.json("gc", "--remote", "origin", "--prune", "now", in: "a")
        #expect((r["removedObjects"] as? Int ?? 0) >= 3, "\(r)")
        #expect(try s.fsckRemote().status == 0)
        #expect(try CLI.mlstore(["cat-object", "-t", junk], in: s.remote).status == 3)
        #expect(try CLI.mlstore(["cat-object", "-t", v1], in: s.remote).stdout == "commit\n")
        // A clone can still check out the first production model.
        let clone = try CLI.mlstore(["clone", s.remote, s.dir("b")], in: s.tmp.path, env: Site.env)
        try #require(clone.status == 0, "\(clone)")
        try s.ok("checkout", v1, in: "b")
        #expect(FS.read(s.dir("b/model.bin")) == FS.randomData(count: 500_000, seed: 11))
        // A held lease makes gc wait, then refuse (exit 8) without deleting anything.
        try FS.write(s.dir("stray.txt"), "unreachable on the remote\n")
        let stray = try CLI.mlstore(["hash-object", "-w", s.dir("stray.txt")], in: s.remote).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try FS.write(s.remote + "/leases/held.lease",
                     "mlstore-lease 1\npurpose push\nexpires-ns \(Int64(Date().timeIntervalSince1970 + 600) * 1_000_000_000)\nhost elsewhere\npid 1\nnonce n\n")
        let refused = try s.run(["gc", "--remote", "origin", "--prune", "now", "--wait", "0.5"], in: "a")
        #expect(refused.status == 8 && refused.stderr.contains("lease"), "\(refused)")
        #expect(try CLI.mlstore(["cat-object", "-t", stray], in: s.remote).stdout == "blob\n")
    }

    @Test("pushers racing gc --remote --prune now (real processes) never leave a ref pointing at a deleted object")
    func concurrentPushersAndRemoteGC() throws {
        let s = try Site()
        defer { s.remove() }
        let out = try TempDir(prefix: "mlstore-gc-out")
        defer { out.remove() }
        try s.workspace("seed")
        try FS.write(s.dir("seed/base.txt"), "base\n")
        try s.ok("add", "base.txt", in: "seed")
        _ = try s.commit("base", in: "seed")
        try s.ok("push", in: "seed")
        try s.ok("switch", "-c", "scratch", in: "seed")
        let pushers = 3
        for i in 0..<pushers {
            let c = try CLI.mlstore(["clone", s.remote, s.dir("p\(i)")], in: s.tmp.path, env: Site.env)
            try #require(c.status == 0, "\(c)")
        }
        var failures: [String] = []
        var pushesDone = 0, gcRuns = 0, gcDeleted = 0, pushWaited = 0
        let rounds = 8
        for round in 0..<rounds {
            // The seed publishes a commit on scratch; every pusher builds on it.
            try FS.write(s.dir("seed/s.bin"), FS.randomData(count: 40_000 + (round % 3) * 300_000, seed: UInt64(1000 + round)))
            try s.ok("add", "s.bin", in: "seed")
            _ = try s.commit("scratch \(round)", in: "seed")
            try s.ok("push", "--force", "origin", "scratch", in: "seed")
            for i in 0..<pushers {
                try s.ok("fetch", in: "p\(i)")
                try s.ok("switch", "-c", "p\(i)-r\(round)", "origin/scratch", in: "p\(i)")
                try FS.write(s.dir("p\(i)/p.bin"), FS.randomData(count: 20_000 + ((round + i) % 4) * 150_000, seed: UInt64(round * 10 + i)))
                try s.ok("add", "p.bin", in: "p\(i)")
                _ = try s.commit("p\(i) round \(round)", in: "p\(i)")
            }
            // Scratch moves away: the commit the pushers build on is now unreachable on the remote. So is
            // a junk commit pushed and force-pushed away (garbage no push brings back).
            try s.ok("switch", "-c", "junk\(round)", "main", in: "seed")
            try FS.write(s.dir("seed/j.bin"), FS.randomData(count: 30_000, seed: UInt64(5000 + round)))
            try s.ok("add", "j.bin", in: "seed")
            _ = try s.commit("junk \(round)", in: "seed")
            try s.ok("push", "origin", "junk\(round)", in: "seed")
            try s.ok("switch", "main", in: "seed")
            for b in ["scratch", "junk\(round)"] {
                try s.ok("branch", "-d", b, in: "seed")
                try s.ok("branch", b, in: "seed")
                try s.ok("push", "--force", "origin", b, in: "seed")
            }
            try s.ok("switch", "scratch", in: "seed")

            // The race, in a different order each round.
            let gcArgs = ["gc", "--remote", s.remote, "--prune", "now", "--wait", "30", "--json"]
            var procs: [(String, CLI.Running)] = []
            func startGC(_ tag: String) throws {
                procs.append((tag, try CLI.start(gcArgs, in: s.tmp.path, outDir: out.path, tag: "r\(round)-\(tag)")))
            }
            func startPush(_ i: Int) throws {
                let p = try CLI.Running(executable: try CLI.requireBinary(), args: ["push", "origin", "p\(i)-r\(round)"], cwd: s.dir("p\(i)"),
                                        outDir: out.path, tag: "r\(round)-push\(i)", env: Site.env)
                procs.append(("push\(i)", p))
            }
            switch round % 4 {
            case 0:
                // gc first: it often deletes the scratch commit before the pushers look; they upload it again.
                try startGC("gc")
                usleep(UInt32(50_000 + 50_000 * (round % 3)))
                for i in 0..<pushers { try startPush(i) }
            case 1:
                for i in 0..<pushers { try startPush(i) }
                try startGC("gc")
            case 2:
                try startPush(0)
                try startGC("gc")
                usleep(20_000)
                try startPush(1)
                try startGC("gc2")
                try startPush(2)
            default:
                try startPush(0)
                usleep(UInt32(10_000 * round))
                try startGC("gc")
                for i in 1..<pushers { try startPush(i) }
            }
            for (tag, p) in procs {
                let r = p.wait()
                if tag.hasPrefix("push") {
                    if r.status == 0 { pushesDone += 1 } else { failures.append("round \(round) \(tag): \(r)") }
                } else {
                    gcRuns += 1
                    // Two gcs at once: one may find the other's lock (exit 8); nothing else is acceptable.
                    if r.status == 0 {
                        let j = (try? JSONSerialization.jsonObject(with: r.stdoutData)) as? [String: Any]
                        gcDeleted += (j?["removedObjects"] as? Int) ?? 0
                        pushWaited += (j?["leasesWaitedFor"] as? Int) ?? 0
                    } else if !(r.status == 8 && r.stderr.contains("gc")) {
                        failures.append("round \(round) \(tag): \(r)")
                    }
                }
            }
            let fsck = try s.fsckRemote()
            if fsck.status != 0 {
                failures.append("round \(round): the remote is damaged after the race:\n\(fsck.stdout)")
                break
            }
        }
        let summary = "\(failures.count) failures:\n" + failures.prefix(4).joined(separator: "\n---\n")
        #expect(failures.isEmpty, "\(summary)")
        guard failures.isEmpty else { return }
        #expect(pushesDone == rounds * pushers)
        #expect(gcDeleted > 0, "gc never deleted anything: the race was not exercised")
        // Every pushed branch is on the remote and complete: a fresh clone checks each one out.
        let clone = try CLI.mlstore(["clone", s.remote, s.dir("verify")], in: s.tmp.path, env: Site.env)
        try #require(clone.status == 0, "\(clone)")
        for round in [0, rounds - 1] {
            try s.ok("checkout", "origin/p0-r\(round)", in: "verify")
            #expect(FS.read(s.dir("verify/p.bin")) == FS.randomData(count: 20_000 + (round % 4) * 150_000, seed: UInt64(round * 10)))
        }
        print("concurrent gc: \(gcRuns) gc runs deleted \(gcDeleted) objects, waited for \(pushWaited) leases; \(pushesDone) pushes")
    }

    @Test("cache --max-size evicts only what the remote holds; checkout fetches it again; du reports savings")
    func cacheAndDu() throws {
        let s = try Site()
        defer { s.remove() }
        try s.workspace("a")
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 900_000, seed: 21))
        try FS.write(s.dir("a/data.csv"), String(repeating: "1,2,3,4\n", count: 40_000))
        try s.ok("add", "model.bin", "data.csv", in: "a")
        let v1 = try s.commit("v1", in: "a")
        try FS.write(s.dir("a/model.bin"), FS.randomData(count: 900_000, seed: 22))
        try s.ok("add", "model.bin", in: "a")
        _ = try s.commit("v2", in: "a")
        try s.ok("push", in: "a")
        let c = try CLI.mlstore(["clone", s.remote, s.dir("b")], in: s.tmp.path, env: Site.env)
        try #require(c.status == 0, "\(c)")
        // Local work the remote lacks.
        try FS.write(s.dir("b/local.bin"), FS.randomData(count: 400_000, seed: 23))
        try s.ok("add", "local.bin", in: "b")
        _ = try s.commit("local", in: "b")

        let du = try s.json("du", in: "b")
        #expect(du["snapshots"] as? Int == 3)
        #expect((du["dedupSavedBytes"] as? Int ?? 0) > 300_000, "\(du)")  // data.csv and model v2 are shared
        let status = try s.json("cache", in: "b")
        #expect((status["evictedBytes"] as? Int ?? 0) > 800_000, "\(status)")  // model.bin v1: only in v1

        let before = Site.storeSnapshot(s.dir("b/.mlstore/objects"))
        _ = try s.json("cache", "--max-size", "0", "--dry-run", in: "b")
        #expect(Site.storeSnapshot(s.dir("b/.mlstore/objects")) == before)
        let r = try s.json("cache", "--max-size", "0", in: "b")
        #expect((r["evictedObjects"] as? Int ?? 0) > 5 && r["markedPartial"] as? Bool == true, "\(r)")
        #expect(try s.ok("config", "remote.origin.partial", in: "b").contains("true"))
        #expect(try s.run(["fsck"], in: "b").status == 0)
        // The local-only file is still here; the old model comes back from the remote on checkout.
        try FS.remove(s.dir("b/local.bin"))
        try s.ok("checkout", "--", "local.bin", in: "b")
        #expect(FS.read(s.dir("b/local.bin")) == FS.randomData(count: 400_000, seed: 23))
        try s.ok("checkout", v1, "--", "model.bin", in: "b")
        #expect(FS.read(s.dir("b/model.bin")) == FS.randomData(count: 900_000, seed: 21))
        // gc --local-cache is the same operation.
        let again = try s.json("gc", "--local-cache", "--max-size", "0", in: "b")
        #expect(again["remote"] as? String == "origin")
    }
}
