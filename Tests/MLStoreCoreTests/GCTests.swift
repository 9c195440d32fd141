import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// Helpers for gc tests: files, ages, snapshots of a store directory.
private enum GCFixture {
    static func write(_ ws: Workspace, _ rel: String, _ bytes: [UInt8]) throws {
        try Sys.mkdirs(Path.parent(ws.absolute(rel)))
        try Sys.writeFileAtomically(ws.absolute(rel), bytes)
    }

    static func random(_ n: Int, seed: UInt64) -> [UInt8] {
        var g = SeededGenerator(seed: seed)
        return g.bytes(n)
    }

    static func setMtime(_ path: String, secondsAgo: Int64) {
        let t = Repository.nowNs() / 1_000_000_000 - secondsAgo
        var times = [timespec(tv_sec: Int(t), tv_nsec: 0), timespec(tv_sec: Int(t), tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
    }

    /// Makes every file under `dir` look `days` old.
    static func age(_ dir: String, days: Int64) {
        for (n, _) in (try? Sys.listDirectory(dir)) ?? [] {
            let p = dir + "/" + n
            guard let st = try? Sys.lstat(p) else { continue }
            if st.isDirectory { age(p, days: days) } else { setMtime(p, secondsAgo: days * 86_400) }
        }
    }

    /// path → (size, mtime, content hash) for every file below `dir`.
    static func snapshot(_ dir: String) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ rel: String) {
            let abs = rel.isEmpty ? dir : dir + "/" + rel
            for (n, _) in (try? Sys.listDirectory(abs)) ?? [] {
                let r = rel.isEmpty ? n : rel + "/" + n
                guard let st = try? Sys.lstat(dir + "/" + r) else { continue }
                if st.isDirectory {
                    out[r + "/"] = "dir"
                    walk(r)
                } else {
                    let h = (try? Sys.readFile(dir + "/" + r)).map { Hex.encode(SHA256.hash($0)) } ?? "?"
                    out[r] = "\(st.size) \(st.mtimeNs) \(st.mode) \(h)"
                }
            }
        }
        walk("")
        return out
    }

    static func looseCount(_ repo: Repository) -> Int { (try? repo.objects.loose.all().count) ?? -1 }

    static func lease(_ dir: String, name: String, expiresInSeconds: Int64, pid: Int32 = getpid(), host: String = StoreLease.hostName) throws {
        try Sys.mkdirs(dir + "/leases")
        let e = Repository.nowNs() + expiresInSeconds * 1_000_000_000
        try Sys.writeFileAtomically(dir + "/leases/" + name, Array("mlstore-lease 1\npurpose push\nexpires-ns \(e)\nhost \(host)\npid \(pid)\nnonce x\n".utf8))
    }
}

@Suite(.serialized) struct GCTests {
    /// A store whose history has a past stage target reachable only through the stage's record chain, tags,
    /// runs and remote-tracking refs pointing at objects, old and young garbage, and a young mixed pack.
    struct Scene {
        let dir: TempDir
        let repo: Repository
        let ws: Workspace
        var pastTarget: ObjectID
        var pastContent: [ObjectID]
        var keptRoots: [ObjectID]
        var oldGarbage: [ObjectID]
        var youngGarbage: [ObjectID]
        var youngPackGarbage: ObjectID
        var youngPackMtimeNs: Int64
    }

    func scene() throws -> Scene {
        fixedIdentity()
        let dir = TempDir("gc")
        let repo = try Repository.initialize(at: dir.path)
        let ws = try Workspace(repo)
        try GCFixture.write(ws, "base.txt", Array("base\n".utf8))
        _ = try ws.add(["base.txt"])
        let c0 = try ws.quickCommit("base")
        // v1 of a chunked model, promoted; then v2 promoted on top.
        try GCFixture.write(ws, "model.bin", GCFixture.random(600_000, seed: 1))
        _ = try ws.add(["model.bin"])
        let c1 = try ws.quickCommit("v1")
        try repo.promote(model: "fraud", stage: "production", to: c1.hex, reason: "ship v1")
        try GCFixture.write(ws, "model.bin", GCFixture.random(600_000, seed: 2))
        _ = try ws.add(["model.bin"])
        let c2 = try ws.quickCommit("v2")
        try repo.promote(model: "fraud", stage: "production", to: c2.hex, reason: "ship v2")
        let v1 = try #require(try repo.lookup("model.bin", in: try repo.commit(c1).tree))
        let pastContent = [v1.id] + (try repo.chunkedFile(v1.id).chunks.map(\.id))
        // main back to the base commit, the index to its tree, and no reflogs: c1 is now reachable only
        // through the stage history (record 2 → previous record 1 → target c1).
        try repo.refs.update("refs/heads/main", to: c0, expecting: .value(c2), actor: try repo.identity(), message: "reset")
        _ = try ws.checkout(tree: try repo.commit(c0).tree, options: .init(force: true))
        TempDir.removeTree(repo.storeDirectory + "/logs")

        // Other roots: a tag, a run-cache entry and a remote-tracking ref naming blobs; one mixed pack.
        let batch = repo.objects.batch(packOnly: true)
        let tagged = try batch.add(kind: .blob, payload: Array("kept by a tag".utf8))
        let packedGarbage = try batch.add(kind: .blob, payload: Array("old garbage in a mixed pack".utf8))
        try batch.commit()
        let run = try repo.objects.write(kind: .blob, payload: Array("kept by refs/runs".utf8))
        let tracked = try repo.objects.write(kind: .blob, payload: Array("kept by a remote-tracking ref".utf8))
        try repo.refs.update("refs/tags/keep", to: tagged, expecting: .absent, actor: try repo.identity(), message: "t")
        try repo.refs.update("refs/runs/0123abcd", to: run, expecting: .absent, actor: try repo.identity(), message: "t")
        try repo.refs.update("refs/remotes/origin/main", to: tracked, expecting: .absent, actor: try repo.identity(), message: "t")
        let reflogOnly = try repo.objects.write(kind: .blob, payload: Array("named only by a reflog line".utf8))
        let looseGarbage = try repo.objects.write(kind: .blob, payload: Array("old loose garbage".utf8))
        TempDir.removeTree(repo.storeDirectory + "/logs")
        try Sys.mkdirs(repo.storeDirectory + "/logs/refs/heads")
        try Sys.writeFileAtomically(repo.storeDirectory + "/logs/refs/heads/gone",
                                    Array("\(String(repeating: "0", count: 64)) \(reflogOnly.hex) Ada <ada@example.com> 1700000000 +0000\tdeleted later\n".utf8))
        // Everything so far is a month old.
        GCFixture.age(repo.storeDirectory + "/objects", days: 30)

        // Young: loose garbage, and a young pack mixing a live blob (tagged) with garbage.
        let youngLoose = try repo.objects.write(kind: .blob, payload: Array("young loose garbage".utf8))
        let b2 = repo.objects.batch(packOnly: true)
        let youngLive = try b2.add(kind: .blob, payload: Array("young and tagged".utf8))
        let youngPacked = try b2.add(kind: .blob, payload: Array("young garbage in a pack".utf8))
        try b2.commit()
        try repo.refs.update("refs/tags/young", to: youngLive, expecting: .absent, actor: try repo.identity(), message: "t")
        // Age the young pack by a day (still inside the grace period) so we can see its age carried over.
        try repo.objects.reloadPacks()
        let youngPack = try #require(repo.objects.packReaders.first { $0.index.find(youngPacked) != nil })
        GCFixture.setMtime(youngPack.packPath, secondsAgo: 86_400)
        let youngMtime = try Sys.lstat(youngPack.packPath).mtimeNs

        return Scene(dir: dir, repo: repo, ws: ws, pastTarget: c1, pastContent: pastContent,
                     keptRoots: [c0, c1, c2, tagged, run, tracked, reflogOnly, youngLive],
                     oldGarbage: [packedGarbage, looseGarbage], youngGarbage: [youngLoose, youngPacked],
                     youngPackGarbage: youngPacked, youngPackMtimeNs: youngMtime)
    }

    @Test func unreachableRemovedReachableKeptIncludingPastStageTargets() throws {
        let s = try scene()
        let repo = s.repo
        let before = try repo.collectGarbage(GCOptions(prune: .standard, dryRun: true))
        let report = try repo.collectGarbage()
        #expect(report.removedObjects == s.oldGarbage.count, "\(report)")
        #expect(report.keptYoungObjects == s.youngGarbage.count)
        #expect(report.freedBytes > 0 && report.after.bytes < report.before.bytes)
        #expect(before.after.objects == report.after.objects, "the dry run predicted \(before.after), got \(report.after)")
        let fresh = try Repository.open(at: s.dir.path)
        for id in s.oldGarbage { #expect(!fresh.objects.contains(id), "old garbage \(id.short) survived") }
        for id in s.youngGarbage { #expect(fresh.objects.contains(id), "young garbage \(id.short) was deleted inside the grace period") }
        for id in s.keptRoots + s.pastContent { _ = try fresh.objects.read(id) }
        // The past stage target is whole: its files can be materialized.
        let files = try fresh.flatten(tree: try fresh.commit(s.pastTarget).tree)
        let out = TempDir("gc-out")
        try fresh.materialize(files, into: out.path)
        #expect(try Sys.readFile(out.file("model.bin")) == GCFixture.random(600_000, seed: 1))
        #expect(try fresh.fsck().isClean)
        // Young garbage from the rewritten pack went into a pack that kept the source pack's age.
        let cruft = try #require(fresh.objects.packReaders.first { $0.index.find(s.youngPackGarbage) != nil })
        #expect(abs(try Sys.lstat(cruft.packPath).mtimeNs - s.youngPackMtimeNs) < 1_000_000_000)
        #expect(GCFixture.looseCount(fresh) == 1)  // only the young loose garbage stays loose
        // Run again: the young-garbage pack is left as it is (not rewritten each time).
        let second = try fresh.collectGarbage()
        #expect(second.packsWritten.isEmpty && second.packsRemoved == 0, "\(second)")

        // --prune now: the young garbage goes too; everything reachable stays.
        let now = try fresh.collectGarbage(GCOptions(prune: .now))
        #expect(now.removedObjects == s.youngGarbage.count)
        let last = try Repository.open(at: s.dir.path)
        for id in s.youngGarbage { #expect(!last.objects.contains(id)) }
        for id in s.keptRoots + s.pastContent { _ = try last.objects.read(id) }
        #expect(try last.fsck().isClean)
        #expect(last.objects.packReaders.count == 1)
        // A second run has nothing to do.
        let again = try last.collectGarbage(GCOptions(prune: .now))
        #expect(again.freedBytes == 0 && again.packsWritten.isEmpty && again.removedObjects == 0)
    }

    @Test func dryRunChangesNothing() throws {
        let s = try scene()
        let before = GCFixture.snapshot(s.repo.storeDirectory)
        let r = try s.repo.collectGarbage(GCOptions(prune: .now, dryRun: true))
        #expect(r.dryRun && r.removedObjects == s.oldGarbage.count + s.youngGarbage.count && r.freedBytes > 0)
        #expect(GCFixture.snapshot(s.repo.storeDirectory) == before)
    }

    @Test func rereferencedOldObjectIsFreshenedNotPruned() throws {
        fixedIdentity()
        let dir = TempDir("gc-fresh")
        let repo = try Repository.initialize(at: dir.path)
        let old = try repo.objects.write(kind: .blob, payload: Array("old, unreachable, then written again".utf8))
        GCFixture.age(repo.storeDirectory + "/objects", days: 30)
        // A writer finds it stored (so does not write it) and is about to reference it: it must be young again.
        _ = try repo.objects.write(kind: .blob, payload: Array("old, unreachable, then written again".utf8))
        let r = try repo.collectGarbage()
        #expect(r.removedObjects == 0 && repo.objects.contains(old))
        // Same for a packed object seen by a batch.
        let b = repo.objects.batch(packOnly: true)
        let packed = try b.add(kind: .blob, payload: Array("packed, old".utf8))
        _ = try b.add(kind: .blob, payload: Array("filler".utf8))
        try b.commit()
        GCFixture.age(repo.storeDirectory + "/objects", days: 30)
        let again = try Repository.open(at: dir.path)
        let b2 = again.objects.batch(packOnly: true)
        try b2.add(ObjectCodec.encode(kind: .blob, payload: Array("packed, old".utf8)))
        b2.abandon()
        _ = try again.collectGarbage()
        #expect(again.objects.contains(packed))
    }

    @Test func staleTempFilesAreRemovedAfterTheGracePeriod() throws {
        fixedIdentity()
        let dir = TempDir("gc-tmp")
        let repo = try Repository.initialize(at: dir.path)
        let stale = repo.objects.packDirectory + "/tmp-pack-1-2"
        let fresh = repo.objects.packDirectory + "/tmp-pack-3-4"
        try Sys.writeFileAtomically(stale, [1, 2, 3])
        try Sys.writeFileAtomically(fresh, [1, 2, 3])
        GCFixture.setMtime(stale, secondsAgo: 30 * 86_400)
        let r = try repo.collectGarbage()
        #expect(r.tempFilesRemoved == 1)
        #expect(!Sys.fileExists(stale) && Sys.fileExists(fresh))
    }

    @Test func leasesBlockGCAndTheGCLockBlocksPushers() throws {
        let dir = TempDir("gc-lease")
        let bare = dir.file("remote")
        try Repository.initializeBare(at: bare)
        let remote = DirectoryRemote(path: bare)
        let garbage = try Repository.open(at: bare).objects.write(kind: .blob, payload: Array("unreachable".utf8))
        var o = GCOptions(prune: .now)
        o.leaseWaitSeconds = 0.3
        // A live lease (this process, not expired): gc waits, then refuses with exit 8 and deletes nothing.
        try GCFixture.lease(bare, name: "a.lease", expiresInSeconds: 600)
        #expect(throws: MLStoreError(.locked, "")) { try remote.collectGarbage(o) }
        #expect(!Sys.fileExists(bare + "/gc.lock"))
        #expect(try Repository.open(at: bare).objects.contains(garbage))
        // Expired leases, and leases of dead processes on this host, are ignored and cleaned up.
        TempDir.removeTree(bare + "/leases")
        try GCFixture.lease(bare, name: "expired.lease", expiresInSeconds: -3600)
        try GCFixture.lease(bare, name: "dead.lease", expiresInSeconds: 600, pid: 999_999)
        let done = try remote.collectGarbage(o)
        let stillThere = try Repository.open(at: bare).objects.contains(garbage)
        #expect(done.removedObjects == 1 && !stillThere)
        #expect(!Sys.fileExists(bare + "/leases/expired.lease") && !Sys.fileExists(bare + "/leases/dead.lease"))

        // While gc marks, pushes go on; once it deletes, a pusher waits (here: gives up after MLSTORE_GC_WAIT)
        // and holds no lease meanwhile.
        let lock = try StoreLease.acquireGCLock(storeDirectory: bare)
        #expect(throws: MLStoreError(.locked, "")) { try StoreLease.acquireGCLock(storeDirectory: bare) }
        try remote.acquireLease().release()
        try lock.setPhase("delete")
        setenv("MLSTORE_GC_WAIT", "0.3", 1)
        defer { unsetenv("MLSTORE_GC_WAIT") }
        #expect(throws: MLStoreError(.locked, "")) { try remote.acquireLease() }
        #expect(StoreLease.liveLeases(storeDirectory: bare).isEmpty)
        lock.release()
        let lease = try remote.acquireLease()
        #expect(StoreLease.liveLeases(storeDirectory: bare).count == 1)
        lease.release()
        #expect(StoreLease.liveLeases(storeDirectory: bare).isEmpty)

        // A stale gc lock (expired) is broken by the next gc.
        try Sys.writeFileAtomically(bare + "/gc.lock", Array("mlstore-lease 1\npurpose gc\nexpires-ns \(Repository.nowNs() - 3_600_000_000_000)\nhost h\npid 1\nnonce n\n".utf8))
        _ = try remote.collectGarbage(o)
        #expect(!Sys.fileExists(bare + "/gc.lock"))
    }

    @Test func ageParsing() throws {
        #expect(try PruneAge.parse("now") == .now)
        #expect(try PruneAge.parse("never") == .never)
        #expect(try PruneAge.parse("2.weeks.ago") == .seconds(14 * 86_400))
        #expect(try PruneAge.parse("3d") == .seconds(3 * 86_400))
        #expect(try PruneAge.parse("12 hours") == .seconds(12 * 3600))
        #expect(try PruneAge.parse("90") == .seconds(90))
        #expect(throws: MLStoreError(.usage, "")) { try PruneAge.parse("soon") }
        #expect(PruneAge.standard.description == "2w")
    }

    @Test func duReportsLogicalStoredAndDedup() throws {
        fixedIdentity()
        let dir = TempDir("gc-du")
        let repo = try Repository.initialize(at: dir.path)
        let ws = try Workspace(repo)
        var data = GCFixture.random(2_000_000, seed: 7)
        try GCFixture.write(ws, "model.bin", data)
        try GCFixture.write(ws, "notes.txt", Array(String(repeating: "the same line\n", count: 5000).utf8))
        _ = try ws.add(["model.bin", "notes.txt"])
        _ = try ws.quickCommit("v1")
        for i in 1_000_000..<1_000_100 { data[i] ^= 0xff }
        try GCFixture.write(ws, "model.bin", data)
        _ = try ws.add(["model.bin"])
        _ = try ws.quickCommit("v2")
        let head = try repo.diskUsage(revisions: ["HEAD"], top: 1)
        #expect(head.snapshots == 1 && head.files == 2)
        #expect(head.logicalBytes == 2_000_000 + 70_000)
        #expect(head.top.first?.path == "model.bin")
        #expect(head.compressionSavedBytes > 50_000)  // notes.txt compresses
        let all = try repo.diskUsage()
        #expect(all.snapshots == 2 && all.files == 4)
        #expect(all.logicalBytes == 2 * (2_000_000 + 70_000))
        // The unchanged chunks and notes.txt are stored once: the second version costs a few chunks.
        #expect(all.dedupSavedBytes > 1_600_000, "\(all)")
        #expect(all.uniqueContentBytes < 2_600_000)
        #expect(all.savedBytes == all.logicalBytes - all.storedBytes)
        #expect(all.store?.unreachableBytes == 0)
    }
}

/// Cache eviction against a directory remote.
@Suite(.serialized) struct CacheTests {
    /// origin: c1 = a.bin + b.bin, c2 = b.bin changed; pushed to a bare remote and cloned.
    func clone() throws -> (dir: TempDir, bare: String, clone: Repository, c1: ObjectID, c2: ObjectID) {
        fixedIdentity()
        let dir = TempDir("cache")
        let origin = try Repository.initialize(at: dir.file("origin"))
        let ws = try Workspace(origin)
        try GCFixture.write(ws, "a.bin", GCFixture.random(400_000, seed: 11))
        try GCFixture.write(ws, "b.bin", GCFixture.random(400_000, seed: 12))
        _ = try ws.add(["a.bin", "b.bin"])
        let c1 = try ws.quickCommit("c1")
        try GCFixture.write(ws, "b.bin", GCFixture.random(400_000, seed: 13))
        _ = try ws.add(["b.bin"])
        let c2 = try ws.quickCommit("c2")
        let bare = dir.file("remote")
        _ = try origin.push(to: bare, all: true)
        let (clone, _, _) = try Repository.clone(url: bare, into: dir.file("clone"))
        return (dir, bare, clone, c1, c2)
    }

    @Test func evictsOnlyWhatTheRemoteHoldsAndRefetchesOnCheckout() throws {
        let (dir, bare, repo, c1, c2) = try clone()
        let ws = try Workspace(repo)
        // Local-only work: c3 (never pushed), and c4 whose objects reached the remote without a ref (an
        // interrupted push): neither may be evicted.
        try GCFixture.write(ws, "local.bin", GCFixture.random(300_000, seed: 14))
        _ = try ws.add(["local.bin"])
        let c3 = try ws.quickCommit("c3 local")
        try GCFixture.write(ws, "orphan.bin", GCFixture.random(300_000, seed: 15))
        _ = try ws.add(["orphan.bin"])
        let c4 = try ws.quickCommit("c4")
        let orphanID = try #require(try repo.lookup("orphan.bin", in: try repo.commit(c4).tree)).id
        let remote = DirectoryRemote(path: bare)
        let order = try Repository.closure(roots: [orphanID], have: { try remote.containsMany($0) }, kindOf: { try repo.objects.info($0).kind },
                                           payloadOf: { try repo.objects.read($0).payload }, readJSON: { try? repo.json($0) })
        _ = try remote.upload { send in for id in order { try send(try repo.objects.readEncoded(id).object) } }
        try repo.refs.update("refs/heads/main", to: c3, expecting: .value(c4), actor: try repo.identity(), message: "back")
        try repo.refs.update("refs/heads/side", to: c4, expecting: .absent, actor: try repo.identity(), message: "side")
        _ = try ws.checkout(tree: try repo.commit(c3).tree, options: .init(force: true))

        let before = try repo.objects.allObjects().map(\.id)
        let report = try repo.trimCache(CacheOptions(maxBytes: 0))
        #expect(report.evictedObjects > 0 && report.markedPartial && !report.reachedLimit)
        let fresh = try Repository.open(at: dir.file("clone"))
        #expect(try fresh.partialRemote() == "origin")
        let remoteStore = try Repository.open(at: bare)
        var evicted = 0
        for id in Set(before) where !fresh.objects.contains(id) {
            evicted += 1
            #expect(remoteStore.objects.contains(id), "evicted \(id.short), which the remote lacks")
            let kind = try remoteStore.objects.info(id).kind
            #expect(kind == .blob || kind == .chunked, "evicted metadata \(id.short) (\(kind))")
        }
        #expect(evicted == report.evictedObjects)
        // Never evicted: the contents only this clone has, the contents the remote has but does not reach,
        // the checked-out snapshot's contents, and any metadata.
        let local = try #require(try fresh.lookup("local.bin", in: try fresh.commit(c3).tree))
        #expect(fresh.objects.contains(local.id) && fresh.objects.contains(orphanID))
        for id in [c1, c2, c3, c4] { _ = try fresh.commit(id) }
        // b.bin v1 (only in c1) was evicted; checking out c1 fetches it again.
        let bV1 = try #require(try fresh.lookup("b.bin", in: try fresh.commit(c1).tree)).id
        #expect(!fresh.objects.contains(bV1))
        #expect(try fresh.fsck().isClean)
        let ws2 = try Workspace(fresh)
        _ = try ws2.checkout(tree: try fresh.commit(c1).tree, options: .init(force: true))
        #expect(try Sys.readFile(dir.file("clone/b.bin")) == GCFixture.random(400_000, seed: 12))
    }

    @Test func evictsTheLeastRecentlyUsedFirst() throws {
        let (dir, _, repo, c1, c2) = try clone()
        // Move on to a snapshot without a.bin and b.bin, so the index pins neither.
        let ws = try Workspace(repo)
        try GCFixture.write(ws, "z.txt", Array("z".utf8))
        _ = unlink(ws.absolute("a.bin"))
        _ = unlink(ws.absolute("b.bin"))
        _ = try ws.add(["a.bin", "b.bin", "z.txt"])
        _ = try ws.quickCommit("only z")
        try repo.enableAccessLog()
        GCFixture.age(repo.storeDirectory + "/objects", days: 3)
        let a = try #require(try repo.lookup("a.bin", in: try repo.commit(c1).tree)).id
        let bV1 = try #require(try repo.lookup("b.bin", in: try repo.commit(c1).tree)).id
        let bV2 = try #require(try repo.lookup("b.bin", in: try repo.commit(c2).tree)).id
        // a.bin is read now (as a checkout reads it); b.bin v1 and v2 are not.
        let reopened = try Repository.open(at: dir.file("clone"))
        #expect(reopened.objects.accessLog != nil)
        _ = try reopened.objects.read(a, as: .chunked)
        reopened.objects.accessLog?.flush()
        #expect(AccessLog.read(reopened.accessLogPath)[a] != nil)
        // Room for all but about one file: the two least recently used go first, a.bin stays.
        let probe = try reopened.trimCache(CacheOptions(maxBytes: 0, dryRun: true))
        let report = try reopened.trimCache(CacheOptions(maxBytes: probe.liveBytesBefore - 500_000))
        #expect(report.evictedFiles == 2, "\(report)")
        let fresh = try Repository.open(at: dir.file("clone"))
        #expect(fresh.objects.contains(a))
        #expect(!fresh.objects.contains(bV1) && !fresh.objects.contains(bV2))
    }
}
