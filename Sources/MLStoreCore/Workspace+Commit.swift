import MLStoreBasics

extension Workspace {
    public struct CommitOptions: Sendable {
        public var message: String
        public var inputs: [String] = []
        public var outputs: [String] = []
        public var params: JSONValue?
        public var metrics: JSONValue?
        public var command: [String]?
        public var captureCode = true
        public var captureEnv = true
        public var allowEmpty = false
        public var extensions: [(key: String, value: String)] = []
        public init(message: String) { self.message = message }
    }

    /// Records a lineage commit of the staged state on the current branch (or detached HEAD).
    ///
    /// Objects (trees, params, metrics, env, code) are published first; the branch moves last, by
    /// compare-and-swap against the parent read at the start, so a concurrent commit is refused, not lost.
    public func commit(_ o: CommitOptions) throws -> (id: ObjectID, commit: Commit) {
        guard !o.message.trimmingCharacters(in: " \n\t").isEmpty else {
            throw MLStoreError(.usage, "the commit message is empty", hint: "give one with -m \"what this run is\"")
        }
        let index = try WorkspaceIndex.load(repo)
        let head = try repo.refs.head()
        let batch = repo.objects.batch()
        do {
            let (tree, _) = try Self.buildTree(index.entries, into: batch)
            func artifacts(_ paths: [String], _ flag: String) throws -> [Artifact] {
                try paths.map { p in
                    let under = index.entries(under: p)
                    guard !under.isEmpty else {
                        throw MLStoreError(.notFound, "\(flag) \(p): the path is not tracked", hint: "add it first: mlstore add \(p)")
                    }
                    return Artifact(id: try Self.artifactID(under, at: p, into: batch), path: p.isEmpty ? "." : p)
                }
            }
            let author = try repo.identity(role: "AUTHOR")
            var c = Commit(tree: tree, author: author, committer: try repo.identity(role: "COMMITTER"), message: o.message.hasSuffix("\n") ? o.message : o.message + "\n")
            if let parent = head.commit { c.parents = [parent] }
            c.inputs = try artifacts(o.inputs, "--input")
            c.outputs = try artifacts(o.outputs, "--output")
            if let p = o.params { c.params = try batch.add(kind: .blob, payload: p.bytes) }
            if let m = o.metrics { c.metrics = try batch.add(kind: .blob, payload: m.bytes) }
            c.command = o.command
            c.extensions = o.extensions
            if o.captureCode {
                let tracked = Set(index.entries.map(\.path))
                c.code = try CodeCapture.capture(workspace: root, into: batch, importer: importer, tracked: tracked, walk: { try self.walk("") })
            }
            if o.captureEnv { c.env = try batch.add(kind: .blob, payload: try EnvironmentCapture.capture(workspace: root, into: batch).bytes) }

            if !o.allowEmpty {
                let parentTree = try head.commit.map { try repo.commit($0).tree }
                let recordsRun = c.params != nil || c.metrics != nil || !c.inputs.isEmpty || !c.outputs.isEmpty || c.command != nil
                if (parentTree == tree || (parentTree == nil && index.entries.isEmpty)) && !recordsRun {
                    throw MLStoreError(.usage, "nothing to commit: no file changed and no params, metrics, inputs, outputs or command recorded",
                                       hint: "stage changes with `mlstore add`, record a run with --param/--metric, or pass --allow-empty")
                }
            }
            let id = try batch.add(kind: .commit, payload: c.encoded())
            try batch.commit()
            let reflog = "commit\(c.parents.isEmpty ? " (initial)" : ""): \(c.subject)"
            switch head {
            case .branch(let b, let old):
                try repo.refs.update("refs/heads/" + b, to: id, expecting: old.map { .value($0) } ?? .absent, actor: author, message: reflog)
            case .detached:
                try repo.refs.setHead(.detached(id), message: reflog, actor: author)
            }
            return (id, c)
        } catch {
            batch.abandon()
            throw error
        }
    }
}

extension Repository {
    /// Commits reachable from `starts`, newest first (by committer time, then id), each once.
    public func history(from starts: [ObjectID], limit: Int? = nil, firstParent: Bool = false) throws -> [(id: ObjectID, commit: Commit)] {
        var out: [(ObjectID, Commit)] = []
        var seen = Set<ObjectID>()
        var frontier: [(ObjectID, Commit)] = []
        for s in starts where seen.insert(s).inserted { frontier.append((s, try commit(s))) }
        while !frontier.isEmpty {
            if let limit, out.count >= limit { break }
            // Pick the newest commit of the frontier.
            var best = 0
            for i in 1..<max(1, frontier.count) where i < frontier.count {
                let a = frontier[i].1.committer.time, b = frontier[best].1.committer.time
                if a > b || (a == b && frontier[i].0 > frontier[best].0) { best = i }
            }
            let (id, c) = frontier.remove(at: best)
            out.append((id, c))
            for p in (firstParent ? Array(c.parents.prefix(1)) : c.parents) where seen.insert(p).inserted {
                frontier.append((p, try commit(p)))
            }
        }
        return out
    }

    /// Every commit reachable from any ref (branches, tags, remote-tracking refs, stage targets and
    /// their histories) and from HEAD.
    public func allCommits() throws -> [(id: ObjectID, commit: Commit)] {
        var starts = Set<ObjectID>()
        if let h = try? refs.head().commit { starts.insert(h) }
        for (name, id) in refs.list() {
            if name.hasPrefix("refs/stages/") {
                var record: ObjectID? = id
                var guardCount = 0
                while let r = record, guardCount < 100_000 {
                    guardCount += 1
                    let s = try stageRecord(r)
                    if let t = s.target { starts.insert(t) }
                    record = s.previous
                }
            } else if let c = try? peelToCommit(id, revision: name) {
                starts.insert(c)
            }
        }
        return try history(from: Array(starts))
    }
}
