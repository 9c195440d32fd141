import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// A workspace with a model in `models/fraud/` (a small ONNX file, a config and a 700 KB chunked file),
/// training data, two commits and two registered versions with a signature.
struct ModelFixture {
    let f: Fixture
    var repo: Repository { f.repo }
    var c1: ObjectID
    var c2: ObjectID
    static let signature = JSONValue.object([
        "inputs": .array([.object(["name": .string("x"), "type": .string("float32"), "shape": .array([.number(-1), .number(4)])])]),
        "outputs": .array([.object(["name": .string("score"), "type": .string("float32")])]),
    ])

    init(_ label: String, register: Bool = true) throws {
        setenv("MLSTORE_AUTHOR_NAME", "Ada", 1)
        setenv("MLSTORE_AUTHOR_EMAIL", "ada@example.com", 1)
        f = try Fixture(label)
        try TestFiles.write(f.path("models/fraud/model.onnx"), "weights v1\n")
        try TestFiles.write(f.path("models/fraud/config.json"), "{\"threshold\": 0.5}\n")
        try TestFiles.write(f.path("models/fraud/big.bin"), size: 700_000, seed: 7)
        try TestFiles.write(f.path("data/train.csv"), "a,b\n1,2\n")
        _ = try f.ws.add(["models", "data"])
        c1 = try Self.commit(f.ws, "train v1", outputs: ["models/fraud"], acc: 0.91)
        try TestFiles.write(f.path("models/fraud/model.onnx"), "weights v2 (better)\n")
        _ = try f.ws.add(["models"])
        c2 = try Self.commit(f.ws, "train v2", outputs: ["models/fraud"], acc: 0.95)
        if register {
            var r = ModelRegistration(name: "fraud", revision: c1.hex)
            r.signature = Self.signature
            r.framework = "onnxruntime"
            r.frameworkVersion = "1.18.0"
            r.description = "first fraud model"
            r.metadata = ["owner": "risk-team"]
            try repo.registerModel(r)
            r.revision = "HEAD"
            r.description = "second"
            try repo.registerModel(r)
        }
    }

    static func commit(_ ws: Workspace, _ message: String, outputs: [String], acc: Double) throws -> ObjectID {
        var o = Workspace.CommitOptions(message: message)
        o.inputs = ["data"]
        o.outputs = outputs
        o.metrics = .object(["acc": .number(acc)])
        o.captureCode = false
        o.captureEnv = false
        o.allowEmpty = true
        return try ws.commit(o).id
    }

    func path(_ rel: String) -> String { f.path(rel) }

    /// Files below a directory (relative path → bytes), not following symlinks.
    static func files(_ root: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        func visit(_ rel: String) throws {
            for (name, _) in try Sys.listDirectory(rel.isEmpty ? root : root + "/" + rel) {
                let r = rel.isEmpty ? name : rel + "/" + name
                let st = try Sys.lstat(root + "/" + r)
                if st.type == .directory { try visit(r) } else { out[r] = try Sys.readFile(root + "/" + r) }
            }
        }
        try visit("")
        return out
    }
}

@Suite(.serialized) struct ModelVersionTests {
    static func sample() -> ModelVersion {
        let id = { (n: UInt8) in ObjectID.hash(kind: .blob, payload: [n]) }
        return ModelVersion(
            name: "fraud", version: 2, commit: id(1), artifacts: [Artifact(id: id(3), path: "models/tokenizer.json"), Artifact(id: id(2), path: "models/fraud.onnx")],
            flavor: "onnx", framework: "onnxruntime", frameworkVersion: "1.18.0", signature: id(4), previous: id(5),
            author: Signature(name: "Ada Lovelace", email: "ada@example.com", time: 1_700_000_000, offsetMinutes: 60),
            metadata: [("owner", "risk team"), ("dataset", "2024-q4")], description: "better recall\n")
    }

    /// The format vector of spec/models.md.
    @Test func formatRoundTripAndVector() throws {
        let v = Self.sample()
        let text = String(decoding: v.encoded(), as: UTF8.self)
        let id = { (n: UInt8) in ObjectID.hash(kind: .blob, payload: [n]).hex }
        #expect(text == """
            name fraud
            version 2
            commit \(id(1))
            artifact \(id(2)) models/fraud.onnx
            artifact \(id(3)) models/tokenizer.json
            flavor onnx
            framework onnxruntime 1.18.0
            signature \(id(4))
            previous \(id(5))
            author Ada Lovelace <ada@example.com> 1700000000 +0100
            x-dataset 2024-q4
            x-owner risk team

            better recall

            """)
        #expect(v.id.hex == "ecdd6c61da82d39446ee7b466744021b5ca4a6ec3a739fd2a3ec2a27f069b7f0")  // spec/models.md
        let decoded = try ModelVersion(decoding: v.encoded(), id: v.id)
        #expect(decoded == v)
        #expect(decoded.metadata.map(\.key) == ["dataset", "owner"] && decoded.frameworkVersion == "1.18.0")
        #expect(try ModelVersion(decoding: v.encoded()).id == v.id)
        // v1: no previous, no optional headers.
        let v1 = ModelVersion(name: "m", version: 1, commit: v.commit, artifacts: [Artifact(id: v.commit, path: ".")], author: v.author)
        #expect(try ModelVersion(decoding: v1.encoded()) == v1)
    }

    @Test func malformedVersionsAreRejected() throws {
        let good = String(decoding: Self.sample().encoded(), as: UTF8.self)
        func rejects(_ text: String, _ why: Comment) {
            #expect(throws: MLStoreError.self, why) { _ = try ModelVersion(decoding: Array(text.utf8)) }
        }
        rejects(good.replacingOccurrences(of: "flavor onnx\n", with: "flavor onnx\ncolor blue\n"), "unknown header")
        rejects(good.replacingOccurrences(of: "version 2\n", with: ""), "no version")
        rejects(good.replacingOccurrences(of: "version 2\n", with: "version 1\n"), "v1 with a previous version")
        rejects(good.replacingOccurrences(of: "version 2\n", with: "version 02\n"), "leading zero")
        rejects(good.replacingOccurrences(of: "models/fraud.onnx", with: "../etc/passwd"), "escaping artifact path")
        rejects(good.replacingOccurrences(of: "models/fraud.onnx", with: "models/zz.onnx"), "unsorted artifacts")
        rejects(good.replacingOccurrences(of: "name fraud\n", with: "name ../x\n"), "bad model name")
        let flavorFirst = good.replacingOccurrences(of: "flavor onnx\n", with: "").replacingOccurrences(of: "name fraud\n", with: "flavor onnx\nname fraud\n")
        rejects(flavorFirst, "headers out of order")
        rejects(good.replacingOccurrences(of: "x-dataset 2024-q4\nx-owner risk team\n", with: "x-owner risk team\nx-dataset 2024-q4\n"), "unsorted metadata")
    }

    @Test func specsAndReservedStageNames() throws {
        #expect(try ModelSpec(parsing: "fraud@v12") == ModelSpec(name: "fraud", selector: .version(12)))
        #expect(try ModelSpec(parsing: "fraud@production") == ModelSpec(name: "fraud", selector: .stage("production")))
        #expect(try ModelSpec(parsing: "fraud") == ModelSpec(name: "fraud", selector: .latest))
        #expect(try ModelSpec(parsing: "fraud@latest") == ModelSpec(name: "fraud", selector: .latest))
        for bad in ["fraud@v0", "fraud@v01", "fraud@", "@v1", "fr/aud@v1", "fraud@Prod"] {
            #expect(throws: MLStoreError.self, "\(bad)") { _ = try ModelSpec(parsing: bad) }
        }
        // v<N> names a version, so it cannot be a stage.
        #expect(throws: MLStoreError.self) { try RegistryName.validateStage("v2") }
        try RegistryName.validateStage("canary-v2")
    }

    @Test func outputNamesAreRelativeToTheArtifacts() {
        #expect(ModelLayout.base(of: ["."]) == "")
        #expect(ModelLayout.base(of: ["models/fraud.onnx"]) == "models")
        #expect(ModelLayout.base(of: ["models/a/x.onnx", "models/b/y.json"]) == "models")
        #expect(ModelLayout.base(of: ["a/x", "b/y"]) == "")
        #expect(ModelLayout.outputPath("models/a/x.onnx", base: "models") == "a/x.onnx")
        #expect(ModelSource.defaultArtifactPaths(outputs: [], path: nil) == ["."])
        let id = Tree.empty.id
        #expect(ModelSource.defaultArtifactPaths(outputs: [Artifact(id: id, path: "out/m"), Artifact(id: id, path: "out/m/x"), Artifact(id: id, path: "b")], path: nil) == ["b", "out/m"])
        #expect(ModelSource.defaultArtifactPaths(outputs: [Artifact(id: id, path: "b")], path: "p") == ["p"])
    }

    @Test func symlinkTargetsMustStayInside() throws {
        try Repository.checkLinkStaysInside("a/link", target: "../b")
        try Repository.checkLinkStaysInside("a/link", target: "c/./d")
        for (p, t) in [("link", "../x"), ("a/link", "../../x"), ("link", "/etc/passwd"), ("a/b/l", "../../../x"), ("l", "")] {
            #expect(throws: MLStoreError.self, "\(p) → \(t)") { try Repository.checkLinkStaysInside(p, target: t) }
        }
    }
}

@Suite(.serialized) struct ModelRegistryTests {
    @Test func registerVersionsResolveAndStages() throws {
        let m = try ModelFixture("model-reg")
        let repo = m.repo
        let chain = try repo.modelVersions("fraud")
        #expect(chain.map(\.version.version) == [2, 1])
        let (v1, v2) = (chain[1].version, chain[0].version)
        #expect(v1.commit == m.c1 && v2.commit == m.c2 && v2.previous == chain[1].id && v1.previous == nil)
        // Default artifacts: the commit's outputs; flavor from the file names; the signature is a canonical JSON blob.
        #expect(v1.artifacts.map(\.path) == ["models/fraud"] && v1.flavor == "onnx")
        #expect(try repo.json(try #require(v2.signature)) == ModelFixture.signature)
        #expect(v2.metadata.map(\.key) == ["owner"] && v2.framework == "onnxruntime" && v2.frameworkVersion == "1.18.0")
        #expect(try repo.refs.read("refs/models/fraud") == chain[0].id)
        // Revisions: fraud@vN is the version's commit.
        #expect(try repo.resolveCommit("fraud@v1") == m.c1)
        #expect(try repo.resolveCommit("fraud@v2~1") == m.c1)
        #expect(try repo.resolveTree("fraud@v2") == (try repo.commit(m.c2)).tree)
        #expect(try repo.peelToCommit(chain[1].id, revision: "x") == m.c1)
        #expect(throws: MLStoreError(.notFound, "")) { _ = try repo.resolve("fraud@v3") }
        // Files are named relative to the artifact directory.
        let s = try repo.resolveModel("fraud@v1")
        #expect(s.files.map(\.path) == ["big.bin", "config.json", "model.onnx"])
        #expect(s.files.map(\.treePath) == ["models/fraud/big.bin", "models/fraud/config.json", "models/fraud/model.onnx"])
        #expect(try repo.resolveModel("fraud").versionID == chain[0].id)
        // Registering exactly the same again is refused; a path selects one file.
        var same = ModelRegistration(name: "fraud", revision: "HEAD")
        same.signature = ModelFixture.signature
        same.framework = "onnxruntime"
        same.frameworkVersion = "1.18.0"
        same.description = "second"
        same.metadata = ["owner": "risk-team"]
        #expect(throws: MLStoreError(.usage, "")) { try repo.registerModel(same) }
        let (_, v3) = try repo.registerModel(ModelRegistration(name: "fraud", revision: "HEAD:models/fraud/model.onnx"))
        #expect(v3.version == 3 && v3.artifacts.map(\.path) == ["models/fraud/model.onnx"] && v3.flavor == "onnx")
        #expect(try repo.resolveModel("fraud@v3").files.map(\.path) == ["model.onnx"])
        #expect(throws: MLStoreError(.notFound, "")) { try repo.registerModel(ModelRegistration(name: "fraud", revision: "HEAD:nope")) }
        var nested = ModelRegistration(name: "other", revision: "HEAD:models")
        nested.paths = ["models/fraud/model.onnx"]
        #expect(throws: MLStoreError(.usage, "")) { try repo.registerModel(nested) }
        var badSig = ModelRegistration(name: "other", revision: "HEAD")
        badSig.signature = .array([])
        #expect(throws: MLStoreError(.usage, "")) { try repo.registerModel(badSig) }

        // Stages: promoting fraud@v1 makes fraud@production that version.
        try repo.promote(model: "fraud", stage: "production", to: "fraud@v1", reason: "ship")
        let prod = try repo.resolveModel("fraud@production")
        #expect(prod.version?.version == 1 && prod.stage == "production" && prod.files.count == 3)
        #expect(try repo.modelStages("fraud").map { "\($0.stage)=\($0.version.map(String.init) ?? "-")" } == ["production=1"])
        // A stage whose commit/path is no registered version still resolves: its path, else the outputs.
        try repo.promote(model: "fraud", stage: "staging", to: "HEAD", path: "data", reason: "odd")
        let staging = try repo.resolveModel("fraud@staging")
        #expect(staging.version == nil && staging.files.map(\.path) == ["train.csv"] && staging.label == "fraud@staging")
        #expect(throws: MLStoreError(.notFound, "")) { _ = try repo.resolveModel("fraud@archived") }
        #expect(throws: MLStoreError(.usage, "")) { try repo.promote(model: "fraud", stage: "v1", to: "HEAD", reason: "") }
    }

    @Test func compareAndSwapOnTheModelRef() throws {
        let m = try ModelFixture("model-cas", register: false)
        let repo = m.repo
        let (id1, _) = try repo.registerModel(ModelRegistration(name: "fraud", revision: m.c1.hex))
        // Another writer registers between our read and our swap: the swap must fail, not lose a version.
        let v2 = ModelVersion(name: "fraud", version: 2, commit: m.c2, artifacts: [Artifact(id: try repo.commit(m.c2).tree, path: ".")],
                              previous: id1, author: try repo.identity())
        let id2 = try repo.objects.write(kind: .model, payload: v2.encoded())
        try repo.refs.update("refs/models/fraud", to: id2, expecting: .value(id1), actor: try repo.identity(), message: "other writer")
        #expect(throws: MLStoreError(.conflict, "")) {
            try repo.refs.update("refs/models/fraud", to: id1, expecting: .value(id1), actor: try repo.identity(), message: "stale")
        }
        #expect(try repo.isModelAncestor(id1, of: id2) && !(try repo.isModelAncestor(id2, of: id1)))
    }

    @Test func graphAndFsckFollowModels() throws {
        let m = try ModelFixture("model-fsck")
        let repo = m.repo
        let (headID, head) = try repo.modelVersions("fraud")[0]
        let children = try ObjectGraph.children(kind: .model, payload: try repo.objects.read(headID, as: .model), id: headID, readJSON: { _ in nil })
        #expect(Set(children.map(\.id)) == Set([head.commit, head.signature!, head.previous!] + head.artifacts.map(\.id)))
        #expect(try repo.fsck().isClean)
        // A ref under refs/models/ must name a model version.
        try repo.refs.update("refs/models/bogus", to: m.c1, expecting: .absent, actor: try repo.identity(), message: "test")
        let report = try repo.fsck()
        #expect(report.problems.contains { $0.subject == "refs/models/bogus" }, "\(report.problems)")
    }
}

@Suite(.serialized) struct ModelDeliveryTests {
    /// Pushes the model, its stage and its commits to a directory remote; returns the remote's path.
    func remote(_ m: ModelFixture) throws -> String {
        let path = m.path("../" + Path.basename(m.f.dir.path) + "-remote")
        try m.repo.promote(model: "fraud", stage: "production", to: "fraud@v1", reason: "ship")
        _ = try m.repo.push(to: path, refs: ["refs/models/fraud", "fraud@production"], all: true)
        return Path.absolute(path, base: "/")
    }

    @Test func getFromADirectoryRemoteWithoutAStore() throws {
        let m = try ModelFixture("model-get")
        let remotePath = try remote(m)
        defer { TempDir.removeTree(remotePath) }
        let out = TempDir("model-get-out")
        let transport = try Repository.transport(for: remotePath)
        let report = try Repository.getModel(from: transport, spec: "fraud@production", output: out.file("deploy"))
        #expect(report.version == 1 && report.stage == "production" && report.files.map(\.path) == ["big.bin", "config.json", "model.onnx"])
        let got = try ModelFixture.files(out.file("deploy"))
        #expect(got["model.onnx"] == Array("weights v1\n".utf8))
        #expect(got["big.bin"] == (try Sys.readFile(m.path("models/fraud/big.bin"))))
        #expect(report.files.first { $0.path == "big.bin" }?.sha256 == Hex.encode(try TestFiles.sha256(m.path("models/fraud/big.bin"))))
        #expect(report.manifest?["signature"] == ModelFixture.signature)
        // Exit-code classes: unknown model / version / stage → not found; a missing remote → I/O (unreachable).
        for spec in ["nope@v1", "fraud@v9", "fraud@staging", "nope"] {
            #expect(throws: MLStoreError(.notFound, ""), "\(spec)") { _ = try Repository.getModel(from: transport, spec: spec, output: out.file("x")) }
        }
        #expect(throws: MLStoreError(.io, "")) {
            _ = try Repository.getModel(from: try Repository.transport(for: out.file("no-remote")), spec: "fraud@v1", output: out.file("x"))
        }
        #expect(try Sys.listDirectory(out.path).map(\.name) == ["deploy"])
        // An existing output is not replaced without force; with force it is, completely.
        #expect(throws: MLStoreError(.conflict, "")) { _ = try Repository.getModel(from: transport, spec: "fraud@v2", output: out.file("deploy")) }
        try TestFiles.write(out.file("deploy/stale.txt"), "old")
        _ = try Repository.getModel(from: transport, spec: "fraud@v2", output: out.file("deploy"), force: true)
        #expect(try ModelFixture.files(out.file("deploy"))["model.onnx"] == Array("weights v2 (better)\n".utf8))
        #expect(try ModelFixture.files(out.file("deploy"))["stale.txt"] == nil)
        // An existing empty directory is filled.
        try Sys.mkdirs(out.file("empty"))
        _ = try Repository.getModel(from: transport, spec: "fraud@v1", output: out.file("empty"))
        #expect(try ModelFixture.files(out.file("empty")).count == 3)
        #expect(try Sys.listDirectory(out.path).map(\.name).sorted() == ["deploy", "empty"])
    }

    @Test func aCorruptRemoteObjectFailsAndLeavesNothing() throws {
        let m = try ModelFixture("model-corrupt")
        let remotePath = try remote(m)
        defer { TempDir.removeTree(remotePath) }
        // Damage one chunk of big.bin on the remote (wherever it is stored).
        let remoteRepo = try Repository.open(at: remotePath)
        let big = try #require(try m.repo.resolveModel("fraud@v1").files.first { $0.path == "big.bin" })
        let chunk = try m.repo.chunkedFile(big.entry.id).chunks[1].id
        let located = try #require(try remoteRepo.objects.allObjects().first { $0.id == chunk })
        if located.location.hasSuffix(".pack") {
            let pack = try #require(remoteRepo.objects.packReaders.first { $0.packPath == located.location })
            let offset = pack.index.offset(at: try #require(pack.index.find(chunk)))
            try Fixture.flipByte(located.location, at: Int(offset) + 50 + 100)
        } else {
            try Fixture.flipByte(located.location, at: 16 + 100)
        }
        let out = TempDir("model-corrupt-out")
        #expect(throws: MLStoreError(.corrupt, "")) {
            _ = try Repository.getModel(from: try Repository.transport(for: remotePath), spec: "fraud@production", output: out.file("a/b/deploy"))
        }
        // No output, no temporary directory, no parent directories created for it.
        #expect(try Sys.listDirectory(out.path).isEmpty)
    }

    @Test func ociExportVerifiesAndRoundTrips() throws {
        let m = try ModelFixture("model-oci")
        let out = TempDir("model-oci-out")
        let report = try m.repo.exportModel("fraud@v1", format: .oci, output: out.file("oci"))
        #expect(report.refName == "v1" && report.files.count == 3)
        let image = try OCILayout.read(out.file("oci"))
        #expect(image.refName == "v1" && image.artifactType == OCI.artifactType && image.config.mediaType == OCI.configMediaType)
        #expect(image.manifestDescriptor.digest == report.manifestDigest)
        #expect(image.layers.map { $0.annotations[OCI.titleAnnotation] ?? "" } == ["big.bin", "config.json", "model.onnx"])
        #expect(image.layers.allSatisfy { $0.mediaType == OCI.layerMediaType })
        #expect(image.configJSON["name"]?.string == "fraud" && image.configJSON["version"]?.number == 1)
        #expect(image.configJSON["signature"] == ModelFixture.signature)
        // Every blob is referenced and named by its SHA-256.
        let blobs = try Sys.listDirectory(out.file("oci/blobs/sha256")).map(\.name).sorted()
        let referenced = ([image.manifestDescriptor, image.config] + image.layers).map { String($0.digest.dropFirst(7)) }
        #expect(blobs == Set(referenced).sorted())
        for b in blobs { #expect(Hex.encode(try TestFiles.sha256(out.file("oci/blobs/sha256/" + b))) == b) }
        // Round trip: unpacking the layout gives the model's files byte for byte.
        try OCILayout.extract(out.file("oci"), to: out.file("unpacked"))
        var expected = try ModelFixture.files(m.path("models/fraud"))
        expected["model.onnx"] = Array("weights v1\n".utf8)  // v1's content (the workspace holds v2's)
        #expect(try ModelFixture.files(out.file("unpacked")) == expected)
        // Deterministic: the same version exports to the same bytes.
        _ = try m.repo.exportModel("fraud@v1", format: .oci, output: out.file("oci2"))
        #expect(try ModelFixture.files(out.file("oci")) == (try ModelFixture.files(out.file("oci2"))))
        // A damaged blob is detected.
        try Fixture.flipByte(out.file("oci/blobs/sha256/" + String(image.layers[2].digest.dropFirst(7))), at: 3)
        #expect(throws: MLStoreError(.corrupt, "")) { _ = try OCILayout.read(out.file("oci")) }
        #expect(throws: MLStoreError(.conflict, "")) { _ = try m.repo.exportModel("fraud@v1", format: .oci, output: out.file("oci")) }
    }

    @Test func tarExportHoldsTheManifestAndTheFiles() throws {
        let m = try ModelFixture("model-tar")
        let out = TempDir("model-tar-out")
        _ = try m.repo.exportModel("fraud@v2", format: .tar, output: out.file("fraud.tar"))
        let tar = try Sys.readFile(out.file("fraud.tar"))
        #expect(tar.count % 512 == 0)
        // Walk the ustar headers.
        var entries: [String: [UInt8]] = [:]
        var order: [String] = []
        var off = 0
        while off + 512 <= tar.count, tar[off] != 0 {
            let h = Array(tar[off..<off + 512])
            let name = String(decoding: h[0..<100].prefix { $0 != 0 }, as: UTF8.self)
            let size = Int(String(decoding: h[124..<135], as: UTF8.self), radix: 8)!
            #expect(Array(h[257..<263]) == Array("ustar\0".utf8))
            var sum = 0
            for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
            #expect(Int(String(decoding: h[148..<154], as: UTF8.self), radix: 8) == sum)
            entries[name] = Array(tar[off + 512..<off + 512 + size])
            order.append(name)
            off += 512 + (size + 511) / 512 * 512
        }
        #expect(order == ["mlstore-model.json", "big.bin", "config.json", "model.onnx"])
        #expect(entries["model.onnx"] == Array("weights v2 (better)\n".utf8))
        #expect(entries["big.bin"] == (try Sys.readFile(m.path("models/fraud/big.bin"))))
        let manifest = try JSONValue.parse(json: try #require(entries["mlstore-model.json"]), what: "manifest")
        #expect(manifest["version"]?.number == 2 && manifest["files"]?.array?.count == 3)
        #expect(manifest["files"]?.array?.first?["sha256"]?.string == Hex.encode(try TestFiles.sha256(m.path("models/fraud/big.bin"))))
    }
}
