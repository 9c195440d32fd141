import Foundation
import Testing

@Suite("ignore files")
struct IgnoreTests {
    @Test(".mlstoreignore patterns are honored by add <dir>; explicit ignored paths need --force")
    func mlstoreignore() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write(".mlstoreignore", "# scratch files\n*.tmp\ncache/\n!keep.tmp\n/rootonly.txt\n")
        try ws.write("data/a.txt", "a\n")
        try ws.write("data/scratch.tmp", "tmp\n")
        try ws.write("data/deep/other.tmp", "tmp\n")
        try ws.write("data/keep.tmp", "kept by negation\n")
        try ws.write("data/cache/blob.bin", "cached\n")
        try ws.write("data/deep/cache/x.bin", "cached too\n")
        try ws.write("data/notdir/cache", "a file named cache is not a directory\n")
        try ws.write("data/rootonly.txt", "anchored pattern only matches at the root\n")
        try ws.write("rootonly.txt", "ignored at the root\n")
        try ws.write("cache/top.bin", "ignored cache at the root\n")

        let add = try ws.run("add", "data")
        #expect(add.status == 0, "\(add)")
        let staged = Set(try ws.status().stagedPaths)
        #expect(
            staged == ["data/a.txt", "data/keep.tmp", "data/notdir/cache", "data/rootonly.txt"],
            "staged: \(staged.sorted())")
        // Ignored files inside the tracked directory are not reported as untracked either.
        #expect(try ws.status().untracked.isEmpty)

        // add . applies the same rules at the root.
        let addAll = try ws.run("add", ".")
        #expect(addAll.status == 0, "\(addAll)")
        let all = Set(try ws.status().stagedPaths)
        #expect(!all.contains("rootonly.txt"), "/rootonly.txt must be ignored: \(all.sorted())")
        #expect(!all.contains("cache/top.bin"), "cache/ must be ignored: \(all.sorted())")
        #expect(!all.contains("data/scratch.tmp") && !all.contains("data/deep/other.tmp"))
        #expect(all.contains(".mlstoreignore"))

        // Explicitly naming an ignored path: usage error (2) with a hint, nothing staged.
        for p in ["rootonly.txt", "data/scratch.tmp", "data/cache/blob.bin", "data/cache", "cache"] {
            let r = try ws.run("add", p)
            #expect(r.status == 2, "add \(p): \(r)")
            #expect(r.stderr.contains("ignored") && r.stderr.contains("--force"), "add \(p): \(r.stderr)")
        }
        #expect(!Set(try ws.status().stagedPaths).contains("rootonly.txt"))

        // --force adds them.
        let forced = try ws.run("add", "--force", "rootonly.txt", "data/scratch.tmp")
        #expect(forced.status == 0, "\(forced)")
        let after = Set(try ws.status().stagedPaths)
        #expect(after.contains("rootonly.txt") && after.contains("data/scratch.tmp"), "\(after.sorted())")
    }

    @Test("an .mlstoreignore in a subdirectory applies below it")
    func nestedIgnoreFile() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/.mlstoreignore", "*.log\n/local.txt\n")
        try ws.write("data/a.log", "log\n")
        try ws.write("data/sub/b.log", "log\n")
        try ws.write("data/local.txt", "anchored to data/\n")
        try ws.write("data/sub/local.txt", "not anchored here\n")
        try ws.write("other/c.log", "not below data/\n")
        try ws.ok("add", "data", "other")
        let staged = Set(try ws.status().stagedPaths)
        #expect(staged == ["data/.mlstoreignore", "data/sub/local.txt", "other/c.log"], "\(staged.sorted())")
    }
}

@Suite("gitignore integration")
struct GitignoreTests {
    @Test("inside a git work tree add writes .mlstore/ and the added paths to .gitignore")
    func insideGit() throws {
        try #require(CLI.hasGit, "git is needed for this test")
        let ws = try Workspace(git: true)
        defer { ws.remove() }
        try ws.write(".gitignore", "*.pyc")  // no trailing newline: mlstore must add one
        try ws.write("data/train/x.bin", "x\n")
        try ws.write("model.bin", "weights\n")
        try ws.write("src/code.py", "print(1)\n")

        try ws.ok("add", "data", "model.bin")
        let lines = (ws.read(".gitignore") ?? "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "*.pyc", "\(lines)")
        #expect(lines.contains("/.mlstore/"), "\(lines)")
        #expect(lines.contains("/data/"), "\(lines)")
        #expect(lines.contains("/model.bin"), "\(lines)")
        #expect((ws.read(".gitignore") ?? "").hasSuffix("\n"))

        // Adding again does not duplicate lines.
        try ws.write("data/train/y.bin", "y\n")
        try ws.ok("add", "data", "model.bin")
        let again = (ws.read(".gitignore") ?? "").split(separator: "\n").map(String.init)
        #expect(again.filter { $0 == "/data/" }.count == 1 && again.filter { $0 == "/.mlstore/" }.count == 1, "\(again)")

        // --no-gitignore leaves it alone.
        try ws.write("extra.bin", "e\n")
        let before = ws.read(".gitignore")
        try ws.ok("add", "--no-gitignore", "extra.bin")
        #expect(ws.read(".gitignore") == before)

        // git itself now sees only the code and .gitignore (and extra.bin, which was not ignored).
        let git = try CLI.run("git", ["status", "--porcelain", "--untracked-files=all"], in: ws.root)
        #expect(git.status == 0, "\(git)")
        let seen = Set(git.lines.map { String($0.dropFirst(3)) })
        #expect(seen == [".gitignore", "src/code.py", "extra.bin"], "git status: \(git.stdout)")
    }

    @Test("a nested subdirectory workspace in a git repo is detected too")
    func gitAbove() throws {
        try #require(CLI.hasGit)
        let tmp = try TempDir()
        defer { tmp.remove() }
        #expect(try CLI.run("git", ["-c", "init.defaultBranch=main", "init", "-q", "."], in: tmp.path).status == 0)
        try FS.write(tmp.path + "/ml/data/f.bin", "f\n")
        #expect(try CLI.mlstore(["init", "ml"], in: tmp.path).status == 0)
        let add = try CLI.mlstore(["add", "data"], in: tmp.path + "/ml")
        #expect(add.status == 0, "\(add)")
        let text = FS.readText(tmp.path + "/ml/.gitignore") ?? ""
        #expect(text.contains("/.mlstore/") && text.contains("/data/"), "\(text)")
    }

    @Test("outside git no .gitignore is created")
    func outsideGit() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        var dir = ws.root
        while dir != "/" {
            try #require(!FS.exists(dir + "/.git"), "the temp dir is inside a git work tree (\(dir)); set TMPDIR elsewhere")
            dir = (dir as NSString).deletingLastPathComponent
        }
        try ws.write("data/x.bin", "x\n")
        let add = try ws.run("add", "data", "--json")
        #expect(add.status == 0, "\(add)")
        #expect(!FS.exists(ws.path(".gitignore")))
        let report = try JSONSerialization.jsonObject(with: add.stdoutData) as? [String: Any]
        #expect((report?["gitignoreUpdated"] as? [String])?.isEmpty == true, "\(add.stdout)")
    }
}
