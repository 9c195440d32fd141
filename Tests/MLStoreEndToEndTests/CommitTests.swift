import Foundation
import MLStoreBasics
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("commit: ids, params, metrics, code and environment capture, empty-commit rules")
struct CommitTests {
    /// Builds the same two-commit history in a fresh workspace; returns the workspace and the commit ids.
    func sameHistory(date: Int) throws -> (ws: Workspace, ids: [String]) {
        let ws = try Workspace()
        var env = author(at: date)
        env["MLSTORE_COMMITTER_DATE"] = "\(date) +0000"
        try ws.write("data/train.csv", "x,y\n1,2\n3,4\n")
        try ws.write("data/nested/test.csv", "x,y\n5,6\n")
        try ws.write("model.bin", FS.randomData(count: 300_000, seed: 7))  // chunked
        try ws.write("params.yaml", "lr: 0.01\nbatch: 32\nopt:\n  name: adam\n")
        try ws.write("metrics.json", #"{"acc": 0.75, "loss": [0.9, 0.6]}"#)
        try ws.ok("add", "data", "model.bin")
        try ws.ok(env: env, "commit", "-m", "train", "--params", "params.yaml", "--metrics", "metrics.json", "--param", "seed=42",
                  "--input", "data", "--output", "model.bin", "--command", "python train.py --seed 42", "--no-code", "--no-env")
        let first = try ws.commitID()
        try ws.write("model.bin", FS.randomData(count: 310_000, seed: 8))
        try ws.ok("add", "model.bin")
        try ws.ok(env: env, "commit", "-m", "retrain\n\nwith more data", "--param", "lr=0.02", "--metric", "acc=0.8", "--input", "data",
                  "--output", "model.bin", "--no-code", "--no-env")
        return (ws, [first, try ws.commitID()])
    }

    @Test("the same run in two fresh workspaces gets the same commit ids; the id is the hash of the commit object")
    func idStability() throws {
        let a = try sameHistory(date: 1_720_000_000)
        defer { a.ws.remove() }
        let b = try sameHistory(date: 1_720_000_000)
        defer { b.ws.remove() }
        #expect(a.ids == b.ids, "same files, params, metrics, author and dates must give the same ids")
        for id in a.ids {
            #expect(JSONTools.canonical(try a.ws.showJSON(id)) == JSONTools.canonical(try b.ws.showJSON(id)))
            // The id is SHA-256 of "commit <size>\0" + the payload that cat-object prints.
            let rawOut = try a.ws.run("cat-object", id)
            #expect(rawOut.status == 0, "\(rawOut)")
            let raw = rawOut.stdoutData
            let recomputed = hex(MLStoreBasics.SHA256.hash(Array("commit \(raw.count)\0".utf8) + Array(raw)))
            #expect(recomputed == id, "commit \(id) hashes to \(recomputed)")
            #expect(try a.ws.ok("cat-object", "-t", id) == "commit\n")
        }
        // The raw commit: headers in the documented order, pinned author and committer.
        let text = try a.ws.ok("cat-object", "-p", a.ids[1])
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.map { String($0.prefix { $0 != " " }) }.prefix(8) == ["tree", "parent", "input", "output", "params", "metrics", "author", "committer"],
                "\(text)")
        #expect(lines.contains("author Ada Lovelace <ada@example.com> 1720000000 +0000"), "\(text)")
        #expect(lines.contains("committer Ada Lovelace <ada@example.com> 1720000000 +0000"), "\(text)")
        #expect(text.hasSuffix("\n\nretrain\n\nwith more data\n"), "\(text.debugDescription)")

        // Another date: another id (and the tree is unchanged).
        let c = try sameHistory(date: 1_720_000_001)
        defer { c.ws.remove() }
        #expect(c.ids[0] != a.ids[0])
        #expect(try c.ws.showJSON(c.ids[0])[string: "tree"] == (try a.ws.showJSON(a.ids[0])[string: "tree"]))
    }

    @Test("equal params from YAML, JSON or flags are one object holding canonical JSON")
    func paramsDedupe() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("params.yaml", "lr: 0.01\nbatch: 32\nopt:\n  name: adam\n")
        try ws.write("params.json", #"{"opt": {"name": "adam"}, "batch": 32.0, "lr": 1e-2}"#)
        try ws.write("m.json", #"{"acc": 0.5}"#)
        let e = author(at: 1_720_000_000)
        try ws.ok(env: e, "commit", "-m", "yaml", "--params", "params.yaml", "--metrics", "m.json", "--no-code", "--no-env")
        let c1 = try ws.commitID()
        try ws.ok(env: e, "commit", "-m", "json", "--params", "params.json", "--metric", "acc=0.5", "--no-code", "--no-env")
        let c2 = try ws.commitID()
        try ws.ok(env: e, "commit", "-m", "flags", "--param", "opt.name=adam", "--param", "lr=0.01", "--param", "batch=32", "--no-code", "--no-env")
        let c3 = try ws.commitID()
        try ws.ok(env: e, "commit", "-m", "other", "--param", "opt.name=adam", "--param", "lr=0.02", "--param", "batch=32", "--no-code", "--no-env")
        let c4 = try ws.commitID()

        let h = try [c1, c2, c3, c4].map { try ws.commitHeaders($0) }
        let params = h.map { $0["params"]?.first ?? "" }
        #expect(params.allSatisfy(isObjectID), "\(params)")
        #expect(Set(params[0...2]).count == 1, "the same params must dedupe to one object: \(params)")
        #expect(params[3] != params[0])
        #expect(h[0]["metrics"] == h[1]["metrics"] && h[0]["metrics"] != nil, "the same metrics must dedupe: \(h[0]["metrics"] ?? []) vs \(h[1]["metrics"] ?? [])")
        // The params object is the canonical JSON text (sorted keys, shortest numbers), stored as a blob.
        #expect(try ws.ok("cat-object", "-t", params[0]) == "blob\n")
        #expect(try ws.ok("cat-object", params[0]) == #"{"batch":32,"lr":0.01,"opt":{"name":"adam"}}"#)
        #expect(try ws.ok("cat-object", params[3]) == #"{"batch":32,"lr":0.02,"opt":{"name":"adam"}}"#)
        // show --json agrees across the three commits.
        let shown = try [c1, c2, c3].map { JSONTools.canonical(try ws.showJSON($0)["params"]) }
        #expect(Set(shown).count == 1, "\(shown)")
    }

    @Test("params and metrics from YAML and JSON files and flags: typing, nesting, flattening")
    func paramsAndMetricsParsing() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("params.yaml", """
            lr: 1e-3
            epochs: 10
            name: resnet
            use_gpu: true
            dropout: null
            version: "10"
            layers: [64, 32]
            optimizer:
              name: sgd
              momentum: 0.9
              schedule:
                warmup: 5

            """)
        try ws.write("metrics.yaml", "acc: 0.8\neval:\n  f1: 0.7\n  auc: 0.9\nloss: [1, 0.5]\n")
        try ws.write("more.json", #"{"val_loss": [{"step": 10, "value": 0.4}, {"step": 20, "value": 0.3}], "ok": true}"#)
        try ws.ok(env: author(), "commit", "-m", "typed", "--params", "params.yaml", "--param", "optimizer.momentum=0.95",
                  "--param", "tag=v1.0", "--param", "debug=false", "--param", "count=7", "--param", "ratio=-2.5", "--param", "big=1e5",
                  "--param", "hex=0x10", "--param", "text=hello world", "--param", "empty=",
                  "--metrics", "metrics.yaml", "--metrics", "more.json", "--metric", "acc=0.85", "--no-code", "--no-env")
        let show = try ws.showJSON()
        let expectedParams = """
            {"lr": 0.001, "epochs": 10, "name": "resnet", "use_gpu": true, "dropout": null, "version": "10", "layers": [64, 32],
             "optimizer": {"name": "sgd", "momentum": 0.95, "schedule": {"warmup": 5}},
             "tag": "v1.0", "debug": false, "count": 7, "ratio": -2.5, "big": 100000, "hex": "0x10", "text": "hello world", "empty": null}
            """
        #expect(JSONTools.equal(JSONTools.plain(show["params"]), expectedParams), "\(JSONTools.canonical(JSONTools.plain(show["params"])))")
        let expectedMetrics = """
            {"acc": 0.85, "eval.f1": 0.7, "eval.auc": 0.9, "loss": [{"step": 0, "value": 1}, {"step": 1, "value": 0.5}],
             "val_loss": [{"step": 10, "value": 0.4}, {"step": 20, "value": 0.3}], "ok": 1}
            """
        #expect(JSONTools.equal(JSONTools.plain(show["metrics"]), expectedMetrics), "\(JSONTools.canonical(JSONTools.plain(show["metrics"])))")
        // show (text) flattens nested params with dots.
        let text = try ws.ok("show")
        for line in ["  optimizer.schedule.warmup = 5", "  optimizer.momentum = 0.95", "  optimizer.name = sgd", "  tag = v1.0", "  version = 10",
                     "  use_gpu = true", "  lr = 0.001", "  text = hello world", "  eval.f1 = 0.7", "  val_loss = 0.3 (2 steps)", "  acc = 0.85"] {
            #expect(text.contains(line), "show lacks \(line.debugDescription):\n\(text)")
        }
        // Only the first '=' splits; --command is split like a POSIX shell (quotes, backslashes, no expansion).
        let out = try ws.ok("commit", "-m", "x", "--param", "url=http://h/p?a=b&c=d", "--param", "a=1",
                            "--command", #"python train.py --name 'my run' --x "a b" c\ d $HOME"#, "--no-code", "--no-env")
        #expect(out.contains("2 params"), "\(out)")
        let s2 = try ws.showJSON()
        #expect(JSONTools.equal(JSONTools.plain(s2["params"]), #"{"url": "http://h/p?a=b&c=d", "a": 1}"#), "\(JSONTools.canonical(JSONTools.plain(s2["params"])))")
        #expect(JSONTools.equal(s2["command"], #"["python", "train.py", "--name", "my run", "--x", "a b", "c d", "$HOME"]"#),
                "\(JSONTools.canonical(s2["command"]))")
        #expect(try ws.ok("show").contains("Command: python train.py --name 'my run' --x 'a b' 'c d' $HOME"))
    }

    @Test("malformed params, metrics and commands are refused with exit 2 and leave no commit and no objects")
    func badParamsAndMetrics() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("f.txt", "f\n")
        try ws.ok("add", "f.txt")
        try ws.ok(env: author(), "commit", "-m", "base", "--no-code", "--no-env")
        try ws.write("f.txt", "changed\n")
        try ws.ok("add", "f.txt")  // a real change is staged: only the bad argument stops the commit
        let head = try ws.commitID()
        let objectsBefore = ws.looseObjects().map(\.id)
        let packsBefore = ws.packFiles(ext: "pack")

        try ws.write("bad.yaml", "a: [1, 2\nb: {\n")
        try ws.write("bad.json", #"{"a": 1,"#)
        try ws.write("bad-metrics.json", #"{"acc": 0.9, "loss": [0.5, 0.4"#)
        try ws.write("string-metric.json", #"{"acc": "high"}"#)
        try ws.write("string-in-series.json", #"{"loss": [0.5, "x"]}"#)
        try ws.write("list.json", "[1, 2, 3]")
        try ws.write("list-metrics.yaml", "- 1\n- 2\n")
        let cases: [(args: [String], status: Int32, mentions: String)] = [
            (["--param", "novalue"], 2, "novalue"),
            (["--param", "=v"], 2, "=v"),
            (["--param", "a b=1"], 2, "a b"),
            (["--param", "a..b=1"], 2, "a..b"),
            (["--metric", "acc=high"], 2, "acc"),
            (["--metric", "acc="], 2, "acc"),
            (["--metric", "acc"], 2, "acc"),
            (["--metric", "acc=nan"], 2, "acc"),
            (["--params", "bad.yaml"], 2, "bad.yaml"),
            (["--params", "bad.json"], 2, "bad.json"),
            (["--metrics", "bad-metrics.json"], 2, "bad-metrics.json"),
            (["--metrics", "string-metric.json"], 2, "acc"),
            (["--metrics", "string-in-series.json"], 2, "loss"),
            (["--params", "list.json"], 2, "list.json"),
            (["--metrics", "list-metrics.yaml"], 2, "list-metrics.yaml"),
            (["--params", "missing.yaml"], 3, "missing.yaml"),
            (["--command", "python 'unterminated"], 2, "quote"),
            (["--input", "not-tracked.txt"], 3, "not-tracked.txt"),
            (["--output", "not-tracked.txt"], 3, "not-tracked.txt"),
        ]
        for c in cases {
            let r = try ws.run(env: author(), ["commit", "-m", "bad", "--no-code", "--no-env"] + c.args)
            #expect(r.status == c.status, "commit \(c.args): \(r)")
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains(c.mentions), "commit \(c.args): \(r.stderr)")
            #expect(r.stdout.isEmpty, "commit \(c.args): \(r.stdout)")
            #expect(try ws.commitID() == head, "commit \(c.args) moved HEAD")
            #expect(try ws.commitCount() == 1, "commit \(c.args) made a commit")
        }
        let written = Set(ws.looseObjects().map(\.id)).subtracting(objectsBefore).sorted()
        #expect(written.isEmpty, "failed commits must not write objects; new objects: \(written)")
        #expect(ws.packFiles(ext: "pack") == packsBefore)
        try ws.expectFsckClean("failed commits")
        // The staged change is still there and commits fine afterwards.
        #expect(try ws.status().staged.map(\.path) == ["f.txt"])
        try ws.ok(env: author(), "commit", "-m", "good", "--no-code", "--no-env")
        #expect(try ws.commitCount() == 2)
    }

    @Test("empty commits: nothing changed and nothing recorded is refused; a run with metrics or --allow-empty is not")
    func emptyCommitRules() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let e = author()
        // Nothing staged at all.
        let none = try ws.run(env: e, "commit", "-m", "nothing", "--no-code", "--no-env")
        #expect(none.status == 2 && none.stderr.contains("nothing to commit") && none.stderr.contains("--allow-empty"), "\(none)")
        #expect(try ws.commitCount() == 0)
        try ws.ok(env: e, "commit", "-m", "empty root", "--allow-empty", "--no-code", "--no-env")
        #expect(try ws.commitCount() == 1)

        try ws.write("f.txt", "f\n")
        try ws.ok("add", "f.txt")
        try ws.ok(env: e, "commit", "-m", "add f", "--no-code", "--no-env")
        let tree = try ws.showJSON()[string: "tree"]
        // Same tree, nothing recorded: refused.
        let again = try ws.run(env: e, "commit", "-m", "again", "--no-code", "--no-env")
        #expect(again.status == 2 && again.stderr.contains("nothing to commit"), "\(again)")
        try ws.write("empty.json", "{}")
        let emptyParams = try ws.run(env: e, "commit", "-m", "empty params", "--params", "empty.json", "--no-code", "--no-env")
        #expect(emptyParams.status == 2, "an empty params file records nothing: \(emptyParams)")
        #expect(try ws.commitCount() == 2)
        // A run that records something is a commit even without file changes.
        var made = 2
        for extra in [["--metric", "acc=0.5"], ["--param", "lr=0.1"], ["--command", "python eval.py"], ["--input", "f.txt"],
                      ["--output", "f.txt"], ["--allow-empty"]] {
            let r = try ws.run(env: e, ["commit", "-m", "run \(extra[0])", "--no-code", "--no-env"] + extra)
            #expect(r.status == 0, "commit \(extra): \(r)")
            made += r.status == 0 ? 1 : 0
            #expect(try ws.showJSON()[string: "tree"] == tree, "\(extra): the tree must not change")
        }
        #expect(try ws.commitCount() == made)
        // Recording environment or code alone is not a run.
        let envOnly = try ws.run(env: e, "commit", "-m", "env only", "--no-code")
        #expect(envOnly.status == 2, "\(envOnly)")
        // An empty message is refused.
        for m in ["", "  \n"] {
            let r = try ws.run(env: e, "commit", "-m", m, "--allow-empty", "--no-code", "--no-env")
            #expect(r.status == 2 && r.stderr.contains("message"), "message \(m.debugDescription): \(r)")
        }
        #expect(try ws.commitCount() == made)
        try ws.expectFsckClean("empty-commit checks")
    }

    @Test("author and committer: MLSTORE_AUTHOR_* and dates with offsets, else user.name/user.email from config")
    func authorIdentity() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.ok("config", "user.name", "Grace Hopper")
        try ws.ok("config", "user.email", "grace@example.com")
        #expect(try ws.ok("config", "user.name") == "Grace Hopper\n")
        // Empty MLSTORE_AUTHOR_* count as unset, so the config wins.
        try ws.ok(env: ["MLSTORE_AUTHOR_NAME": "", "MLSTORE_AUTHOR_EMAIL": "", "MLSTORE_AUTHOR_DATE": "1700000000 +0530"],
                  "commit", "-m", "from config", "--allow-empty", "--no-code", "--no-env")
        let s = try ws.showJSON()
        #expect(JSONTools.equal(s["author"], #"{"name": "Grace Hopper", "email": "grace@example.com", "time": 1700000000, "offsetMinutes": 330}"#),
                "\(JSONTools.canonical(s["author"]))")
        #expect(try ws.ok("show").contains("Author: Grace Hopper <grace@example.com>\nDate:   2023-11-15 03:43:20 +0530"))
        // The environment overrides the config; the committer can differ from the author.
        var env = author("Alan Turing", email: "alan@example.com", at: 1_700_000_100)
        env["MLSTORE_COMMITTER_NAME"] = "CI Bot"
        env["MLSTORE_COMMITTER_EMAIL"] = "ci@example.com"
        env["MLSTORE_COMMITTER_DATE"] = "1700000200 -0100"
        try ws.ok(env: env, "commit", "-m", "from env", "--allow-empty", "--no-code", "--no-env")
        let t = try ws.showJSON()
        #expect(JSONTools.equal(t["author"], #"{"name": "Alan Turing", "email": "alan@example.com", "time": 1700000100, "offsetMinutes": 0}"#))
        #expect(JSONTools.equal(t["committer"], #"{"name": "CI Bot", "email": "ci@example.com", "time": 1700000200, "offsetMinutes": -60}"#),
                "\(JSONTools.canonical(t["committer"]))")
    }

    @Test("code capture in a git work tree: clean and dirty, untracked files, --no-code; environment capture")
    func codeAndEnvironmentCapture() throws {
        guard CLI.hasGit else { return }
        let ws = try Workspace(git: true)
        defer { ws.remove() }
        func git(_ args: String...) throws -> String {
            let r = try CLI.run("git", args, in: ws.root)
            try #require(r.status == 0, "git \(args): \(r)")
            return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        try ws.write("train.py", "print(1)\n")
        try ws.write("lib/util.py", "X = 1\n")
        try ws.write("data/d.csv", "1,2\n")
        try ws.ok("add", "data")  // also writes .gitignore (/.mlstore/ and /data)
        _ = try git("add", "-A")
        _ = try git("commit", "-q", "-m", "code v1")
        let gitHead = try git("rev-parse", "HEAD")
        #expect(try git("status", "--porcelain").isEmpty)

        // Clean: the git commit, no patch, and a code tree of the git files (not the ignored data).
        try ws.ok(env: author(), "commit", "-m", "clean run", "--param", "a=1", "--no-env")
        let clean = try ws.showJSON()
        let code = try #require(clean[dict: "code"], "\(clean)")
        #expect(code[string: "git_commit"] == gitHead)
        #expect(code["dirty_patch"] == nil, "\(code)")
        let codeTree = try #require(code[string: "tree"])
        let codeFiles = try ws.lsTree(codeTree).compactMap { $0["path"] as? String }.sorted()
        #expect(codeFiles == [".gitignore", "lib/util.py", "train.py"], "\(codeFiles)")
        #expect(clean["env"] == nil, "--no-env records no environment")

        // Dirty: a modified tracked file gives a patch object holding the diff.
        try ws.write("train.py", "print(2)\n")
        try ws.ok(env: author(), "commit", "-m", "dirty run", "--param", "a=2", "--no-env")
        let dirty = try #require(try ws.showJSON()[dict: "code"])
        #expect(dirty[string: "git_commit"] == gitHead)
        let patch = try #require(dirty[string: "dirty_patch"], "\(dirty)")
        let patchText = try ws.ok("cat-object", "-p", patch)
        for line in ["diff --git a/train.py b/train.py", "-print(1)", "+print(2)"] {
            #expect(patchText.contains(line), "patch lacks \(line):\n\(patchText)")
        }
        #expect(dirty[string: "tree"] != codeTree, "the code tree holds the files as they are now")
        #expect(try ws.ok("show").contains("uncommitted changes (patch \(patch.prefix(12)))"))

        // Only an untracked file: dirty with an empty patch, and the new file is in the code tree.
        _ = try git("commit", "-q", "-am", "code v2")
        try ws.write("new_feature.py", "Y = 2\n")
        try ws.ok(env: author(), "commit", "-m", "untracked run", "--param", "a=3", "--no-env")
        let untracked = try #require(try ws.showJSON()[dict: "code"])
        #expect(untracked[string: "git_commit"] == (try git("rev-parse", "HEAD")))
        let emptyPatch = try #require(untracked[string: "dirty_patch"], "\(untracked)")
        #expect(try ws.ok("cat-object", "-s", emptyPatch) == "0\n")
        #expect(try ws.lsTree(try #require(untracked[string: "tree"])).contains { $0["path"] as? String == "new_feature.py" })

        // --no-code records no code at all.
        try ws.ok(env: author(), "commit", "-m", "no code", "--param", "a=4", "--no-code", "--no-env")
        #expect(try ws.showJSON()["code"] == nil)
        #expect(try ws.commitHeaders(try ws.commitID())["code"] == nil)

        // Environment capture: OS, kernel, architecture and Python packages; identical environments share one object.
        try ws.write("requirements.txt", "numpy==1.26.4\n")
        let requirements = try ws.ok("hash-object", "requirements.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        try ws.ok(env: author(), "commit", "-m", "env run", "--param", "a=5", "--no-code")
        let envShow = try ws.showJSON()
        let rawEnv = try #require(envShow["env"], "\(envShow.keys.sorted())")
        let envIsPlainJSON = !JSONTools.hasEnumEncoding(rawEnv)
        #expect(envIsPlainJSON, "show --json env is not plain JSON: \(JSONTools.canonical(rawEnv).prefix(300))")
        let env = try #require(JSONTools.plain(rawEnv) as? [String: Any])
        for key in ["os", "kernel", "arch"] { #expect(!(env[string: key] ?? "").isEmpty, "env.\(key): \(JSONTools.canonical(env[key]))") }
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(env[string: "arch"] == machine)
        let tools = env[dict: "tools"] ?? [:]
        #expect(env[array: "pip_freeze"] != nil || tools[string: "python"] != nil, "no pip_freeze or python: \(env.keys.sorted())")
        #expect(JSONTools.equal(env["lock_files"], #"{"requirements.txt": "\#(requirements)"}"#), "\(JSONTools.canonical(env["lock_files"]))")
        #expect(try ws.ok("cat-object", requirements) == "numpy==1.26.4\n", "the lock file is stored")
        #expect(try ws.ok("show").contains("Environment: "))
        let envID = try #require(try ws.commitHeaders(try ws.commitID())["env"]?.first)
        try ws.ok(env: author(), "commit", "-m", "env run 2", "--param", "a=6", "--no-code")
        #expect(try ws.commitHeaders(try ws.commitID())["env"]?.first == envID, "the same environment must be the same object")
        try ws.expectFsckClean("code capture")
    }
}
