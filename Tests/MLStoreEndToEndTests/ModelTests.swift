import Foundation
import MLStoreBasics
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A workspace with two versions of model `fraud` (each with a signature), v1 promoted to production,
/// everything pushed to a directory remote in a separate scratch directory that has no store.
private struct ModelScene {
    let ws: Workspace
    let tmp: TempDir
    var remote: String { tmp.path + "/remote" }
    /// The v1 files, by their path in the model.
    var v1: [String: Data] = [:]
    static let sig1 = #"{"inputs": [{"name": "x", "type": "float32", "shape": [-1, 4]}], "outputs": [{"name": "score", "type": "float32"}]}"#
    static let sig2 = #"{"inputs": [{"name": "x", "type": "float32", "shape": [-1, 8]}], "outputs": [{"name": "score", "type": "float32"}]}"#
    static let env = author(at: 1_750_000_000)

    init() throws {
        ws = try Workspace()
        tmp = try TempDir(prefix: "mlstore-model-scene")
        let big = FS.randomData(count: 600_000, seed: 42)
        try ws.write("models/fraud/model.onnx", "weights v1\n")
        try ws.write("models/fraud/config.json", "{\"threshold\": 0.5}\n")
        try ws.write("models/fraud/big.bin", big)
        try ws.write("data/train.csv", "a,b\n1,2\n")
        try ws.write("sig1.json", Self.sig1)
        try ws.write("sig2.json", Self.sig2)
        v1 = ["model.onnx": Data("weights v1\n".utf8), "config.json": Data("{\"threshold\": 0.5}\n".utf8), "big.bin": big]
        try ws.ok(env: Self.env, "add", "models", "data")
        try ws.ok(env: Self.env, "commit", "-m", "train v1", "--input", "data", "--output", "models/fraud", "--metric", "acc=0.91", "--no-code", "--no-env")
        try ws.ok(env: Self.env, "model", "register", "fraud", "HEAD", "--signature", "sig1.json", "--framework", "onnxruntime",
                  "--framework-version", "1.18.0", "-m", "first fraud model", "--meta", "owner=risk-team")
        try ws.write("models/fraud/model.onnx", "weights v2 (better)\n")
        try ws.ok(env: Self.env, "add", "models")
        try ws.ok(env: Self.env, "commit", "-m", "train v2", "--input", "data", "--output", "models/fraud", "--metric", "acc=0.95", "--no-code", "--no-env")
        try ws.ok(env: Self.env, "model", "register", "fraud", "HEAD:models/fraud/model.onnx", "--signature", "sig2.json", "--flavor", "onnx", "-m", "second")
        try ws.ok(env: Self.env, "promote", "fraud", "fraud@v1", "--stage", "production", "-m", "ship v1")
        try ws.ok(env: Self.env, "init", "--bare", remote)
        try ws.ok(env: Self.env, "push", remote, "refs/models/fraud", "--all")
    }

    func remove() {
        ws.remove()
        tmp.remove()
    }

    /// Runs mlstore in the store-less scratch directory.
    @discardableResult
    func run(_ args: String...) throws -> CLI.Output { try CLI.mlstore(args, in: tmp.path, env: Self.env) }

    func files(_ dir: String) -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in FS.listFiles(dir) { out[rel] = FS.read(dir + "/" + rel) }
        return out
    }

    /// Names in the scratch directory other than the remote.
    func scratchNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? []).filter { $0 != "remote" }.sorted()
    }
}

private func sha256Hex(_ data: Data) -> String { hex(MLStoreBasics.SHA256.hash(Array(data))) }

private func jsonObject(_ data: Data?) throws -> [String: Any] {
    let bytes = try #require(data)
    return try #require(try JSONSerialization.jsonObject(with: bytes) as? [String: Any])
}

@Suite("models: register versions, get from a remote without a store, export as OCI layout and tar")
struct ModelCommandTests {
    @Test("get fraud@production from a directory remote into an empty directory on a store-less path: the exact bytes")
    func getIntoAnEmptyDirectory() throws {
        let s = try ModelScene()
        defer { s.remove() }
        #expect(!FS.exists(s.tmp.path + "/.mlstore"))
        try FS.mkdirs(s.tmp.path + "/deploy")
        let r = try s.run("get", s.remote, "fraud@production", "-o", "deploy")
        try #require(r.status == 0, "\(r)")
        #expect(s.files(s.tmp.path + "/deploy") == s.v1)
        #expect(r.stdout.hasPrefix("fraud@production → v1, commit "), "\(r.stdout)")
        for (name, data) in s.v1 { #expect(r.stdout.contains("sha256:\(sha256Hex(data))"), "\(name): \(r.stdout)") }
        #expect(r.stdout.contains("wrote 3 file(s)"), "\(r.stdout)")
        #expect(s.scratchNames() == ["deploy"])

        // v2 (one file), as JSON: the manifest carries the signature, and files their digests.
        let j = try s.run("get", s.remote, "fraud@v2", "-o", "v2", "--json")
        try #require(j.status == 0, "\(j)")
        let report = try jsonObject(j.stdoutData)
        #expect(report["version"] as? Int == 2 && report["model"] as? String == "fraud" && report["stage"] == nil)
        let manifest = try #require(report[dict: "manifest"])
        #expect(JSONTools.equal(manifest["signature"], ModelScene.sig2))
        #expect(manifest[string: "flavor"] == "onnx")
        #expect(s.files(s.tmp.path + "/v2") == ["model.onnx": Data("weights v2 (better)\n".utf8)])
        let files = try #require(report[array: "files"] as? [[String: Any]])
        #expect(files.map { $0[string: "sha256"] } == [sha256Hex(Data("weights v2 (better)\n".utf8))])

        // A non-empty output is not replaced without --force (exit 5), and is untouched.
        let again = try s.run("get", s.remote, "fraud@v2", "-o", "deploy")
        #expect(again.status == 5 && again.stderr.contains("already exists"), "\(again)")
        #expect(s.files(s.tmp.path + "/deploy") == s.v1)
        let forced = try s.run("get", s.remote, "fraud@v2", "-o", "deploy", "--force")
        #expect(forced.status == 0, "\(forced)")
        #expect(s.files(s.tmp.path + "/deploy") == ["model.onnx": Data("weights v2 (better)\n".utf8)])
        #expect(s.scratchNames() == ["deploy", "v2"])
    }

    @Test("get: a missing model, version or stage is exit 3; an unreachable remote is exit 7; nothing is written")
    func getErrors() throws {
        let s = try ModelScene()
        defer { s.remove() }
        let cases: [(String, Int32, String)] = [
            ("nope@production", 3, "model nope has nothing in stage production"),
            ("nope@v1", 3, "no model named nope is registered"),
            ("fraud@v7", 3, "model fraud has no version v7 (the newest is v2)"),
            ("fraud@staging", 3, "model fraud has nothing in stage staging"),
            ("fraud@v0", 2, "not a version"),
        ]
        for (spec, status, message) in cases {
            let r = try s.run("get", s.remote, spec, "-o", "out")
            #expect(r.status == status && r.stderr.contains(message), "\(spec): \(r)")
        }
        let gone = try s.run("get", s.tmp.path + "/no-such-remote", "fraud@production", "-o", "out")
        #expect(gone.status == 7 && gone.stderr.contains("cannot reach the remote"), "\(gone)")
        #expect(s.scratchNames().isEmpty)
    }

    @Test("get: a corrupted object on the remote fails with exit 4 and leaves no output directory")
    func corruptRemoteObject() throws {
        let s = try ModelScene()
        defer { s.remove() }
        // big.bin is random, so its chunks are stored as-is: find 64 of its bytes in the remote and damage them.
        let needle = try #require(s.v1["big.bin"]).subdata(in: 300_000..<300_064)
        var damaged = 0
        for rel in FS.listFiles(s.remote + "/objects") {
            let p = s.remote + "/objects/" + rel
            guard let data = FS.read(p), let r = data.range(of: needle) else { continue }
            try FS.flipByte(p, at: r.lowerBound + 10)
            damaged += 1
        }
        try #require(damaged == 1)
        let r = try s.run("get", s.remote, "fraud@production", "-o", "deploy/fraud")
        #expect(r.status == 4 && r.stderr.contains("corrupt"), "\(r)")
        #expect(!FS.exists(s.tmp.path + "/deploy"))
        #expect(s.scratchNames().isEmpty, "\(s.scratchNames())")
        // v2 does not need the damaged chunk.
        let ok = try s.run("get", s.remote, "fraud@v2", "-o", "v2")
        #expect(ok.status == 0, "\(ok)")
    }

    @Test("model list / show: versions, signature, stages, lineage and stage history; fraud@vN is a revision")
    func listAndShow() throws {
        let s = try ModelScene()
        defer { s.remove() }
        let list = try #require(try s.ws.json("model", "list") as? [[String: Any]])
        #expect(list.count == 1 && list[0][string: "name"] == "fraud" && list[0]["latest"] as? Int == 2)
        #expect((list[0][dict: "stages"] as? [String: String]) == ["production": "v1"])
        let versions = try #require(try s.ws.json("model", "list", "fraud") as? [[String: Any]])
        #expect(versions.map { $0["version"] as? Int } == [2, 1] && versions.map { $0["files"] as? Int } == [1, 3])
        let show = try #require(try s.ws.json("model", "show", "fraud@production") as? [String: Any])
        #expect(show["version"] as? Int == 1 && show[string: "framework"] == "onnxruntime" && show[string: "frameworkVersion"] == "1.18.0")
        #expect(JSONTools.equal(show["signature"], ModelScene.sig1))
        #expect((show[dict: "metadata"] as? [String: String]) == ["owner": "risk-team"])
        #expect((show[array: "stages"] as? [[String: Any]])?.first?[string: "stage"] == "production")
        #expect((show[array: "history"] as? [[String: Any]])?.first?[string: "reason"] == "ship v1")
        let lineage = try #require(show[dict: "lineage"])
        #expect(lineage[string: "subject"] == "train v1" && JSONTools.equal(JSONTools.plain(lineage["metrics"]), #"{"acc": 0.91}"#))
        let text = try s.ws.ok("model", "show", "fraud@v2")
        #expect(text.contains("model fraud@v2") && text.contains("signature") && text.contains("model.onnx"), "\(text)")
        // fraud@v1 is a revision like fraud@production.
        #expect(try s.ws.commitID("fraud@v1") == (try s.ws.commitID("fraud@production")))
        #expect(try s.ws.commitID("fraud@v2") == (try s.ws.commitID("HEAD")))
        let bad = try s.ws.run("promote", "fraud", "HEAD", "--stage", "v3")
        #expect(bad.status == 2, "\(bad)")
        try s.ws.expectFsckClean("registering models")
    }

    @Test("export --format oci: a valid OCI image layout (structure, every digest, media types) that unpacks byte-identically")
    func ociExport() throws {
        let s = try ModelScene()
        defer { s.remove() }
        let dir = s.tmp.path + "/oci"
        let r = try s.ws.run(env: ModelScene.env, "export", "fraud@production", "--format", "oci", "-o", dir)
        try #require(r.status == 0, "\(r)")
        let layout = try jsonObject(FS.read(dir + "/oci-layout"))
        #expect(layout[string: "imageLayoutVersion"] == "1.0.0")
        let index = try jsonObject(FS.read(dir + "/index.json"))
        #expect(index["schemaVersion"] as? Int == 2 && index[string: "mediaType"] == "application/vnd.oci.image.index.v1+json")
        let manifests = try #require(index[array: "manifests"] as? [[String: Any]])
        try #require(manifests.count == 1)
        #expect((manifests[0][dict: "annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == "v1")

        // Every descriptor names a blob whose size and SHA-256 match; every blob file is named by its digest.
        var referenced: Set<String> = []
        func blob(_ d: [String: Any], mediaType: String?) throws -> Data {
            let digest = try #require(d[string: "digest"])
            #expect(digest.hasPrefix("sha256:"))
            if let mediaType { #expect(d[string: "mediaType"] == mediaType) }
            let data = try #require(FS.read(dir + "/blobs/sha256/" + digest.dropFirst(7)), "missing blob \(digest)")
            #expect(data.count == d["size"] as? Int && "sha256:" + sha256Hex(data) == digest)
            referenced.insert(String(digest.dropFirst(7)))
            return data
        }
        let manifest = try jsonObject(try blob(manifests[0], mediaType: "application/vnd.oci.image.manifest.v1+json"))
        #expect(manifest["schemaVersion"] as? Int == 2 && manifest[string: "mediaType"] == "application/vnd.oci.image.manifest.v1+json")
        #expect(manifest[string: "artifactType"] == "application/vnd.mlstore.model.v1")
        let config = try jsonObject(try blob(try #require(manifest[dict: "config"]), mediaType: "application/vnd.mlstore.model.config.v1+json"))
        #expect(config[string: "name"] == "fraud" && config["version"] as? Int == 1 && JSONTools.equal(config["signature"], ModelScene.sig1))
        let layers = try #require(manifest[array: "layers"] as? [[String: Any]])
        var unpacked: [String: Data] = [:]
        for l in layers {
            let title = try #require((l[dict: "annotations"] as? [String: String])?["org.opencontainers.image.title"])
            unpacked[title] = try blob(l, mediaType: "application/octet-stream")
        }
        #expect(unpacked == s.v1)  // re-read: the layers are the model's files, byte for byte
        for name in FS.listFiles(dir + "/blobs/sha256") {
            #expect(sha256Hex(try #require(FS.read(dir + "/blobs/sha256/" + name))) == name)
        }
        #expect(Set(FS.listFiles(dir + "/blobs/sha256")) == referenced)
        #expect(Set(FS.listFiles(dir)) == Set(["oci-layout", "index.json"] + referenced.map { "blobs/sha256/" + $0 }))

        // Reproducible: the same version exports to the same bytes. An existing output needs --force.
        let again = try s.ws.run(env: ModelScene.env, "export", "fraud@v1", "-o", s.tmp.path + "/oci2")
        try #require(again.status == 0, "\(again)")
        #expect(s.files(dir) == s.files(s.tmp.path + "/oci2"))
        let exists = try s.ws.run(env: ModelScene.env, "export", "fraud@v1", "-o", dir)
        #expect(exists.status == 5, "\(exists)")
    }

    @Test("export --format oci is accepted by skopeo (inspect --raw, copy with digest verification)",
          .enabled(if: CLI.which("skopeo") != nil, "skopeo is not installed (apt-get install skopeo)"))
    func ociExportWithSkopeo() throws {
        let s = try ModelScene()
        defer { s.remove() }
        let dir = s.tmp.path + "/oci"
        let r = try s.ws.run(env: ModelScene.env, "export", "fraud@v1", "--format", "oci", "-o", dir, "--json")
        try #require(r.status == 0, "\(r)")
        let digest = try #require(try jsonObject(r.stdoutData)[string: "manifestDigest"])
        let raw = try CLI.run("skopeo", ["inspect", "--raw", "oci:\(dir):v1"], in: s.tmp.path)
        try #require(raw.status == 0, "\(raw)")
        #expect("sha256:" + sha256Hex(raw.stdoutData) == digest)
        let config = try CLI.run("skopeo", ["inspect", "--config", "--raw", "oci:\(dir):v1"], in: s.tmp.path)
        #expect(config.status == 0, "\(config)")
        #expect(try jsonObject(config.stdoutData)[string: "name"] == "fraud")
        // skopeo copy re-reads every blob and verifies its digest.
        let copy = try CLI.run("skopeo", ["copy", "oci:\(dir):v1", "oci:\(s.tmp.path)/copy:fraud-v1"], in: s.tmp.path)
        try #require(copy.status == 0, "\(copy)")
        let copied = try jsonObject(FS.read(s.tmp.path + "/copy/index.json"))
        #expect((copied[array: "manifests"] as? [[String: Any]])?.first?[string: "digest"] == digest)
        // A damaged layer is refused.
        let layer = sha256Hex(Data("weights v1\n".utf8))
        try FS.flipByte(dir + "/blobs/sha256/" + layer, at: 2)
        let bad = try CLI.run("skopeo", ["copy", "oci:\(dir):v1", "oci:\(s.tmp.path)/copy2:x"], in: s.tmp.path)
        #expect(bad.status != 0 && bad.stderr.contains("igest"), "\(bad)")
    }

    @Test("export --format tar: mlstore-model.json then the files; standard tar extracts them byte-identically")
    func tarExport() throws {
        let s = try ModelScene()
        defer { s.remove() }
        let file = s.tmp.path + "/fraud.tar"
        let r = try s.ws.run(env: ModelScene.env, "export", "fraud@production", "--format", "tar", "-o", file)
        try #require(r.status == 0, "\(r)")
        let list = try CLI.run("tar", ["-tf", file], in: s.tmp.path)
        #expect(list.lines == ["mlstore-model.json", "big.bin", "config.json", "model.onnx"], "\(list)")
        try FS.mkdirs(s.tmp.path + "/x")
        let x = try CLI.run("tar", ["-xf", file, "-C", s.tmp.path + "/x"], in: s.tmp.path)
        try #require(x.status == 0, "\(x)")
        var files = s.files(s.tmp.path + "/x")
        let manifest = try jsonObject(files.removeValue(forKey: "mlstore-model.json"))
        #expect(files == s.v1)
        #expect(manifest["version"] as? Int == 1 && JSONTools.equal(manifest["signature"], ModelScene.sig1))
        let listed = try #require(manifest[array: "files"] as? [[String: Any]])
        #expect(listed.map { $0[string: "path"] ?? "" } == ["big.bin", "config.json", "model.onnx"])
        for f in listed { #expect(f[string: "sha256"] == sha256Hex(s.v1[f[string: "path"] ?? ""] ?? Data())) }
        #expect(try s.ws.run(env: ModelScene.env, "export", "fraud@production", "--format", "tar", "-o", file).status == 5)
        #expect(try s.ws.run(env: ModelScene.env, "export", "fraud@v2", "--format", "tar", "-o", file, "--force").status == 0)
        #expect(s.scratchNames() == ["fraud.tar", "x"])
    }
}
