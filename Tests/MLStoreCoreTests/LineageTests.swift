import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// Commits with fixed identities and times so ids are reproducible.
func fixedIdentity() {
    setenv("MLSTORE_AUTHOR_NAME", "Ada", 1)
    setenv("MLSTORE_AUTHOR_EMAIL", "ada@example.com", 1)
}

extension Workspace {
    func quickCommit(_ message: String, inputs: [String] = [], outputs: [String] = [], params: JSONValue? = nil, metrics: JSONValue? = nil) throws -> ObjectID {
        var o = CommitOptions(message: message)
        o.inputs = inputs
        o.outputs = outputs
        o.params = params
        o.metrics = metrics
        o.captureCode = false
        o.captureEnv = false
        o.allowEmpty = true
        return try commit(o).id
    }
}

@Suite(.serialized) struct CommitFormatTests {
    func sample() -> Commit {
        let id = { (n: UInt8) in ObjectID.hash(kind: .blob, payload: [n]) }
        var c = Commit(tree: Tree.empty.id, author: Signature(name: "Ada Lovelace", email: "ada@example.com", time: 1_700_000_000, offsetMinutes: 60),
                       committer: Signature(name: "CI", email: "ci@example.com", time: 1_700_000_100, offsetMinutes: -330), message: "train v2\n\nlonger body\n")
        c.parents = [id(1)]
        c.inputs = [Artifact(id: id(2), path: "data/train.csv")]
        c.outputs = [Artifact(id: id(3), path: "models/model bin.pkl")]
        c.params = id(4)
        c.metrics = id(5)
        c.env = id(6)
        c.code = CodeVersion(tree: id(7), gitCommit: "0123456789abcdef0123456789abcdef01234567", dirtyPatch: id(8))
        c.command = ["python", "train.py", "--name", "a b \"c\""]
        c.extensions = [("zeta", "1"), ("alpha", "two words")]
        return c
    }

    @Test func roundTripAndStableID() throws {
        let c = sample()
        let decoded = try Commit(decoding: c.encoded())
        #expect(decoded == c)
        #expect(decoded.command == c.command)
        #expect(decoded.extensions.map(\.key) == ["alpha", "zeta"])  // written sorted
        #expect(decoded.author.offsetMinutes == 60 && decoded.committer.offsetMinutes == -330)
        #expect(sample().id == c.id)
        var other = c
        other.message = "train v3\n"
        #expect(other.id != c.id)
        // The header is git-like text (spec/lineage.md vector).
        let text = String(decoding: c.encoded(), as: UTF8.self)
        #expect(text.hasPrefix("tree 6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321\nparent "))
        #expect(text.contains("\ncommand [\"python\",\"train.py\",\"--name\",\"a b \\\"c\\\"\"]\n"))
        #expect(text.contains("\nauthor Ada Lovelace <ada@example.com> 1700000000 +0100\n"))
        #expect(text.contains("\ncommitter CI <ci@example.com> 1700000100 -0530\n"))
    }

    @Test func malformedCommitsAreRejected() {
        for bad in ["tree zz\nauthor a <b> 1 +0000\ncommitter a <b> 1 +0000\n\nm", "author a <b> 1 +0000\n\nm", "tree \(Tree.empty.id.hex)\nbogus x\n\nm",
                    "tree \(Tree.empty.id.hex)\nauthor a <b> 1 +0000\ncommitter a <b> 1 +0000\nno blank line"] {
            #expect(throws: MLStoreError.self) { _ = try Commit(decoding: Array(bad.utf8)) }
        }
    }

    @Test func stageAndTagRoundTrip() throws {
        let sig = Signature(name: "A", email: "a@x", time: 5)
        let r = StageRecord(model: "fraud", stage: "production", target: Tree.empty.id, path: "model.pkl", previous: Tree.empty.id, action: .rollback, actor: sig, message: "regression in v3\n")
        #expect(try StageRecord(decoding: r.encoded()) == r)
        #expect(String(decoding: r.encoded(), as: UTF8.self).hasPrefix("ref refs/stages/fraud/production\ntarget "))
        let t = TagObject(object: Tree.empty.id, kind: .commit, name: "v1", tagger: sig, message: "first\n")
        #expect(try TagObject(decoding: t.encoded()) == t)
    }
}

@Suite(.serialized) struct RunValuesTests {
    @Test func paramsFromYAMLJSONAndFlags() throws {
        let dir = TempDir("params")
        try TestFiles.write(dir.file("params.yaml"), "lr: 0.01\nepochs: 10\nname: resnet\nuse_gpu: true\noptimizer:\n  kind: adam\n  beta: 0.9\n")
        try TestFiles.write(dir.file("p.json"), #"{"batch": 32, "optimizer": {"beta": 0.95}}"#)
        let p = try #require(try RunValues.params(files: [dir.file("params.yaml"), dir.file("p.json")], assignments: ["lr=0.02", "tag='quoted'"]))
        let f = p.flattened()
        #expect(f["lr"] == .number(0.02))
        #expect(f["epochs"] == .number(10))
        #expect(f["use_gpu"] == .bool(true))
        #expect(f["name"] == .string("resnet"))
        #expect(f["optimizer.kind"] == .string("adam"))
        #expect(f["optimizer.beta"] == .number(0.95))
        #expect(f["batch"] == .number(32))
        // Canonical bytes: key order does not matter.
        let a = try JSONValue.parse(yaml: "b: 1\na: 2\n", what: "t"), b = try JSONValue.parse(json: Array(#"{"a":2,"b":1}"#.utf8), what: "t")
        #expect(a.canonical == b.canonical && a.canonical == #"{"a":2,"b":1}"#)
    }

    @Test func metricsScalarsAndSeries() throws {
        let dir = TempDir("metrics")
        try TestFiles.write(dir.file("m.json"), #"{"acc": 0.9, "loss": [0.5, 0.4], "eval": {"f1": 0.8}, "lr": [{"step": 10, "value": 0.1}]}"#)
        let m = try #require(try RunValues.metrics(files: [dir.file("m.json")], assignments: ["extra=3"]))
        #expect(m["acc"] == .number(0.9))
        #expect(m["eval.f1"] == .number(0.8))
        #expect(m["extra"] == .number(3))
        #expect(m["loss"]?.array?.count == 2)
        #expect(m["loss"]?.array?[1]["step"] == .number(1))
        #expect(m["lr"]?.array?[0]["step"] == .number(10))
    }

    @Test(arguments: ["novalue", "=3", "a b=1", "a..b=1"])
    func badAssignments(_ text: String) {
        #expect(throws: MLStoreError.self) { _ = try RunValues.params(files: [], assignments: [text]) }
    }

    @Test func badMetricsAndFiles() throws {
        let dir = TempDir("badmetrics")
        #expect(throws: MLStoreError.self) { _ = try RunValues.metrics(files: [], assignments: ["acc=high"]) }
        try TestFiles.write(dir.file("m.json"), #"{"acc": "good"}"#)
        #expect(throws: MLStoreError.self) { _ = try RunValues.metrics(files: [dir.file("m.json")], assignments: []) }
        try TestFiles.write(dir.file("broken.json"), #"{"acc": 0.9"#)
        #expect(throws: MLStoreError.self) { _ = try RunValues.metrics(files: [dir.file("broken.json")], assignments: []) }
        try TestFiles.write(dir.file("broken.yaml"), "a: [1, 2\n")
        #expect(throws: MLStoreError.self) { _ = try RunValues.params(files: [dir.file("broken.yaml")], assignments: []) }
        #expect(throws: MLStoreError.self) { _ = try RunValues.params(files: [dir.file("missing.yaml")], assignments: []) }
    }

    @Test func commandSplitting() throws {
        #expect(try RunValues.splitCommand(#"python train.py --name "a b" 'c d' e\ f"#) == ["python", "train.py", "--name", "a b", "c d", "e f"])
        #expect(throws: MLStoreError.self) { _ = try RunValues.splitCommand(#"python "unterminated"#) }
    }

    @Test func badParamsWriteNothing() throws {
        let f = try Fixture("badparams")
        let before = try f.repo.objects.allObjects().count
        #expect(throws: MLStoreError.self) { _ = try RunValues.params(files: [], assignments: ["oops"]) }
        #expect(try f.repo.objects.allObjects().count == before)
        #expect(try f.repo.refs.head().commit == nil)
    }
}

@Suite(.serialized) struct HistoryTests {
    init() { fixedIdentity() }

    @Test func commitsChainAndRevisionsResolve() throws {
        let f = try Fixture("revs")
        try TestFiles.write(f.path("a.txt"), "1")
        _ = try f.ws.add(["a.txt"])
        let c1 = try f.ws.quickCommit("one")
        try TestFiles.write(f.path("a.txt"), "2")
        _ = try f.ws.add(["a.txt"])
        let c2 = try f.ws.quickCommit("two")
        #expect(try f.repo.resolve("HEAD") == c2)
        #expect(try f.repo.resolve("HEAD~1") == c1)
        #expect(try f.repo.resolve("HEAD^") == c1)
        #expect(try f.repo.resolve("main~1") == c1)
        #expect(try f.repo.resolve(String(c1.hex.prefix(8))) == c1)
        #expect { _ = try f.repo.resolve("HEAD~5") } throws: { ($0 as? MLStoreError)?.code == .notFound }
        #expect { _ = try f.repo.resolve("nope") } throws: { ($0 as? MLStoreError)?.code == .notFound }
        #expect(try f.repo.history(from: [c2]).map(\.id) == [c2, c1])
        #expect(try f.repo.commit(c2).parents == [c1])
    }

    @Test func ambiguousPrefixListsCandidates() throws {
        let f = try Fixture("ambiguous")
        var byPrefix: [String: ObjectID] = [:]
        for i in 0..<5000 {
            let id = try f.repo.objects.write(kind: .blob, payload: Array("blob \(i)".utf8))
            let p = String(id.hex.prefix(4))
            if let other = byPrefix[p] {
                #expect { _ = try f.repo.resolve(p) } throws: { e in
                    (e as? MLStoreError)?.code == .usage && "\(e)".contains(other.hex) && "\(e)".contains(id.hex)
                }
                return
            }
            byPrefix[p] = id
        }
        Issue.record("no 4-digit collision among 5000 ids")
    }

    @Test func casRefusesARefThatMovedUnderneath() throws {
        let f = try Fixture("cas")
        try TestFiles.write(f.path("a"), "1")
        _ = try f.ws.add(["a"])
        let c1 = try f.ws.quickCommit("one")
        let refs = f.repo.refs
        let sig = try f.repo.identity()
        let read = try refs.read("refs/heads/main")
        #expect(read == c1)
        // Someone else moves the ref between our read and our update.
        let other = try f.repo.objects.write(kind: .commit, payload: Commit(tree: Tree.empty.id, author: sig, committer: sig, message: "other\n").encoded())
        try Sys.writeFileAtomically(f.repo.storeDirectory + "/refs/heads/main", Array((other.hex + "\n").utf8))
        #expect {
            try refs.update("refs/heads/main", to: c1, expecting: .value(read!), actor: sig, message: "stale")
        } throws: { e in (e as? MLStoreError)?.code == .conflict && "\(e)".contains("moved") }
        #expect(try refs.read("refs/heads/main") == other)
        try refs.update("refs/tags/x", to: c1, expecting: .absent, actor: sig, message: "t")
        #expect { try refs.update("refs/tags/x", to: c1, expecting: .absent, actor: sig, message: "t") } throws: { ($0 as? MLStoreError)?.code == .conflict }
        #expect { try refs.update("refs/heads/bad..name", to: c1, expecting: .any, actor: sig, message: "t") } throws: { ($0 as? MLStoreError)?.code == .usage }
    }

    @Test func commitRefusesEmptyUnlessItRecordsARun() throws {
        let f = try Fixture("empty")
        try TestFiles.write(f.path("a"), "1")
        _ = try f.ws.add(["a"])
        _ = try f.ws.quickCommit("one")
        var o = Workspace.CommitOptions(message: "nothing")
        o.captureCode = false
        o.captureEnv = false
        #expect { _ = try f.ws.commit(o) } throws: { e in "\(e)".contains("--allow-empty") }
        o.metrics = .object(["acc": .number(0.5)])
        _ = try f.ws.commit(o)
    }

    @Test func codeCaptureCleanAndDirty() throws {
        let f = try Fixture("code")
        let git = "git -c user.name=T -c user.email=t@x"
        #expect(shell("git init -q . && printf 'print(1)\\n' > train.py && \(git) add train.py && \(git) commit -qm init", cwd: f.dir.path).status == 0)
        let head = shell("git rev-parse HEAD", cwd: f.dir.path).output.trimmingCharacters(in: "\n")
        let batch = f.repo.objects.batch()
        // Ignore mlstore's own directory as `add` would.
        try TestFiles.write(f.path(".gitignore"), "/.mlstore/\n")
        #expect(shell("\(git) add .gitignore && \(git) commit -qm ignore", cwd: f.dir.path).status == 0)
        let head2 = shell("git rev-parse HEAD", cwd: f.dir.path).output.trimmingCharacters(in: "\n")
        #expect(head2 != head)
        let clean = try #require(try CodeCapture.capture(workspace: f.dir.path, into: batch))
        #expect(clean.gitCommit == head2)
        #expect(clean.dirtyPatch == nil)
        try TestFiles.write(f.path("train.py"), "print(2)\n")
        let dirty = try #require(try CodeCapture.capture(workspace: f.dir.path, into: batch))
        try batch.commit()
        let patchID = try #require(dirty.dirtyPatch)
        let patch = String(decoding: try f.repo.objects.read(patchID, as: .blob), as: UTF8.self)
        #expect(patch.contains("-print(1)") && patch.contains("+print(2)"))
        #expect(dirty.tree != clean.tree)
        let files = try f.repo.flatten(tree: dirty.tree).map(\.path)
        #expect(files.contains("train.py") && files.contains(".gitignore"))
        // Outside git: no code version.
        let plain = TempDir("nogit")
        #expect(try CodeCapture.capture(workspace: plain.path, into: f.repo.objects.batch()) == nil)
    }

    @Test func environmentRecordIsStable() throws {
        let f = try Fixture("env")
        let a = try EnvironmentCapture.capture(workspace: f.dir.path, into: f.repo.objects.batch())
        let b = try EnvironmentCapture.capture(workspace: f.dir.path, into: f.repo.objects.batch())
        #expect(a == b)  // identical environments dedupe to one object
        #expect(a["os"]?.string?.isEmpty == false)
        #expect(a["arch"]?.string == "x86_64" || a["arch"]?.string == "aarch64")
        #expect(a["kernel"]?.string?.isEmpty == false)
    }
}

@Suite(.serialized) struct RegistryTests {
    init() { fixedIdentity() }

    @Test func promotePromoteRollbackKeepsOrderedHistory() throws {
        let f = try Fixture("registry")
        try TestFiles.write(f.path("m.bin"), "v1")
        _ = try f.ws.add(["m.bin"])
        let v1 = try f.ws.quickCommit("v1", metrics: .object(["acc": .number(0.8)]))
        try TestFiles.write(f.path("m.bin"), "v2")
        _ = try f.ws.add(["m.bin"])
        let v2 = try f.ws.quickCommit("v2", metrics: .object(["acc": .number(0.93)]))
        try f.repo.promote(model: "fraud", stage: "production", to: v1.hex, reason: "first release")
        try f.repo.promote(model: "fraud", stage: "production", to: "HEAD", reason: "better recall")
        #expect(try f.repo.resolve("fraud@production") == v2)
        try f.repo.rollback(model: "fraud", stage: "production", reason: "latency regression")
        #expect(try f.repo.resolve("fraud@production") == v1)
        let log = try f.repo.stageLog(model: "fraud", stage: "production")
        #expect(log.map(\.action) == [.rollback, .promote, .promote])
        #expect(log.map(\.reason) == ["latency regression", "better recall", "first release"])
        #expect(log.map(\.to) == [v1, v2, v1])
        #expect(log.map(\.from) == [v2, v1, nil])
        // Nothing earlier than v1 is in effect now.
        #expect { try f.repo.rollback(model: "fraud", stage: "production", reason: "again") } throws: { ($0 as? MLStoreError)?.code == .conflict }
        // Gate.
        #expect {
            try f.repo.promote(model: "fraud", stage: "staging", to: v1.hex, reason: "x", require: try Requirement.parse("metrics.acc>=0.9"))
        } throws: { e in (e as? MLStoreError)?.code == .conflict && "\(e)".contains("metrics.acc = 0.8") }
        #expect(try f.repo.refs.read("refs/stages/fraud/staging") == nil)
        try f.repo.promote(model: "fraud", stage: "staging", to: v2.hex, reason: "x", require: try Requirement.parse("metrics.acc>=0.9, metrics.acc<1"))
        #expect(throws: MLStoreError.self) { try f.repo.promote(model: "bad name", stage: "staging", to: v2.hex, reason: "") }
        #expect(throws: MLStoreError.self) { try f.repo.promote(model: "fraud", stage: "Prod!", to: v2.hex, reason: "") }
        #expect(try f.repo.stages().count == 2)
    }

    @Test func concurrentPromotionIsRefusedNotLost() throws {
        let f = try Fixture("registry-cas")
        try TestFiles.write(f.path("m"), "1")
        _ = try f.ws.add(["m"])
        let v1 = try f.ws.quickCommit("v1")
        let (r1, _) = try f.repo.promote(model: "m", stage: "staging", to: v1.hex, reason: "a")
        try TestFiles.write(f.path("m"), "2")
        _ = try f.ws.add(["m"])
        let v2 = try f.ws.quickCommit("v2")
        // A promotion prepared against r1 fails if the stage moved meanwhile.
        try f.repo.promote(model: "m", stage: "staging", to: v2.hex, reason: "b")
        #expect {
            try f.repo.promote(model: "m", stage: "staging", to: v1.hex, reason: "c", expectedRecord: .value(r1))
        } throws: { ($0 as? MLStoreError)?.code == .conflict }
        #expect(try f.repo.stageChain(model: "m", stage: "staging").count == 2)
    }
}

@Suite(.serialized) struct LineageGraphTests {
    init() { fixedIdentity() }

    /// raw data → features → model, each a commit with inputs and outputs.
    func chain() throws -> (Fixture, [ObjectID]) {
        let f = try Fixture("lineage")
        try TestFiles.write(f.path("data/raw.csv"), "1,2\n")
        _ = try f.ws.add(["data"])
        let raw = try f.ws.quickCommit("import raw", outputs: ["data/raw.csv"])
        try TestFiles.write(f.path("data/features.csv"), "f1\n")
        _ = try f.ws.add(["data"])
        let feat = try f.ws.quickCommit("features", inputs: ["data/raw.csv"], outputs: ["data/features.csv"])
        try TestFiles.write(f.path("model.pkl"), "model\n")
        _ = try f.ws.add(["model.pkl"])
        let model = try f.ws.quickCommit("train", inputs: ["data/features.csv"], outputs: ["model.pkl"])
        return (f, [raw, feat, model])
    }

    @Test func upAndDownInAllFormats() throws {
        let (f, ids) = try chain()
        let g = try LineageGraph(repo: f.repo)
        let up = g.up(from: ids[2], depth: 10)
        #expect(up.children.map(\.commit) == [ids[1]])
        #expect(up.children[0].children.map(\.commit) == [ids[0]])
        #expect(up.children[0].via?.path == "data/features.csv")
        let down = g.down(from: ids[0], depth: 10)
        #expect(down.children.map(\.commit) == [ids[1]])
        #expect(down.children[0].children.map(\.commit) == [ids[2]])
        #expect(g.down(from: ids[0], depth: 1).children[0].children.isEmpty)

        let text = LineageGraph.text(up, up: true)
        #expect(text.contains(ids[1].short) && text.contains(ids[0].short) && text.contains("└─"))
        let dot = LineageGraph.dot(up, up: true)
        #expect(dot.hasPrefix("digraph lineage {") && dot.contains("\"\(ids[0].short)\" -> \"\(ids[1].short)\""))
        let mermaid = LineageGraph.mermaid(down, up: false)
        #expect(mermaid.hasPrefix("graph TD") && mermaid.contains("c\(ids[1].short) -->|data/features.csv| c\(ids[2].short)"))
        let encoded = String(decoding: try JSONEncoderShim.encode(up), as: UTF8.self)
        #expect(encoded.contains(ids[0].hex))
        // By artifact: the producer of model.pkl.
        let head = try #require(try f.repo.headTree())
        let modelID = try #require(try f.repo.lookup("model.pkl", in: head)).id
        #expect(g.producers(of: modelID) == [ids[2]])
    }
}

import Foundation

enum JSONEncoderShim {
    static func encode<T: Encodable>(_ v: T) throws -> Data { try JSONEncoder().encode(v) }
}
