import Foundation
import MLStoreBasics
import Testing

@Suite("history: revisions, tags, branches, switch, checkout, reflog")
struct HistoryTests {
    /// Five commits c0…c4 changing f.txt, at pinned times.
    func fiveCommits(_ ws: Workspace) throws -> [String] {
        var ids: [String] = []
        for i in 0..<5 {
            try ws.write("f.txt", "version \(i)\n")
            try ws.ok("add", "f.txt")
            try ws.ok(env: author(at: 1_730_000_000 + i * 60), "commit", "-m", "c\(i)", "--no-code", "--no-env")
            ids.append(try ws.commitID())
        }
        return ids
    }

    @Test("revisions: HEAD~N, HEAD^, branch and ref names, tags (annotated and lightweight), prefixes, errors")
    func revisions() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let c = try fiveCommits(ws)
        let cases: [(String, String)] = [
            ("HEAD", c[4]), ("@", c[4]), ("HEAD~0", c[4]), ("HEAD~1", c[3]), ("HEAD^", c[3]), ("HEAD^1", c[3]), ("HEAD~4", c[0]),
            ("HEAD^^", c[2]), ("HEAD~1^", c[2]), ("HEAD~2~1", c[1]), ("main", c[4]), ("main~3", c[1]), ("refs/heads/main", c[4]),
            (c[2], c[2]), (String(c[1].prefix(16)), c[1]), (String(c[3].prefix(12)) + "~1", c[2]),
        ]
        for (rev, want) in cases {
            let r = try ws.run("show", rev, "--json")
            #expect(r.status == 0, "show \(rev): \(r)")
            #expect((try? JSONTools.parse(r.stdoutData) as? [String: Any])?[string: "id"] == want, "show \(rev) should be \(want)")
        }
        #expect(try #require(try ws.json("log", "HEAD~2") as? [[String: Any]]).map { $0[string: "id"] ?? "" } == [c[2], c[1], c[0]])
        #expect(try #require(try ws.json("log", "-n", "2") as? [[String: Any]]).count == 2)

        // Tags: lightweight (the ref holds the commit) and annotated (the ref holds a tag object).
        try ws.ok(env: author(at: 1_730_001_000), "tag", "light", "HEAD~3")
        try ws.ok(env: author(at: 1_730_001_000), "tag", "ann", c[2], "-m", "release candidate")
        #expect(try ws.commitID("light") == c[1])
        #expect(try ws.commitID("ann") == c[2])
        #expect(try ws.commitID("ann~1") == c[1])
        #expect(try ws.commitID("refs/tags/ann") == c[2])
        let tags = try #require(try ws.json("tag", "--list") as? [[String: Any]])
        #expect(tags.map { $0[string: "name"] ?? "" } == ["ann", "light"])
        let tagObject = try #require(tags.first?[string: "object"])
        #expect(tagObject != c[2] && tags.first?[string: "commit"] == c[2], "\(tags)")
        #expect(tags.last?[string: "object"] == c[1] && tags.last?[string: "commit"] == c[1], "\(tags)")
        #expect(ws.read(".mlstore/refs/tags/ann") == tagObject + "\n")
        #expect(try ws.ok("cat-object", "-t", tagObject) == "tag\n")
        #expect(try ws.ok("cat-object", "-p", tagObject)
                == "object \(c[2])\ntype commit\ntag ann\ntagger Ada Lovelace <ada@example.com> 1730001000 +0000\n\nrelease candidate\n")
        let showTag = try ws.ok("show", "ann")
        #expect(showTag.hasPrefix("tag ann\nTagger: Ada Lovelace <ada@example.com>\n") && showTag.contains("release candidate")
                && showTag.contains("commit \(c[2])"), "\(showTag)")
        // Tagging a tag names its commit; existing names and bad names are refused.
        try ws.ok("tag", "ann2", "ann")
        #expect(try ws.commitID("ann2") == c[2] && ws.read(".mlstore/refs/tags/ann2") == c[2] + "\n")
        let dup = try ws.run("tag", "light")
        #expect(dup.status == 5 && dup.stderr.contains("already exists"), "\(dup)")
        #expect(try ws.commitID("light") == c[1], "a refused tag must not move")
        for bad in ["a..b", "x.lock", "sp ace", "a~1", ".hidden", "end."] {
            let r = try ws.run("tag", bad)
            #expect(r.status == 2, "tag \(bad.debugDescription): \(r)")
        }
        try ws.ok("tag", "--delete", "light")
        #expect(try ws.run("show", "light").status == 3)
        #expect(try ws.run("tag", "--delete", "light").status == 3)
        #expect(try #require(try ws.json("tag", "--list") as? [[String: Any]]).map { $0[string: "name"] ?? "" } == ["ann", "ann2"])

        // Errors: unknown names, past the root, missing parents, no such stage.
        let errors: [([String], Int32, String)] = [
            (["show", "nosuch"], 3, "nosuch"),
            (["show", "HEAD~99"], 3, "HEAD~99"),
            (["show", "HEAD~5"], 3, "HEAD~5"),
            (["show", "HEAD^2"], 3, "HEAD^2"),
            (["show", "ffff0000ffff"], 3, "ffff0000ffff"),
            (["log", "nosuch"], 3, "nosuch"),
            (["diff", "HEAD", "nosuch"], 3, "nosuch"),
            (["show", "clf@production"], 3, "clf"),
            (["show", "clf@Prod"], 2, "Prod"),
            (["show", try #require(try ws.showJSON()[string: "tree"])], 2, "tree"),
        ]
        for (args, status, mentions) in errors {
            let r = try ws.run(args)
            #expect(r.status == status, "\(args): \(r)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains(mentions) && r.stdout.isEmpty, "\(args): \(r)")
        }
    }

    @Test("an ambiguous prefix shared by a commit and a blob is a usage error listing both; a longer one resolves")
    func ambiguousCommitPrefix() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let commits = try fiveCommits(ws)
        let target = commits[3]
        let prefix = String(target.prefix(4))
        // Find a small content whose blob id starts with the commit's first 4 hex digits (~65k hashes).
        var found: (text: String, id: String)?
        for i in 0..<3_000_000 {
            let text = "blob-\(i)\n"
            let id = hex(MLStoreBasics.SHA256.hash(Array("blob \(text.utf8.count)\0\(text)".utf8)))
            if id.hasPrefix(prefix) {
                found = (text, id)
                break
            }
        }
        let (text, blob) = try #require(found)
        try ws.write("collide.txt", text)
        #expect(try ws.ok("hash-object", "-w", "collide.txt") == blob + "\n")

        for args in [["show", prefix], ["log", prefix], ["diff", prefix, "HEAD"], ["cat-object", "-t", prefix]] {
            let r = try ws.run(args)
            #expect(r.status == 2, "\(args): \(r)")
            #expect(r.stderr.contains("ambiguous") && r.stderr.contains(target) && r.stderr.contains(blob), "\(args): \(r.stderr)")
        }
        // The shortest prefix that tells them apart resolves to the commit.
        let common = zip(target, blob).prefix { $0 == $1 }.count
        let unique = String(target.prefix(common + 1))
        #expect(try ws.commitID(unique) == target)
        #expect(try ws.commitID(unique + "~1") == commits[2])
        // Prefixes shorter than 4 hex digits are not ids.
        let short = try ws.run("show", String(target.prefix(3)))
        #expect(short.status == 3 || short.status == 2, "\(short)")
    }

    @Test("branches: create, switch, commit, switch back restores files; detached checkout; reflog lists every move")
    func branchesAndCheckout() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        var clock = 1_740_000_000
        func commit(_ m: String) throws -> String {
            clock += 60
            try ws.ok(env: author(at: clock), "commit", "-m", m, "--no-code", "--no-env")
            return try ws.commitID()
        }
        func headLine() throws -> String { try ws.ok("status").split(separator: "\n").first.map(String.init) ?? "" }
        try ws.write("f.txt", "main 1\n")
        try ws.write("data/a.csv", "a\n")
        try ws.ok("add", "f.txt", "data")
        let m1 = try commit("main 1")
        #expect(try headLine() == "On branch main")

        try ws.ok(env: author(at: clock), "branch", "exp")
        let branches = try #require(try ws.json("branch") as? [[String: Any]])
        // "current" is a JSON boolean.
        #expect(JSONTools.equal(branches, #"[{"name": "exp", "commit": "\#(m1)", "current": false}, {"name": "main", "commit": "\#(m1)", "current": true}]"#),
                "\(JSONTools.canonical(branches))")
        try ws.ok("switch", "exp")
        #expect(try headLine() == "On branch exp")
        try ws.write("f.txt", "exp\n")
        try ws.write("g.txt", "only on exp\n")
        try ws.ok("add", "f.txt", "g.txt")
        let e1 = try commit("exp 1")
        #expect(try ws.commitID("exp") == e1 && (try ws.commitID("main")) == m1)

        // Switching back restores main's files and removes exp's.
        let back = try ws.ok("switch", "main")
        #expect(back.contains("Switched to branch 'main'"), "\(back)")
        #expect(ws.read("f.txt") == "main 1\n" && !FS.exists(ws.path("g.txt")) && ws.read("data/a.csv") == "a\n")
        #expect(try ws.status().staged.isEmpty && (try ws.status().unstaged.isEmpty))
        try ws.write("data/b.csv", "b\n")
        try ws.ok("add", "data")
        let m2 = try commit("main 2")
        try ws.ok("switch", "exp")
        #expect(ws.read("f.txt") == "exp\n" && ws.read("g.txt") == "only on exp\n" && !FS.exists(ws.path("data/b.csv")))

        // Branch errors.
        let delCurrent = try ws.run("branch", "-d", "exp")
        #expect(delCurrent.status == 5 && delCurrent.stderr.contains("current branch"), "\(delCurrent)")
        #expect(try ws.run("branch", "exp").status == 5)
        #expect(try ws.run("switch", "nosuch").status == 3)
        #expect(try ws.run("switch", "-c", "exp").status == 5)
        #expect(try ws.run("branch", "bad..name").status == 2)
        #expect(try ws.run("branch", "-d", "nosuch").status == 3)
        // Local edits that a switch would overwrite stop it (exit 5) unless --force.
        try ws.write("f.txt", "local edit\n")
        let refused = try ws.run("switch", "main")
        #expect(refused.status == 5, "\(refused)")
        #expect(try headLine() == "On branch exp" && ws.read("f.txt") == "local edit\n")
        try ws.ok("switch", "main", "--force")
        #expect(try headLine() == "On branch main" && ws.read("f.txt") == "main 1\n")

        // switch -c at a start point.
        try ws.ok(env: author(at: clock), "switch", "-c", "feature", m1)
        #expect(try headLine() == "On branch feature")
        #expect(try ws.commitID("feature") == m1 && !FS.exists(ws.path("data/b.csv")))
        try ws.ok("switch", "main")

        // checkout of a commit detaches HEAD; a commit there moves only HEAD.
        let detach = try ws.ok("checkout", String(m1.prefix(12)))
        #expect(detach.contains("HEAD is now at \(m1.prefix(12)) (detached)"), "\(detach)")
        #expect(try headLine() == "HEAD detached at \(m1.prefix(12))")
        #expect(ws.read(".mlstore/HEAD") == m1 + "\n")
        #expect(!FS.exists(ws.path("data/b.csv")))
        #expect(try ws.ok("log", "--oneline", "-n", "1").contains("(HEAD, exp") == false)
        #expect(try ws.ok("log", "--oneline", "-n", "1").contains("HEAD"))
        try ws.write("h.txt", "detached work\n")
        try ws.ok("add", "h.txt")
        let d1 = try commit("detached 1")
        #expect(try headLine() == "HEAD detached at \(d1.prefix(12))")
        #expect(try ws.commitID("main") == m2 && (try ws.commitID("exp")) == e1)
        // A branch from the detached HEAD keeps the work.
        try ws.ok(env: author(at: clock), "branch", "rescue")
        #expect(try ws.commitID("rescue") == d1)
        let toMain = try ws.ok("checkout", "main")
        #expect(toMain.contains("Switched to branch 'main'"), "\(toMain)")
        #expect(try headLine() == "On branch main" && !FS.exists(ws.path("h.txt")) && ws.read("data/b.csv") == "b\n")

        // checkout of a tag and of model@stage detach at their commits.
        try ws.ok("tag", "v-exp", "exp")
        try ws.ok("checkout", "v-exp")
        #expect(try headLine() == "HEAD detached at \(e1.prefix(12))" && ws.read("g.txt") == "only on exp\n")
        try ws.ok("promote", "clf", m2, "--stage", "production", "-m", "ship")
        try ws.ok("checkout", "clf@production")
        #expect(try headLine() == "HEAD detached at \(m2.prefix(12))" && ws.read("data/b.csv") == "b\n" && !FS.exists(ws.path("g.txt")))
        try ws.ok("switch", "main")

        // Delete a branch that is not current.
        try ws.ok("branch", "-d", "feature")
        #expect(try ws.run("show", "feature").status == 3)

        // reflog: every move of HEAD, newest first.
        let reflog = try #require(try ws.json("reflog") as? [[String: Any]])
        let messages = reflog.map { $0[string: "message"] ?? "" }
        let expected = [
            "switch: moving from detached HEAD to main",
            "checkout: moving to clf@production",
            "checkout: moving to v-exp",
            "switch: moving from detached HEAD to main",
            "commit: detached 1",
            "checkout: moving to \(m1.prefix(12))",
            "switch: moving from feature to main",
            "switch: moving from main to feature",
            "switch: moving from exp to main",
            "switch: moving from main to exp",
            "commit: main 2",
            "switch: moving from exp to main",
            "commit: exp 1",
            "switch: moving from main to exp",
            "commit (initial): main 1",
        ]
        #expect(messages == expected, "reflog:\n\(messages.joined(separator: "\n"))")
        #expect(reflog.first?[string: "new"] == m2)
        #expect(reflog.last?[string: "new"] == m1 && reflog.last?["old"] == nil)
        let text = try ws.ok("reflog")
        #expect(text.split(separator: "\n").count == expected.count && text.hasPrefix("\(m2.prefix(12)) HEAD@{0}: switch: moving from detached HEAD to main"),
                "\(text)")
        // A branch's reflog: created, then its commits.
        let exp = try #require(try ws.json("reflog", "exp") as? [[String: Any]])
        #expect(exp.map { $0[string: "message"] ?? "" } == ["commit: exp 1", "branch: created from HEAD"], "\(exp)")
        #expect(try #require(try ws.json("reflog", "main") as? [[String: Any]]).map { $0[string: "message"] ?? "" }
                == ["commit: main 2", "commit (initial): main 1"])
        let stageLog = try ws.ok("reflog", "refs/stages/clf/production")
        #expect(stageLog.contains("promote \(m2.prefix(12)): ship"), "\(stageLog)")
        try ws.expectFsckClean("branch moves")
    }
}
