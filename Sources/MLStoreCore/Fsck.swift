import MLStoreBasics

/// The result of verifying a store.
public struct FsckReport: Sendable, Codable {
    public struct Problem: Sendable, Codable, Equatable {
        /// The bad object's id, or the damaged file's path.
        public var subject: String
        public var message: String
    }
    public var objectsChecked = 0
    public var packsChecked = 0
    public var problems: [Problem] = []
    /// Leftovers of interrupted writes (harmless; `gc` removes them).
    public var notes: [String] = []
    public var isClean: Bool { problems.isEmpty }
}

extension Repository {
    /// Verifies every object (hash, size, format), every pack and index checksum, and that trees,
    /// chunked files and the workspace index only name objects that exist with the right kind.
    public func fsck(progress: ProgressReporter? = nil) throws -> FsckReport {
        var report = FsckReport()
        try objects.reloadPacks()
        func problem(_ subject: String, _ message: String) { report.problems.append(.init(subject: subject, message: message)) }

        let packDir = objects.packDirectory
        if let listing = try? Sys.listDirectory(packDir) {
            let names = Set(listing.map(\.name))
            for n in names.sorted() {
                if n.hasPrefix("tmp-") { report.notes.append("leftover temporary file \(packDir)/\(n) (from an interrupted write)") }
                if n.hasSuffix(".pack"), !names.contains(String(n.dropLast(5)) + ".idx") {
                    report.notes.append("pack \(packDir)/\(n) has no index (an interrupted write); its objects are not used")
                }
            }
        }
        for pack in objects.packReaders {
            report.packsChecked += 1
            do {
                if let issue = try pack.verifyStructure() { problem(pack.packPath, "damaged pack: \(issue)") }
            } catch { problem(pack.packPath, "\(error)") }
            if !pack.index.verifyChecksum() { problem(pack.index.path, "pack index checksum mismatch") }
        }

        // Verify every object, on all cores; remember kinds and references for the connectivity pass.
        let all = try objects.allObjects()
        var kinds: [ObjectID: ObjectKind] = [:]
        var references: [(from: ObjectID, to: ObjectID, kind: ObjectKind?, edge: ObjectGraph.Edge)] = []
        let store = objects
        progress?.begin("verifying objects", totalBytes: Int64(all.count))
        try orderedParallelMap(count: all.count) { i -> Result<(ObjectKind, [(ObjectID, ObjectKind?, ObjectGraph.Edge)]), MLStoreError> in
            let id = all[i].id
            do {
                let (kind, payload) = try store.read(id)
                var refs: [(ObjectID, ObjectKind?, ObjectGraph.Edge)] = []
                switch kind {
                case .tree:
                    for e in try Tree(decoding: payload, id: id).entries {
                        refs.append((e.id, e.kind.objectKind, e.kind == .directory || e.kind == .symlink ? .metadata : .content))
                    }
                case .chunked:
                    for c in try ChunkedFile(decoding: payload, id: id).chunks { refs.append((c.id, .blob, .content)) }
                case .model:
                    // A model version names a commit, its artifacts, a signature blob and the previous version.
                    let v = try ModelVersion(decoding: payload, id: id)
                    refs.append((v.commit, .commit, .metadata))
                    for a in v.artifacts { refs.append((a.id, nil, .content)) }
                    if let s = v.signature { refs.append((s, .blob, .metadata)) }
                    if let p = v.previous { refs.append((p, .model, .metadata)) }
                case .commit, .tag, .stage:
                    // Lock-file blobs named inside env records are checked when the env blob is read by reachability walks.
                    for (child, edge) in try ObjectGraph.children(kind: kind, payload: payload, id: id, readJSON: { _ in nil }) {
                        refs.append((child, nil, edge))
                    }
                default: break
                }
                return .success((kind, refs))
            } catch let e as MLStoreError {
                return .failure(e)
            } catch {
                return .failure(MLStoreError(.io, "\(error)"))
            }
        } consume: { i, result in
            report.objectsChecked += 1
            progress?.advance(bytes: 1)
            switch result {
            case .success(let (kind, refs)):
                kinds[all[i].id] = kind
                for (to, k, edge) in refs { references.append((all[i].id, to, k, edge)) }
            case .failure(let e):
                problem(all[i].id.hex, e.message)
            }
        }
        progress?.end()
        var reported = Set(report.problems.map(\.subject))
        let partial = (try? config().entries.contains { $0.key.hasSuffix(".partial") && $0.value == "true" }) ?? false
        var notFetched = 0
        for r in references {
            guard let k = kinds[r.to] else {
                if partial && r.edge == .content {
                    notFetched += 1
                    continue
                }
                if reported.insert(r.to.hex).inserted {
                    problem(r.to.hex, "missing: referenced by \(r.from.hex)")
                }
                continue
            }
            if let expected = r.kind, k != expected { problem(r.to.hex, "is a \(k.rawValue) but \(r.from.hex) uses it as a \(expected.rawValue)") }
        }
        if notFetched > 0 { report.notes.append("\(notFetched) file contents are not fetched yet (partial clone); checkout fetches them when needed") }
        // Every ref must name an object that exists.
        for (name, id) in refs.list() where kinds[id] == nil && !reported.contains(id.hex) {
            problem(name, "points at \(id.hex), which is not in the store")
        }
        for (name, id) in refs.list("refs/models/") {
            if let k = kinds[id], k != .model { problem(name, "points at a \(k.rawValue), not a model version") }
        }
        for bad in refs.unreadable() {
            problem(bad, "is not a valid ref (it must hold one object id); fix or delete it")
        }
        for lock in refs.lockFiles() {
            report.notes.append("lock file \(lock) is present: a ref update is in progress, or one was interrupted (if no mlstore process is running, remove it)")
        }
        if workspaceRoot != nil, let index = try? WorkspaceIndex.load(self) {
            for e in index.entries where kinds[e.id] == nil && !reported.contains(e.id.hex) {
                problem(e.id.hex, "missing: staged for \(e.path) in the workspace index")
            }
        } else if workspaceRoot != nil, (try? Sys.lstatIfExists(indexPath)) != nil {
            do { _ = try WorkspaceIndex.load(self) } catch { problem(indexPath, "\(error)") }
        }
        return report
    }
}
