import MLStoreBasics

/// The state of the workspace against the index, and of the index against the last commit.
public struct StatusReport: Sendable, Codable, Equatable {
    public enum Change: String, Sendable, Codable {
        case added, modified, deleted, typeChanged = "type-changed"
    }
    public struct Item: Sendable, Codable, Equatable {
        public var path: String
        public var change: Change
    }
    /// Index vs. the committed tree (what the next commit records).
    public var staged: [Item] = []
    /// Workspace vs. index (changes not yet added).
    public var unstaged: [Item] = []
    /// Files not in the index; a directory with nothing tracked shows as `dir/`.
    public var untracked: [String] = []

    public var isClean: Bool { staged.isEmpty && unstaged.isEmpty && untracked.isEmpty }
}

extension Workspace {
    public struct StatusOptions: Sendable {
        /// List untracked files everywhere, not only inside tracked directories.
        public var allUntracked = false
        /// The committed tree to compare the index with (nil: nothing committed yet).
        public var baseTree: ObjectID?
        public init(allUntracked: Bool = false, baseTree: ObjectID? = nil) {
            self.allUntracked = allUntracked
            self.baseTree = baseTree
        }
    }

    /// Computes status. Unchanged files cost one `lstat` each; files whose stat changed are re-hashed,
    /// and if their content is the same the index's stat data is refreshed (when the lock is free).
    public func status(_ options: StatusOptions = StatusOptions()) throws -> StatusReport {
        var index = try WorkspaceIndex.load(repo)
        var report = StatusReport()
        report.staged = try stagedChanges(index, base: options.baseTree)

        var suspects: [(path: String, stat: FileStat)] = []
        for e in index.entries {
            guard let st = try Sys.lstatIfExists(absolute(e.path)) else {
                report.unstaged.append(.init(path: e.path, change: .deleted))
                continue
            }
            let isLink = st.type == .symlink
            if isLink != (e.kind == .symlink) || (st.type != .regular && st.type != .symlink) {
                report.unstaged.append(.init(path: e.path, change: .typeChanged))
                continue
            }
            if e.statMatches(st) && !index.isRacy(e) { continue }
            suspects.append((e.path, st))
        }
        var refreshed: [IndexEntry] = []
        if !suspects.isEmpty {
            let hashed = try importFiles(suspects, into: nil, progress: nil)
            for h in hashed {
                guard let old = index[h.path] else { continue }
                if old.id == h.id && old.mode == h.mode && old.kind == h.kind {
                    refreshed.append(h)  // same content, new stat data
                } else {
                    report.unstaged.append(.init(path: h.path, change: .modified))
                }
            }
        }
        report.unstaged.sort { $0.path < $1.path }
        report.untracked = try untracked(index, all: options.allUntracked)

        // Refresh stat data of files that were touched but not changed, so the next status is fast.
        if !refreshed.isEmpty, let lock = try? LockFile(repo.indexPath) {
            if let fresh = try? WorkspaceIndex.load(repo), fresh.entries == index.entries {
                index = fresh
                index.update(set: refreshed)
                if let newest = refreshed.map(\.mtimeNs).max() { Self.waitPastRacyWindow(newest) }
                try? index.save(repo, lock: lock)
            } else {
                lock.rollback()
            }
        }
        return report
    }

    func stagedChanges(_ index: WorkspaceIndex, base: ObjectID?) throws -> [StatusReport.Item] {
        var committed: [String: TreeEntry] = [:]
        if let base {
            for (p, e) in try repo.flatten(tree: base) { committed[p] = e }
        }
        var out: [StatusReport.Item] = []
        for e in index.entries {
            if let c = committed.removeValue(forKey: e.path) {
                if c.id != e.id || c.mode != e.mode {
                    out.append(.init(path: e.path, change: (c.kind == .symlink) != (e.kind == .symlink) ? .typeChanged : .modified))
                }
            } else {
                out.append(.init(path: e.path, change: .added))
            }
        }
        for p in committed.keys { out.append(.init(path: p, change: .deleted)) }
        return out.sorted { $0.path < $1.path }
    }

    /// Untracked files inside tracked directories (or everywhere), collapsing wholly untracked directories.
    func untracked(_ index: WorkspaceIndex, all: Bool) throws -> [String] {
        var roots = all ? [""] : index.roots.sorted()
        // Drop roots nested in other roots.
        roots = roots.filter { r in !roots.contains { $0 != r && ($0.isEmpty || r.hasPrefix($0 + "/")) } }
        var trackedDirs = Set<String>([""])
        for e in index.entries {
            var d = Path.parent(e.path)
            while !d.isEmpty && trackedDirs.insert(d).inserted { d = Path.parent(d) }
        }
        var out = Set<String>()
        for r in roots {
            for (p, _) in try walk(r) where index[p] == nil {
                // Report the top-most directory below the root that holds nothing tracked.
                var shown = p
                var d = Path.parent(p)
                while !d.isEmpty && d != r && !trackedDirs.contains(d) {
                    shown = d + "/"
                    d = Path.parent(d)
                }
                out.insert(shown)
            }
        }
        return out.sorted()
    }
}
