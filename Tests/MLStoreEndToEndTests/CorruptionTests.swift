import Foundation
import Testing

@Suite("corruption is detected")
struct CorruptionTests {
    /// `fsck --json` problems as (subject, message).
    static func fsckProblems(_ ws: Workspace) throws -> (status: Int32, problems: [(String, String)]) {
        let r = try ws.run("fsck", "--json")
        let json = try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any], "fsck --json: \(r)")
        let problems = (json["problems"] as? [[String: String]] ?? []).map { ($0["subject"] ?? "", $0["message"] ?? "") }
        return (r.status, problems)
    }

    /// Chunk ids of a chunked object, in file order, from `cat-object -p`.
    static func chunkIDs(_ ws: Workspace, _ chunked: String) throws -> [String] {
        let r = try ws.run("cat-object", "-p", chunked)
        try #require(r.status == 0, "\(r)")
        return r.lines.filter { isObjectID(String($0.prefix(64))) }.map { String($0.prefix(64)) }
    }

    static func leftoverTempFiles(_ ws: Workspace) -> [String] {
        FS.listFiles(ws.root).filter { ($0 as NSString).lastPathComponent.hasPrefix(".mlstore-tmp") }
    }

    @Test("a flipped byte in a loose object: fsck exits 4 naming it; checkout fails naming it")
    func looseObject() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/model.bin", FS.randomData(count: 300_000, seed: 21))
        try ws.write("data/small.txt", "small file\n")
        try ws.ok("add", "data")
        #expect(ws.packFiles(ext: "pack").isEmpty, "a 300 kB add should stay loose")
        let tree = try ws.writeTree()
        #expect(try ws.run("fsck").status == 0)

        let rows = try ws.lsTree(tree)
        let chunked = try #require(rows.first { $0["path"] as? String == "data/model.bin" }?["id"] as? String)
        let smallID = try #require(rows.first { $0["path"] as? String == "data/small.txt" }?["id"] as? String)
        let chunks = try Self.chunkIDs(ws, chunked)
        try #require(chunks.count >= 2, "expected several chunks")
        let victim = chunks[1]
        let victimPath = try #require(ws.looseObjects().first { $0.id == victim }?.path)

        // Content damage in one chunk, header damage (declared size) in the small blob.
        try FS.flipByte(victimPath, at: FS.size(victimPath) - 1)
        let smallPath = try #require(ws.looseObjects().first { $0.id == smallID }?.path)
        try FS.flipByte(smallPath, at: 8)

        let text = try ws.run("fsck")
        #expect(text.status == 4, "\(text)")
        #expect(text.stdout.contains(victim), "fsck output must name \(victim): \(text.stdout)")
        #expect(text.stdout.contains(smallID), "fsck output must name \(smallID): \(text.stdout)")
        let (status, problems) = try Self.fsckProblems(ws)
        #expect(status == 4)
        #expect(Set(problems.map(\.0)) == [victim, smallID], "problems: \(problems)")
        // Each damaged object is reported once, as damaged (it is present, not missing).
        #expect(problems.count == 2, "each bad object should be reported exactly once: \(problems)")
        #expect(!problems.contains { $0.1.hasPrefix("missing") }, "corrupt objects reported as missing: \(problems)")

        // Restoring the damaged file fails, names the chunk, and leaves no partial file behind.
        try FS.remove(ws.path("data/model.bin"))
        let co = try ws.run("checkout", "--", "data/model.bin")
        #expect(co.status != 0, "\(co)")
        #expect(co.status == 4, "corrupt data should exit 4: \(co)")
        #expect(co.stderr.contains(victim), "checkout error must name \(victim): \(co.stderr)")
        #expect(!FS.exists(ws.path("data/model.bin")), "a partially restored file was left behind")
        #expect(Self.leftoverTempFiles(ws).isEmpty, "temp files left: \(Self.leftoverTempFiles(ws))")

        // Reading the damaged blob directly is refused too.
        let cat = try ws.run("cat-object", victim)
        #expect(cat.status == 4 && cat.stderr.contains(victim), "\(cat)")
        #expect(cat.stdout.isEmpty, "damaged bytes were printed")
    }

    @Test("a flipped byte in a pack: fsck exits 4 naming the object; checkout fails naming it")
    func packedObject() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let original = FS.randomData(count: 3_000_000, seed: 22)
        try ws.write("data/model.bin", original)
        try ws.ok("add", "data")
        let tree = try ws.writeTree()
        let pack = try #require(ws.packFiles(ext: "pack").first, "adding 3 MB must write a pack")
        #expect(try ws.run("fsck").status == 0)

        // The first entry starts after the 8-byte pack header: id (32 bytes), then the entry header.
        let bytes = try #require(FS.read(pack))
        let firstID = hex(bytes[8..<40])
        try #require(isObjectID(firstID))
        try FS.flipByte(pack, at: 8 + 50 + 1000)

        let text = try ws.run("fsck")
        #expect(text.status == 4, "\(text)")
        #expect(text.stdout.contains(firstID), "fsck must name \(firstID): \(text.stdout)")
        let (_, problems) = try Self.fsckProblems(ws)
        #expect(problems.contains { $0.0 == firstID }, "\(problems)")
        // Data bytes are covered by the object's own id (spec/objects.md §5), not by a second pack-wide hash.

        // Damage to an entry header (its stored size) breaks the pack's structure digest: the pack is reported.
        try FS.flipByte(pack, at: 8 + 49)
        let (_, headerProblems) = try Self.fsckProblems(ws)
        #expect(headerProblems.contains { $0.0.hasSuffix(".pack") }, "a damaged entry header must fail the pack: \(headerProblems)")
        try FS.flipByte(pack, at: 8 + 49)

        try FS.remove(ws.path("data"))
        let co = try ws.run("checkout", tree)
        #expect(co.status != 0, "\(co)")
        #expect(co.stderr.contains(firstID), "checkout error must name \(firstID): \(co.stderr)")
        #expect(!FS.exists(ws.path("data/model.bin")), "a partially restored file was left behind")
        #expect(Self.leftoverTempFiles(ws).isEmpty)
    }

    @Test("a truncated pack or damaged pack index is detected")
    func truncatedPack() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/model.bin", FS.randomData(count: 3_000_000, seed: 23))
        try ws.ok("add", "data")
        let tree = try ws.writeTree()
        let pack = try #require(ws.packFiles(ext: "pack").first)
        let idx = try #require(ws.packFiles(ext: "idx").first)
        let size = FS.size(pack)
        let packName = ((pack as NSString).lastPathComponent as NSString).deletingPathExtension

        // Damaged index checksum only.
        try FS.flipByte(idx, at: FS.size(idx) - 1)
        let idxRun = try ws.run("fsck")
        #expect(idxRun.status == 4, "\(idxRun)")
        #expect(idxRun.stdout.contains(packName), "\(idxRun.stdout)")
        try FS.flipByte(idx, at: FS.size(idx) - 1)
        #expect(try ws.run("fsck").status == 0, "restoring the byte must make the store clean again")

        // Only the trailing checksum lost.
        try FS.truncate(pack, to: size - 1)
        let one = try ws.run("fsck")
        #expect(one.status == 4, "\(one)")
        #expect(one.stdout.contains(packName), "\(one.stdout)")

        // Cut in half: objects past the cut are reported by id.
        try FS.truncate(pack, to: size / 2)
        let (status, problems) = try Self.fsckProblems(ws)
        #expect(status == 4)
        #expect(problems.contains { $0.0.hasSuffix(".pack") }, "\(problems)")
        #expect(problems.contains { isObjectID($0.0) }, "objects past the cut must be named: \(problems)")

        try FS.remove(ws.path("data"))
        let co = try ws.run("checkout", tree)
        #expect(co.status != 0, "\(co)")
        #expect(!co.stderr.isEmpty)
        #expect(!FS.exists(ws.path("data/model.bin")))
    }

    @Test("a missing object is reported by fsck and by checkout")
    func missingObject() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/a.txt", "a\n")
        try ws.ok("add", "data")
        let tree = try ws.writeTree()
        let blob = try #require(try ws.lsTree(tree).first?["id"] as? String)
        let path = try #require(ws.looseObjects().first { $0.id == blob }?.path)
        try FS.remove(path)
        let f = try ws.run("fsck")
        #expect(f.status == 4, "\(f)")
        #expect(f.stdout.contains(blob), "\(f.stdout)")
        try FS.remove(ws.path("data/a.txt"))
        let co = try ws.run("checkout", "--", "data/a.txt")
        #expect(co.status == 3, "\(co)")
        #expect(co.stderr.contains(blob), "\(co.stderr)")
    }
}
