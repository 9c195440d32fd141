import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh store in a temp directory.
struct Fixture {
    let dir: TempDir
    let repo: Repository
    let ws: Workspace
    init(_ label: String = "store") throws {
        dir = TempDir(label)
        repo = try Repository.initialize(at: dir.path)
        ws = try Workspace(repo)
    }
    func path(_ rel: String) -> String { dir.file(rel) }

    /// Flips one bit of a file in place (objects are read-only on disk).
    static func flipByte(_ path: String, at offset: Int) throws {
        chmod(path, 0o644)
        var bytes = try Sys.readFile(path)
        bytes[offset] ^= 0x40
        try TestFiles.write(path, bytes)
    }
}

@Suite struct StoreTests {
    @Test func looseRoundTripAndVerification() throws {
        let f = try Fixture()
        let payload = Array("some small metadata object, metadata object, metadata object".utf8)
        let id = try f.repo.objects.write(kind: .blob, payload: payload)
        #expect(try f.repo.objects.read(id).payload == payload)
        #expect(try f.repo.objects.info(id).size == payload.count)
        // Corrupt the loose file: the read fails naming the id.
        let path = f.repo.objects.loose.path(id)
        try Fixture.flipByte(path, at: try Sys.lstat(path).size.toInt - 1)
        #expect {
            _ = try f.repo.objects.read(id)
        } throws: { e in (e as? MLStoreError)?.code == .corrupt && "\(e)".contains(id.hex) }
        let report = try f.repo.fsck()
        #expect(report.problems.map(\.subject).contains(id.hex))
    }

    @Test func truncatedLooseObjectIsDetected() throws {
        let f = try Fixture()
        let id = try f.repo.objects.write(kind: .blob, payload: Array(repeating: 1, count: 1000))
        let path = f.repo.objects.loose.path(id)
        chmod(path, 0o644)
        let bytes = try Sys.readFile(path)
        try TestFiles.write(path, Array(bytes.prefix(10)))
        #expect { _ = try f.repo.objects.read(id) } throws: { "\($0)".contains(id.hex) }
    }

    @Test func unknownLooseVersionIsRefusedClearly() throws {
        let f = try Fixture()
        let id = try f.repo.objects.write(kind: .blob, payload: [1, 2, 3])
        try Fixture.flipByte(f.repo.objects.loose.path(id), at: 4)  // the version byte
        #expect {
            _ = try f.repo.objects.read(id)
        } throws: { e in (e as? MLStoreError)?.code == .unsupported && "\(e)".contains("upgrade") }
    }

    @Test func batchWritesAPackAndReadsBackEveryObject() throws {
        let f = try Fixture()
        let batch = f.repo.objects.batch()
        var gen = SeededGenerator(seed: 9)
        var ids: [(ObjectID, [UInt8])] = []
        for i in 0..<200 {
            let p = gen.bytes(100 + i)
            ids.append((try batch.add(kind: .blob, payload: p), p))
        }
        // Duplicates inside a batch are stored once.
        _ = try batch.add(kind: .blob, payload: ids[0].1)
        try batch.commit()
        #expect(batch.stats.objectsWritten == 200)
        #expect(f.repo.objects.packReaders.count == 1)
        for (id, p) in ids { #expect(try f.repo.objects.read(id).payload == p) }
        #expect(try f.repo.fsck().isClean)
        // A second batch with the same objects writes nothing.
        let again = f.repo.objects.batch()
        for (_, p) in ids { _ = try again.add(kind: .blob, payload: p) }
        try again.commit()
        #expect(again.stats.objectsWritten == 0)
        #expect(f.repo.objects.packReaders.count == 1)
    }

    @Test func smallBatchesBecomeLooseObjects() throws {
        let f = try Fixture()
        let batch = f.repo.objects.batch()
        let id = try batch.add(kind: .blob, payload: [1, 2, 3])
        try batch.commit()
        #expect(f.repo.objects.packReaders.isEmpty)
        #expect(f.repo.objects.loose.contains(id))
    }

    @Test func truncatedPackIsDetected() throws {
        let f = try Fixture()
        let batch = f.repo.objects.batch()
        var gen = SeededGenerator(seed: 10)
        var ids: [ObjectID] = []
        for _ in 0..<50 { ids.append(try batch.add(kind: .blob, payload: gen.bytes(5000))) }
        try batch.commit()
        let pack = try #require(f.repo.objects.packReaders.first)
        let path = pack.packPath
        chmod(path, 0o644)
        let bytes = try Sys.readFile(path)
        try TestFiles.write(path, Array(bytes.prefix(bytes.count / 2)))
        let fresh = try Repository.open(at: f.dir.path)
        let report = try fresh.fsck()
        #expect(!report.isClean)
        #expect(report.problems.contains { $0.subject == path })
        // The objects in the lost half are reported by id.
        let lastID = try #require(ids.last)
        #expect(report.problems.contains { $0.subject == lastID.hex } || report.problems.contains { ids.map(\.hex).contains($0.subject) })
    }

    @Test func bitFlipInAPackedChunkIsDetectedWithItsID() throws {
        let f = try Fixture()
        try TestFiles.write(f.path("model.bin"), size: 2_000_000, seed: 11)
        _ = try f.ws.add(["model.bin"])
        let entry = try #require(try WorkspaceIndex.load(f.repo)["model.bin"])
        let chunked = try f.repo.chunkedFile(entry.id)
        let victim = chunked.chunks[3].id
        let pack = try #require(f.repo.objects.packReaders.first)
        let offset = pack.index.offset(at: try #require(pack.index.find(victim)))
        try Fixture.flipByte(pack.packPath, at: Int(offset) + PackFormat.entryHeaderSize + 100)
        let fresh = try Repository.open(at: f.dir.path)
        #expect { _ = try fresh.objects.read(victim) } throws: { e in
            (e as? MLStoreError)?.code == .corrupt && "\(e)".contains(victim.hex)
        }
        // Checkout of the file fails naming the chunk, and fsck lists it.
        try Sys.unlink(f.path("model.bin"))
        let ws = try Workspace(fresh)
        #expect { _ = try ws.checkoutFromIndex(["model.bin"]) } throws: { "\($0)".contains(victim.hex) }
        #expect(try fresh.fsck().problems.contains { $0.subject == victim.hex })
    }

    @Test func prefixResolution() throws {
        let f = try Fixture()
        var ids: [ObjectID] = []
        for i in 0..<300 { ids.append(try f.repo.objects.write(kind: .blob, payload: Array("object \(i)".utf8))) }
        let id = ids[17]
        #expect(try f.repo.resolve(String(id.hex.prefix(12))) == id)
        #expect(try f.repo.resolve(id.hex.uppercased()) == id)
        #expect { _ = try f.repo.resolve("abc") } throws: { ($0 as? MLStoreError)?.code == .usage }
        #expect { _ = try f.repo.resolve("zzzz") } throws: { ($0 as? MLStoreError)?.code == .notFound }  // not a ref either
        // With 300 objects, some 1-digit... 4-digit prefixes collide rarely; find a shared 2-hex prefix and use 4 digits only if ambiguous.
        var byPrefix: [String: [ObjectID]] = [:]
        for i in ids { byPrefix[String(i.hex.prefix(4)), default: []].append(i) }
        if let (p, _) = byPrefix.first(where: { $0.value.count > 1 }) {
            #expect { _ = try f.repo.resolve(p) } throws: { e in "\(e)".contains("ambiguous") }
        }
        #expect { _ = try f.repo.resolve("0000000000") } throws: { ($0 as? MLStoreError)?.code == .notFound }
    }

    @Test func newerStoreFormatIsRefused() throws {
        let dir = TempDir("format")
        _ = try Repository.initialize(at: dir.path)
        chmod(dir.file(".mlstore/format"), 0o644)
        try TestFiles.write(dir.file(".mlstore/format"), "mlstore-format 2\n")
        #expect { _ = try Repository.discover(from: dir.path) } throws: { e in
            (e as? MLStoreError)?.code == .unsupported && "\(e)".contains("upgrade")
        }
    }
}

extension Int64 {
    var toInt: Int { Int(self) }
}
