import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// What `add` did.
public struct AddReport: Sendable, Codable {
    public var added: [String] = []
    public var updated: [String] = []
    public var removed: [String] = []
    public var unchanged = 0
    public var objectsWritten = 0
    public var storedBytes: Int64 = 0
    public var hashedBytes: Int64 = 0
    public var gitignoreUpdated: [String] = []
}

extension Workspace {
    public struct AddOptions: Sendable {
        /// Add paths even if `.mlstoreignore` ignores them.
        public var force = false
        /// Do not write added paths into `.gitignore` when the workspace is in a git work tree.
        public var updateGitignore = true
        public init(force: Bool = false, updateGitignore: Bool = true) {
            self.force = force
            self.updateGitignore = updateGitignore
        }
    }

    /// Stages files and directories (workspace-relative paths; "" is the whole workspace).
    ///
    /// Objects are published (pack, then index) before the workspace index is replaced, so a crash at
    /// any point leaves the previous index valid and every object it names present.
    public func add(_ paths: [String], options: AddOptions = AddOptions(), progress: ProgressReporter? = nil) throws
        -> AddReport
    {
        let lock = try LockFile(repo.indexPath)
        var index = try WorkspaceIndex.load(repo)
        var candidates: [String: FileStat] = [:]
        var removals = Set<String>()
        var newRoots = Set<String>()
        for rel in paths {
            guard let st = try Sys.lstatIfExists(absolute(rel)) else {
                let tracked = index.entries(under: rel)
                if tracked.isEmpty {
                    throw MLStoreError(.notFound, "'\(rel.isEmpty ? "." : rel)' does not exist and is not tracked", hint: "check the path")
                }
                removals.formUnion(tracked.map(\.path))
                continue
            }
            try checkNoSymlinkParents(rel)
            switch st.type {
            case .directory:
                if !rel.isEmpty && ignore.isIgnored(rel, isDirectory: true) && !options.force {
                    throw ignoredError(rel)
                }
                newRoots.insert(rel)
                let files = try walk(rel)
                for (p, s) in files { candidates[p] = s }
                let present = Set(files.map(\.path))
                for e in index.entries(under: rel) where !present.contains(e.path) { removals.insert(e.path) }
            case .regular, .symlink:
                if ignore.isIgnored(rel, isDirectory: false) && !options.force { throw ignoredError(rel) }
                candidates[rel] = st
            case .other:
                throw MLStoreError(.usage, "'\(rel)' is not a regular file, directory or symlink")
            }
        }
        // Entries whose stat proves the content unchanged are kept without reading the file.
        var report = AddReport()
        var toHash: [(path: String, stat: FileStat)] = []
        for (p, st) in candidates.sorted(by: { $0.key < $1.key }) {
            if let e = index[p], e.statMatches(st), !index.isRacy(e) {
                report.unchanged += 1
            } else {
                toHash.append((p, st))
            }
        }
        let batch = repo.objects.batch()
        var entries: [IndexEntry]
        do {
            entries = try importFiles(toHash, into: batch, progress: progress)
            try batch.commit()
        } catch {
            batch.abandon()
            throw error
        }
        for e in entries {
            if let old = index[e.path] {
                if old.id != e.id || old.mode != e.mode || old.kind != e.kind { report.updated.append(e.path) } else { report.unchanged += 1 }
            } else {
                report.added.append(e.path)
            }
        }
        report.removed = removals.filter { index[$0] != nil }.sorted()
        report.objectsWritten = batch.stats.objectsWritten
        report.storedBytes = batch.stats.storedBytes
        report.hashedBytes = toHash.reduce(0) { $0 + $1.stat.size }
        index.roots.formUnion(newRoots)
        index.update(set: entries, remove: removals)
        if let newest = entries.map(\.mtimeNs).max() { Self.waitPastRacyWindow(newest) }
        try index.save(repo, lock: lock)
        if options.updateGitignore {
            report.gitignoreUpdated = try updateGitignore(for: paths, directories: newRoots)
        }
        return report
    }

    func ignoredError(_ rel: String) -> MLStoreError {
        MLStoreError(.usage, "'\(rel)' is ignored by \(IgnoreRules.fileName)", hint: "use --force to add it anyway")
    }

    /// Refuses paths that pass through a symlinked directory inside the workspace.
    func checkNoSymlinkParents(_ rel: String) throws {
        var dir = ""
        let parts = rel.split(separator: "/").map(String.init)
        for part in parts.dropLast() {
            dir = Path.join(dir, part)
            if let st = try Sys.lstatIfExists(absolute(dir)), st.type == .symlink {
                throw MLStoreError(.unsafePath, "'\(rel)' goes through the symlink '\(dir)'", hint: "add the symlink itself, or the directory it points to by its real path")
            }
        }
    }

    /// The enclosing git work tree's top directory, if any.
    public func gitTopLevel() -> String? {
        var dir = root
        while true {
            if (try? Sys.lstatIfExists(dir + "/.git")) != nil, (try? Sys.lstatIfExists(dir + "/.git")) != .some(nil) { return dir }
            if dir == "/" || dir.isEmpty { return nil }
            dir = Path.parent(dir)
        }
    }

    /// Inside a git work tree, lists `.mlstore/` and the added paths in the workspace's `.gitignore`
    /// (as `dvc add` does), so git does not track the data. Returns the lines added.
    func updateGitignore(for paths: [String], directories: Set<String>) throws -> [String] {
        guard gitTopLevel() != nil else { return [] }
        let file = root + "/.gitignore"
        let existing = (try? Sys.readFile(file, limit: 16 << 20)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let present = Set(existing.split(separator: "\n").map { $0.trimmingCharacters(in: " \t\r") })
        var lines: [String] = []
        func want(_ line: String) {
            if !present.contains(line) && !lines.contains(line) { lines.append(line) }
        }
        want("/.mlstore/")
        for p in paths where !p.isEmpty {
            want("/" + p + (directories.contains(p) ? "/" : ""))
        }
        guard !lines.isEmpty else { return [] }
        var text = existing
        if !text.isEmpty && !text.hasSuffix("\n") { text += "\n" }
        text += lines.joined(separator: "\n") + "\n"
        try Sys.writeFileAtomically(file, Array(text.utf8))
        return lines
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
