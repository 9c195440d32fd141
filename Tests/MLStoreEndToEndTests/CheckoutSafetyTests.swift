import Foundation
import Testing

@Suite("checkout safety")
struct CheckoutSafetyTests {
    @Test("checkout refuses (exit 5) to overwrite a local modification; --force overwrites")
    func localModification() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/a.txt", "one\n")
        try ws.write("data/b.txt", "unchanged\n")
        try ws.ok("add", "data")
        let t1 = try ws.writeTree()
        try ws.write("data/a.txt", "two\n")
        try ws.ok("add", "data")
        let t2 = try ws.writeTree()
        #expect(t1 != t2)

        try ws.ok("checkout", t1)
        #expect(ws.read("data/a.txt") == "one\n")

        try ws.write("data/a.txt", "local edit\n")
        let refused = try ws.run("checkout", t2)
        #expect(refused.status == 5, "\(refused)")
        #expect(refused.stderr.contains("data/a.txt"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--force"), "the hint should mention --force: \(refused.stderr)")
        #expect(ws.read("data/a.txt") == "local edit\n", "the local edit was touched")
        #expect(try ws.status().unstagedChange("data/a.txt") == "modified")

        // A local edit to a file the checkout does not change does not block it.
        try ws.ok("checkout", "--", "data/a.txt")
        try ws.write("data/b.txt", "edited but same in both trees\n")
        let unrelated = try ws.run("checkout", t2)
        #expect(unrelated.status == 0, "\(unrelated)")
        #expect(ws.read("data/a.txt") == "two\n")
        #expect(ws.read("data/b.txt") == "edited but same in both trees\n")
        try ws.ok("checkout", "--", "data/b.txt")

        // --force discards the local edit.
        try ws.write("data/a.txt", "local edit again\n")
        let forced = try ws.run("checkout", t1, "--force")
        #expect(forced.status == 0, "\(forced)")
        #expect(ws.read("data/a.txt") == "one\n")
        #expect(try ws.status().unstaged.isEmpty)
    }

    @Test("an untracked file in the way blocks checkout; an untracked directory too")
    func untrackedInTheWay() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/a.txt", "a\n")
        try ws.ok("add", "data")
        let small = try ws.writeTree()
        try ws.write("data/new.txt", "from the tree\n")
        try ws.write("data/newdir/x.txt", "x\n")
        try ws.ok("add", "data")
        let big = try ws.writeTree()

        try ws.ok("checkout", small)
        #expect(!FS.exists(ws.path("data/new.txt")), "checkout must remove files not in the target tree")
        #expect(!FS.exists(ws.path("data/newdir")), "checkout must remove emptied directories")
        #expect(try ws.status().stagedPaths == ["data/a.txt"])

        try ws.write("data/new.txt", "mine, untracked\n")
        let blocked = try ws.run("checkout", big)
        #expect(blocked.status == 5, "\(blocked)")
        #expect(blocked.stderr.contains("data/new.txt"), "\(blocked.stderr)")
        #expect(ws.read("data/new.txt") == "mine, untracked\n")
        #expect(!FS.exists(ws.path("data/newdir/x.txt")), "nothing may be written when checkout is refused")

        // An untracked file identical to the tree's does not block.
        try ws.write("data/new.txt", "from the tree\n")
        let same = try ws.run("checkout", big)
        #expect(same.status == 0, "\(same)")
        #expect(ws.read("data/newdir/x.txt") == "x\n")

        // A directory where the tree has a file.
        try ws.ok("checkout", small)
        try ws.write("data/new.txt/inner.txt", "a directory in the way\n")
        let dir = try ws.run("checkout", big)
        #expect(dir.status == 5, "\(dir)")
        #expect(ws.read("data/new.txt/inner.txt") == "a directory in the way\n")

        // --force replaces the untracked file (the directory case is not forced: it would delete data).
        try FS.remove(ws.path("data/new.txt"))
        try ws.write("data/new.txt", "mine again\n")
        let forced = try ws.run("checkout", "--force", big)
        #expect(forced.status == 0, "\(forced)")
        #expect(ws.read("data/new.txt") == "from the tree\n")
    }

    @Test("a symlinked directory in the workspace makes checkout fail with exit 6, writing nothing outside")
    func symlinkedDirectory() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let outside = try TempDir(prefix: "mlstore-e2e-outside")
        defer { outside.remove() }
        try ws.write("data/x.bin", "payload\n")
        try ws.write("data/sub/y.bin", "payload 2\n")
        try ws.ok("add", "data")
        let tree = try ws.writeTree()

        try FS.remove(ws.path("data"))
        try FS.symlink(ws.path("data"), to: outside.path)

        for args in [["checkout", tree], ["checkout", "--force", tree], ["checkout", tree, "--", "data/x.bin"], ["checkout", "--", "data/x.bin"]] {
            let r = try ws.run(args)
            #expect(r.status == 6, "mlstore \(args.joined(separator: " ")): \(r)")
            #expect(r.stderr.contains("data"), "\(r.stderr)")
            let leaked = (try? FileManager.default.contentsOfDirectory(atPath: outside.path)) ?? ["<unreadable>"]
            #expect(leaked.isEmpty, "mlstore \(args.joined(separator: " ")) wrote outside the workspace: \(leaked)")
        }
        // The symlink itself is left alone.
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: ws.path("data"))) == outside.path)

        // A nested symlinked directory too.
        try FS.remove(ws.path("data"))
        try FS.mkdirs(ws.path("data"))
        try FS.symlink(ws.path("data/sub"), to: outside.path)
        let nested = try ws.run("checkout", "--force", tree)
        #expect(nested.status == 6, "\(nested)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: outside.path)) ?? []).isEmpty)
    }

    @Test("adding a path through a symlinked directory is refused")
    func addThroughSymlink() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let outside = try TempDir(prefix: "mlstore-e2e-outside")
        defer { outside.remove() }
        try FS.write(outside.path + "/x", "secret outside\n")
        try FS.symlink(ws.path("data"), to: outside.path)

        let r = try ws.run("add", "data/x")
        #expect(r.status == 6, "\(r)")
        #expect(r.stderr.contains("symlink"), "\(r.stderr)")
        #expect(try ws.status().staged.isEmpty)

        // Adding the symlink itself stores the link, not what it points to.
        let link = try ws.run("add", "data", "--json")
        #expect(link.status == 0, "\(link)")
        let tree = try ws.writeTree()
        let rows = try ws.lsTree(tree)
        #expect(rows.count == 1 && rows.first?["kind"] as? String == "symlink", "\(rows)")
        #expect(rows.first?["path"] as? String == "data")
    }
}
