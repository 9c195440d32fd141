import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One file of a model, as `get` and `export` write it.
public struct ModelFile: Sendable, Equatable {
    /// Where it is written, relative to the output (spec/models.md §Files of a model).
    public var path: String
    /// Where it is in the commit's tree.
    public var treePath: String
    public var entry: TreeEntry
}

/// A model request resolved to a version (or, for a stage whose commit was never registered, to the
/// stage's commit and path) and the files it consists of.
public struct ModelSelection: Sendable {
    public var spec: ModelSpec
    public var versionID: ObjectID?
    public var version: ModelVersion?
    /// For `<name>@<stage>`: the stage, its current record, and the path the record names.
    public var stage: String?
    public var stageRecord: ObjectID?
    public var commit: ObjectID
    public var artifacts: [Artifact]
    public var files: [ModelFile]

    public var name: String { spec.name }
    /// `fraud@v2`, or `fraud@production` when the stage's commit is not a registered version.
    public var label: String { version.map(\.label) ?? spec.description }
    public var totalSize: Int64 { files.reduce(0) { $0 + $1.entry.size } }
}

/// Where model metadata and file contents are read from: the local store, or a remote read through its
/// transport without any local store (`mlstore get`). Every object is verified against its id as it is
/// read, and must have the kind the reader expects.
public struct ModelSource: Sendable {
    public let location: String
    let readRef: @Sendable (String) throws -> ObjectID?
    let readObject: @Sendable (ObjectID, ObjectKind) throws -> [UInt8]
    let announce: @Sendable ([ObjectID]) throws -> Void

    public static func local(_ repo: Repository) -> ModelSource {
        ModelSource(
            location: repo.storeDirectory,
            readRef: { try repo.refs.read($0) },
            readObject: { id, kind in
                let (k, payload) = try repo.objects.read(id)
                guard k == kind else { throw MLStoreError.corruptObject(id.hex, "is a \(k.rawValue) where a \(kind.rawValue) is expected") }
                return payload
            },
            announce: { _ in })
    }

    /// A remote, read through its transport. A missing object that metadata names means the remote is
    /// incomplete: reported as corrupt (exit 4), unlike a missing model or stage (not found, exit 3).
    public static func remote(_ transport: RemoteTransport) -> ModelSource {
        let listed = Mutex<[String: ObjectID]?>(nil)
        let location = transport.location
        return ModelSource(
            location: location,
            readRef: { name in
                // One ref read directly where the transport allows it (`refs()` may not list refs/models/ yet).
                if let d = transport as? DirectoryRemote { return try d.store().refs.read(name) }
                if let s3 = transport as? S3Remote { return try s3.readRef(name)?.0 }
                if let all = listed.withLock({ $0 }) { return all[name] }
                let all = try transport.refs()
                listed.withLock { $0 = all }
                return all[name]
            },
            readObject: { id, kind in
                let r: (object: EncodedObject, payload: [UInt8])
                do {
                    r = try transport.readEncoded(id)
                } catch let e as MLStoreError where e.code == .notFound {
                    throw MLStoreError(.corrupt, "the remote \(location) is missing object \(id.hex) (a \(kind.rawValue) that other objects name)",
                                       hint: "the remote is incomplete or damaged; check it with `mlstore fsck --remote \(location)`")
                } catch let e as MLStoreError where e.code == .corrupt {
                    throw MLStoreError(.corrupt, e.message, hint: "the remote's copy is damaged; check it with `mlstore fsck --remote \(location)` and push the object again from a good store")
                }
                guard r.object.kind == kind else {
                    throw MLStoreError.corruptObject(id.hex, "is a \(r.object.kind.rawValue) where a \(kind.rawValue) is expected", where: location)
                }
                return r.payload
            },
            announce: { try transport.willRead($0) })
    }

    // MARK: Versions and stages

    /// The versions of `name`, newest first, down to version `stop` (verified: each names the model and
    /// is numbered one below the version before it).
    public func versionChain(_ name: String, downTo stop: Int = 1) throws -> [(id: ObjectID, version: ModelVersion)] {
        try RegistryName.validateModel(name)
        guard let head = try readRef("refs/models/\(name)") else { return [] }
        var out: [(ObjectID, ModelVersion)] = []
        var next: ObjectID? = head
        var expected: Int?
        while let id = next {
            let v = try ModelVersion(decoding: try readObject(id, .model), id: id)
            guard v.name == name else { throw MLStoreError.corruptObject(id.hex, "is a version of \(v.name), but the chain of \(name) names it") }
            if let expected, v.version != expected {
                throw MLStoreError.corruptObject(id.hex, "is numbered v\(v.version), but follows v\(expected + 1) in the chain of \(name)")
            }
            out.append((id, v))
            if v.version <= stop { break }
            expected = v.version - 1
            next = v.previous
        }
        return out
    }

    /// Resolves a request to a model version (or an unregistered stage target) and its files.
    public func resolve(_ spec: ModelSpec) throws -> ModelSelection {
        let name = spec.name
        switch spec.selector {
        case .latest, .version:
            let want: Int? = if case .version(let n) = spec.selector { n } else { nil }
            let chain = try versionChain(name, downTo: want ?? Int.max)
            guard let newest = chain.first else {
                throw MLStoreError(.notFound, "no model named \(name) is registered in \(location)",
                                   hint: "register one with `mlstore model register \(name) <rev>[:<path>]` (and push refs/models/\(name))")
            }
            let hit = want == nil ? newest : chain[chain.count - 1]
            guard want == nil || hit.version.version == want else {
                throw MLStoreError(.notFound, "model \(name) has no version v\(want!) (the newest is v\(newest.version.version))",
                                   hint: "list the versions with `mlstore model list \(name)`")
            }
            let c = try commit(hit.version.commit)
            return ModelSelection(spec: spec, versionID: hit.id, version: hit.version, commit: hit.version.commit, artifacts: hit.version.artifacts,
                                  files: try files(commit: hit.version.commit, tree: c.tree, artifacts: hit.version.artifacts))
        case .stage(let stage):
            guard let recordID = try readRef("refs/stages/\(name)/\(stage)") else {
                throw MLStoreError(.notFound, "model \(name) has nothing in stage \(stage) in \(location)",
                                   hint: "promote a version with `mlstore promote \(name) \(name)@v<N> --stage \(stage)` (and push it)")
            }
            let record = try StageRecord(decoding: try readObject(recordID, .stage), id: recordID)
            guard record.model == name, record.stage == stage else {
                throw MLStoreError.corruptObject(recordID.hex, "is a record of \(record.model)@\(record.stage), but \(name)@\(stage) names it")
            }
            guard let target = record.target else {
                throw MLStoreError(.notFound, "stage \(stage) of model \(name) was cleared", hint: "promote a version to it")
            }
            let c = try commit(target)
            if let (id, v) = try versionHeld(by: record, recordID: recordID, chain: versionChain(name)) {
                return ModelSelection(spec: spec, versionID: id, version: v, stage: stage, stageRecord: recordID, commit: target, artifacts: v.artifacts,
                                      files: try files(commit: target, tree: c.tree, artifacts: v.artifacts))
            }
            var artifacts: [Artifact] = []
            for p in Self.defaultArtifactPaths(outputs: c.outputs, path: record.path) {
                if p == "." {
                    artifacts.append(Artifact(id: c.tree, path: "."))
                } else {
                    guard let e = try lookup(p, in: c.tree) else {
                        throw MLStoreError(.corrupt, "\(name)@\(stage) names '\(p)', which is not in commit \(target.hex)")
                    }
                    artifacts.append(Artifact(id: e.id, path: p))
                }
            }
            return ModelSelection(spec: spec, stage: stage, stageRecord: recordID, commit: target, artifacts: artifacts,
                                  files: try files(commit: target, tree: c.tree, artifacts: artifacts))
        }
    }

    /// The model version a stage record holds (spec/models.md §Stages and versions): the version the record
    /// names; none for a record with a path (those files of its commit); for a record with neither (written
    /// before stage records named versions), the newest version of the record's commit registered no later
    /// than the move, so a version registered afterwards never changes what the stage delivers.
    public func versionHeld(by record: StageRecord, recordID: ObjectID, chain: [(id: ObjectID, version: ModelVersion)]) throws
        -> (id: ObjectID, version: ModelVersion)?
    {
        guard let target = record.target, record.version != nil || record.path == nil else { return nil }
        if let wanted = record.version {
            let held = try chain.first(where: { $0.id == wanted }) ?? (wanted, ModelVersion(decoding: try readObject(wanted, .model), id: wanted))
            guard held.version.name == record.model, held.version.commit == target else {
                throw MLStoreError.corruptObject(recordID.hex, "names \(held.version.label) (commit \(held.version.commit.short)) as \(record.model)@\(record.stage) with target \(target.short)")
            }
            return held
        }
        return chain.first { v in v.version.commit == target && v.version.author.time <= record.actor.time }
    }

    /// The files of a stage or commit that names no registered version: the stage's path, else the
    /// commit's recorded outputs (outermost only), else the whole tree.
    static func defaultArtifactPaths(outputs: [Artifact], path: String?) -> [String] {
        if let path { return [path] }
        let paths = Set(outputs.map(\.path)).sorted(by: Tree.less)
        let outer = paths.filter { p in !paths.contains { q in q != p && p.hasPrefix(q + "/") } }
        return outer.isEmpty ? ["."] : outer
    }

    func commit(_ id: ObjectID) throws -> Commit {
        try Commit(decoding: try readObject(id, .commit), id: id)
    }

    func tree(_ id: ObjectID) throws -> Tree {
        try Tree(decoding: try readObject(id, .tree), id: id)
    }

    func lookup(_ path: String, in root: ObjectID) throws -> TreeEntry? {
        var current = TreeEntry(kind: .directory, mode: 0o755, size: 0, name: "", id: root)
        for part in path.split(separator: "/") {
            guard current.kind == .directory, let next = try tree(current.id)[String(part)] else { return nil }
            current = next
        }
        return current
    }

    /// The files of the artifacts, named for output; each artifact id is checked against the commit's tree.
    func files(commit: ObjectID, tree root: ObjectID, artifacts: [Artifact]) throws -> [ModelFile] {
        var found: [(treePath: String, entry: TreeEntry)] = []
        var singleDirectory: String?
        for a in artifacts {
            let entry: TreeEntry
            if a.path == "." {
                entry = TreeEntry(kind: .directory, mode: 0o755, size: 0, name: "", id: root)
            } else {
                guard let e = try lookup(a.path, in: root) else {
                    throw MLStoreError(.corrupt, "the model names '\(a.path)', which is not in commit \(commit.hex)")
                }
                entry = e
            }
            guard entry.id == a.id else {
                throw MLStoreError(.corrupt, "the model names \(a.id.hex) at '\(a.path)', but commit \(commit.hex) has \(entry.id.hex) there")
            }
            if entry.kind == .directory {
                if artifacts.count == 1 { singleDirectory = a.path == "." ? "" : a.path }
                var stack: [(ObjectID, String, Int)] = [(entry.id, a.path == "." ? "" : a.path, 0)]
                while let (id, prefix, depth) = stack.popLast() {
                    guard depth < 256 else { throw MLStoreError(.corrupt, "tree \(id.hex) nests more than 256 levels deep (a cycle?)") }
                    for e in try tree(id).entries {
                        let p = Path.join(prefix, e.name)
                        if e.kind == .directory { stack.append((e.id, p, depth + 1)) } else { found.append((p, e)) }
                    }
                }
            } else {
                found.append((a.path, entry))
            }
        }
        let base = singleDirectory ?? ModelLayout.base(of: artifacts.map(\.path))
        var out = found.map { ModelFile(path: ModelLayout.outputPath($0.treePath, base: base), treePath: $0.treePath, entry: $0.entry) }
        out.sort { Tree.less($0.path, $1.path) }
        for (i, f) in out.enumerated() {
            try Workspace.validateRelative(f.path)
            if i > 0 && out[i - 1].path == f.path { throw MLStoreError(.corrupt, "two files of the model are both named '\(f.path)'") }
        }
        return out
    }

    /// The signature JSON of a version, if it has one.
    func signatureJSON(_ v: ModelVersion?) throws -> JSONValue? {
        guard let id = v?.signature else { return nil }
        return try JSONValue.parse(json: try readObject(id, .blob), what: "signature \(id.short)")
    }

    // MARK: Contents

    /// Reads the chunk lists of the files' large contents and announces every content object in the order
    /// it will be read (a network transport reads ahead).
    func prepareContent(_ files: [ModelFile]) throws -> ContentPlan {
        var chunked: [ObjectID: ChunkedFile] = [:]
        var ids: [ObjectID] = []
        for f in files {
            switch f.entry.kind {
            case .chunked:
                if chunked[f.entry.id] == nil {
                    chunked[f.entry.id] = try ChunkedFile(decoding: try readObject(f.entry.id, .chunked), id: f.entry.id)
                }
                ids += chunked[f.entry.id]!.chunks.map(\.id)
            case .file, .symlink: ids.append(f.entry.id)
            case .directory: break
            }
        }
        try announce(ids)
        return ContentPlan(chunked: chunked)
    }

    struct ContentPlan {
        var chunked: [ObjectID: ChunkedFile]
    }

    /// The SHA-256 and size of a file's content: recorded in a chunked file (checked while streaming), or
    /// computed from a small file's blob.
    func contentDigest(_ f: ModelFile, plan: ContentPlan) throws -> [UInt8] {
        if f.entry.kind == .chunked, let cf = plan.chunked[f.entry.id] { return cf.contentSHA256 }
        return SHA256.hash(try readObject(f.entry.id, .blob))
    }

    /// Streams a file's content in order, every piece verified, and returns its SHA-256. A chunked
    /// file's content must also match the whole-file SHA-256 it records.
    func streamContent(_ f: ModelFile, plan: ContentPlan, progress: ProgressReporter?,
                       emit: (UnsafeRawBufferPointer) throws -> Void) throws -> [UInt8] {
        switch f.entry.kind {
        case .file, .symlink:
            let bytes = try readObject(f.entry.id, .blob)
            guard bytes.count == f.entry.size else {
                throw MLStoreError.corruptObject(f.entry.id.hex, "is \(bytes.count) bytes but the tree says \(f.entry.size) (for '\(f.treePath)')", where: location)
            }
            try bytes.withUnsafeBytes { try emit($0) }
            progress?.advance(bytes: Int64(bytes.count))
            return SHA256.hash(bytes)
        case .chunked:
            let cf = try plan.chunked[f.entry.id] ?? ChunkedFile(decoding: try readObject(f.entry.id, .chunked), id: f.entry.id)
            guard cf.fileSize == f.entry.size else {
                throw MLStoreError.corruptObject(f.entry.id.hex, "describes \(cf.fileSize) bytes but the tree says \(f.entry.size) (for '\(f.treePath)')", where: location)
            }
            let hasher = SHA256()
            let chunks = cf.chunks
            let read = readObject
            let location = self.location
            try orderedParallelMap(count: chunks.count) { i in
                let bytes = try read(chunks[i].id, .blob)
                guard bytes.count == Int(chunks[i].length) else {
                    throw MLStoreError.corruptObject(chunks[i].id.hex, "is \(bytes.count) bytes but its chunk list says \(chunks[i].length)", where: location)
                }
                return bytes
            } consume: { _, bytes in
                bytes.withUnsafeBytes { hasher.update($0) }
                try bytes.withUnsafeBytes { try emit($0) }
                progress?.advance(bytes: Int64(bytes.count))
            }
            let sha = hasher.finalize()
            guard sha == cf.contentSHA256 else {
                throw MLStoreError.corruptObject(f.entry.id.hex, "the content of '\(f.treePath)' does not match the SHA-256 its chunk list records", where: location)
            }
            return sha
        case .directory:
            throw MLStoreError(.corrupt, "unexpected directory entry \(f.treePath) in a file list")
        }
    }

    // MARK: The model manifest

    /// The model manifest JSON (spec/models.md §Model manifest JSON): the version's record, the signature,
    /// and every file with its size, mode and SHA-256. The OCI config blob and the tar's
    /// `mlstore-model.json` are this document; it depends only on the version, so exports are reproducible.
    func manifestJSON(_ s: ModelSelection, digests: [String: [UInt8]]) throws -> JSONValue {
        var o: [String: JSONValue] = [
            "schema": .string("mlstore.model.v1"),
            "name": .string(s.name),
            "commit": .string(s.commit.hex),
            "artifacts": .array(s.artifacts.map { .object(["path": .string($0.path), "id": .string($0.id.hex)]) }),
        ]
        if let v = s.version, let id = s.versionID {
            o["version"] = .number(Double(v.version))
            o["id"] = .string(id.hex)
            if let f = v.flavor { o["flavor"] = .string(f) }
            if let fw = v.framework {
                var f: [String: JSONValue] = ["name": .string(fw)]
                if let fv = v.frameworkVersion { f["version"] = .string(fv) }
                o["framework"] = .object(f)
            }
            if let sig = try signatureJSON(v) { o["signature"] = sig }
            if !v.metadata.isEmpty { o["metadata"] = .object(Dictionary(v.metadata.map { ($0.key, JSONValue.string($0.value)) }, uniquingKeysWith: { a, _ in a })) }
            o["description"] = .string(v.description)
            o["author"] = .object(["name": .string(v.author.name), "email": .string(v.author.email)])
            o["created"] = .string(Self.rfc3339(v.author.time))
        } else if let st = s.stage {
            o["stage"] = .string(st)
        }
        o["files"] = .array(s.files.map { f in
            var d: [String: JSONValue] = ["path": .string(f.path), "size": .number(Double(f.entry.size))]
            if f.entry.kind == .symlink {
                d["type"] = .string("symlink")
            } else {
                d["type"] = .string("file")
                d["mode"] = .string(String(f.entry.mode, radix: 8))
            }
            if let sha = digests[f.path] { d["sha256"] = .string(Hex.encode(sha)) }
            return .object(d)
        })
        return .object(o)
    }

    /// `2006-01-02T15:04:05Z` (UTC).
    static func rfc3339(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(tmv.tm_year + 1900)-\(two(tmv.tm_mon + 1))-\(two(tmv.tm_mday))T\(two(tmv.tm_hour)):\(two(tmv.tm_min)):\(two(tmv.tm_sec))Z"
    }
}

/// An output written next to its final place and renamed into it at the end (spec/models.md §Safety):
/// a failure leaves nothing behind but what was there before, and an existing output is only replaced
/// when asked (`--force`); an existing empty directory may be filled.
final class StagedOutput {
    let target: String
    let temp: String
    let isDirectory: Bool
    private var createdParents: [String] = []
    private var finished = false

    init(target path: String, force: Bool, directory: Bool) throws {
        target = Path.absolute(path, base: Sys.currentDirectory())
        isDirectory = directory
        let cwd = Sys.currentDirectory()
        guard target != "/", target != cwd, !cwd.hasPrefix(target + "/") else {
            throw MLStoreError(.usage, "refusing to write to \(target): it is the current directory or one of its parents", hint: "give a new directory, e.g. -o ./model")
        }
        let parent = Path.parent(target)
        if let st = try Sys.lstatIfExists(target) {
            let emptyDirectory = st.type == .directory && ((try? Sys.listDirectory(target))?.isEmpty ?? false)
            if !(directory && emptyDirectory) {
                guard force else {
                    throw MLStoreError(.conflict, "\(target) already exists", hint: "choose another output, or pass --force to replace it")
                }
                if !directory && st.type == .directory {
                    throw MLStoreError(.conflict, "\(target) is a directory", hint: "give a file name for the archive")
                }
            }
        }
        // Missing parent directories are created (and removed again on failure).
        var missing: [String] = []
        var p = parent
        while p != "/", (try Sys.lstatIfExists(p)) == nil {
            missing.append(p)
            p = Path.parent(p)
        }
        for d in missing.reversed() {
            _ = try Sys.mkdir(d)
            createdParents.append(d)
        }
        temp = Path.join(parent, ".\(Self.shortName(target)).mlstore-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        if directory {
            do { _ = try Sys.mkdir(temp, mode: 0o755) } catch {
                discard()
                throw error
            }
        }
    }

    deinit { if !finished { discard() } }

    /// At most 100 bytes of the output's name, for the names of temporary siblings.
    static func shortName(_ path: String) -> String { String(decoding: Path.basename(path).utf8.prefix(100), as: UTF8.self) }

    /// Makes the output durable and moves it into place.
    func publish() throws {
        if isDirectory { try Self.syncTree(temp) }
        if let st = try Sys.lstatIfExists(target) {
            let emptyDirectory = isDirectory && st.type == .directory && ((try? Sys.listDirectory(target))?.isEmpty ?? false)
            if emptyDirectory || (!isDirectory && st.type != .directory) {
                try Sys.rename(temp, target)  // replaces an empty directory or a file atomically
            } else {
                // --force over a non-empty directory (or a file where a directory goes): move the old one aside.
                let aside = Path.join(Path.parent(target), ".\(Self.shortName(target)).mlstore-old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
                try Sys.rename(target, aside)
                do {
                    try Sys.rename(temp, target)
                } catch {
                    try? Sys.rename(aside, target)
                    throw error
                }
                Self.removeTree(aside)
            }
        } else {
            try Sys.rename(temp, target)
        }
        finished = true
        try? Sys.fsyncDirectory(Path.parent(target))
    }

    /// Removes the temporary output and any parent directories this created.
    func discard() {
        finished = true
        Self.removeTree(temp)
        for d in createdParents.reversed() { try? Sys.rmdir(d) }
    }

    /// fsyncs every file and directory below `root` (not following symlinks).
    static func syncTree(_ root: String) throws {
        for (name, _) in try Sys.listDirectory(root) {
            let p = root + "/" + name
            let st = try Sys.lstat(p)
            if st.type == .directory {
                try syncTree(p)
            } else if st.type == .regular {
                let fd = try Sys.open(p, O_RDONLY | O_NOFOLLOW)
                defer { Sys.close(fd) }
                try Sys.fsync(fd, path: p)
            }
        }
        try Sys.fsyncDirectory(root)
    }

    /// Removes a file or a directory tree without following symlinks; errors are ignored.
    static func removeTree(_ path: String) {
        guard let st = try? Sys.lstatIfExists(path) else { return }
        if st.type == .directory {
            for (name, _) in (try? Sys.listDirectory(path)) ?? [] { removeTree(path + "/" + name) }
            try? Sys.rmdir(path)
        } else {
            _ = try? Sys.unlink(path)
        }
    }
}

/// What `mlstore get` (and `export`) wrote.
public struct ModelOutputReport: Sendable, Codable {
    public struct File: Sendable, Codable, Equatable {
        public var path: String
        public var size: Int64
        /// Hex SHA-256 of the content (of the link target for a symlink).
        public var sha256: String
        /// Octal permission bits, or "symlink".
        public var mode: String
    }
    /// Where the model came from (a remote location or the local store).
    public var source: String
    /// The request, e.g. `fraud@production`.
    public var request: String
    public var model: String
    public var version: Int?
    public var versionId: String?
    public var stage: String?
    public var commit: String
    public var output: String
    public var format: String
    public var files: [File] = []
    public var bytes: Int64 = 0
    /// The model manifest JSON (spec/models.md).
    public var manifest: JSONValue?
    /// OCI: the digest of the image manifest and its reference name in index.json.
    public var manifestDigest: String?
    public var refName: String?
}

extension Repository {
    /// `mlstore get`: writes the files of `<name>@<stage|vN>` from a remote into `output`, with no local
    /// store. Every object is verified; the files go to a temporary directory next to `output` that is
    /// renamed into place at the end, so a failure leaves nothing behind.
    /// - Throws: `.notFound` (exit 3) for an unknown model, version or stage; `.corrupt` (exit 4) when the
    ///   remote's data fails verification or is incomplete; `.io` (exit 7) when the remote cannot be reached.
    public static func getModel(from transport: RemoteTransport, spec text: String, output: String, force: Bool = false,
                                progress: ProgressReporter? = nil) throws -> ModelOutputReport {
        let spec = try ModelSpec(parsing: text)
        do {
            try transport.open(create: false)
        } catch let e as MLStoreError where e.code == .notFound || e.code == .io {
            throw MLStoreError(.io, "cannot reach the remote \(transport.location): \(e.message)",
                               hint: "check the path or URL (and network and credentials for s3://)")
        }
        let source = ModelSource.remote(transport)
        let selection = try source.resolve(spec)
        return try writeModelFiles(selection, source: source, output: output, force: force, progress: progress)
    }

    static func writeModelFiles(_ selection: ModelSelection, source: ModelSource, output: String, force: Bool,
                                progress: ProgressReporter?) throws -> ModelOutputReport {
        // Symlinks may only point inside the output.
        for f in selection.files where f.entry.kind == .symlink {
            let target = String(decoding: try source.readObject(f.entry.id, .blob), as: UTF8.self)
            try checkLinkStaysInside(f.path, target: target)
        }
        let plan = try source.prepareContent(selection.files)
        let staged = try StagedOutput(target: output, force: force, directory: true)
        var report = ModelOutputReport(
            source: source.location, request: selection.spec.description, model: selection.name, version: selection.version?.version,
            versionId: selection.versionID?.hex, stage: selection.stage, commit: selection.commit.hex, output: staged.target, format: "files")
        do {
            let writer = try SafeWriter(root: staged.temp)
            var digests: [String: [UInt8]] = [:]
            progress?.begin("get", totalBytes: selection.totalSize)
            defer { progress?.end() }
            for f in selection.files {
                try writer.checkParents(f.path, allowReplacing: [])
                let sha: [UInt8]
                if f.entry.kind == .symlink {
                    let target = try source.readObject(f.entry.id, .blob)
                    _ = try writer.writeSymlink(f.path, target: String(decoding: target, as: UTF8.self))
                    sha = SHA256.hash(target)
                } else {
                    var computed: [UInt8] = []
                    _ = try writer.writeFile(f.path, mode: f.entry.mode) { emit in
                        computed = try source.streamContent(f, plan: plan, progress: progress, emit: emit)
                    }
                    sha = computed
                }
                digests[f.path] = sha
                report.files.append(.init(path: f.path, size: f.entry.size, sha256: Hex.encode(sha),
                                          mode: f.entry.kind == .symlink ? "symlink" : String(f.entry.mode, radix: 8)))
                report.bytes += f.entry.size
            }
            report.manifest = try source.manifestJSON(selection, digests: digests)
            try staged.publish()
        } catch {
            staged.discard()
            throw error
        }
        return report
    }

    /// Refuses a symlink whose target is absolute or leaves the output directory.
    static func checkLinkStaysInside(_ path: String, target: String) throws {
        var depth = path.split(separator: "/").count - 1
        guard !target.hasPrefix("/"), !target.isEmpty else {
            throw MLStoreError(.unsafePath, "refusing to write symlink '\(path)' → '\(target)': it points outside the output")
        }
        for part in target.split(separator: "/") {
            if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
            if depth < 0 {
                throw MLStoreError(.unsafePath, "refusing to write symlink '\(path)' → '\(target)': it points outside the output")
            }
        }
    }
}
