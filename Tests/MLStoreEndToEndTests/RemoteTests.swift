import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Workspaces around one directory remote (CLI.swift); `json` also accepts push's exit 5 (rejected refs).
private typealias Team = RemoteSite
private extension RemoteSite {
    init() throws { try self.init(prefix: "mlstore-remote", jsonStatuses: [0, 5]) }
}

@Suite("directory remotes") struct RemoteTests {
    @Test("push, clone and pull round trip with byte-identical files, modes and symlinks")
    func roundTrip() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/data/train.csv"), String(repeating: "1,2,3\n", count: 50_000))
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 3_000_000, seed: 1))
        try FS.write(t.dir("a/run.sh"), "#!/bin/sh\n", mode: 0o755)
        try FS.symlink(t.dir("a/latest"), to: "model.bin")
        try t.ok("add", "data", "model.bin", "run.sh", "latest", in: "a")
        try t.ok("commit", "-m", "v1", "--output", "model.bin", "--metric", "acc=0.9", "--no-env", "--no-code", in: "a")
        try t.ok("promote", "fraud", "HEAD", "--stage", "production", "-m", "ship", in: "a")
        try t.ok("tag", "v1", "-m", "first", in: "a")
        try t.ok("push", "origin", "--all", in: "a")
        #expect(try t.fsckRemote().status == 0)

        let clone = try CLI.mlstore(["clone", t.remote, t.dir("b")], in: t.tmp.path, env: Team.env)
        try #require(clone.status == 0, "\(clone)")
        #expect(FS.snapshot(t.dir("b")).filter { !$0.key.hasPrefix(".mlstore") } == FS.snapshot(t.dir("a")).filter { !$0.key.hasPrefix(".mlstore") })
        #expect(try t.ok("status", "--json", in: "b").contains("\"unstaged\" : [\n\n  ]") || (try StatusJSON.parse(try t.run(["status", "--json"], in: "b"))).unstaged.isEmpty)
        // Registry and tags travel: fraud@production resolves in the clone.
        #expect(try t.ok("show", "fraud@production", "--json", in: "b").contains("\"acc\""))
        #expect(try t.ok("tag", "--list", in: "b").contains("v1"))
        #expect(try t.ok("log", "--oneline", "origin/main", in: "b").contains("v1"))

        // A second commit in a, pushed; b pulls it.
        try FS.write(t.dir("a/data/train.csv"), String(repeating: "4,5,6\n", count: 50_000))
        try t.ok("add", "data", in: "a")
        try t.ok("commit", "-m", "v2", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        let pull = try t.json("pull", in: "b")
        #expect((pull["pull"] as? [String: Any])?["kind"] as? String == "fast-forward")
        #expect(FS.read(t.dir("b/data/train.csv")) == FS.read(t.dir("a/data/train.csv")))
        #expect(try t.ok("fsck", in: "b").contains("0 problems"))
    }

    @Test("an incremental push sends only the new chunks; pushing nothing new is quick")
    func incremental() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 8_000_000, seed: 2))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        let first = try t.json("push", in: "a")
        let firstObjects = try #require(first["objects"] as? Int)
        #expect(firstObjects > 100)
        // Rewrite 100 KB in the middle: a few chunks change.
        var data = try #require(FS.read(t.dir("a/model.bin")))
        data.replaceSubrange(4_000_000..<4_100_000, with: FS.randomData(count: 100_000, seed: 3))
        try FS.write(t.dir("a/model.bin"), data)
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v2", "--no-env", "--no-code", in: "a")
        let second = try t.json("push", in: "a")
        let objects = try #require(second["objects"] as? Int)
        let bytes = try #require(second["bytes"] as? Int)
        // New chunks (about 2-4) + the chunked object + root tree + commit.
        #expect(objects >= 4 && objects <= 9, "sent \(objects) objects")
        #expect(bytes < 700_000, "sent \(bytes) bytes for a 100 KB change")
        let again = try t.json("push", in: "a")
        #expect(again["objects"] as? Int == 0)
        #expect((again["seconds"] as? Double ?? 9) < 1.0)
    }

    @Test("non-fast-forward pushes are rejected with advice; --force still swaps")
    func nonFastForward() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/f.txt"), "a")
        try t.ok("add", "f.txt", in: "a")
        try t.ok("commit", "-m", "base", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try #require(try CLI.mlstore(["clone", t.remote, t.dir("b")], in: t.tmp.path, env: Team.env).status == 0)
        try FS.write(t.dir("a/f.txt"), "a2")
        try t.ok("add", "f.txt", in: "a")
        try t.ok("commit", "-m", "from a", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try FS.write(t.dir("b/f.txt"), "b2")
        try t.ok("add", "f.txt", in: "b")
        try t.ok("commit", "-m", "from b", "--no-env", "--no-code", in: "b")
        let rejected = try t.run(["push"], in: "b")
        #expect(rejected.status == 5, "\(rejected)")
        #expect(rejected.stdout.contains("non-fast-forward") && rejected.stdout.contains("fetch"))
        // Pulling a diverged branch is refused clearly.
        let pull = try t.run(["pull"], in: "b")
        #expect(pull.status == 5 && pull.stderr.contains("diverged"), "\(pull)")
        let forced = try t.run(["push", "--force"], in: "b")
        #expect(forced.status == 0, "\(forced)")
        #expect(try t.fsckRemote().status == 0)
    }

    @Test("eight concurrent pushers: every push lands or is rejected cleanly, none is lost")
    func concurrentPushers() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("seed")
        try FS.write(t.dir("seed/base.txt"), "base")
        try t.ok("add", "base.txt", in: "seed")
        try t.ok("commit", "-m", "base", "--no-env", "--no-code", in: "seed")
        try t.ok("push", in: "seed")
        let n = 8
        for i in 0..<n {
            try #require(try CLI.mlstore(["clone", t.remote, t.dir("w\(i)")], in: t.tmp.path, env: Team.env).status == 0)
        }
        // Each pusher pushes its own branch (distinct refs) and races the others on main: a rejected push
        // (exit 5 = moved/non-fast-forward, 8 = lock held) fetches, rebuilds its commit on the new tip, retries.
        let pusher = try CLI.racingPusher(in: t.tmp.path)
        let bin = try CLI.requireBinary()
        var procs: [CLI.Running] = []
        for i in 0..<n {
            procs.append(try CLI.Running(executable: "/bin/bash", args: [pusher, bin, "\(i)", "3", "5 8"], cwd: t.dir("w\(i)"), outDir: t.tmp.path, tag: "p\(i)", env: Team.env))
        }
        var landed: [String] = []
        var rejections = 0
        for (i, p) in procs.enumerated() {
            let out = p.wait()
            #expect(out.status == 0, "pusher \(i): \(out)")
            for line in out.lines {
                if line.hasPrefix("LANDED ") { landed.append(String(line.dropFirst(7))) }
                if line.hasPrefix("REJECTED") { rejections += 1 }
            }
        }
        #expect(landed.count == 3 * n, "every pusher's 3 main commits eventually land: \(landed.count)")
        let fsck = try t.fsckRemote()
        #expect(fsck.status == 0, "\(fsck)")
        // No lost update: every landed commit is in the final main history, and every own branch has 3 commits.
        try #require(try CLI.mlstore(["clone", t.remote, t.dir("check")], in: t.tmp.path, env: Team.env).status == 0)
        let history = try t.ok("log", "--oneline", "main", in: "check")
        for c in landed { #expect(history.contains(c), "landed commit \(c) missing from main") }
        for i in 0..<n {
            #expect(try t.ok("log", "--oneline", "origin/own\(i)", in: "check").split(separator: "\n").count == 4)
            #expect(FS.readText(t.dir("check/main-\(i).txt")) == "w\(i) r3\n")
        }
        print("concurrent pushers: \(landed.count) main pushes landed, \(rejections) rejected and retried")
    }

    @Test("kill -9 during push at random moments never breaks the remote")
    func crashDuringPush() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        var rng = SystemRandomNumberGenerator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        print("crash test seed \(seed)")
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        let bin = try CLI.requireBinary()
        var killed = 0
        for trial in 0..<24 {
            try FS.write(t.dir("a/model-\(trial).bin"), FS.randomData(count: 2_000_000 + Int(next() % 3_000_000), seed: UInt64(trial)))
            for k in 0..<40 { try FS.write(t.dir("a/small/\(trial)-\(k).txt"), "file \(trial) \(k)\n") }
            try t.ok("add", "model-\(trial).bin", "small", in: "a")
            try t.ok("commit", "-m", "trial \(trial)", "--no-env", "--no-code", in: "a")
            let p = try CLI.Running(executable: bin, args: ["push", "origin", "--all"], cwd: t.dir("a"), outDir: t.tmp.path, tag: "push\(trial)", env: Team.env)
            usleep(useconds_t(next() % 150_000))
            if p.process.isRunning {
                kill(p.process.processIdentifier, SIGKILL)
                killed += 1
            }
            _ = p.wait()
            // A push killed before the new remote's format file was written leaves no store yet: fine.
            guard FS.exists(t.remote + "/format") else { continue }
            let fsck = try t.fsckRemote()
            #expect(fsck.status == 0, "trial \(trial) (seed \(seed)): \(fsck)")
            // A lock left by a kill between lock and rename is reported, never silently broken; clear it like an operator would.
            for lock in FS.listFiles(t.remote + "/refs").filter({ $0.hasSuffix(".lock") }) { try FS.remove(t.remote + "/refs/" + lock) }
        }
        // After all the kills, a normal push completes and the remote is whole.
        let final = try t.run(["push", "origin", "--all"], in: "a")
        #expect(final.status == 0, "\(final)")
        #expect(try t.fsckRemote().status == 0)
        try #require(try CLI.mlstore(["clone", t.remote, t.dir("b")], in: t.tmp.path, env: Team.env).status == 0)
        #expect(FS.read(t.dir("b/model-23.bin")) == FS.read(t.dir("a/model-23.bin")))
        print("crash test: \(killed) of 24 pushes killed mid-flight")
    }

    @Test("a damaged pack on the remote fails fetch naming the object, and the local store is unchanged")
    func corruptRemote() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 2_000_000, seed: 9))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try t.workspace("b")
        let localBefore = FS.listFiles(t.dir("b/.mlstore/objects"))
        let pack = try #require(FS.listFiles(t.remote + "/objects/pack").first { $0.hasSuffix(".pack") })
        let packPath = t.remote + "/objects/pack/" + pack
        // Flip a byte inside the first entry's data.
        try FS.flipByte(packPath, at: 8 + 50 + 500)
        let first = hex(try #require(FS.read(packPath))[8..<40])
        let r = try t.run(["fetch"], in: "b")
        #expect(r.status == 4, "\(r)")
        #expect(r.stderr.contains(first) && r.stderr.contains(packPath), "\(r.stderr)")
        #expect(FS.listFiles(t.dir("b/.mlstore/objects")) == localBefore, "nothing may enter the local store")
        #expect(try t.fsckRemote().status == 4)
        // Truncation is detected too.
        try FS.flipByte(packPath, at: 8 + 50 + 500)
        try FS.truncate(packPath, to: FS.size(packPath) / 2)
        let r2 = try t.run(["fetch"], in: "b")
        #expect(r2.status != 0, "\(r2)")
        #expect(FS.listFiles(t.dir("b/.mlstore/objects")) == localBefore)
        let clone = try CLI.mlstore(["clone", t.remote, t.dir("c")], in: t.tmp.path, env: Team.env)
        #expect(clone.status != 0)
        #expect(!FS.exists(t.dir("c")), "a failed clone leaves no directory behind")
    }

    @Test("a remote of a newer format is refused with a clear message")
    func newerFormat() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/f"), "x")
        try t.ok("add", "f", in: "a")
        try t.ok("commit", "-m", "x", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        chmod(t.remote + "/format", 0o644)
        try FS.write(t.remote + "/format", "mlstore-format 9\n")
        for args in [["push"], ["fetch"]] {
            let r = try t.run(args, in: "a")
            #expect(r.status == 4 && r.stderr.contains("newer") && r.stderr.contains("upgrade"), "\(args): \(r)")
        }
        let clone = try CLI.mlstore(["clone", t.remote, t.dir("c")], in: t.tmp.path, env: Team.env)
        #expect(clone.status == 4)
    }

    @Test("partial clone fetches only what a checkout of model@stage needs")
    func partialClone() throws {
        let t = try Team()
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/data/big.bin"), FS.randomData(count: 6_000_000, seed: 4))
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 1_000_000, seed: 5))
        try t.ok("add", "data", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("promote", "fraud", "HEAD", "--stage", "production", "--path", "model.bin", in: "a")
        try t.ok("push", "--all", in: "a")
        let clone = try CLI.mlstore(["clone", "--partial", "--no-checkout", t.remote, t.dir("p"), "--json"], in: t.tmp.path, env: Team.env)
        try #require(clone.status == 0, "\(clone)")
        let fetched = try #require((try JSONSerialization.jsonObject(with: clone.stdoutData) as? [String: Any])?["fetch"] as? [String: Any])
        #expect((fetched["bytes"] as? Int ?? Int.max) < 50_000, "metadata only: \(fetched)")
        #expect(try t.ok("fsck", in: "p").contains("not fetched yet"))
        // Restore just the model file of the production commit: only its chunks travel.
        let r = try t.run(["checkout", "fraud@production", "--", "model.bin"], in: "p")
        #expect(r.status == 0, "\(r)")
        #expect(FS.read(t.dir("p/model.bin")) == FS.read(t.dir("a/model.bin")))
        #expect(!FS.exists(t.dir("p/data/big.bin")))
        let storeBytes = FS.listFiles(t.dir("p/.mlstore/objects")).reduce(0) { $0 + FS.size(t.dir("p/.mlstore/objects/") + $1) }
        #expect(storeBytes < 2_000_000, "only the model's content was fetched: \(storeBytes) bytes")
        // A pull of one path fetches only that path.
        let pull = try t.run(["pull", "origin", "--", "data/big.bin"], in: "p")
        #expect(pull.status == 0, "\(pull)")
        #expect(FS.read(t.dir("p/data/big.bin")) == FS.read(t.dir("a/data/big.bin")))
    }
}
