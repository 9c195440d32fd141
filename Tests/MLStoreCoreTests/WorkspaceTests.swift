import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct WorkspaceTests {
    @Test func touchWithoutChangeIsClean() throws {
        let f = try Fixture("touch")
        try TestFiles.write(f.path("data/a.csv"), "1,2,3\n")
        try TestFiles.write(f.path("data/b.bin"), size: 600_000, seed: 1)
        _ = try f.ws.add(["data"])
        #expect(try f.ws.status().unstaged.isEmpty)
        usleep(20_000)
        #expect(utime(f.path("data/a.csv"), nil) == 0)
        #expect(utime(f.path("data/b.bin"), nil) == 0)
        let st = try f.ws.status()
        #expect(st.unstaged.isEmpty, "\(st.unstaged)")
        #expect(st.untracked.isEmpty)
        // The stat cache was refreshed: the entry now matches the file's new mtime.
        let e = try #require(try WorkspaceIndex.load(f.repo)["data/a.csv"])
        #expect(e.mtimeNs == (try Sys.lstat(f.path("data/a.csv"))).mtimeNs)
    }

    @Test func statusReportsModifiedDeletedUntracked() throws {
        let f = try Fixture("status")
        try TestFiles.write(f.path("data/a.csv"), "1,2,3\n")
        try TestFiles.write(f.path("data/b.csv"), "4,5,6\n")
        try TestFiles.write(f.path("code.py"), "print(1)\n")
        _ = try f.ws.add(["data"])
        try TestFiles.write(f.path("data/a.csv"), "1,2,4\n")  // same size, same second: racy rule must catch it
        try Sys.unlink(f.path("data/b.csv"))
        try TestFiles.write(f.path("data/new/c.csv"), "x\n")
        let st = try f.ws.status()
        #expect(st.unstaged == [.init(path: "data/a.csv", change: .modified), .init(path: "data/b.csv", change: .deleted)])
        #expect(st.untracked == ["data/new/"])  // code.py is outside tracked directories
        #expect(try f.ws.status(.init(allUntracked: true)).untracked == ["code.py", "data/new/"])
        #expect(st.staged.map(\.path) == ["data/a.csv", "data/b.csv"])
        // Adding the directory again stages the change, the deletion and the new file.
        let r = try f.ws.add(["data"])
        #expect(r.updated == ["data/a.csv"])
        #expect(r.removed == ["data/b.csv"])
        #expect(r.added == ["data/new/c.csv"])
        #expect(try f.ws.status().unstaged.isEmpty)
    }

    @Test func checkoutRestoresModesAndSymlinks() throws {
        let f = try Fixture("modes")
        try TestFiles.write(f.path("bin/run.sh"), "#!/bin/sh\necho hi\n")
        chmod(f.path("bin/run.sh"), 0o755)
        try TestFiles.write(f.path("bin/readme.txt"), "text\n")
        #expect(symlink("run.sh", f.path("bin/latest")) == 0)
        #expect(symlink("../bin", f.path("alias")) == 0)
        _ = try f.ws.add(["bin", "alias"])
        let tree = try f.ws.writeTree()
        TempDir.removeTree(f.path("bin"))
        try Sys.unlink(f.path("alias"))
        let r = try f.ws.checkout(tree: tree)
        #expect(r.written.count == 4)
        #expect(try Sys.lstat(f.path("bin/run.sh")).mode & 0o111 != 0)
        #expect(try Sys.lstat(f.path("bin/readme.txt")).mode & 0o111 == 0)
        #expect(try Sys.lstat(f.path("bin/latest")).type == .symlink)
        #expect(try Sys.readlink(f.path("bin/latest")) == "run.sh")
        #expect(try Sys.readlink(f.path("alias")) == "../bin")
        #expect(try f.ws.status().unstaged.isEmpty)
    }

    @Test func checkoutOfTreeRemovesFilesItLacksAndRefusesToLoseWork() throws {
        let f = try Fixture("switch")
        try TestFiles.write(f.path("d/a"), "a1")
        _ = try f.ws.add(["d"])
        let t1 = try f.ws.writeTree()
        try TestFiles.write(f.path("d/a"), "a2")
        try TestFiles.write(f.path("d/b"), "b2")
        _ = try f.ws.add(["d"])
        let t2 = try f.ws.writeTree()
        _ = try f.ws.checkout(tree: t1)
        #expect(try Sys.readFile(f.path("d/a")) == Array("a1".utf8))
        #expect(try Sys.lstatIfExists(f.path("d/b")) == nil)
        try TestFiles.write(f.path("d/a"), "local edit")
        #expect { _ = try f.ws.checkout(tree: t2) } throws: { ($0 as? MLStoreError)?.code == .conflict }
        #expect(try Sys.readFile(f.path("d/a")) == Array("local edit".utf8))
        _ = try f.ws.checkout(tree: t2, options: .init(force: true))
        #expect(try Sys.readFile(f.path("d/a")) == Array("a2".utf8))
    }

    /// Writes a tree payload straight into the store, bypassing Tree's validation (as a hostile remote could).
    func rawTree(_ f: Fixture, _ entries: [(String, String, ObjectID)]) throws -> ObjectID {
        var payload: [UInt8] = []
        for (header, name, id) in entries {
            payload += Array("\(header) \(name)".utf8) + [0]
            id.append(to: &payload)
        }
        return try f.repo.objects.write(kind: .tree, payload: payload)
    }

    @Test(arguments: ["..", ".mlstore", "a/b"])
    func maliciousTreeIsRejectedBeforeAnyWrite(name: String) throws {
        let f = try Fixture("evil")
        let blob = try f.repo.objects.write(kind: .blob, payload: Array("pwned".utf8))
        let good = try rawTree(f, [("f 644 5", "aaa-first", blob)])
        let evil = try rawTree(f, [("d 755 5", "aaa", good), ("f 644 5", name, blob)])
        #expect { _ = try f.ws.checkout(tree: evil) } throws: { e in
            let code = (e as? MLStoreError)?.code
            return code == .corrupt || code == .unsafePath
        }
        // Nothing at all was written, not even the harmless entry listed first.
        #expect(try Sys.lstatIfExists(f.path("aaa")) == nil)
        #expect(try Sys.lstatIfExists(f.dir.path + "/../pwned") == nil)
    }

    @Test func checkoutNeverWritesThroughASymlink() throws {
        let f = try Fixture("symlink-escape")
        let outside = TempDir("outside")
        try TestFiles.write(f.path("data/x.csv"), "1\n")
        _ = try f.ws.add(["data"])
        let tree = try f.ws.writeTree()
        TempDir.removeTree(f.path("data"))
        #expect(symlink(outside.path, f.path("data")) == 0)
        #expect { _ = try f.ws.checkout(tree: tree, options: .init(force: true)) } throws: { ($0 as? MLStoreError)?.code == .unsafePath }
        #expect(try Sys.listDirectory(outside.path).isEmpty)
        // add through the symlinked directory is refused too.
        try TestFiles.write(outside.file("y.csv"), "2\n")
        #expect { _ = try f.ws.add(["data/y.csv"]) } throws: { ($0 as? MLStoreError)?.code == .unsafePath }
    }

    @Test func addSkipsUnchangedFilesWithoutReading() throws {
        let f = try Fixture("statcache")
        for i in 0..<50 { try TestFiles.write(f.path("d/\(i).txt"), "file \(i)\n") }
        _ = try f.ws.add(["d"])
        usleep(20_000)
        let again = try f.ws.add(["d"])
        #expect(again.unchanged == 50)
        #expect(again.hashedBytes == 0)
    }

    @Test func gitignoreIsUpdatedInsideGit() throws {
        let f = try Fixture("gitignore")
        #expect(shell("git init -q .", cwd: f.dir.path).status == 0)
        try TestFiles.write(f.path("data/a.csv"), "1\n")
        try TestFiles.write(f.path("model.bin"), "m\n")
        let r = try f.ws.add(["data", "model.bin"])
        #expect(r.gitignoreUpdated == ["/.mlstore/", "/data/", "/model.bin"])
        let again = try f.ws.add(["data"])
        #expect(again.gitignoreUpdated.isEmpty)
        let text = String(decoding: try Sys.readFile(f.path(".gitignore")), as: UTF8.self)
        #expect(text == "/.mlstore/\n/data/\n/model.bin\n")
        #expect(shell("git status --porcelain", cwd: f.dir.path).output == "?? .gitignore\n")
    }
}

@Suite struct IgnoreTests {
    @Test(arguments: [
        ("*.tmp", "a/b/x.tmp", false, true),
        ("*.tmp", "x.tmpl", false, false),
        ("/root.txt", "root.txt", false, true),
        ("/root.txt", "sub/root.txt", false, false),
        ("cache/", "a/cache", true, true),
        ("cache/", "a/cache", false, false),
        ("logs/**/*.log", "logs/a/b/c.log", false, true),
        ("logs/**/*.log", "logs/c.log", false, true),
        ("**/build", "x/y/build", true, true),
        ("data/*.csv", "data/a.csv", false, true),
        ("data/*.csv", "data/sub/a.csv", false, false),
        ("file[0-9].txt", "file7.txt", false, true),
        ("file[!0-9].txt", "file7.txt", false, false),
        ("?.bin", "a.bin", false, true),
    ])
    func patterns(_ pattern: String, _ path: String, _ isDir: Bool, _ expected: Bool) throws {
        let dir = TempDir("ignore")
        try TestFiles.write(dir.file(".mlstoreignore"), pattern + "\n")
        let rules = IgnoreRules(workspaceRoot: dir.path)
        #expect(rules.isIgnored(path, isDirectory: isDir) == expected)
    }

    @Test func negationAndNestedFiles() throws {
        let dir = TempDir("ignore2")
        try TestFiles.write(dir.file(".mlstoreignore"), "# comment\n*.tmp\n!keep.tmp\n")
        try TestFiles.write(dir.file("sub/.mlstoreignore"), "local.txt\n")
        let rules = IgnoreRules(workspaceRoot: dir.path)
        #expect(rules.isIgnored("a.tmp", isDirectory: false))
        #expect(!rules.isIgnored("keep.tmp", isDirectory: false))
        #expect(rules.isIgnored("sub/local.txt", isDirectory: false))
        #expect(!rules.isIgnored("local.txt", isDirectory: false))
        #expect(rules.isIgnored(".mlstore", isDirectory: true))
        #expect(rules.isIgnored(".git", isDirectory: true))
    }
}
