import Foundation
import Testing

@Suite("lineage: commits with inputs/outputs, tags, promotion, lineage and diff")
struct LineageTests {
    /// The flow of the issue: raw data → features → model v1, then v2; tag, promote, trace, compare.
    @Test("the issue's user flow: raw → features → model v1/v2, tags, staging/production, stage log, lineage, diff")
    func userFlow() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        var clock = 1_700_000_000
        func next() -> [String: String] {
            clock += 60
            return author(at: clock)
        }

        // Step 1: raw data, recorded as the output of an import.
        try ws.write("data/raw.csv", "id,x\n1,0.5\n2,0.7\n3,0.1\n")
        try ws.ok("add", "data")
        try ws.ok(env: next(), "commit", "-m", "import raw data", "--output", "data/raw.csv", "--no-code", "--no-env")
        let rawCommit = try ws.commitID()
        let rawTime = clock

        // Step 2: features from the raw data.
        try ws.write("data/features.csv", "id,x,x2\n1,0.5,0.25\n2,0.7,0.49\n3,0.1,0.01\n")
        try ws.ok("add", "data/features.csv")
        try ws.ok(env: next(), "commit", "-m", "featurize", "--input", "data/raw.csv", "--output", "data/features.csv",
                  "--command", "python featurize.py data/raw.csv", "--no-code", "--no-env")
        let featCommit = try ws.commitID()
        let featTime = clock

        // Step 3: model v1 with params (YAML) and metrics (JSON: a scalar and a series).
        try ws.write("model.bin", FS.randomData(count: 1000, seed: 1))
        try ws.write("params.yaml", "lr: 0.01\nepochs: 3\noptimizer:\n  name: adam\n  beta1: 0.9\n")
        try ws.write("metrics.json", #"{"acc": 0.91, "loss": [0.9, 0.5, 0.3]}"#)
        try ws.ok("add", "model.bin")
        let commitOut = try ws.ok(
            env: next(), "commit", "-m", "train v1", "--params", "params.yaml", "--metrics", "metrics.json",
            "--input", "data/features.csv", "--output", "model.bin", "--command", "python train.py --epochs 3", "--no-code", "--no-env")
        #expect(commitOut.contains("train v1") && commitOut.contains("4 params") && commitOut.contains("2 metrics"), "\(commitOut)")
        let v1 = try ws.commitID()
        let v1Time = clock
        try ws.ok(env: next(), "tag", "v1", v1, "-m", "first model")

        // Step 4: model v2: a bigger model file, a smaller lr, new metrics (series as {step, value}).
        try ws.write("model.bin", FS.randomData(count: 1500, seed: 2))
        try ws.write("params.yaml", "lr: 0.005\nepochs: 3\noptimizer:\n  name: adam\n  beta1: 0.9\n")
        try ws.write(
            "metrics.json",
            #"{"acc": 0.94, "loss": [{"step": 1, "value": 0.8}, {"step": 2, "value": 0.4}, {"step": 3, "value": 0.2}]}"#)
        try ws.ok("add", "model.bin")
        try ws.ok(env: next(), "commit", "-m", "train v2", "--params", "params.yaml", "--metrics", "metrics.json",
                  "--input", "data/features.csv", "--output", "model.bin", "--command", "python train.py --epochs 3", "--no-code", "--no-env")
        let v2 = try ws.commitID()
        let v2Time = clock
        try ws.ok(env: next(), "tag", "v2")

        // Artifact ids as hash-object computes them.
        func blobID(_ rel: String) throws -> String {
            try ws.ok("hash-object", rel).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let rawID = try blobID("data/raw.csv"), featID = try blobID("data/features.csv"), model2ID = try blobID("model.bin")
        try ws.write("model.v1.tmp", FS.randomData(count: 1000, seed: 1))
        let model1ID = try blobID("model.v1.tmp")
        try FS.remove(ws.path("model.v1.tmp"))

        // Promotions: v1 → staging, v2 → production (gated), v2 → staging.
        try ws.ok(env: next(), "promote", "clf", "v1", "--stage", "staging", "-m", "first candidate")
        let t1 = clock
        try ws.ok(env: next(), "promote", "clf", "v2", "--stage", "production", "-m", "v2 beats v1 on acc", "--require", "metrics.acc>=0.9")
        let t2 = clock
        try ws.ok(env: next(), "promote", "clf", "v2", "--stage", "staging", "-m", "staging follows production")
        let t3 = clock

        // show --json of v1: every field.
        let s1 = try ws.showJSON("v1")
        #expect(Set(s1.keys) == ["id", "tree", "parents", "author", "committer", "message", "inputs", "outputs", "params", "metrics",
                                 "command", "extensions"], "keys: \(s1.keys.sorted())")
        #expect(s1[string: "id"] == v1)
        #expect(JSONTools.equal(s1["parents"], #"["\#(featCommit)"]"#))
        #expect(s1[string: "message"] == "train v1\n")
        #expect(JSONTools.equal(s1["author"], #"{"name": "Ada Lovelace", "email": "ada@example.com", "time": \#(v1Time), "offsetMinutes": 0}"#),
                "\(JSONTools.canonical(s1["author"]))")
        #expect(JSONTools.equal(s1["committer"], JSONTools.canonical(s1["author"])))
        #expect(JSONTools.equal(s1["inputs"], #"[{"id": "\#(featID)", "path": "data/features.csv"}]"#), "\(JSONTools.canonical(s1["inputs"]))")
        #expect(JSONTools.equal(s1["outputs"], #"[{"id": "\#(model1ID)", "path": "model.bin"}]"#), "\(JSONTools.canonical(s1["outputs"]))")
        #expect(JSONTools.equal(s1["command"], #"["python", "train.py", "--epochs", "3"]"#))
        #expect(JSONTools.equal(s1["extensions"], "{}"))
        let params1 = #"{"lr": 0.01, "epochs": 3, "optimizer": {"name": "adam", "beta1": 0.9}}"#
        let metrics1 = #"{"acc": 0.91, "loss": [{"step": 0, "value": 0.9}, {"step": 1, "value": 0.5}, {"step": 2, "value": 0.3}]}"#
        // The documented shape: params and metrics as plain JSON values.
        let paramsArePlainJSON = JSONTools.equal(s1["params"], params1)
        let metricsArePlainJSON = JSONTools.equal(s1["metrics"], metrics1)
        #expect(paramsArePlainJSON, "show --json params are not plain JSON: \(JSONTools.canonical(s1["params"]))")
        #expect(metricsArePlainJSON, "show --json metrics are not plain JSON: \(JSONTools.canonical(s1["metrics"]))")
        // The values themselves (whatever the JSON shape).
        #expect(JSONTools.equal(JSONTools.plain(s1["params"]), params1), "\(JSONTools.canonical(JSONTools.plain(s1["params"])))")
        #expect(JSONTools.equal(JSONTools.plain(s1["metrics"]), metrics1), "\(JSONTools.canonical(JSONTools.plain(s1["metrics"])))")

        // show (text) flattens nested params and summarizes series.
        let text1 = try ws.ok("show", "v1")
        for line in ["tag v1", "commit \(v1)", "Parent: \(featCommit)", "    train v1", "  lr = 0.01", "  epochs = 3", "  optimizer.name = adam",
                     "  optimizer.beta1 = 0.9", "  acc = 0.91", "  loss = 0.3 (3 steps)", "Command: python train.py --epochs 3",
                     "  \(featID.prefix(12))  data/features.csv", "  \(model1ID.prefix(12))  model.bin"] {
            #expect(text1.contains(line), "show v1 lacks \(line.debugDescription):\n\(text1)")
        }
        let s2 = try ws.showJSON("v2")
        #expect(JSONTools.equal(JSONTools.plain(s2["metrics"]),
                                #"{"acc": 0.94, "loss": [{"step": 1, "value": 0.8}, {"step": 2, "value": 0.4}, {"step": 3, "value": 0.2}]}"#))
        #expect(JSONTools.equal(s2["parents"], #"["\#(v1)"]"#))

        // log: newest first, decorated with the branch, tags and stages.
        let log = try ws.ok("log", "--oneline")
        let logLines = log.split(separator: "\n").map(String.init)
        #expect(logLines.count == 4, "\(log)")
        if logLines.count == 4 {
            #expect(logLines[0].hasPrefix(String(v2.prefix(12))) && logLines[0].hasSuffix(" train v2"), "\(log)")
            for label in ["HEAD -> main", "tag: v2", "clf@production", "clf@staging"] { #expect(logLines[0].contains(label), "\(logLines[0])") }
            #expect(logLines[1].hasPrefix(String(v1.prefix(12))) && logLines[1].contains("tag: v1"), "\(log)")
            #expect(logLines[3].hasPrefix(String(rawCommit.prefix(12))) && logLines[3].hasSuffix(" import raw data"), "\(log)")
        }
        let logJSON = try #require(try ws.json("log") as? [[String: Any]])
        #expect(logJSON.map { $0[string: "id"] ?? "" } == [v2, v1, featCommit, rawCommit])

        // stage log --json: three records, newest first, with reasons, from → to and the actor.
        var records = try #require(try ws.json("stage", "log", "clf") as? [[String: Any]])
        try #require(records.count == 3, "\(records)")
        for i in records.indices { #expect(records[i].removeValue(forKey: "timeNanos") != nil) }
        let stagingRef = try #require(ws.read(".mlstore/refs/stages/clf/staging")).trimmingCharacters(in: .whitespacesAndNewlines)
        let productionRef = try #require(ws.read(".mlstore/refs/stages/clf/production")).trimmingCharacters(in: .whitespacesAndNewlines)
        func actor(_ t: Int) -> String { #"{"name": "Ada Lovelace", "email": "ada@example.com", "time": \#(t), "offsetMinutes": 0}"# }
        let expectedRecords = [
            #"{"record": "\#(stagingRef)", "model": "clf", "stage": "staging", "action": "promote", "from": "\#(v1)", "to": "\#(v2)", "actor": \#(actor(t3)), "reason": "staging follows production"}"#,
            #"{"record": "\#(productionRef)", "model": "clf", "stage": "production", "action": "promote", "to": "\#(v2)", "actor": \#(actor(t2)), "reason": "v2 beats v1 on acc"}"#,
            #"{"record": "\#(records[2][string: "record"] ?? "?")", "model": "clf", "stage": "staging", "action": "promote", "to": "\#(v1)", "actor": \#(actor(t1)), "reason": "first candidate"}"#,
        ]
        for (i, e) in expectedRecords.enumerated() {
            #expect(JSONTools.equal(records[i], e), "stage log record \(i): \(JSONTools.canonical(records[i]))\nexpected \(e)")
        }
        let firstRecord = try #require(records[2][string: "record"])
        // The stage ref names the latest record object, which chains to the previous one.
        let recordText = try ws.ok("cat-object", "-p", stagingRef)
        #expect(recordText.hasPrefix("ref refs/stages/clf/staging\ntarget \(v2)\nprevious \(firstRecord)\naction promote\nactor Ada Lovelace <ada@example.com> \(t3) +0000\nx-time-ns \(t3)"),
                "\(recordText.debugDescription)")
        #expect(recordText.hasSuffix("\n\nstaging follows production"), "\(recordText.debugDescription)")
        #expect(try ws.ok("cat-object", "-t", stagingRef) == "stage\n")
        let stagingOnly = try #require(try ws.json("stage", "log", "clf", "--stage", "staging") as? [[String: Any]])
        #expect(stagingOnly.map { $0[string: "reason"] ?? "" } == ["staging follows production", "first candidate"])
        let stageLogText = try ws.ok("stage", "log", "clf")
        #expect(stageLogText.contains("v2 beats v1 on acc") && stageLogText.contains("first candidate"), "\(stageLogText)")

        // stage list --json: one row per model × stage.
        let list = try #require(try ws.json("stage", "list") as? [[String: Any]])
        #expect(list.count == 2, "\(list)")
        #expect(list.map { "\($0[string: "model"] ?? "")@\($0[string: "stage"] ?? "")" } == ["clf@production", "clf@staging"])
        #expect(list.allSatisfy { $0[string: "commit"] == v2 && $0[string: "subject"] == "train v2" && $0[string: "by"] == "Ada Lovelace" }, "\(list)")
        #expect(list.first?[string: "record"] == productionRef)

        // lineage --up of model@production: model ← features ← raw data.
        let tree = try #require(try ws.json("lineage", "clf@production", "--up", "--format", "json") as? [Any])
        let expectedTree = #"""
            [{"commit": "\#(v2)", "subject": "train v2", "time": \#(v2Time), "children": [
              {"commit": "\#(featCommit)", "subject": "featurize", "time": \#(featTime),
               "via": {"id": "\#(featID)", "path": "data/features.csv"}, "children": [
                {"commit": "\#(rawCommit)", "subject": "import raw data", "time": \#(rawTime),
                 "via": {"id": "\#(rawID)", "path": "data/raw.csv"}, "children": []}]}]}]
            """#
        #expect(JSONTools.equal(tree, expectedTree), "lineage json: \(JSONTools.canonical(tree))")
        let up = try ws.ok("lineage", "clf@production", "--up")
        #expect(up == """
            \(v2.prefix(12)) train v2
            └─ \(featCommit.prefix(12)) featurize  [produced data/features.csv \(featID.prefix(12))]
               └─ \(rawCommit.prefix(12)) import raw data  [produced data/raw.csv \(rawID.prefix(12))]

            """, "\(up)")
        // The default direction is up; the same chain from the staging stage, a tag and a path.
        #expect(try ws.ok("lineage", "clf@staging") == up)
        #expect(try ws.ok("lineage", "v2") == up)
        #expect(try ws.ok("lineage", "model.bin") == up, "a path in HEAD starts from the commits that produced it")
        #expect(try ws.ok("lineage", String(model2ID.prefix(10))) == up, "an object id prefix starts from its producers")
        let v1Up = try ws.ok("lineage", "v1", "--up")
        #expect(v1Up.hasPrefix("\(v1.prefix(12)) train v1\n└─ \(featCommit.prefix(12)) featurize"), "\(v1Up)")

        // --down from the raw data: featurize, then both training runs (oldest first).
        let down = try #require(try ws.json("lineage", "data/raw.csv", "--down", "--format", "json") as? [[String: Any]])
        try #require(down.count == 1, "\(down)")
        #expect(down[0][string: "commit"] == featCommit)
        let consumers = down[0][array: "children"] as? [[String: Any]] ?? []
        #expect(consumers.map { $0[string: "commit"] ?? "" } == [v1, v2], "\(JSONTools.canonical(down))")
        #expect(consumers.allSatisfy { JSONTools.equal($0["via"], #"{"id": "\#(featID)", "path": "data/features.csv"}"#) })

        // diff v1 v2: the model file with sizes, the params change and the metric deltas.
        let diff = try #require(try ws.json("diff", "v1", "v2") as? [String: Any])
        #expect(Set(diff.keys) == ["from", "to", "files", "params", "metrics"], "\(diff.keys.sorted())")
        #expect(diff[string: "from"] == v1 && diff[string: "to"] == v2)
        #expect(JSONTools.equal(diff["files"], #"[{"path": "model.bin", "change": "modified", "oldSize": 1000, "newSize": 1500}]"#),
                "\(JSONTools.canonical(diff["files"]))")
        let dParams = try #require(diff[array: "params"] as? [[String: Any]])
        #expect(dParams.count == 1 && dParams.first?[string: "key"] == "lr", "\(dParams)")
        if let p = dParams.first {
            let diffParamsArePlainJSON = JSONTools.equal(p["old"], "0.01") && JSONTools.equal(p["new"], "0.005")
            #expect(diffParamsArePlainJSON, "diff params are not plain JSON: \(JSONTools.canonical(p))")
            #expect(JSONTools.equal(JSONTools.plain(p["old"]), "0.01") && JSONTools.equal(JSONTools.plain(p["new"]), "0.005"))
            #expect(abs((p[number: "delta"] ?? 99) - -0.005) < 1e-12, "\(JSONTools.canonical(p))")
        }
        let dMetrics = try #require(diff[array: "metrics"] as? [[String: Any]])
        #expect(dMetrics.map { $0[string: "key"] ?? "" } == ["acc", "loss"], "\(dMetrics)")
        if dMetrics.count == 2 {
            let diffMetricsArePlainJSON = JSONTools.equal(dMetrics[0]["old"], "0.91") && JSONTools.equal(dMetrics[0]["new"], "0.94")
            #expect(diffMetricsArePlainJSON, "diff metrics are not plain JSON: \(JSONTools.canonical(dMetrics[0]))")
            #expect(JSONTools.equal(JSONTools.plain(dMetrics[0]["old"]), "0.91") && JSONTools.equal(JSONTools.plain(dMetrics[0]["new"]), "0.94"))
            #expect(abs((dMetrics[0][number: "delta"] ?? 99) - 0.03) < 1e-9, "\(JSONTools.canonical(dMetrics[0]))")
            #expect(abs((dMetrics[1][number: "delta"] ?? 99) - -0.1) < 1e-9, "series delta is last − last: \(JSONTools.canonical(dMetrics[1]))")
            #expect(JSONTools.equal(JSONTools.plain(dMetrics[1]["new"]),
                                    #"[{"step": 1, "value": 0.8}, {"step": 2, "value": 0.4}, {"step": 3, "value": 0.2}]"#))
        }
        let diffText = try ws.ok("diff", "v1", "v2")
        for line in ["diff \(v1.prefix(12)) → \(v2.prefix(12))", "modified     model.bin  (1000 B → 1.5 KiB)", "lr: 0.01 → 0.005 (-0.005)",
                     "acc: 0.91 → 0.94 (+0.03)", "loss: 0.3 (series) → 0.2 (series) (-0.1)"] {
            #expect(diffText.contains(line), "diff lacks \(line.debugDescription):\n\(diffText)")
        }
        // diff with one revision compares it with HEAD; a commit with itself has no differences.
        #expect(try ws.ok("diff", "v1") == diffText)
        #expect(try ws.ok("diff", "v2", "v2").hasSuffix("no differences\n"))
        try ws.expectFsckClean("the user flow")
    }

    @Test("lineage of a diamond: --depth, --down, dot and mermaid, object ids, errors, cycles terminate")
    func lineageGraphShapes() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        var clock = 1_710_000_000
        func commit(_ message: String, _ args: String...) throws -> String {
            clock += 10
            try ws.ok(env: author(at: clock), ["commit", "-m", message, "--no-code", "--no-env"] + args)
            return try ws.commitID()
        }
        try ws.write("a.csv", "a\n")
        try ws.ok("add", "a.csv")
        let ca = try commit("make a", "--output", "a.csv")
        try ws.write("b.csv", "b\n")
        try ws.ok("add", "b.csv")
        let cb = try commit("make b", "--output", "b.csv")
        try ws.write("joined/part-0.csv", "a,b\n")
        try ws.write("joined/part-1.csv", "b,a\n")
        try ws.ok("add", "joined")
        let cj = try commit("join", "--input", "a.csv", "--input", "b.csv", "--output", "joined")
        try ws.write("m.bin", "model\n")
        try ws.ok("add", "m.bin")
        let cm = try commit("train", "--input", "./joined/", "--output", ws.path("m.bin"))
        // Input and output paths are normalized to workspace-relative paths (./x, x/, absolute).
        #expect(JSONTools.equal(try ws.showJSON()["inputs"], #"[{"id": "\#(try treeEntryID(ws, "joined"))", "path": "joined"}]"#))
        #expect((try ws.showJSON()[array: "outputs"]?.first as? [String: Any])?[string: "path"] == "m.bin")
        let outside = try ws.run("commit", "-m", "outside", "--input", "../elsewhere.csv", "--no-code", "--no-env")
        #expect(outside.status == 2 && outside.stderr.contains("outside the workspace"), "\(outside)")
        func s(_ id: String) -> String { String(id.prefix(12)) }

        // Up from the model: join, then both producers (oldest first).
        let up = try ws.ok("lineage", "HEAD")
        #expect(up.split(separator: "\n").map(String.init) == [
            "\(s(cm)) train",
            "└─ \(s(cj)) join  [produced joined \(try treeEntryID(ws, "joined").prefix(12))]",
            "   ├─ \(s(ca)) make a  [produced a.csv \(try treeEntryID(ws, "a.csv").prefix(12))]",
            "   └─ \(s(cb)) make b  [produced b.csv \(try treeEntryID(ws, "b.csv").prefix(12))]",
        ], "\(up)")
        // A directory output is one artifact: its id is the directory's tree id in the commit.
        let show = try ws.showJSON(cj)
        #expect(JSONTools.equal(show["outputs"], #"[{"id": "\#(try treeEntryID(ws, "joined"))", "path": "joined"}]"#), "\(JSONTools.canonical(show["outputs"]))")

        // --depth 1 stops after one level.
        let shallow = try ws.ok("lineage", "HEAD", "--depth", "1")
        #expect(shallow.split(separator: "\n").count == 2, "\(shallow)")

        // Down from a: join, then train.
        let down = try ws.ok("lineage", ca, "--down")
        #expect(down.split(separator: "\n").map(String.init) == [
            "\(s(ca)) make a",
            "└─ \(s(cj)) join  [consumed a.csv \(try treeEntryID(ws, "a.csv").prefix(12))]",
            "   └─ \(s(cm)) train  [consumed joined \(try treeEntryID(ws, "joined").prefix(12))]",
        ], "\(down)")

        // dot and mermaid: one node per commit, arrows follow the data (producer → consumer).
        let dot = try ws.ok("lineage", "HEAD", "--format", "dot")
        #expect(dot.hasPrefix("digraph lineage {") && dot.hasSuffix("}\n"), "\(dot)")
        for edge in ["\"\(s(cj))\" -> \"\(s(cm))\" [label=\"joined\"];", "\"\(s(ca))\" -> \"\(s(cj))\" [label=\"a.csv\"];",
                     "\"\(s(cb))\" -> \"\(s(cj))\" [label=\"b.csv\"];"] {
            #expect(dot.contains(edge), "dot lacks \(edge):\n\(dot)")
        }
        #expect(dot.components(separatedBy: "[label=\"").count - 1 == 4 + 3, "4 node labels and 3 edges:\n\(dot)")
        let mermaid = try ws.ok("lineage", "HEAD", "--format", "mermaid")
        #expect(mermaid.hasPrefix("graph BT\n"), "\(mermaid)")
        for edge in ["c\(s(cj)) -->|joined| c\(s(cm))", "c\(s(ca)) -->|a.csv| c\(s(cj))", "c\(s(cb)) -->|b.csv| c\(s(cj))"] {
            #expect(mermaid.contains(edge), "mermaid lacks \(edge):\n\(mermaid)")
        }
        #expect(try ws.ok("lineage", ca, "--down", "--format", "mermaid").hasPrefix("graph TD\n"))

        // Bad options and unknown starts.
        for (args, status) in [(["lineage", "HEAD", "--up", "--down"], Int32(2)), (["lineage", "HEAD", "--format", "xml"], 2),
                               (["lineage", "HEAD", "--depth", "0"], 2), (["lineage", "no-such-thing"], 3)] {
            let r = try ws.run(args)
            #expect(r.status == status, "\(args): \(r)")
            #expect(r.stdout.isEmpty && !r.stderr.isEmpty, "\(args): \(r)")
        }
        // A tracked path nobody recorded as an output: not found, with a hint.
        try ws.write("notes.txt", "n\n")
        try ws.ok("add", "notes.txt")
        _ = try commit("notes")
        let orphan = try ws.run("lineage", "notes.txt")
        #expect(orphan.status == 3 && orphan.stderr.contains("no commit records") && orphan.stderr.contains("hint:"), "\(orphan)")

        // A cycle through identical content (c.csv == a.csv) terminates.
        try ws.write("c.csv", "a\n")
        try ws.ok("add", "c.csv")
        let cc = try commit("copy back", "--input", "m.bin", "--output", "c.csv")
        let cyc = try ws.run("lineage", cc, "--depth", "50", "--format", "json")
        #expect(cyc.status == 0, "\(cyc)")
        let cycDown = try ws.run("lineage", ca, "--down", "--format", "text")
        #expect(cycDown.status == 0 && cycDown.stdout.split(separator: "\n").count < 20, "\(cycDown)")
        // Content produced by two commits (a.csv == c.csv): one tree per producer, oldest first.
        let roots = try #require(try ws.json("lineage", "a.csv", "--format", "json") as? [[String: Any]])
        #expect(roots.map { $0[string: "commit"] ?? "" } == [ca, cc], "\(JSONTools.canonical(roots))")
    }

    @Test("diff: added, deleted, modified and type-changed files with sizes; params added, removed and changed")
    func diffKinds() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("d/a.txt", "1\n")
        try ws.write("d/b.txt", "22\n")
        try ws.write("keep.txt", "x\n")
        try ws.ok("add", "d", "keep.txt")
        try ws.ok(env: author(at: 1_700_000_000), "commit", "-m", "one", "--param", "a=1", "--param", "b.c=2", "--param", "s=x",
                  "--metric", "acc=0.5", "--no-code", "--no-env")
        let one = try ws.commitID()
        try FS.remove(ws.path("d/a.txt"))
        try FS.remove(ws.path("d/b.txt"))
        try FS.symlink(ws.path("d/b.txt"), to: "../keep")
        try ws.write("d/c.txt", "333\n")
        try ws.write("keep.txt", "y\n")
        try ws.ok("add", "d", "keep.txt")
        try ws.ok(env: author(at: 1_700_000_100), "commit", "-m", "two", "--param", "a=1", "--param", "b.d=3", "--param", "s=y",
                  "--metric", "acc=0.75", "--metric", "f1=0.5", "--no-code", "--no-env")
        let two = try ws.commitID()
        let d = try #require(try ws.json("diff", one, two) as? [String: Any])
        #expect(JSONTools.equal(d["files"], """
            [{"path": "d/a.txt", "change": "deleted", "oldSize": 2},
             {"path": "d/b.txt", "change": "type-changed", "oldSize": 3, "newSize": 7},
             {"path": "d/c.txt", "change": "added", "newSize": 4},
             {"path": "keep.txt", "change": "modified", "oldSize": 2, "newSize": 2}]
            """), "\(JSONTools.canonical(d["files"]))")
        let params = JSONTools.plain(d["params"])
        #expect(JSONTools.equal(params, """
            [{"key": "b.c", "old": 2}, {"key": "b.d", "new": 3}, {"key": "s", "old": "x", "new": "y"}]
            """), "\(JSONTools.canonical(params))")
        let metrics = JSONTools.plain(d["metrics"])
        #expect(JSONTools.equal(metrics, """
            [{"key": "acc", "old": 0.5, "new": 0.75, "delta": 0.25}, {"key": "f1", "new": 0.5}]
            """), "\(JSONTools.canonical(metrics))")
        // Text: each file line is "<change> <path>  (<sizes>)", the change and the path separated.
        let text = try ws.ok("diff", one, two)
        let fileLines = text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("  ") && $0.contains(" B") }
        let tokens = fileLines.map { $0.split(separator: " ").prefix(2).map(String.init) }
        #expect(tokens == [["deleted", "d/a.txt"], ["type-changed", "d/b.txt"], ["added", "d/c.txt"], ["modified", "keep.txt"]],
                "diff file lines:\n\(fileLines.joined(separator: "\n"))")
        for line in ["b.c: 2 → (none)", "b.d: (none) → 3", "s: x → y", "acc: 0.5 → 0.75 (+0.25)", "f1: (none) → 0.5"] {
            #expect(text.contains(line), "diff lacks \(line.debugDescription):\n\(text)")
        }
    }

    /// The id of a path's entry in HEAD's tree.
    func treeEntryID(_ ws: Workspace, _ path: String) throws -> String {
        let rows = try ws.lsTree(try ws.showJSON()[string: "tree"] ?? "")
        if let id = rows.first(where: { $0["path"] as? String == path })?["id"] as? String { return id }
        // Directories are not listed by ls-tree -r; use the non-recursive listing.
        let top = try ws.ok("ls-tree", try ws.showJSON()[string: "tree"] ?? "")
        for line in top.split(separator: "\n") where line.hasSuffix("\t" + path) {
            if let id = line.split(separator: " ", omittingEmptySubsequences: true).first(where: { isObjectID(String($0)) }) { return String(id) }
        }
        throw TestFailure("no entry \(path) in HEAD's tree")
    }
}
