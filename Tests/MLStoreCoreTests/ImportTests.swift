import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ImportTests {
    /// add → delete → checkout restores the bytes exactly, for sizes around the chunking threshold.
    @Test(arguments: [0, 1, 262_143, 262_144, 262_145, 5_000_000])
    func roundTrip(size: Int) throws {
        let f = try Fixture("roundtrip")
        try TestFiles.write(f.path("file.bin"), size: size, seed: UInt64(size))
        let before = try TestFiles.sha256(f.path("file.bin"))
        _ = try f.ws.add(["file.bin"])
        let entry = try #require(try WorkspaceIndex.load(f.repo)["file.bin"])
        #expect(entry.kind == (size > 262_144 ? .chunked : .file))
        let tree = try f.ws.writeTree()
        try Sys.unlink(f.path("file.bin"))
        _ = try f.ws.checkout(tree: tree, options: .init(force: true))
        #expect(try TestFiles.sha256(f.path("file.bin")) == before)
        #expect(try f.repo.fsck().isClean)
    }

    /// A 300 MB file is streamed through add and checkout (memory stays bounded by the pipeline).
    @Test func largeStreamedFile() throws {
        let f = try Fixture("large")
        let size = 300_000_000
        try TestFiles.write(f.path("big.bin"), size: size, seed: 42, floats: true)
        let before = try TestFiles.sha256(f.path("big.bin"))
        let report = try f.ws.add(["big.bin"])
        #expect(report.hashedBytes == Int64(size))
        let entry = try #require(try WorkspaceIndex.load(f.repo)["big.bin"])
        let chunked = try f.repo.chunkedFile(entry.id)
        #expect(chunked.contentSHA256 == before)  // whole-file SHA-256 equals sha256sum
        #expect(chunked.fileSize == Int64(size))
        #expect(chunked.chunks.allSatisfy { $0.length <= 262_144 })
        try Sys.unlink(f.path("big.bin"))
        _ = try f.ws.checkoutFromIndex(["big.bin"])
        #expect(try TestFiles.sha256(f.path("big.bin")) == before)
    }

    /// Inserting one byte early in a 64 MB file changes only a few chunks.
    @Test func chunkBoundariesSurviveInsertion() throws {
        let dir = TempDir("insert")
        let size = 64 << 20
        try TestFiles.write(dir.file("a"), size: size, seed: 77)
        var bytes = try Sys.readFile(dir.file("a"))
        bytes.insert(0x5a, at: 1000)
        try TestFiles.write(dir.file("b"), bytes)
        let importer = FileImporter()
        func chunkIDs(_ p: String) throws -> Set<ObjectID> {
            let st = try Sys.lstat(p)
            let fd = try Sys.open(p, O_RDONLY)
            defer { Sys.close(fd) }
            var ids = Set<ObjectID>()
            var reader = ChunkBlockReader(fd: fd, path: p, cdc: importer.cdc)
            while let (bytes, ranges) = try reader.next() {
                bytes.withUnsafeBytes { buf in
                    for r in ranges { ids.insert(ObjectID.hash(kind: .blob, payload: UnsafeRawBufferPointer(rebasing: buf[r]))) }
                }
            }
            _ = st
            return ids
        }
        let a = try chunkIDs(dir.file("a"))
        let b = try chunkIDs(dir.file("b"))
        let changed = b.subtracting(a).count
        #expect(a.count > 500)
        #expect(changed <= 3, "\(changed) of \(b.count) chunks changed")
    }

    /// DVC and git-lfs store a modified 1 GiB model again in full; mlstore stores only changed chunks.
    @Test func fineTuneDedupUnderThreePercent() throws {
        let f = try Fixture("dedup")
        let size = 1 << 30
        try TestFiles.write(f.path("model.bin"), size: size, seed: 1, floats: true)
        let first = try f.ws.add(["model.bin"])
        #expect(first.storedBytes >= Int64(size) * 9 / 10)
        // Four 2.5 MiB regions rewritten, as a fine-tune that touches a few tensors.
        let region = 5 << 19
        for (i, offset) in [100 << 20, 400 << 20, 700 << 20, 1000 << 20].enumerated() {
            try TestFiles.overwrite(f.path("model.bin"), offset: offset, length: region, seed: UInt64(100 + i))
        }
        let second = try f.ws.add(["model.bin"])
        let fraction = Double(second.storedBytes) / Double(size)
        print("dedup: modified 1 GiB model stored \(second.storedBytes) new bytes = \((fraction * 10000).rounded() / 100)% of the file")
        #expect(second.updated == ["model.bin"])
        #expect(fraction < 0.03)
    }
}
