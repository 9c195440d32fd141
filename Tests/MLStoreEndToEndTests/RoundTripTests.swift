import Foundation
import Testing

@Suite("round trip: add, write-tree, checkout")
struct RoundTripTests {
    @Test("every kind of file survives delete + checkout byte for byte, with modes and symlinks")
    func roundTrip() throws {
        let ws = try Workspace()
        defer { ws.remove() }

        try ws.write("data/empty.bin", Data())
        try ws.write("data/one.bin", Data([0x5A]))
        try ws.write("data/exact.bin", FS.randomData(count: 262_144, seed: 1))
        try ws.write("data/over.bin", FS.randomData(count: 262_145, seed: 2))
        try ws.write("data/nested/deep/big.bin", FS.randomData(count: 20_000_000 + 123, seed: 3))
        try ws.write("data/scripts/run.sh", "#!/bin/sh\necho hello\n", mode: 0o755)
        try ws.write("data/nested/readonly.txt", "read only\n", mode: 0o444)
        try FS.symlink(ws.path("data/link"), to: "nested/deep/big.bin")
        try FS.symlink(ws.path("data/dangling"), to: "../does/not/exist")
        try ws.write("top.txt", "top level file\n")
        let before = FS.snapshot(ws.root)
        #expect(before.count == 10)

        let add = try ws.run("add", "data", "top.txt", "--json")
        try #require(add.status == 0, "add failed: \(add)")
        let report = try #require(try JSONSerialization.jsonObject(with: add.stdoutData) as? [String: Any])
        #expect((report["added"] as? [String])?.count == 10, "add --json: \(add.stdout)")
        #expect(!ws.packFiles(ext: "pack").isEmpty, "adding 20 MB should write a pack")
        #expect(!ws.packFiles(ext: "idx").isEmpty)

        let st = try ws.status()
        #expect(Set(st.stagedPaths) == Set(before.keys), "staged: \(st.stagedPaths)")
        #expect(st.staged.allSatisfy { $0.change == "added" })
        #expect(st.unstaged.isEmpty, "unstaged right after add: \(st.unstaged)")

        let tree = try ws.writeTree()
        #expect(try ws.writeTree() == tree, "write-tree must be deterministic")

        // The tree lists each file with the right kind, size and mode.
        let rows = try ws.lsTree(tree)
        var byPath: [String: [String: Any]] = [:]
        for r in rows { if let p = r["path"] as? String { byPath[p] = r } }
        #expect(Set(byPath.keys) == Set(before.keys))
        #expect(byPath["data/exact.bin"]?["kind"] as? String == "file", "256 KiB must be one blob")
        #expect(byPath["data/over.bin"]?["kind"] as? String == "chunked", "256 KiB + 1 must be chunked")
        #expect(byPath["data/nested/deep/big.bin"]?["kind"] as? String == "chunked")
        #expect(byPath["data/link"]?["kind"] as? String == "symlink")
        #expect(byPath["data/empty.bin"]?["size"] as? Int == 0)
        #expect(byPath["data/over.bin"]?["size"] as? Int == 262_145)
        #expect(byPath["data/nested/deep/big.bin"]?["size"] as? Int == 20_000_123)
        #expect(byPath["data/scripts/run.sh"]?["mode"] as? String == "755")
        #expect(byPath["data/one.bin"]?["mode"] as? String == "644")
        #expect(byPath["data/nested/readonly.txt"]?["mode"] as? String == "644")

        // Non-recursive ls-tree shows the top-level entries only.
        let top = try ws.run("ls-tree", tree)
        #expect(top.status == 0)
        #expect(top.lines.count == 2, "ls-tree \(tree): \(top.stdout)")
        #expect(top.stdout.contains("\tdata") && top.stdout.contains("\ttop.txt"))

        // Delete everything, then restore.
        try FS.remove(ws.path("data"))
        try FS.remove(ws.path("top.txt"))
        #expect(FS.listFiles(ws.root).isEmpty)
        let deleted = try ws.status()
        #expect(deleted.unstaged.count == 10 && deleted.unstaged.allSatisfy { $0.change == "deleted" }, "\(deleted.unstaged)")

        let co = try ws.run("checkout", tree)
        try #require(co.status == 0, "checkout failed: \(co)")
        let after = FS.snapshot(ws.root)
        #expect(Set(after.keys) == Set(before.keys))
        for (path, want) in before {
            let got = after[path]
            #expect(got?.kind == want.kind, "\(path): kind")
            // Like git, only the executable bit is recorded: files come back 0644 or 0755.
            let wantMode: mode_t = want.kind == "symlink" ? 0 : (want.mode & 0o111 != 0 ? 0o755 : 0o644)
            #expect(got?.mode == wantMode, "\(path): mode \(got.map { String($0.mode, radix: 8) } ?? "-") != \(String(wantMode, radix: 8))")
            #expect(got?.content == want.content, "\(path): content differs (\(got?.content.count ?? -1) vs \(want.content.count) bytes)")
        }

        // Clean afterwards; a second checkout is a no-op; the store verifies.
        let clean = try ws.status()
        #expect(clean.unstaged.isEmpty, "unstaged after checkout: \(clean.unstaged)")
        let again = try ws.run("checkout", tree, "--json")
        #expect(again.status == 0, "\(again)")
        let againReport = try JSONSerialization.jsonObject(with: again.stdoutData) as? [String: Any]
        #expect((againReport?["written"] as? [String])?.isEmpty == true, "second checkout rewrote files: \(again.stdout)")
        let fsck = try ws.run("fsck")
        #expect(fsck.status == 0, "\(fsck)")
    }

    @Test("checkout <tree> -- <path> and checkout -- <path> restore single files")
    func pathCheckout() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("d/a.txt", "version one\n")
        try ws.write("d/b.txt", "b\n")
        try ws.ok("add", "d")
        let t1 = try ws.writeTree()
        try ws.write("d/a.txt", "version two\n")
        try ws.ok("add", "d")

        // Discard a workspace change: restore the staged version.
        try ws.write("d/a.txt", "scribble\n")
        #expect(try ws.status().unstagedChange("d/a.txt") == "modified")
        try ws.ok("checkout", "--", "d/a.txt")
        #expect(ws.read("d/a.txt") == "version two\n")
        #expect(try ws.status().unstaged.isEmpty)

        // Restore one path from an older tree, leaving the rest alone.
        try ws.write("d/b.txt", "b changed\n")
        try ws.ok("checkout", t1, "--", "d/a.txt")
        #expect(ws.read("d/a.txt") == "version one\n")
        #expect(ws.read("d/b.txt") == "b changed\n")

        let missing = try ws.run("checkout", t1, "--", "d/nope.txt")
        #expect(missing.status == 3, "\(missing)")
        #expect(missing.stderr.contains("d/nope.txt"))
    }
}
