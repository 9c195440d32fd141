import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("status")
struct StatusTests {
    @Test("touch is not a change; content, mode and deletion are; untracked files are listed")
    func changes() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("data/a.txt", "aaaa\n")
        try ws.write("data/b.txt", "bbbb\n")
        try ws.write("data/c.txt", "cccc\n")
        try ws.write("data/d.txt", "dddd\n")
        try ws.write("data/sub/e.txt", "eeee\n")
        try ws.write("notes.txt", "outside any tracked directory\n")
        try ws.ok("add", "data")

        var st = try ws.status()
        #expect(st.unstaged.isEmpty && st.untracked.isEmpty, "\(st)")
        #expect(st.stagedPaths == ["data/a.txt", "data/b.txt", "data/c.txt", "data/d.txt", "data/sub/e.txt"])

        // touch (new mtime, same bytes): not a change, now or on the next run.
        let touch = try CLI.run("touch", [ws.path("data/a.txt")], in: ws.root)
        #expect(touch.status == 0)
        try FS.setMtime(ws.path("data/b.txt"), Date(timeIntervalSince1970: 1_000_000_000))
        st = try ws.status()
        #expect(st.unstaged.isEmpty, "touch reported as change: \(st.unstaged)")
        st = try ws.status()
        #expect(st.unstaged.isEmpty, "second status after touch: \(st.unstaged)")

        // Same size, different content, original mtime restored: still modified.
        let mtime = try #require(try FileManager.default.attributesOfItem(atPath: ws.path("data/c.txt"))[.modificationDate] as? Date)
        try ws.write("data/c.txt", "CCCC\n")
        try FS.setMtime(ws.path("data/c.txt"), mtime)
        // Mode change only.
        #expect(chmod(ws.path("data/d.txt"), 0o755) == 0)
        // Deleted, and a new file inside the tracked directory (in a new subdirectory too).
        try FS.remove(ws.path("data/sub/e.txt"))
        try ws.write("data/new.txt", "new\n")
        try ws.write("data/fresh/x.txt", "x\n")

        st = try ws.status()
        #expect(st.unstagedChange("data/a.txt") == nil)
        #expect(st.unstagedChange("data/b.txt") == nil)
        #expect(st.unstagedChange("data/c.txt") == "modified", "\(st.unstaged)")
        #expect(st.unstagedChange("data/d.txt") == "modified", "mode 644 -> 755: \(st.unstaged)")
        #expect(st.unstagedChange("data/sub/e.txt") == "deleted", "\(st.unstaged)")
        #expect(st.unstaged.count == 3, "\(st.unstaged)")
        #expect(st.untracked == ["data/fresh/", "data/new.txt"], "untracked: \(st.untracked)")
        #expect(!st.untracked.contains("notes.txt"), "files outside tracked dirs need --untracked")

        // --untracked lists everything, including files outside tracked directories.
        let all = try ws.status("--untracked")
        #expect(all.untracked.contains("notes.txt"), "\(all.untracked)")
        #expect(all.untracked.contains("data/new.txt"), "\(all.untracked)")
        #expect(!all.untracked.contains { $0.hasPrefix(".mlstore") }, "\(all.untracked)")

        // A symlink replacing a file is a type change.
        try FS.remove(ws.path("data/a.txt"))
        try FS.symlink(ws.path("data/a.txt"), to: "b.txt")
        st = try ws.status()
        #expect(st.unstagedChange("data/a.txt") == "type-changed", "\(st.unstaged)")

        // Human output names the same things.
        let text = try ws.run("status")
        #expect(text.status == 0)
        #expect(text.stdout.contains("data/c.txt") && text.stdout.contains("data/sub/e.txt") && text.stdout.contains("data/new.txt"))

        // Adding the directory again stages everything; status is then clean of unstaged changes.
        try ws.ok("add", "data")
        st = try ws.status()
        #expect(st.unstaged.isEmpty && st.untracked.isEmpty, "\(st)")
        #expect(!st.stagedPaths.contains("data/sub/e.txt"), "a deleted file must leave the index when its dir is re-added")
        #expect(st.stagedPaths.contains("data/fresh/x.txt"))
    }

    @Test("JSON output of a fresh store is empty and parses")
    func emptyJSON() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let st = try ws.status()
        #expect(st.staged.isEmpty && st.unstaged.isEmpty && st.untracked.isEmpty)
        let text = try ws.run("status")
        #expect(text.status == 0 && text.stdout.contains("clean"), "\(text)")
    }
}

@Suite("store discovery")
struct DiscoveryTests {
    @Test("commands work from a subdirectory and with -C; outside a store they exit 3 with a hint")
    func discovery() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("proj/sub/deeper/file.txt", "hello\n")

        // Relative paths are taken from the current directory, like git.
        let add = try ws.run(["add", "file.txt"], in: "proj/sub/deeper")
        #expect(add.status == 0, "\(add)")
        let fromSub = try ws.run(["status", "--json"], in: "proj/sub")
        #expect(fromSub.status == 0, "\(fromSub)")
        #expect(try StatusJSON.parse(fromSub).stagedPaths == ["proj/sub/deeper/file.txt"])

        // -C from an unrelated directory, and repeated -C.
        let outside = try TempDir()
        defer { outside.remove() }
        let c = try CLI.mlstore(["-C", ws.root, "status", "--json"], in: outside.path)
        #expect(c.status == 0, "\(c)")
        #expect(try StatusJSON.parse(c).stagedPaths == ["proj/sub/deeper/file.txt"])
        let c2 = try CLI.mlstore(["-C", ws.root, "-C", "proj/sub", "write-tree"], in: outside.path)
        #expect(c2.status == 0 && isObjectID(c2.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(c2)")

        // Outside any store.
        for args in [["status"], ["add", "x"], ["write-tree"], ["fsck"]] {
            let r = try CLI.mlstore(args, in: outside.path)
            #expect(r.status == 3, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("error: "), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("hint:") && r.stderr.contains("mlstore init"), "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        let badC = try CLI.mlstore(["-C", outside.path + "/missing", "status"], in: outside.path)
        #expect(badC.status == 3, "\(badC)")
        #expect(!badC.stderr.isEmpty)

        // init of a nested directory with -C, then re-init is harmless.
        let initC = try CLI.mlstore(["-C", outside.path, "init", "inner"], in: "/")
        #expect(initC.status == 0, "\(initC)")
        #expect(FS.exists(outside.path + "/inner/.mlstore/format"))
        let reinit = try CLI.mlstore(["init"], in: outside.path + "/inner")
        #expect(reinit.status == 0 && reinit.stdout.contains("Reinitialized"), "\(reinit)")
    }

    @Test("paths outside the workspace or inside .mlstore are refused")
    func outsidePaths() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let other = try TempDir()
        defer { other.remove() }
        try FS.write(other.path + "/f.txt", "f\n")
        let r = try ws.run("add", other.path + "/f.txt")
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("outside the workspace"), "\(r.stderr)")
        let s = try ws.run("add", ".mlstore/format")
        #expect(s.status == 2, "\(s)")
        #expect(!s.stderr.isEmpty)
    }
}
