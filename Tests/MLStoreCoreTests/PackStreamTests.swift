import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// A source workspace with one commit (a chunked file, small files, a subdirectory) and that commit's objects
/// in push order (children first), as stored.
private struct StreamSource {
    let f: Fixture
    let commit: ObjectID
    let objects: [EncodedObject]

    init(seed: UInt64 = 1, bigSize: Int = 400_000) throws {
        f = try Fixture("pstream-src")
        try TestFiles.write(f.path("model.bin"), size: bigSize, seed: seed)
        try TestFiles.write(f.path("notes.txt"), "notes \(seed)\n")
        try TestFiles.write(f.path("data/a.csv"), String(repeating: "1,2,3,\(seed)\n", count: 2000))
        _ = try f.ws.add(["model.bin", "notes.txt", "data"])
        commit = try f.ws.quickCommit("c\(seed)")
        objects = try Self.order([commit], in: f.repo, skipping: { _ in false })
    }

    /// Objects reachable from `roots` that `skipping` does not hold, children first.
    static func order(_ roots: [ObjectID], in repo: Repository, skipping have: @escaping (ObjectID) -> Bool) throws -> [EncodedObject] {
        let ids = try Repository.closure(
            roots: roots, have: { $0.map(have) }, kindOf: { try repo.objects.info($0).kind },
            payloadOf: { try repo.objects.read($0).payload }, readJSON: { try? repo.json($0) })
        return try ids.map { try repo.objects.readEncoded($0).object }
    }

    var stream: [UInt8] { WireFormat.packStream(objects) }
    /// The first chunk of the big random file (stored as-is, more than 1000 bytes).
    var firstChunk: Int? { objects.firstIndex { $0.kind == .blob && $0.codec == .identity && $0.payloadSize > 1000 } }
    var ids: [ObjectID] { objects.map(\.id) }

    /// Byte offset of entry `i`'s header in ``stream``.
    func entryOffset(_ i: Int) -> Int {
        PackFormat.headerSize + objects[..<i].reduce(0) { $0 + WireFormat.entryHeaderSize + $1.stored.count }
    }
}

/// An empty bare store receiving streams.
private struct Receiving {
    let dir: TempDir
    let repo: Repository

    init() throws {
        dir = TempDir("pstream-dst")
        repo = try Repository.initialize(at: dir.path, bare: true)
    }

    func receiver(maxBytes: Int64 = 1 << 40) -> PackStreamReceiver {
        PackStreamReceiver(repository: repo, maxBytes: maxBytes, location: "test upload")
    }

    /// Every file under `objects/` (relative), including temp files.
    func objectFiles() throws -> [String] {
        var out: [String] = []
        func walk(_ rel: String) throws {
            let abs = repo.objects.directory + (rel.isEmpty ? "" : "/" + rel)
            for (name, type) in try Sys.listDirectory(abs) {
                let r = rel.isEmpty ? name : rel + "/" + name
                if type == .directory { try walk(r) } else { out.append(r) }
            }
        }
        try walk("")
        return out.sorted()
    }

    /// Which of `ids` a freshly opened store (nothing cached) holds.
    func stored(_ ids: [ObjectID]) throws -> [ObjectID] {
        let fresh = try Repository.open(at: dir.path)
        return ids.filter { fresh.objects.contains($0) }
    }
}

/// Feeds `bytes` in pieces of the given sizes (cycled), then finishes.
@discardableResult
private func feed(_ r: PackStreamReceiver, _ bytes: [UInt8], pieces: [Int]) throws -> ObjectBatch.Stats {
    var pos = 0, k = 0
    while pos < bytes.count {
        let n = min(bytes.count - pos, max(1, pieces[k % pieces.count]))
        try r.consume(bytes[pos..<pos + n])
        pos += n
        k += 1
    }
    return try r.finish()
}

/// How a valid stream is damaged.
enum Damage: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case emptyBody, badMagic, badVersion, headerOnly
    case flippedPayloadFirst, flippedPayloadChunk, flippedPayloadCommit, flippedHeaderID, unknownKind, unknownCodec
    case impossiblePayloadSize, storedSizeTooLarge, payloadSizeOffByOne
    case missingChunk, missingTree, parentsFirst
    case truncatedInEntryHeader, truncatedInPayload, truncatedBeforeFooter, truncatedInFooter
    case footerCountHigh, footerCountLow, footerDigest, footerMagic, trailingByte, trailingGarbage
    case overMaxBytes
    var testDescription: String { rawValue }
}

@Suite("pack stream receiver") struct PackStreamTests {
    @Test("a valid stream publishes whole: in one piece, one byte at a time, and in odd pieces")
    func validStreams() throws {
        let src = try StreamSource()
        let stream = src.stream
        #expect(src.objects.count > 6, "a chunked file, two small files, a subtree, the root tree, the commit")
        #expect(src.objects.last?.id == src.commit)
        for pieces in [[stream.count], [1], [7, 50, 1, 4096, 3, 65_537]] {
            let dst = try Receiving()
            let r = dst.receiver(maxBytes: Int64(stream.count))  // exactly the stream's size is allowed
            let stats = try feed(r, stream, pieces: pieces)
            #expect(stats.objectsWritten == src.objects.count, "pieces \(pieces.prefix(3))")
            #expect(stats.objectsSkipped == 0)
            #expect(stats.payloadBytes == src.objects.reduce(0) { $0 + Int64($1.payloadSize) })
            #expect(try dst.stored(src.ids) == src.ids, "every object is visible after finish")
            for o in src.objects {
                #expect(try dst.repo.objects.read(o.id).payload == (try src.f.repo.objects.read(o.id).payload))
            }
            let files = try dst.objectFiles()
            #expect(files.filter { $0.hasSuffix(".pack") }.count == 1 && files.filter { $0.hasSuffix(".idx") }.count == 1, "one pack: \(files)")
            #expect(!files.contains { $0.contains("tmp") }, "\(files)")
            #expect(try dst.repo.fsck().isClean)
            // The same stream again: everything is skipped and no pack is added.
            let again = try feed(dst.receiver(), stream, pieces: [stream.count])
            #expect(again.objectsWritten == 0 && again.objectsSkipped == src.objects.count)
            #expect(try dst.objectFiles() == files)
        }
    }

    @Test("a stream may lean on objects already stored, and may repeat an object")
    func incrementalAndDuplicates() throws {
        let src = try StreamSource(seed: 2)
        let dst = try Receiving()
        try feed(dst.receiver(), src.stream, pieces: [4096])
        // A second commit on top: only its new objects travel.
        try TestFiles.write(src.f.path("notes.txt"), "changed\n")
        _ = try src.f.ws.add(["notes.txt"])
        let c2 = try src.f.ws.quickCommit("c2")
        let fresh = try Repository.open(at: dst.dir.path)
        let newObjects = try StreamSource.order([c2], in: src.f.repo, skipping: { fresh.objects.contains($0) })
        #expect(newObjects.map(\.kind) == [.blob, .tree, .commit], "\(newObjects.map(\.kind))")
        let stats = try feed(dst.receiver(), WireFormat.packStream(newObjects), pieces: [1, 2, 3])
        #expect(stats.objectsWritten == 3)
        #expect(try dst.stored([c2]) == [c2])
        #expect(try dst.repo.fsck().isClean)
        // A repeated object is stored once; the footer counts entries as sent.
        let dst2 = try Receiving()
        let dup = try feed(dst2.receiver(), WireFormat.packStream(src.objects + [src.objects[0], src.objects.last!]), pieces: [100_000])
        #expect(dup.objectsWritten == src.objects.count && dup.objectsSkipped == 2)
        // An empty stream (header + footer) is valid and stores nothing.
        let dst3 = try Receiving()
        let none = try feed(dst3.receiver(), WireFormat.packStream([]), pieces: [1])
        #expect(none.objectsWritten == 0)
        #expect(try dst3.objectFiles().isEmpty)
    }

    /// The damaged stream and the limit it is received with.
    private func damaged(_ d: Damage, _ src: StreamSource) throws -> (bytes: [UInt8], maxBytes: Int64) {
        var s = src.stream
        let objs = src.objects
        let firstChunk = try #require(src.firstChunk)
        let commitIndex = objs.count - 1
        func payloadOffset(_ i: Int) -> Int { src.entryOffset(i) + WireFormat.entryHeaderSize }
        func setU64(_ at: Int, _ v: UInt64) {
            var w = ByteWriter()
            w.u64(v)
            s.replaceSubrange(at..<at + 8, with: w.bytes)
        }
        let footer = s.count - PackFormat.footerSize
        switch d {
        case .emptyBody: s = []
        case .badMagic: s[1] = UInt8(ascii: "X")
        case .badVersion: s[7] = 2
        case .headerOnly: s = Array(s.prefix(PackFormat.headerSize))
        case .flippedPayloadFirst: s[payloadOffset(0)] ^= 0x01
        case .flippedPayloadChunk: s[payloadOffset(firstChunk) + 777] ^= 0x80
        case .flippedPayloadCommit: s[payloadOffset(commitIndex) + objs[commitIndex].stored.count - 1] ^= 0x01
        case .flippedHeaderID: s[src.entryOffset(firstChunk) + 31] ^= 0x01
        case .unknownKind: s[src.entryOffset(1) + 32] = 0xEE
        case .unknownCodec: s[src.entryOffset(1) + 33] = 7
        case .impossiblePayloadSize: setU64(src.entryOffset(1) + 34, 1 << 40)
        case .storedSizeTooLarge: setU64(src.entryOffset(1) + 42, UInt64(objs[1].stored.count + 1))
        case .payloadSizeOffByOne: setU64(src.entryOffset(firstChunk) + 34, UInt64(objs[firstChunk].payloadSize + 1))
        case .missingChunk:
            s = WireFormat.packStream(objs.enumerated().filter { $0.offset != firstChunk }.map(\.element))
        case .missingTree:
            s = WireFormat.packStream(objs.filter { $0.kind != .tree || $0.id == objs[commitIndex - 1].id })
        case .parentsFirst: s = WireFormat.packStream(objs.reversed())
        case .truncatedInEntryHeader: s = Array(s.prefix(src.entryOffset(2) + 20))
        case .truncatedInPayload: s = Array(s.prefix(payloadOffset(firstChunk) + 1000))
        case .truncatedBeforeFooter: s = Array(s.prefix(footer))
        case .truncatedInFooter: s = Array(s.prefix(footer + 20))
        case .footerCountHigh: setU64(footer + 4, UInt64(objs.count + 1))
        case .footerCountLow: setU64(footer + 4, UInt64(objs.count - 1))
        case .footerDigest: s[s.count - 1] ^= 0x01
        case .footerMagic: s[footer] = UInt8(ascii: "X")
        case .trailingByte: s.append(0)
        case .trailingGarbage: s += [UInt8](repeating: 0x5A, count: 200)
        case .overMaxBytes: return (s, Int64(s.count - 1))
        }
        return (s, 1 << 40)
    }

    @Test("every damaged stream throws and leaves the store without its objects", arguments: Damage.allCases)
    func damagedStream(_ d: Damage) throws {
        let src = try StreamSource(seed: 3)
        let (bytes, maxBytes) = try damaged(d, src)
        #expect(bytes != src.stream || d == .overMaxBytes)
        for pieces in [[max(1, bytes.count)], [1], [13, 4000, 1]] {
            let dst = try Receiving()
            let r = dst.receiver(maxBytes: maxBytes)
            var thrown: Error?
            do {
                try feed(r, bytes, pieces: pieces)
            } catch {
                thrown = error
            }
            r.abandon()
            let e = try #require(thrown, "\(d) with pieces \(pieces.prefix(3)) was accepted")
            let m = try #require(e as? MLStoreError, "\(d): \(e)")
            #expect([MLStoreError.Code.corrupt, .unsupported, .usage].contains(m.code), "\(d): \(m)")
            switch d {
            case .overMaxBytes: #expect(m.message.contains("limit"), "\(m)")
            case .missingChunk, .missingTree: #expect(m.message.contains("neither on the server nor earlier"), "\(m)")
            case .flippedPayloadChunk: #expect(m.message.contains(src.objects[src.firstChunk!].id.hex), "the error names the object: \(m)")
            case .badVersion, .unknownCodec: #expect(m.code == .unsupported, "\(m)")
            default: break
            }
            #expect(try dst.stored(src.ids).isEmpty, "\(d): nothing is visible after a failure")
            let left = try dst.objectFiles()
            #expect(left.isEmpty, "\(d): no pack, index, loose object or temp file is left: \(left)")
            // The store takes the valid stream afterwards.
            let ok = try feed(dst.receiver(), src.stream, pieces: [src.stream.count])
            #expect(ok.objectsWritten == src.objects.count)
            #expect(try dst.repo.fsck().isClean)
        }
    }

    @Test("a stream after the limit throws at the first byte over, before buffering more")
    func limitStopsEarly() throws {
        let src = try StreamSource(seed: 4)
        let stream = src.stream
        let dst = try Receiving()
        let r = dst.receiver(maxBytes: 1000)
        try r.consume(stream[0..<1000])
        #expect(throws: MLStoreError.self) { try r.consume(stream[1000..<1001]) }
        r.abandon()
        #expect(try dst.objectFiles().isEmpty)
    }

    @Test("a commit naming an env record's lock files needs them too (the store stays closed under references)")
    func envLockFiles() throws {
        let src = try StreamSource(seed: 5, bigSize: 1000)
        let repo = src.f.repo
        let commit = try repo.commit(src.commit)
        let lock = ObjectCodec.encode(kind: .blob, payload: Array("numpy==2.0.0\n".utf8))
        for padding in [0, 70_000] {
            // An env record naming a lock file; with padding it is larger than the receiver's small-JSON cache.
            var env: [String: JSONValue] = ["os": .string("test"), "lock_files": .object(["requirements.txt": .string(lock.id.hex)])]
            if padding > 0 { env["pip_freeze"] = .array((0..<padding / 20).map { .string("package-\($0)==1.0.0") }) }
            let envBlob = ObjectCodec.encode(kind: .blob, payload: JSONValue.object(env).bytes)
            var c = Commit(tree: commit.tree, author: commit.author, committer: commit.committer, message: "with env \(padding)\n")
            c.env = envBlob.id
            let commitObj = ObjectCodec.encode(kind: .commit, payload: c.encoded())
            let base = Array(src.objects.dropLast())  // everything but the original commit
            // With the lock file: accepted, and fsck agrees.
            let dstOK = try Receiving()
            try feed(dstOK.receiver(), WireFormat.packStream(base + [lock, envBlob, commitObj]), pieces: [8192])
            #expect(try dstOK.repo.fsck().isClean)
            // Without it: refused (a fetch of this commit from this store would fail on the missing lock file).
            let dst = try Receiving()
            let r = dst.receiver()
            let stream = WireFormat.packStream(base + [envBlob, commitObj])
            // Small and large (over 64 KiB) env records alike: the dangling lock file is noticed.
            #expect(throws: MLStoreError.self, "a missing lock file of an env record of \(padding) padding bytes") { try feed(r, stream, pieces: [8192]) }
            r.abandon()
            let stored = try dst.stored([commitObj.id, lock.id])
            #expect(stored.isEmpty, "stored: \(stored.map(\.short))")
        }
    }

    @Test("a tree or chunked file naming an object of the wrong kind is refused (the server's fsck would flag it)")
    func wrongChildKind() throws {
        let src = try StreamSource(seed: 7, bigSize: 300_000)
        let chunked = try #require(src.objects.first { $0.kind == .chunked })
        let blob = try #require(src.objects.first { $0.kind == .blob && $0.payloadSize < 1000 })
        // A tree whose "file" entry is the commit, and one whose "chunked" entry is a plain blob.
        for (kind, target) in [(TreeEntry.Kind.file, src.commit), (.chunked, blob.id), (.directory, chunked.id)] {
            let tree = try Tree(entries: [TreeEntry(kind: kind, mode: kind == .directory ? 0o755 : 0o644, size: 1, name: "x", id: target)])
            let obj = ObjectCodec.encode(kind: .tree, payload: tree.encoded())
            let dst = try Receiving()
            try feed(dst.receiver(), src.stream, pieces: [1 << 20])
            let r = dst.receiver()
            var thrown = false
            do { try feed(r, WireFormat.packStream([obj]), pieces: [4096]) } catch { thrown = true }
            r.abandon()
            let stored = try dst.stored([obj.id])
            let problems = try dst.repo.fsck().problems
            #expect(thrown, "a \(kind) entry naming a \(target.short) was accepted")
            #expect(stored.isEmpty)
            #expect(problems.isEmpty, "\(problems)")
        }
    }

    @Test("wire entries: parseEntries splits exact runs and refuses truncated ones; decode verifies")
    func wireEntries() throws {
        let src = try StreamSource(seed: 6, bigSize: 300_000)
        var run: [UInt8] = []
        for o in src.objects { WireFormat.appendEntry(o, to: &run) }
        let entries = try WireFormat.parseEntries(run, location: "test")
        #expect(entries.map(\.id) == src.ids)
        for e in entries { #expect(try WireFormat.decode(e, location: "test").object.id == e.id) }
        #expect(try WireFormat.parseEntries([], location: "test").isEmpty)
        for cut in [1, WireFormat.entryHeaderSize - 1, WireFormat.entryHeaderSize, run.count - 1] {
            #expect(throws: MLStoreError.self, "cut at \(cut)") { try WireFormat.parseEntries(Array(run.prefix(cut)), location: "test") }
        }
        var bad = entries[0]
        var stored = Array(bad.stored)
        stored[stored.count / 2] ^= 0x10
        bad.stored = stored[...]
        #expect { try WireFormat.decode(bad, location: "remote X") } throws: { e in
            (e as? MLStoreError)?.code == .corrupt && "\(e)".contains(bad.id.hex) && "\(e)".contains("remote X")
        }
    }
}
