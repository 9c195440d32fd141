import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A copy of fixtures/mlproject in a temp dir, with a store.
private struct Project {
    let tmp: TempDir
    static let env = ["MLSTORE_AUTHOR_NAME": "Tester", "MLSTORE_AUTHOR_EMAIL": "t@example.com"]
    var root: String { tmp.path + "/project" }

    init(git: Bool = false) throws {
        tmp = try TempDir(prefix: "mlstore-pipeline")
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/mlproject").path
        try FileManager.default.copyItem(atPath: fixture, toPath: root)
        if git {
            for args in [["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "project"]] {
                let r = try CLI.run("git", args, in: root)
                try #require(r.status == 0, "git \(args): \(r)")
            }
        }
        try ok("init")
    }

    func remove() { tmp.remove() }
    func path(_ rel: String) -> String { root + "/" + rel }

    @discardableResult
    func run(_ args: [String], in dir: String? = nil) throws -> CLI.Output {
        try CLI.mlstore(args, in: dir ?? root, env: Self.env)
    }

    @discardableResult
    func ok(_ args: String..., in dir: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> CLI.Output {
        let r = try run(args, in: dir)
        try #require(r.status == 0, "mlstore \(args.joined(separator: " ")): \(r)", sourceLocation: sourceLocation)
        return r
    }

    func json(_ args: String..., in dir: String? = nil) throws -> Any {
        let r = try run(args + ["--json"], in: dir)
        return try JSONSerialization.jsonObject(with: r.stdoutData)
    }

    func setParam(_ from: String, _ to: String) throws {
        let text = try #require(FS.readText(path("params.yaml")))
        try #require(text.contains(from))
        try FS.write(path("params.yaml"), text.replacingOccurrences(of: from, with: to))
    }

    func statuses(_ args: String...) throws -> [String: String] {
        let r = try run(["repro"] + args + ["--json", "--no-env"])
        try #require(r.status == 0, "\(r)")
        let list = try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: list.map { ($0["stage"] as! String, $0["status"] as! String) })
    }
}

@Suite("runs, reproduce and pipelines") struct PipelineTests {
    @Test("run records a commit whose show lists command, params, metrics, inputs, outputs, code and env; reproduce matches; tampering differs")
    func runAndReproduce() throws {
        let p = try Project(git: true)
        defer { p.remove() }
        for script in ["generate.py", "prepare.py"] {
            let r = try CLI.run("python3", [script], in: p.root)
            try #require(r.status == 0, "\(r)")
        }
        try p.ok("run", "--name", "train v1", "--input", "data/train.csv", "--input", "data/test.csv", "--output", "model.json",
                 "--params", "params.yaml", "--metrics", "metrics.json", "--", "python3", "train.py")
        let show = try #require(try p.json("show") as? [String: Any])
        #expect(show["command"] as? [String] == ["python3", "train.py"])
        #expect(((show["params"] as? [String: Any])?["train"] as? [String: Any])?["lr"] as? Double == 0.5)
        #expect((show["metrics"] as? [String: Any])?["accuracy"] as? Double == 0.9375)
        #expect(((show["metrics"] as? [String: Any])?["loss"] as? [Any])?.count == 40)
        #expect((show["inputs"] as? [[String: Any]])?.map { $0["path"] as? String } == ["data/train.csv", "data/test.csv"])
        #expect((show["outputs"] as? [[String: Any]])?.map { $0["path"] as? String } == ["model.json"])
        #expect(((show["code"] as? [String: Any])?["git_commit"] as? String)?.count == 40)
        #expect((show["env"] as? [String: Any])?["os"] != nil)
        let text = try p.ok("show").stdout
        for word in ["Command:", "Params:", "Metrics:", "Inputs:", "Outputs:", "Code:", "Environment:"] { #expect(text.contains(word), "show lacks \(word)") }

        // Reproduce in a fresh directory: identical outputs, exit 0.
        let dir = p.tmp.path + "/repro1"
        let r = try p.run(["reproduce", "HEAD", "--dir", dir, "--json"])
        #expect(r.status == 0, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any])
        #expect(report["reproduced"] as? Bool == true)
        #expect((report["outputs"] as? [[String: Any]])?.first?["status"] as? String == "identical")
        #expect(FS.read(dir + "/model.json") == FS.read(p.path("model.json")))

        // Tamper with the training script (so outputs change). A fresh-directory reproduce uses the recorded
        // code tree, so it still reproduces; --in-place uses the workspace's (tampered) script: differs, exit 1.
        let script = try #require(FS.readText(p.path("train.py")))
        try FS.write(p.path("train.py"), script.replacingOccurrences(of: "round(v, 8)", with: "round(v * 1.01, 8)"))
        #expect(try p.run(["reproduce", "HEAD", "--dir", p.tmp.path + "/repro2"]).status == 0)
        let tampered = try p.run(["reproduce", "HEAD", "--in-place"])
        #expect(tampered.status == 1, "\(tampered)")
        #expect(tampered.stdout.contains("differs") && tampered.stdout.contains("model.json") && tampered.stdout.contains("NOT reproduced"), "\(tampered.stdout)")
        try FS.write(p.path("train.py"), script)
        // A run whose command no longer produces the recorded output: make the command itself nondeterministic.
        try FS.write(p.path("noise.py"), "import os\nopen('out.bin','wb').write(os.urandom(64))\n")
        _ = try CLI.run("git", ["add", "noise.py"], in: p.root)
        _ = try CLI.run("git", ["commit", "-qm", "noise"], in: p.root)
        try p.ok("run", "--output", "out.bin", "--no-env", "--", "python3", "noise.py")
        let bad = try p.run(["reproduce", "HEAD", "--dir", p.tmp.path + "/repro3"])
        #expect(bad.status == 1, "\(bad)")
        #expect(bad.stdout.contains("differs") && bad.stdout.contains("NOT reproduced"), "\(bad.stdout)")
        // A commit with no command says so.
        try p.ok("commit", "-m", "plain", "--allow-empty", "--no-env", "--no-code")
        let none = try p.run(["reproduce", "HEAD"])
        #expect(none.status == 2 && none.stderr.contains("no command"), "\(none)")
    }

    @Test("reproduce --in-place with changed params: outputs differ, metric deltas, tolerance check")
    func tamperedCode() throws {
        let p = try Project(git: true)
        defer { p.remove() }
        for script in ["generate.py", "prepare.py"] { _ = try CLI.run("python3", [script], in: p.root) }
        try p.ok("run", "--input", "data/train.csv", "--output", "model.json", "--params", "params.yaml", "--metrics", "metrics.json",
                 "--no-env", "--", "python3", "train.py")
        let id = try #require((try p.json("show") as? [String: Any])?["id"] as? String)
        // In place, the workspace's files are used as they are: a changed learning rate changes the model.
        try p.setParam("lr: 0.5", "lr: 0.2")
        let r = try p.run(["reproduce", id, "--in-place", "--json"])
        #expect(r.status == 1, "\(r)")
        let report = try #require(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any])
        #expect(report["reproduced"] as? Bool == false)
        let out = try #require((report["outputs"] as? [[String: Any]])?.first)
        #expect(out["status"] as? String == "differs")
        #expect(out["recordedSize"] as? Int != nil && out["newSize"] as? Int != nil)
        let acc = try #require((report["metrics"] as? [[String: Any]])?.first { $0["key"] as? String == "accuracy" })
        #expect(acc["delta"] != nil)
        // A metrics-only check with a generous tolerance passes; a strict one fails.
        #expect(try p.run(["reproduce", id, "--in-place", "--tolerance", "0.5"]).status == 0)
        #expect(try p.run(["reproduce", id, "--in-place", "--tolerance", "0"]).status == 1)
    }

    @Test("pipeline: runs once, then nothing; a param change re-runs only affected stages; reverting restores from the cache")
    func pipelineCache() throws {
        let p = try Project()
        defer { p.remove() }
        #expect(try p.statuses() == ["generate": "ran", "prepare": "ran", "stats": "ran", "train": "ran"])
        let second = try p.run(["repro", "--no-env"])
        #expect(second.status == 0 && second.stdout.contains("nothing to reproduce"), "\(second)")
        #expect(try p.statuses() == ["generate": "up-to-date", "prepare": "up-to-date", "stats": "up-to-date", "train": "up-to-date"])
        let model1 = try #require(FS.read(p.path("model.json")))
        try p.setParam("lr: 0.5", "lr: 0.3")
        #expect(try p.statuses() == ["generate": "up-to-date", "prepare": "up-to-date", "stats": "up-to-date", "train": "ran"])
        #expect(FS.read(p.path("model.json")) != model1)
        try p.setParam("split: 0.8", "split: 0.7")
        #expect(try p.statuses() == ["generate": "up-to-date", "prepare": "ran", "stats": "up-to-date", "train": "ran"])
        try p.setParam("split: 0.7", "split: 0.8")
        try p.setParam("lr: 0.3", "lr: 0.5")
        // Reverting: both stages come back from the run cache, without running (the model is byte-identical).
        #expect(try p.statuses() == ["generate": "up-to-date", "prepare": "restored", "stats": "up-to-date", "train": "restored"])
        #expect(FS.read(p.path("model.json")) == model1)
        // Lineage of the final model walks every stage.
        let lineage = try p.ok("lineage", "model.json", "--up").stdout
        for stage in ["stage train", "stage prepare", "stage generate"] { #expect(lineage.contains(stage), "\(lineage)") }
        // A single target runs only it and what it needs.
        try FS.remove(p.path("stats.json"))
        #expect(try p.statuses("stats") == ["generate": "up-to-date", "stats": "restored"])
        let dag = try p.ok("dag", "--format", "dot").stdout
        #expect(dag.contains("\"generate\" -> \"prepare\"") && dag.contains("\"prepare\" -> \"train\""))
        #expect(try p.ok("dag", "--format", "mermaid").stdout.contains("generate --> stats"))
    }

    @Test("a failing command records nothing and mlstore exits with its status, unless --record-failures")
    func failingRun() throws {
        let p = try Project()
        defer { p.remove() }
        let failed = try p.run(["run", "--no-env", "--no-code", "--", "sh", "-c", "echo partial > out.txt; exit 7"])
        #expect(failed.status == 7, "\(failed)")
        #expect(failed.stderr.contains("nothing recorded"))
        #expect(try p.run(["log"]).status == 3, "no commit was made")
        let recorded = try p.run(["run", "--record-failures", "--output", "out.txt", "--no-env", "--no-code", "--", "sh", "-c", "echo partial > out.txt; exit 7"])
        #expect(recorded.status == 7)
        let show = try #require(try p.json("show") as? [String: Any])
        #expect((show["extensions"] as? [String: String])?["exit-status"] == "7")
        let missingDash = try p.run(["run", "python3", "train.py"])
        #expect(missingDash.status == 2, "the command must follow --: \(missingDash)")
    }

    @Test("-j 2 runs two independent stages at the same time")
    func parallelStages() throws {
        let p = try Project()
        defer { p.remove() }
        // Two independent stages that each record when they start and end.
        try FS.write(p.path("mlstore.yaml"), """
            stages:
              left:
                cmd: python3 -c "import time; s=time.time(); time.sleep(1.0); open('left.txt','w').write(f'{s} {time.time()}')"
                outs: [left.txt]
              right:
                cmd: python3 -c "import time; s=time.time(); time.sleep(1.0); open('right.txt','w').write(f'{s} {time.time()}')"
                outs: [right.txt]
              join:
                cmd: cat left.txt right.txt > both.txt
                deps: [left.txt, right.txt]
                outs: [both.txt]
            """)
        let start = Date()
        #expect(try p.statuses("-j", "2") == ["left": "ran", "right": "ran", "join": "ran"])
        let elapsed = Date().timeIntervalSince(start)
        func span(_ f: String) throws -> (Double, Double) {
            let parts = try #require(FS.readText(p.path(f))).split(separator: " ").compactMap { Double($0) }
            return (parts[0], parts[1])
        }
        let l = try span("left.txt"), r = try span("right.txt")
        #expect(l.0 < r.1 && r.0 < l.1, "the two stages overlapped in time: left \(l), right \(r)")
        #expect(elapsed < 4.0)
    }

    @Test("a cycle and a missing dependency are rejected, naming the stage")
    func badPipelines() throws {
        let p = try Project()
        defer { p.remove() }
        try FS.write(p.path("mlstore.yaml"), "stages:\n  a:\n    cmd: cp b.txt a.txt\n    deps: [b.txt]\n    outs: [a.txt]\n  b:\n    cmd: cp a.txt b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n")
        let cycle = try p.run(["repro"])
        #expect(cycle.status == 2 && cycle.stderr.contains("cycle") && cycle.stderr.contains("a, b"), "\(cycle)")
        try FS.write(p.path("mlstore.yaml"), "stages:\n  train:\n    cmd: python3 train.py\n    deps: [nowhere.csv]\n    outs: [m.json]\n")
        let missing = try p.run(["repro"])
        #expect(missing.status == 3 && missing.stderr.contains("'train'") && missing.stderr.contains("nowhere.csv"), "\(missing)")
        try FS.write(p.path("mlstore.yaml"), "stages:\n  x:\n    command: echo\n")
        let unknown = try p.run(["repro"])
        #expect(unknown.status == 2 && unknown.stderr.contains("'x'") && unknown.stderr.contains("command"), "\(unknown)")
        try FS.write(p.path("mlstore.yaml"), "stages:\n  x:\n    cmd: exit 3\n    outs: [never]\n  y:\n    cmd: echo\n    deps: [never]\n    outs: [y]\n")
        let failing = try p.run(["repro"])
        #expect(failing.status == 3, "the failing command's status: \(failing)")
        #expect(failing.stderr.contains("Stage 'y' skipped"))
    }

    @Test("reproduce works from a clone of a directory remote on a machine that never saw the workspace")
    func reproduceFromClone() throws {
        let p = try Project(git: true)
        defer { p.remove() }
        for script in ["generate.py", "prepare.py"] { _ = try CLI.run("python3", [script], in: p.root) }
        try p.ok("run", "--input", "data/train.csv", "--input", "data/test.csv", "--output", "model.json", "--params", "params.yaml",
                 "--metrics", "metrics.json", "--no-env", "--", "python3", "train.py")
        try p.ok("promote", "clf", "HEAD", "--stage", "production")
        let remote = p.tmp.path + "/remote"
        try p.ok("remote", "add", "origin", remote)
        try p.ok("push", "--all")
        let other = p.tmp.path + "/elsewhere"
        let clone = try CLI.mlstore(["clone", remote, other], in: p.tmp.path, env: Project.env)
        try #require(clone.status == 0, "\(clone)")
        // The clone has no code files in its workspace: reproduce restores them from the recorded code tree.
        #expect(!FS.exists(other + "/train.py"))
        let r = try CLI.mlstore(["reproduce", "clf@production", "--dir", p.tmp.path + "/rebuilt"], in: other, env: Project.env)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("identical") && r.stdout.contains("reproduced"))
        #expect(FS.read(p.tmp.path + "/rebuilt/model.json") == FS.read(p.path("model.json")))
    }
}
