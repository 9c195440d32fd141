import Foundation
import MLStoreBasics
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// Workspaces sharing one S3 remote (a fresh prefix in the test bucket) on a test server.
private struct S3Team {
    let tmp: TempDir
    let server: S3TestServer
    let prefix: String
    var url: String { "s3://\(S3TestServer.bucket)/\(prefix)" }
    var endpoint: String { server.endpoint }
    let env: [String: String]

    init(_ label: String, server: Result<S3TestServer, any Error> = S3TestServer.seaweedfs, env: [String: String] = [:]) throws {
        self.server = try server.get()
        tmp = try TempDir(prefix: "mlstore-s3")
        prefix = S3TestServer.prefix(label)
        self.env = S3TestServer.env.merging(env) { $1 }
    }

    func remove() { tmp.remove() }
    func dir(_ name: String) -> String { tmp.path + "/" + name }

    @discardableResult
    func run(_ args: [String], in name: String, env extra: [String: String] = [:]) throws -> CLI.Output {
        try CLI.mlstore(args, in: dir(name), env: env.merging(extra) { $1 })
    }

    @discardableResult
    func ok(_ args: String..., in name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let r = try run(args, in: name)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")) in \(name): \(r)", sourceLocation: sourceLocation)
        return r.stdout
    }

    func workspace(_ name: String) throws {
        try FS.mkdirs(dir(name))
        try ok("init", in: name)
        try ok("remote", "add", "origin", url, "--endpoint", endpoint, in: name)
    }

    func clone(_ name: String, _ extra: [String] = []) throws -> CLI.Output {
        try CLI.mlstore(["clone", url, dir(name), "--endpoint", endpoint] + extra, in: tmp.path, env: env)
    }

    func json(_ args: String..., in name: String) throws -> [String: Any] {
        let r = try run(args + ["--json"], in: name)
        try #require(r.status == 0 || r.status == 5, "\(args): \(r)")
        return try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any])
    }

    func fsckRemote() throws -> CLI.Output {
        try CLI.mlstore(["fsck", "--remote", "origin"], in: dir("a"), env: env)
    }

    /// The test's own S3 client (for looking at and damaging remote objects).
    func client() throws -> S3Client { try server.client() }
    func key(_ rel: String) -> String { prefix + "/" + rel }
}

@Suite("S3 remotes (SeaweedFS, moto)") struct S3RemoteTests {
    @Test("push, clone and pull round trip; credentials stay out of the config")
    func roundTrip() throws {
        let t = try S3Team("roundtrip")
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
        let config = try #require(FS.readText(t.dir("a/.mlstore/config")))
        #expect(config.contains("endpoint = \(t.endpoint)") && !config.contains("= test\n") && !config.lowercased().contains("secret"), "\(config)")
        let fsck = try t.fsckRemote()
        #expect(fsck.status == 0 && fsck.stdout.contains("0 problems"), "\(fsck)")
        // The layout mirrors a bare store under the prefix.
        let keys = try t.client().list(prefix: t.prefix + "/").map { String($0.key.dropFirst(t.prefix.count + 1)) }
        #expect(keys.contains("format") && keys.contains("HEAD") && keys.contains("refs/heads/main") && keys.contains("refs/tags/v1"))
        #expect(keys.contains("refs/stages/fraud/production") && keys.contains { $0.hasPrefix("objects/pack/pack-") && $0.hasSuffix(".idx") })
        #expect(keys.contains { $0.hasPrefix("logs/refs/heads/main/") }, "a reflog entry per ref update")

        let clone = try t.clone("b")
        try #require(clone.status == 0, "\(clone)")
        #expect(FS.snapshot(t.dir("b")).filter { !$0.key.hasPrefix(".mlstore") } == FS.snapshot(t.dir("a")).filter { !$0.key.hasPrefix(".mlstore") })
        #expect(try t.ok("show", "fraud@production", "--json", in: "b").contains("\"acc\""))
        #expect(try t.ok("tag", "--list", in: "b").contains("v1"))
        #expect(try t.ok("log", "--oneline", "origin/main", in: "b").contains("v1"))
        #expect(FS.readText(t.dir("b/.mlstore/config"))?.contains("endpoint = \(t.endpoint)") == true, "clone keeps the endpoint")

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
        let t = try S3Team("incremental")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 8_000_000, seed: 2))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        let first = try t.json("push", in: "a")
        #expect((first["objects"] as? Int ?? 0) > 100)
        var data = try #require(FS.read(t.dir("a/model.bin")))
        data.replaceSubrange(4_000_000..<4_100_000, with: FS.randomData(count: 100_000, seed: 3))
        try FS.write(t.dir("a/model.bin"), data)
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v2", "--no-env", "--no-code", in: "a")
        let second = try t.json("push", in: "a")
        let objects = try #require(second["objects"] as? Int)
        let bytes = try #require(second["bytes"] as? Int)
        #expect(objects >= 4 && objects <= 9, "sent \(objects) objects")
        #expect(bytes < 700_000, "sent \(bytes) bytes for a 100 KB change")
        let again = try t.json("push", in: "a")
        #expect(again["objects"] as? Int == 0)
        #expect((again["seconds"] as? Double ?? 9) < 2.0)
        // A clone gets both versions' chunks from two packs.
        let clone = try t.clone("b")
        try #require(clone.status == 0, "\(clone)")
        #expect(FS.read(t.dir("b/model.bin")) == data)
    }

    @Test("non-fast-forward pushes are rejected with advice; --force still swaps")
    func nonFastForward() throws {
        let t = try S3Team("nff")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/f.txt"), "a")
        try t.ok("add", "f.txt", in: "a")
        try t.ok("commit", "-m", "base", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try #require(try t.clone("b").status == 0)
        try FS.write(t.dir("a/f.txt"), "a2")
        try t.ok("add", "f.txt", in: "a")
        try t.ok("commit", "-m", "from a", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try FS.write(t.dir("b/f.txt"), "b2")
        try t.ok("add", "f.txt", in: "b")
        try t.ok("commit", "-m", "from b", "--no-env", "--no-code", in: "b")
        let rejected = try t.run(["push"], in: "b")
        #expect(rejected.status == 5 && rejected.stdout.contains("non-fast-forward"), "\(rejected)")
        let forced = try t.run(["push", "--force"], in: "b")
        #expect(forced.status == 0, "\(forced)")
        #expect(try t.fsckRemote().status == 0)
    }

    @Test("eight concurrent pushers through If-Match compare-and-swap: none is lost")
    func concurrentPushers() throws {
        let t = try S3Team("concurrent")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/base.txt"), "base")
        try t.ok("add", "base.txt", in: "a")
        try t.ok("commit", "-m", "base", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        let n = 8, rounds = 2
        for i in 0..<n { try #require(try t.clone("w\(i)").status == 0) }
        let pusher = try CLI.racingPusher(in: t.tmp.path)
        let bin = try CLI.requireBinary()
        var procs: [CLI.Running] = []
        for i in 0..<n {
            procs.append(try CLI.Running(executable: "/bin/bash", args: [pusher, bin, "\(i)", "\(rounds)", "5"], cwd: t.dir("w\(i)"),
                                         outDir: t.tmp.path, tag: "p\(i)", env: t.env))
        }
        var landed: [String] = []
        var rejections = 0, casRejections = 0
        for (i, p) in procs.enumerated() {
            let out = p.wait()
            #expect(out.status == 0, "pusher \(i): \(out)")
            for line in out.lines {
                if line.hasPrefix("LANDED ") { landed.append(String(line.dropFirst(7))) }
                if line.hasPrefix("REJECTED") { rejections += 1 }
                if line.hasPrefix("REJECTED-CAS") { casRejections += 1 }
            }
        }
        #expect(landed.count == rounds * n, "every pusher's main commits eventually land: \(landed.count)")
        #expect(try t.fsckRemote().status == 0)
        try #require(try t.clone("check").status == 0)
        let history = try t.ok("log", "--oneline", "main", in: "check")
        for c in landed { #expect(history.contains(c), "landed commit \(c) missing from main") }
        for i in 0..<n {
            #expect(try t.ok("log", "--oneline", "origin/own\(i)", in: "check").split(separator: "\n").count == rounds + 1)
            #expect(FS.readText(t.dir("check/main-\(i).txt")) == "w\(i) r\(rounds)\n")
        }
        print("S3 concurrent pushers: \(landed.count) main pushes landed, \(rejections) rejected (\(casRejections) by a failed If-Match swap) and retried")
    }

    @Test("kill -9 during push at random moments never breaks the remote")
    func crashDuringPush() throws {
        // Small multipart thresholds, so kills also land in the middle of multipart uploads.
        let t = try S3Team("crash", env: ["MLSTORE_S3_MULTIPART_THRESHOLD": "\(6 << 20)", "MLSTORE_S3_PART_SIZE": "\(5 << 20)"])
        defer { t.remove() }
        try t.workspace("a")
        let seed = UInt64.random(in: 0...UInt64.max)
        print("S3 crash test seed \(seed)")
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 11
        }
        let bin = try CLI.requireBinary()
        var killed = 0
        let trials = 10
        for trial in 0..<trials {
            try FS.write(t.dir("a/model-\(trial).bin"), FS.randomData(count: 1_500_000 + Int(next() % 2_000_000), seed: UInt64(trial)))
            for k in 0..<20 { try FS.write(t.dir("a/small/\(trial)-\(k).txt"), "file \(trial) \(k)\n") }
            try t.ok("add", "model-\(trial).bin", "small", in: "a")
            try t.ok("commit", "-m", "trial \(trial)", "--no-env", "--no-code", in: "a")
            let p = try CLI.Running(executable: bin, args: ["push", "origin", "--all"], cwd: t.dir("a"), outDir: t.tmp.path, tag: "push\(trial)", env: t.env)
            usleep(useconds_t(next() % 600_000))
            if p.process.isRunning {
                kill(p.process.processIdentifier, SIGKILL)
                killed += 1
            }
            _ = p.wait()
            // A kill while the local remote-tracking ref was being updated leaves its lock (never broken
            // silently); clear it like an operator would. S3 refs have no locks.
            for lock in FS.listFiles(t.dir("a/.mlstore/refs")).filter({ $0.hasSuffix(".lock") }) { try FS.remove(t.dir("a/.mlstore/refs/") + lock) }
            guard (try t.client().get(t.key("format"))) != nil else { continue }
            if trial % 3 == 2 || trial == trials - 1 {
                let fsck = try t.fsckRemote()
                #expect(fsck.status == 0, "trial \(trial) (seed \(seed)): \(fsck)")
            }
        }
        let final = try t.run(["push", "origin", "--all"], in: "a")
        #expect(final.status == 0, "\(final)")
        let fsck = try t.fsckRemote()
        #expect(fsck.status == 0, "\(fsck)")
        print("S3 crash test: fsck --remote notes: \(fsck.stdout.split(separator: "\n").filter { $0.contains("unfinished") || $0.contains("no index") }.count)")
        try #require(try t.clone("b").status == 0)
        #expect(FS.read(t.dir("b/model-\(trials - 1).bin")) == FS.read(t.dir("a/model-\(trials - 1).bin")))
        print("S3 crash test: \(killed) of \(trials) pushes killed mid-flight")
    }

    @Test("a damaged pack on the remote fails fetch naming the object and s3:// key; the local store is unchanged")
    func corruptRemote() throws {
        let t = try S3Team("corrupt")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 2_000_000, seed: 9))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try FS.mkdirs(t.dir("b"))
        try t.ok("init", in: "b")
        try t.ok("remote", "add", "origin", t.url, "--endpoint", t.endpoint, in: "b")
        let localBefore = FS.listFiles(t.dir("b/.mlstore/objects"))
        let client = try t.client()
        let packKey = try #require(try client.list(prefix: t.key("objects/pack/")).first { $0.key.hasSuffix(".pack") }?.key)
        let (original, _) = try #require(try client.get(packKey))
        var damaged = original
        damaged[8 + 50 + 500] ^= 0xFF
        _ = try client.put(packKey, damaged)
        let first = hex(original[8..<40])
        let r = try t.run(["fetch"], in: "b")
        #expect(r.status == 4, "\(r)")
        #expect(r.stderr.contains(first) && r.stderr.contains("s3://\(S3TestServer.bucket)/\(packKey)"), "\(r.stderr)")
        #expect(FS.listFiles(t.dir("b/.mlstore/objects")) == localBefore, "nothing may enter the local store")
        let fsck = try t.fsckRemote()
        #expect(fsck.status == 4 && fsck.stdout.contains(first), "\(fsck)")
        // Truncation is detected too, and a failed clone leaves nothing behind.
        _ = try client.put(packKey, original.prefix(original.count / 2))
        let r2 = try t.run(["fetch"], in: "b")
        #expect(r2.status != 0, "\(r2)")
        #expect(FS.listFiles(t.dir("b/.mlstore/objects")) == localBefore)
        let clone = try t.clone("c")
        #expect(clone.status != 0)
        #expect(!FS.exists(t.dir("c")), "a failed clone leaves no directory behind")
    }

    @Test("a remote of a newer format is refused with a clear message")
    func newerFormat() throws {
        let t = try S3Team("newer")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/f"), "x")
        try t.ok("add", "f", in: "a")
        try t.ok("commit", "-m", "x", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        _ = try t.client().put(t.key("format"), Data("mlstore-format 9\n".utf8))
        for args in [["push"], ["fetch"]] {
            let r = try t.run(args, in: "a")
            #expect(r.status == 4 && r.stderr.contains("newer") && r.stderr.contains("upgrade"), "\(args): \(r)")
        }
        #expect(try t.clone("c").status == 4)
    }

    @Test("partial clone: ranged GETs fetch only what a checkout of model@stage needs")
    func partialClone() throws {
        let t = try S3Team("partial")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/data/big.bin"), FS.randomData(count: 6_000_000, seed: 4))
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 1_000_000, seed: 5))
        try t.ok("add", "data", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("promote", "fraud", "HEAD", "--stage", "production", "--path", "model.bin", in: "a")
        try t.ok("push", "--all", in: "a")
        let clone = try t.clone("p", ["--partial", "--no-checkout", "--json"])
        try #require(clone.status == 0, "\(clone)")
        let fetched = try #require((try JSONSerialization.jsonObject(with: clone.stdoutData) as? [String: Any])?["fetch"] as? [String: Any])
        #expect((fetched["bytes"] as? Int ?? Int.max) < 50_000, "metadata only: \(fetched)")
        let r = try t.run(["checkout", "fraud@production", "--", "model.bin"], in: "p")
        #expect(r.status == 0, "\(r)")
        #expect(FS.read(t.dir("p/model.bin")) == FS.read(t.dir("a/model.bin")))
        #expect(!FS.exists(t.dir("p/data/big.bin")))
        let storeBytes = FS.listFiles(t.dir("p/.mlstore/objects")).reduce(0) { $0 + FS.size(t.dir("p/.mlstore/objects/") + $1) }
        #expect(storeBytes < 2_000_000, "only the model's content was fetched: \(storeBytes) bytes")
        let pull = try t.run(["pull", "origin", "--", "data/big.bin"], in: "p")
        #expect(pull.status == 0, "\(pull)")
        #expect(FS.read(t.dir("p/data/big.bin")) == FS.read(t.dir("a/data/big.bin")))
    }

    @Test("wrong credentials: a clear 403 naming the bucket and endpoint; a profile from ~/.aws/credentials works")
    func credentials() throws {
        let t = try S3Team("creds")
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/f"), "x")
        try t.ok("add", "f", in: "a")
        try t.ok("commit", "-m", "x", "--no-env", "--no-code", in: "a")
        let wrong = try t.run(["push"], in: "a", env: ["AWS_SECRET_ACCESS_KEY": "not-the-secret"])
        #expect(wrong.status == 1, "\(wrong)")
        #expect(wrong.stderr.contains("403") && wrong.stderr.contains(S3TestServer.bucket) && wrong.stderr.contains(t.endpoint), "\(wrong.stderr)")
        #expect(wrong.stderr.contains("secret key is wrong") && wrong.stderr.contains("AWS_ACCESS_KEY_ID"), "\(wrong.stderr)")
        let unknown = try t.run(["fetch"], in: "a", env: ["AWS_ACCESS_KEY_ID": "NOBODY"])
        #expect(unknown.status == 1 && unknown.stderr.contains("403") && unknown.stderr.contains("access key id"), "\(unknown)")
        let none = try t.run(["push"], in: "a", env: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": t.tmp.path, "AWS_SHARED_CREDENTIALS_FILE": ""])
        #expect(none.status == 1 && none.stderr.contains("no AWS credentials"), "\(none)")
        // Credentials from a profile (AWS_PROFILE) in ~/.aws/credentials.
        try FS.write(t.dir(".aws/credentials"), "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n[ci]\naws_access_key_id = test\naws_secret_access_key = test\n")
        let profile = try t.run(["push"], in: "a", env: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": t.tmp.path, "AWS_SHARED_CREDENTIALS_FILE": "", "AWS_PROFILE": "ci"])
        #expect(profile.status == 0, "\(profile)")
        let config = FS.readText(t.dir("a/.mlstore/config")) ?? ""
        #expect(!config.contains("= test\n") && !config.lowercased().contains("secret") && !config.lowercased().contains("aws_"), "no credentials in the config: \(config)")
    }

    @Test("a missing bucket is named, with the endpoint, at remote add and at push")
    func missingBucket() throws {
        let t = try S3Team("nobucket")
        defer { t.remove() }
        try FS.mkdirs(t.dir("a"))
        try t.ok("init", in: "a")
        let add = try t.run(["remote", "add", "origin", "s3://no-such-bucket-here/x", "--endpoint", t.endpoint], in: "a")
        #expect(add.status == 3 && add.stderr.contains("bucket no-such-bucket-here does not exist") && add.stderr.contains(t.endpoint), "\(add)")
        #expect(try t.ok("remote", "list", in: "a").isEmpty, "nothing is added")
        let push = try t.run(["push", "s3://no-such-bucket-here/x"], in: "a", env: ["AWS_ENDPOINT_URL": t.endpoint])
        #expect(push.status != 0 && push.stderr.contains("no-such-bucket-here"), "\(push)")
    }

    @Test("a stale If-Match is rejected (412 on SeaweedFS; moto answers 404 for a missing key): both are a moved ref")
    func staleIfMatch() throws {
        for (label, server) in [("seaweedfs", S3TestServer.seaweedfs), ("moto", S3TestServer.moto)] {
            let s = try server.get()
            let url = "s3://\(S3TestServer.bucket)/\(S3TestServer.prefix("cas-" + label))"
            let a = try S3Remote(url: url, settings: S3Settings(endpoint: s.endpoint), environment: S3TestServer.env)
            let b = try S3Remote(url: url, settings: S3Settings(endpoint: s.endpoint), environment: S3TestServer.env)
            try a.open(create: true)
            let actor = Signature(name: "t", email: "t@example.com", time: 0)
            let one = ObjectID.hash(kind: .blob, payload: Array("1".utf8))
            let two = ObjectID.hash(kind: .blob, payload: Array("2".utf8))
            let three = ObjectID.hash(kind: .blob, payload: Array("3".utf8))
            try a.updateRef("refs/heads/main", to: one, expecting: .absent, actor: actor, message: "create")
            #expect(throws: MLStoreError(.conflict, "")) { try b.updateRef("refs/heads/main", to: two, expecting: .absent, actor: actor, message: "create again") }
            let (value, etag) = try #require(try a.readRef("refs/heads/main"))
            #expect(value == one)
            let stale = try #require(etag)
            try b.updateRef("refs/heads/main", to: two, expecting: .value(one), actor: actor, message: "b moves it")
            // The raw swap with the ETag read before b moved the ref is refused by the server...
            #expect(try a.client.put(a.key("refs/heads/main"), Data((three.hex + "\n").utf8), condition: .etag(stale)) == .preconditionFailed)
            // ...and updateRef reports it like a directory remote does.
            do {
                try a.updateRef("refs/heads/main", to: three, expecting: .value(one), actor: actor, message: "a, stale")
                Issue.record("\(label): a stale update was accepted")
            } catch let e as MLStoreError {
                #expect(e.code == .conflict && e.message.contains("refs/heads/main moved"), "\(label): \(e)")
            }
            #expect(try a.readRef("refs/heads/main")?.0 == two)
            // If-Match on a key that does not exist: SeaweedFS 412, moto 404; both mean "precondition not met".
            let raw = try a.client.send("PUT", key: a.key("refs/heads/missing"), headers: ["if-match": stale], body: .data(Data("x".utf8)))
            #expect(raw.status == (label == "moto" ? 404 : 412), "\(label): \(raw.status)")
            #expect(try a.client.put(a.key("refs/heads/missing"), Data("x".utf8), condition: .etag(stale)) == .preconditionFailed)
            #expect(try a.readRef("refs/heads/missing") == nil)
            // Deleting with a stale ETag is refused as well; with the current one it works.
            #expect(try a.client.delete(a.key("refs/heads/main"), condition: .etag(stale)) == .preconditionFailed)
            try a.updateRef("refs/heads/main", to: nil, expecting: .value(two), actor: actor, message: "delete")
            #expect(try a.readRef("refs/heads/main") == nil)
            #expect(try a.probeConditionalWrites() == nil, "\(label) supports conditional writes")
        }
    }

    @Test("moto: remote add probe, push, clone and fetch")
    func moto() throws {
        let t = try S3Team("moto", server: S3TestServer.moto)
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 1_000_000, seed: 7))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        try #require(try t.clone("b").status == 0)
        #expect(FS.read(t.dir("b/model.bin")) == FS.read(t.dir("a/model.bin")))
        #expect(try t.fsckRemote().status == 0)
    }

    @Test("large packs go up as multipart uploads with checksums")
    func multipart() throws {
        let t = try S3Team("multipart", env: ["MLSTORE_S3_MULTIPART_THRESHOLD": "\(6 << 20)", "MLSTORE_S3_PART_SIZE": "\(5 << 20)"])
        defer { t.remove() }
        try t.workspace("a")
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 13_000_000, seed: 8))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        let pack = try #require(try t.client().list(prefix: t.key("objects/pack/")).first { $0.key.hasSuffix(".pack") })
        #expect(pack.size > 13_000_000 && pack.etag?.contains("-3") == true, "a 3-part upload: \(pack)")
        #expect(try t.client().listMultipartUploads(prefix: t.prefix + "/").isEmpty, "no unfinished uploads")
        try #require(try t.clone("b").status == 0)
        #expect(FS.read(t.dir("b/model.bin")) == FS.read(t.dir("a/model.bin")))
    }

    @Test("a store without conditional writes is refused unless --unsafe-no-conditional-writes; 5xx are retried")
    func noConditionalWrites() throws {
        let fake = try S3TestServer(.fake, flaky: true)
        defer {
            fake.process.terminate()
            fake.dir.remove()
        }
        let t = try S3Team("nocas", server: .success(fake))
        defer { t.remove() }
        try FS.mkdirs(t.dir("a"))
        try t.ok("init", in: "a")
        let refused = try t.run(["remote", "add", "origin", t.url, "--endpoint", t.endpoint], in: "a")
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stderr.contains("does not support conditional writes") && refused.stderr.contains("--unsafe-no-conditional-writes")
                && refused.stderr.contains("lose commits"), "\(refused.stderr)")
        #expect(try t.ok("remote", "list", in: "a").isEmpty)
        let accepted = try t.run(["remote", "add", "origin", t.url, "--endpoint", t.endpoint, "--unsafe-no-conditional-writes"], in: "a")
        #expect(accepted.status == 0 && accepted.stderr.contains("never push to it from two places at once"), "\(accepted)")
        #expect(FS.readText(t.dir("a/.mlstore/config"))?.contains("conditionalwrites = false") == true)
        // Every third request fails with 503: push and clone still succeed (retries with backoff).
        try FS.write(t.dir("a/model.bin"), FS.randomData(count: 1_000_000, seed: 6))
        try t.ok("add", "model.bin", in: "a")
        try t.ok("commit", "-m", "v1", "--no-env", "--no-code", in: "a")
        try t.ok("push", in: "a")
        let clone = try t.clone("b")
        try #require(clone.status == 0, "\(clone)")
        #expect(FS.read(t.dir("b/model.bin")) == FS.read(t.dir("a/model.bin")))
    }
}
