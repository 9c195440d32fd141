import MLStoreBasics

/// One registered version of a model (spec/models.md §Model version): which files of which lineage
/// commit make up the model, how to load it (flavor, framework, input/output signature), free metadata,
/// and the previous version. Versions of a name form a chain; `refs/models/<name>` holds the newest, and
/// the version number is the position in the chain (v1 has no `previous`).
public struct ModelVersion: Sendable, Equatable {
    public var name: String
    public var version: Int
    /// The lineage commit the files come from.
    public var commit: ObjectID
    /// Files or subtrees of the commit's tree (`path` "." is the whole tree), sorted by path.
    public var artifacts: [Artifact]
    public var flavor: String?
    public var framework: String?
    public var frameworkVersion: String?
    /// A blob holding the input/output signature as canonical JSON.
    public var signature: ObjectID?
    public var previous: ObjectID?
    public var author: Signature
    /// `x-<key> <value>` metadata, kept sorted by key.
    public var metadata: [(key: String, value: String)]
    public var description: String

    public init(name: String, version: Int, commit: ObjectID, artifacts: [Artifact], flavor: String? = nil, framework: String? = nil,
                frameworkVersion: String? = nil, signature: ObjectID? = nil, previous: ObjectID? = nil, author: Signature,
                metadata: [(key: String, value: String)] = [], description: String = "") {
        self.name = name
        self.version = version
        self.commit = commit
        self.artifacts = artifacts.sorted { Tree.less($0.path, $1.path) }
        self.flavor = flavor
        self.framework = framework
        self.frameworkVersion = frameworkVersion
        self.signature = signature
        self.previous = previous
        self.author = author
        self.metadata = metadata.sorted { $0.key < $1.key }
        self.description = description
    }

    public static func == (a: ModelVersion, b: ModelVersion) -> Bool { a.encoded() == b.encoded() }

    public var refName: String { "refs/models/\(name)" }
    /// `<name>@v<N>`.
    public var label: String { "\(name)@v\(version)" }

    public func encoded() -> [UInt8] {
        var s = "name \(name)\nversion \(version)\ncommit \(commit.hex)\n"
        for a in artifacts { s += "artifact \(a.id.hex) \(a.path)\n" }
        if let flavor { s += "flavor \(flavor)\n" }
        if let framework { s += "framework \(framework)" + (frameworkVersion.map { " \($0)" } ?? "") + "\n" }
        if let signature { s += "signature \(signature.hex)\n" }
        if let previous { s += "previous \(previous.hex)\n" }
        s += "author \(author.encoded)\n"
        for m in metadata.sorted(by: { $0.key < $1.key }) { s += "x-\(m.key) \(m.value)\n" }
        s += "\n" + description
        return Array(s.utf8)
    }

    public var id: ObjectID { ObjectID.hash(kind: .model, payload: encoded()) }

    /// The first line of the description.
    public var subject: String { String(description.split(separator: "\n", omittingEmptySubsequences: false).first ?? "") }

    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "model version \(id?.hex ?? "")"
        func bad(_ d: String) -> MLStoreError { MLStoreError(.corrupt, "\(what) is malformed: \(d)") }
        guard let text = String(validating: payload, as: UTF8.self) else { throw bad("not UTF-8") }
        let (headers, message) = try splitHeaders(text, what: what)
        func oid(_ v: Substring) throws -> ObjectID {
            guard let i = ObjectID(hex: v) else { throw bad("bad id '\(v)'") }
            return i
        }
        // Headers must come in the order of the spec (each at most once, except artifact and x-).
        let order = ["name", "version", "commit", "artifact", "flavor", "framework", "signature", "previous", "author"]
        var lastRank = -1
        var seen = Set<String>()
        var name: String?, version: Int?, commit: ObjectID?, author: Signature?
        var artifacts: [Artifact] = []
        var flavor: String?, framework: String?, frameworkVersion: String?, signature: ObjectID?, previous: ObjectID?
        var metadata: [(String, String)] = []
        for (key, value) in headers {
            if key.hasPrefix("x-") {
                let k = String(key.dropFirst(2))
                guard ModelNames.isMetadataKey(k) else { throw bad("bad metadata key '\(k)'") }
                if let last = metadata.last, last.0 >= k { throw bad("metadata keys are not sorted or repeat ('\(k)')") }
                metadata.append((k, String(value)))
                lastRank = order.count
                continue
            }
            guard let rank = order.firstIndex(of: key) else { throw bad("unknown header '\(key)'") }
            guard rank >= lastRank, key == "artifact" || seen.insert(key).inserted else { throw bad("header '\(key)' is out of order or repeated") }
            lastRank = rank
            switch key {
            case "name":
                guard (try? RegistryName.validateModel(String(value))) != nil else { throw bad("bad model name '\(value)'") }
                name = String(value)
            case "version":
                guard let n = Int(value), n >= 1, String(n) == value else { throw bad("bad version '\(value)'") }
                version = n
            case "commit": commit = try oid(value)
            case "artifact":
                guard let sp = value.firstIndex(of: " ") else { throw bad("artifact without path") }
                let path = String(value[value.index(after: sp)...])
                guard ModelNames.isArtifactPath(path) else { throw bad("bad artifact path '\(path)'") }
                if let last = artifacts.last, !Tree.less(last.path, path) { throw bad("artifacts are not sorted or repeat ('\(path)')") }
                artifacts.append(Artifact(id: try oid(value[..<sp]), path: path))
            case "flavor":
                guard ModelNames.isFlavor(String(value)) else { throw bad("bad flavor '\(value)'") }
                flavor = String(value)
            case "framework":
                let f = value.split(separator: " ", omittingEmptySubsequences: false)
                guard (1...2).contains(f.count), ModelNames.isFramework(String(f[0])), f.count == 1 || ModelNames.isFrameworkVersion(String(f[1])) else {
                    throw bad("bad framework '\(value)'")
                }
                framework = String(f[0])
                frameworkVersion = f.count == 2 ? String(f[1]) : nil
            case "signature": signature = try oid(value)
            case "previous": previous = try oid(value)
            case "author": author = try Signature(parsing: value)
            default: break
            }
        }
        guard let name, let version, let commit, let author, !artifacts.isEmpty else {
            throw bad("missing name, version, commit, artifact or author")
        }
        guard (version == 1) == (previous == nil) else { throw bad("version \(version) \(previous == nil ? "has no" : "must not have a") previous version") }
        self.init(name: name, version: version, commit: commit, artifacts: artifacts, flavor: flavor, framework: framework,
                  frameworkVersion: frameworkVersion, signature: signature, previous: previous, author: author,
                  metadata: metadata, description: message)
    }
}

/// Syntax of the values in a model version (spec/models.md).
public enum ModelNames {
    /// Flavors mlstore knows by name (any other token matching the syntax is accepted too).
    public static let knownFlavors = ["onnx", "safetensors", "pytorch", "torchscript", "sklearn-pickle", "pickle", "keras", "tensorflow",
                                      "tflite", "gguf", "xgboost", "lightgbm", "coreml", "custom"]

    static func token(_ s: String, max: Int, upper: Bool, extra: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= max, let f = s.unicodeScalars.first,
            (f.value >= 0x61 && f.value <= 0x7a) || (f.value >= 0x30 && f.value <= 0x39) || (upper && f.value >= 0x41 && f.value <= 0x5a)
        else { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c.value >= 0x61 && c.value <= 0x7a) || (c.value >= 0x30 && c.value <= 0x39) || (upper && c.value >= 0x41 && c.value <= 0x5a)
                || extra.unicodeScalars.contains(c)
        }
    }

    /// 1–40 characters of `a–z 0–9 . _ + -`, starting with a letter or digit.
    public static func isFlavor(_ s: String) -> Bool { token(s, max: 40, upper: false, extra: "._+-") }
    /// 1–100 characters of `A–Z a–z 0–9 . _ + -`, starting with a letter or digit.
    public static func isFramework(_ s: String) -> Bool { token(s, max: 100, upper: true, extra: "._+-") }
    /// 1–100 printable ASCII characters without spaces.
    public static func isFrameworkVersion(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 100 && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f }
    }
    /// 1–64 characters of `a–z 0–9 . _ -`, starting with a letter or digit.
    public static func isMetadataKey(_ s: String) -> Bool { token(s, max: 64, upper: false, extra: "._-") }
    /// At most 4096 bytes, no line breaks or other control characters.
    public static func isMetadataValue(_ s: String) -> Bool {
        s.utf8.count <= 4096 && s.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7f }
    }
    /// `.` (the whole tree) or a safe relative path.
    public static func isArtifactPath(_ p: String) -> Bool {
        p == "." || (try? Workspace.validateRelative(p)) != nil
    }

    /// `v<N>` with N ≥ 1 (no leading zeros): a version, never a stage name.
    public static func versionNumber(_ s: String) -> Int? {
        guard s.count >= 2, s.hasPrefix("v"), let n = Int(s.dropFirst()), n >= 1, "v\(n)" == s else { return nil }
        return n
    }

    /// True for names of the form `v<digits>`, which are reserved for versions and cannot be stages.
    public static func isReservedStageName(_ s: String) -> Bool {
        s.count >= 2 && s.hasPrefix("v") && s.dropFirst().allSatisfy { $0.isASCII && $0.isNumber }
    }

    /// The flavor implied by the model's file names, if they agree on one (`.onnx` → onnx, …).
    public static func inferFlavor(paths: [String]) -> String? {
        let byExtension: [String: String] = [
            "onnx": "onnx", "safetensors": "safetensors", "gguf": "gguf", "pt": "pytorch", "pth": "pytorch", "tflite": "tflite",
            "keras": "keras", "h5": "keras", "mlmodel": "coreml", "joblib": "sklearn-pickle", "xgb": "xgboost", "ubj": "xgboost",
        ]
        var found = Set<String>()
        for p in paths {
            let base = Path.basename(p).lowercased()
            if base == "saved_model.pb" { found.insert("tensorflow"); continue }
            guard let dot = base.lastIndex(of: ".") else { continue }
            if let f = byExtension[String(base[base.index(after: dot)...])] { found.insert(f) }
        }
        return found.count == 1 ? found.first : nil
    }

    /// The pip package that carries a framework's version (for filling it from the environment record).
    static func pipPackage(for framework: String) -> String {
        let aliases = ["pytorch": "torch", "sklearn": "scikit-learn", "tf": "tensorflow", "hf-transformers": "transformers"]
        return aliases[framework.lowercased()] ?? framework.lowercased()
    }
}

/// How a model's files are named in `get`/`export` output (spec/models.md §Files of a model).
///
/// A single directory artifact contributes its contents; otherwise every path is taken relative to the
/// longest common parent directory of the artifact paths (so one file artifact becomes its base name).
public enum ModelLayout {
    public static func base(of artifactPaths: [String]) -> String {
        if artifactPaths == ["."] { return "" }
        let dirs = artifactPaths.map { Path.parent($0) }
        var common = dirs.first.map { $0.split(separator: "/").map(String.init) } ?? []
        for d in dirs.dropFirst() {
            let parts = d.split(separator: "/").map(String.init)
            var n = 0
            while n < common.count && n < parts.count && common[n] == parts[n] { n += 1 }
            common = Array(common.prefix(n))
        }
        return common.joined(separator: "/")
    }

    /// The output path of a file at `treePath` below the layout base.
    static func outputPath(_ treePath: String, base: String) -> String {
        base.isEmpty ? treePath : String(treePath.dropFirst(base.count + 1))
    }
}

/// A request for a model: `<name>`, `<name>@v<N>` or `<name>@<stage>`.
public struct ModelSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Selector: Sendable, Equatable {
        case latest
        case version(Int)
        case stage(String)
    }
    public var name: String
    public var selector: Selector

    public init(name: String, selector: Selector) {
        self.name = name
        self.selector = selector
    }

    public init(parsing text: String) throws {
        if let at = text.lastIndex(of: "@"), at != text.startIndex {
            name = String(text[..<at])
            let rest = String(text[text.index(after: at)...])
            if let n = ModelNames.versionNumber(rest) {
                selector = .version(n)
            } else if ModelNames.isReservedStageName(rest) {
                throw MLStoreError(.usage, "'\(text)': '\(rest)' is not a version (versions are v1, v2, …)")
            } else if rest == "latest" {
                selector = .latest
            } else {
                try RegistryName.validateStage(rest)
                selector = .stage(rest)
            }
        } else {
            name = text
            selector = .latest
        }
        try RegistryName.validateModel(name)
    }

    public var description: String {
        switch selector {
        case .latest: name
        case .version(let n): "\(name)@v\(n)"
        case .stage(let s): "\(name)@\(s)"
        }
    }
}

/// The inputs of `model register`.
public struct ModelRegistration: Sendable {
    public var name: String
    /// `<rev>` or `<rev>:<path>`.
    public var revision: String
    /// Extra artifact paths (tree paths), in addition to a `:<path>` in the revision.
    public var paths: [String] = []
    public var flavor: String?
    public var framework: String?
    public var frameworkVersion: String?
    /// The input/output signature (a JSON object).
    public var signature: JSONValue?
    public var description: String = ""
    public var metadata: [String: String] = [:]

    public init(name: String, revision: String) {
        self.name = name
        self.revision = revision
    }
}

extension Repository {
    public func modelVersion(_ id: ObjectID) throws -> ModelVersion {
        try ModelVersion(decoding: try objects.read(id, as: .model), id: id)
    }

    /// Every registered model's newest version.
    public func models() throws -> [(name: String, id: ObjectID, version: ModelVersion)] {
        try refs.list("refs/models/").compactMap { ref, id in
            let name = String(ref.dropFirst("refs/models/".count))
            guard !name.contains("/") else { return nil }
            return (name, id, try modelVersion(id))
        }
    }

    /// The versions of a model, newest first (verified: numbers count down to 1, names match).
    public func modelVersions(_ name: String) throws -> [(id: ObjectID, version: ModelVersion)] {
        try ModelSource.local(self).versionChain(name)
    }

    /// `<name>@v<N>`, or `<name>` for the newest version, without reading the model's files.
    public func modelVersion(named text: String) throws -> (id: ObjectID, version: ModelVersion) {
        let spec = try ModelSpec(parsing: text)
        let want: Int
        switch spec.selector {
        case .version(let n): want = n
        case .latest: want = Int.max
        case .stage: throw MLStoreError(.usage, "'\(text)' names a stage, not a model version", hint: "use <name>@v<N>")
        }
        let chain = try ModelSource.local(self).versionChain(spec.name, downTo: want)
        guard let newest = chain.first else {
            throw MLStoreError(.notFound, "no model named \(spec.name) is registered", hint: "register one with `mlstore model register \(spec.name) <rev>[:<path>]`")
        }
        let hit = want == Int.max ? newest : chain[chain.count - 1]
        guard want == Int.max || hit.version.version == want else {
            throw MLStoreError(.notFound, "model \(spec.name) has no version v\(want) (the newest is v\(newest.version.version))",
                               hint: "list the versions with `mlstore model list \(spec.name)`")
        }
        return hit
    }

    /// Resolves `<name>`, `<name>@v<N>` or `<name>@<stage>` in the local store to a model and its files.
    public func resolveModel(_ spec: String) throws -> ModelSelection {
        try ModelSource.local(self).resolve(try ModelSpec(parsing: spec))
    }

    /// The stages of a model with the version each holds (`ModelSource.versionHeld`), nil when the stage
    /// holds a commit that is not a registered version.
    public func modelStages(_ name: String, versions: [(id: ObjectID, version: ModelVersion)]? = nil) throws
        -> [(stage: String, recordID: ObjectID, record: StageRecord, version: Int?)]
    {
        let chain = try versions ?? modelVersions(name)
        return try refs.list("refs/stages/\(name)/").compactMap { ref, recordID in
            let stage = String(ref.dropFirst("refs/stages/\(name)/".count))
            guard !stage.contains("/") else { return nil }
            let r = try stageRecord(recordID)
            return (stage, recordID, r, try ModelSource.local(self).versionHeld(by: r, recordID: recordID, chain: chain)?.version.version)
        }
    }

    /// True if model version `older` is `newer` or in its `previous` chain (for fast-forward checks).
    public func isModelAncestor(_ older: ObjectID, of newer: ObjectID) throws -> Bool {
        var next: ObjectID? = newer
        while let v = next {
            if v == older { return true }
            guard objects.contains(v) else { return false }
            next = try modelVersion(v).previous
        }
        return false
    }

    /// Registers a new version of a model: writes the signature blob and the version object, then moves
    /// `refs/models/<name>` by compare-and-swap from the version it read (a concurrent registration makes
    /// this fail with a conflict rather than lose a version).
    @discardableResult
    public func registerModel(_ request: ModelRegistration) throws -> (id: ObjectID, version: ModelVersion) {
        try RegistryName.validateModel(request.name)
        var revision = request.revision
        var paths = request.paths
        if let colon = revision.firstIndex(of: ":") {
            let p = String(revision[revision.index(after: colon)...])
            revision = String(revision[..<colon])
            paths.insert(p.isEmpty ? "." : p, at: 0)
        }
        let commitID = try resolveCommit(revision)
        let c = try commit(commitID)
        if paths.isEmpty { paths = try defaultArtifactPaths(revision: revision, commit: c) }
        // Normalize: no "./" prefix or trailing "/"; "." or "" is the whole tree.
        paths = paths.map { p in
            var q = Substring(p)
            while q.hasPrefix("./") { q = q.dropFirst(2) }
            while q.count > 1 && q.hasSuffix("/") { q = q.dropLast() }
            return q.isEmpty ? "." : String(q)
        }
        var artifacts: [Artifact] = []
        for p in Set(paths).sorted(by: Tree.less) {
            if p == "." {
                artifacts.append(Artifact(id: c.tree, path: "."))
                continue
            }
            try Workspace.validateRelative(p)
            guard let e = try lookup(p, in: c.tree) else {
                throw MLStoreError(.notFound, "'\(p)' is not in commit \(commitID.short)", hint: "list it with `mlstore ls-tree -r \(commitID.short)`")
            }
            artifacts.append(Artifact(id: e.id, path: p))
        }
        for a in artifacts {
            for b in artifacts where a.path != b.path && (a.path == "." || b.path.hasPrefix(a.path + "/")) {
                throw MLStoreError(.usage, "artifact '\(b.path)' is inside artifact '\(a.path)'", hint: "give either the directory or the files in it")
            }
        }
        if let f = request.flavor, !ModelNames.isFlavor(f) {
            throw MLStoreError(.usage, "'\(f)' is not a valid flavor", hint: "use lower-case letters, digits, '.', '_', '+' or '-', e.g. " + ModelNames.knownFlavors.joined(separator: ", "))
        }
        if let f = request.framework, !ModelNames.isFramework(f) {
            throw MLStoreError(.usage, "'\(f)' is not a valid framework name", hint: "e.g. torch, onnxruntime, scikit-learn")
        }
        if let v = request.frameworkVersion {
            guard request.framework != nil else { throw MLStoreError(.usage, "--framework-version needs --framework") }
            guard ModelNames.isFrameworkVersion(v) else { throw MLStoreError(.usage, "'\(v)' is not a valid framework version (no spaces)") }
        }
        for (k, v) in request.metadata {
            guard ModelNames.isMetadataKey(k) else {
                throw MLStoreError(.usage, "metadata key '\(k)' is not valid", hint: "use 1-64 lower-case letters, digits, '.', '_' or '-'")
            }
            guard ModelNames.isMetadataValue(v) else { throw MLStoreError(.usage, "metadata value of '\(k)' must be one line of at most 4096 bytes") }
        }
        if let s = request.signature, s.object == nil {
            throw MLStoreError(.usage, "the signature must be a JSON object, e.g. {\"inputs\": [...], \"outputs\": [...]}")
        }
        // The files must be readable and non-empty; their names give the default flavor.
        let files = try ModelSource.local(self).files(commit: commitID, tree: c.tree, artifacts: artifacts)
        guard !files.isEmpty else {
            throw MLStoreError(.usage, "the model would hold no files (\(artifacts.map(\.path).joined(separator: ", ")) is empty)")
        }
        let flavor = request.flavor ?? ModelNames.inferFlavor(paths: files.map(\.path)) ?? "custom"
        var frameworkVersion = request.frameworkVersion
        if let fw = request.framework, frameworkVersion == nil, let env = c.env, let record = try? json(env) {
            // From the lineage commit's environment: `pip freeze` lines `name==version`.
            let pkg = ModelNames.pipPackage(for: fw).replacingOccurrences(of: "_", with: "-")
            for line in record["pip_freeze"]?.array?.compactMap(\.string) ?? [] {
                let parts = line.split(separator: "==", omittingEmptySubsequences: false).map(String.init)
                if parts.count == 2, parts[0].lowercased().replacingOccurrences(of: "_", with: "-") == pkg, ModelNames.isFrameworkVersion(parts[1]) {
                    frameworkVersion = parts[1]
                }
            }
        }
        let ref = "refs/models/\(request.name)"
        let head = try refs.read(ref)
        let previous = try head.map { try modelVersion($0) }
        var description = request.description
        if !description.isEmpty && !description.hasSuffix("\n") { description += "\n" }
        let actor = try identity()
        let signatureBlob = request.signature.map { Array($0.canonical.utf8) }
        let version = ModelVersion(
            name: request.name, version: (previous?.version ?? 0) + 1, commit: commitID, artifacts: artifacts, flavor: flavor,
            framework: request.framework, frameworkVersion: frameworkVersion,
            signature: signatureBlob.map { ObjectID.hash(kind: .blob, payload: $0) }, previous: head, author: actor,
            metadata: request.metadata.map { ($0.key, $0.value) }, description: description)
        if let previous {
            var same = version
            same.version = previous.version
            same.previous = previous.previous
            same.author = previous.author
            if same == previous {
                throw MLStoreError(.usage, "\(request.name)@v\(previous.version) already records exactly this", hint: "nothing to do")
            }
        }
        if let signatureBlob { try objects.write(kind: .blob, payload: signatureBlob) }
        let id = try objects.write(kind: .model, payload: version.encoded())
        try refs.update(ref, to: id, expecting: head.map { .value($0) } ?? .absent, actor: actor,
                        message: "register v\(version.version) \(commitID.short): \(version.subject)")
        return (id, version)
    }

    /// The artifact paths when none are given: for `<model>@v<N>` that version's, for `<model>@<stage>` those
    /// of the version the stage holds (else the stage's path, else as for a commit); for a commit its recorded
    /// outputs, else the whole tree.
    func defaultArtifactPaths(revision: String, commit c: Commit) throws -> [String] {
        if revision.contains("@"), (try? ModelSpec(parsing: revision)) != nil {
            return try resolveModel(revision).artifacts.map(\.path)
        }
        return ModelSource.defaultArtifactPaths(outputs: c.outputs, path: nil)
    }
}
