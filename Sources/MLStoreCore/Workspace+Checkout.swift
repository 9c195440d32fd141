import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// What `checkout` did.
public struct CheckoutReport: Sendable, Codable {
    public var written: [String] = []
    public var removed: [String] = []
    public var unchanged = 0
    public var bytesWritten: Int64 = 0
}

extension Workspace {
    public struct CheckoutOptions: Sendable {
        /// Overwrite local modifications and untracked files in the way.
        public var force = false
        public init(force: Bool = false) { self.force = force }
    }

    /// Makes the workspace and index match `tree`; with `paths`, restores only those paths from it.
    ///
    /// The whole target tree is read and validated, and every destination checked for symlinked
    /// parents, before the first byte is written. Without `force`, local changes that would be lost
    /// stop the command before anything is written.
    public func checkout(tree: ObjectID, paths: [String]? = nil, options: CheckoutOptions = CheckoutOptions(),
                         progress: ProgressReporter? = nil) throws -> CheckoutReport {
        let lock = try LockFile(repo.indexPath)
        var index = try WorkspaceIndex.load(repo)
        var target = try repo.flatten(tree: tree).map { (path: $0.path, entry: $0.entry) }
        var removals: [String] = []
        if let paths {
            var selected: [(path: String, entry: TreeEntry)] = []
            for p in paths {
                let matched = target.filter { p.isEmpty || $0.path == p || $0.path.hasPrefix(p + "/") }
                if matched.isEmpty {
                    throw MLStoreError(.notFound, "'\(p)' is not in tree \(tree.short)", hint: "list the tree with `mlstore ls-tree -r \(tree.short)`")
                }
                selected += matched
            }
            target = selected
        } else {
            let keep = Set(target.map(\.path))
            removals = index.entries.map(\.path).filter { !keep.contains($0) }
            if !options.force {
                try refuseToLoseWork(index: index, target: target, removals: removals)
            }
        }
        // Switching trees carries local edits of paths the switch does not change (as git does) and
        // restores missing files; --force and explicit paths restore edited files too.
        let keepLocal = paths == nil && !options.force
        let report = try materialize(target, removing: removals, index: &index, keepLocalChanges: keepLocal, progress: progress)
        if paths == nil {
            for e in target where e.path.contains("/") { index.roots.insert(String(e.path.prefix { $0 != "/" })) }
        }
        if let newest = index.entries.map(\.mtimeNs).max() { Self.waitPastRacyWindow(newest) }
        try index.save(repo, lock: lock)
        return report
    }

    /// Restores paths from the index (discarding workspace changes to them), like `git checkout -- <path>`.
    public func checkoutFromIndex(_ paths: [String], progress: ProgressReporter? = nil) throws -> CheckoutReport {
        let lock = try LockFile(repo.indexPath)
        var index = try WorkspaceIndex.load(repo)
        var target: [(path: String, entry: TreeEntry)] = []
        for p in paths {
            let matched = index.entries(under: p)
            if matched.isEmpty {
                throw MLStoreError(.notFound, "'\(p.isEmpty ? "." : p)' is not tracked", hint: "see tracked paths with `mlstore status`")
            }
            target += matched.map { ($0.path, TreeEntry(kind: $0.kind, mode: $0.mode, size: $0.size, name: Path.basename($0.path), id: $0.id)) }
        }
        let report = try materialize(target, removing: [], index: &index, keepLocalChanges: false, progress: progress)
        if let newest = index.entries.map(\.mtimeNs).max() { Self.waitPastRacyWindow(newest) }
        try index.save(repo, lock: lock)
        return report
    }

    func refuseToLoseWork(index: WorkspaceIndex, target: [(path: String, entry: TreeEntry)], removals: [String]) throws {
        let st = try status()
        // A file deleted from the workspace holds nothing to lose; edited files do.
        let dirty = Set(st.unstaged.filter { $0.change != .deleted }.map(\.path))
        var lost: [String] = []
        let targetByPath = Dictionary(target.map { ($0.path, $0.entry) }, uniquingKeysWith: { a, _ in a })
        for p in dirty {
            if let e = index[p], let t = targetByPath[p], t.id == e.id, t.mode == e.mode { continue }  // carried over
            lost.append(p)
        }
        // Untracked files that the checkout would overwrite with different content.
        for (p, t) in target where index[p] == nil {
            guard let wst = try Sys.lstatIfExists(absolute(p)) else { continue }
            if wst.type == .directory { lost.append(p + "/"); continue }
            let have = try? importer.importPath(absolute(p), stat: wst, into: nil)
            if have?.id != t.id { lost.append(p) }
        }
        if !lost.isEmpty {
            let list = lost.sorted().prefix(20).map { "  \($0)" }.joined(separator: "\n")
            throw MLStoreError(
                .conflict, "checkout would overwrite local changes to \(lost.count) path(s):\n\(list)",
                hint: "add them first, move them away, or pass --force to discard them")
        }
    }

    /// Writes target entries (skipping ones already in place), removes `removing`, and updates `index`.
    /// With `keepLocalChanges`, a path whose staged version already equals the target is left alone even
    /// if the workspace copy was edited (missing files are still restored: that loses nothing).
    func materialize(_ target: [(path: String, entry: TreeEntry)], removing: [String], index: inout WorkspaceIndex,
                     keepLocalChanges: Bool, progress: ProgressReporter?) throws -> CheckoutReport {
        for (p, _) in target { try Self.validateRelative(p) }
        let writer = try SafeWriter(root: root)
        // Pre-flight: no destination may pass through a symlink inside the workspace.
        for (p, _) in target { try writer.checkParents(p, allowReplacing: Set(removing)) }

        var report = CheckoutReport()
        for p in removing {
            try writer.remove(p)
            report.removed.append(p)
        }
        index.update(set: [], remove: Set(removing))

        var todo: [(path: String, entry: TreeEntry)] = []
        for t in target {
            if let e = index[t.path], e.id == t.entry.id, e.mode == t.entry.mode, e.kind == t.entry.kind,
                let st = try Sys.lstatIfExists(absolute(t.path))
            {
                // Present and staged as the target: keep it if clean, or if it holds local edits to carry.
                if keepLocalChanges || (e.statMatches(st) && !index.isRacy(e)) {
                    report.unchanged += 1
                    continue
                }
            }
            todo.append(t)
        }
        try repo.fetchMissingContent(todo, progress: progress)
        progress?.begin("checkout", totalBytes: todo.reduce(0) { $0 + $1.entry.size })
        defer { progress?.end() }
        var written: [IndexEntry] = []
        for t in todo {
            let st = try repo.writeEntry(t.path, t.entry, writer: writer, progress: progress)
            written.append(IndexEntry(path: t.path, kind: t.entry.kind, mode: t.entry.mode, size: t.entry.size,
                                      mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, inode: st.inode, id: t.entry.id))
            report.written.append(t.path)
            report.bytesWritten += t.entry.size
        }
        index.update(set: written)
        return report
    }

}

/// Writes into the workspace through directory descriptors opened with `O_NOFOLLOW`, so no write can
/// pass through a symlink, whatever changes on disk meanwhile. Files are written to a temp name and
/// renamed into place.
final class SafeWriter {
    let root: String
    private let rootFD: Int32
    private var dirs: [String: Int32] = [:]

    init(root: String) throws {
        self.root = root
        rootFD = try Sys.open(root, O_RDONLY | O_DIRECTORY)
    }

    deinit {
        for fd in dirs.values { Sys.close(fd) }
        Sys.close(rootFD)
    }

    /// Refuses a path whose existing parent components include a symlink (or a file, unless that file is
    /// about to be removed).
    func checkParents(_ rel: String, allowReplacing: Set<String>) throws {
        var dir = ""
        for part in rel.split(separator: "/").dropLast() {
            dir = Path.join(dir, String(part))
            guard let st = try Sys.lstatIfExists(root + "/" + dir) else { return }
            switch st.type {
            case .directory: continue
            case .symlink:
                throw MLStoreError(.unsafePath, "refusing to write '\(rel)': '\(dir)' in the workspace is a symlink", hint: "remove or rename the symlink '\(dir)' first")
            default:
                if allowReplacing.contains(dir) { return }
                throw MLStoreError(.conflict, "cannot write '\(rel)': '\(dir)' is a file, not a directory", hint: "move '\(dir)' away, then run checkout again")
            }
        }
    }

    /// Opens (creating as needed) the directory `rel`, never following symlinks.
    func directory(_ rel: String) throws -> Int32 {
        if rel.isEmpty { return rootFD }
        if let fd = dirs[rel] { return fd }
        let parent = try directory(Path.parent(rel))
        let name = Path.basename(rel)
        let display = root + "/" + rel
        var fd: Int32
        do {
            fd = try Sys.openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, display: display)
        } catch let e as SystemError where e.errno == ENOENT {
            try Sys.mkdirat(parent, name, display: display)
            fd = try Sys.openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, display: display)
        } catch let e as SystemError where e.errno == ELOOP || e.errno == ENOTDIR {
            throw MLStoreError(.unsafePath, "refusing to write below '\(rel)': it is a symlink or a file, not a directory")
        }
        dirs[rel] = fd
        return fd
    }

    private func tempName(_ name: String) -> String {
        ".mlstore-tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))-" + String(name.prefix(100))
    }

    /// Writes a file: temp name in the same directory, content from `body`, mode, rename over the target.
    func writeFile(_ rel: String, mode: UInt32, body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> FileStat {
        let dirRel = Path.parent(rel)
        let dfd = try directory(dirRel)
        let name = Path.basename(rel)
        let tmp = tempName(name)
        let display = root + "/" + rel
        let fd = try Sys.openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode: mode_t(mode), display: display)
        var open = true
        do {
            try body { buf in try Sys.write(fd, buf, path: display) }
            Sys.close(fd)
            open = false
            if let st = try Sys.fstatat(dfd, name, display: display), st.type == .directory {
                throw MLStoreError(.conflict, "cannot write '\(rel)': a directory is in the way", hint: "move the directory away, then run checkout again")
            }
            try Sys.renameat(dfd, tmp, name, display: display)
        } catch {
            if open { Sys.close(fd) }  // never close twice: the number may belong to another thread by now
            _ = try? Sys.unlinkat(dfd, tmp, display: display)
            throw error
        }
        guard let st = try Sys.fstatat(dfd, name, display: display) else { throw SystemError("stat", display, errno: ENOENT) }
        return st
    }

    func writeSymlink(_ rel: String, target: String) throws -> FileStat {
        let dfd = try directory(Path.parent(rel))
        let name = Path.basename(rel)
        let tmp = tempName(name)
        let display = root + "/" + rel
        try Sys.symlinkat(target, dfd, tmp, display: display)
        do {
            try Sys.renameat(dfd, tmp, name, display: display)
        } catch {
            _ = try? Sys.unlinkat(dfd, tmp, display: display)
            throw error
        }
        guard let st = try Sys.fstatat(dfd, name, display: display) else { throw SystemError("stat", display, errno: ENOENT) }
        return st
    }

    /// Removes a file or symlink, then any parent directories left empty.
    func remove(_ rel: String) throws {
        let dirRel = Path.parent(rel)
        guard let dfd = try? directory(dirRel) else { return }
        try Sys.unlinkat(dfd, Path.basename(rel), display: root + "/" + rel)
        var d = dirRel
        while !d.isEmpty {
            let parent = try directory(Path.parent(d))
            if let fd = dirs.removeValue(forKey: d) { Sys.close(fd) }
            if (try? Sys.unlinkat(parent, Path.basename(d), directory: true, display: root + "/" + d)) == nil { break }
            d = Path.parent(d)
        }
    }
}

extension Repository {
    /// In a partial clone, fetches the contents the checkout needs from the partial remote; elsewhere a
    /// missing content object is an error naming the path.
    public func fetchMissingContent(_ todo: [(path: String, entry: TreeEntry)], progress: ProgressReporter?) throws {
        var missing = Set<ObjectID>()
        var first: (path: String, id: ObjectID)?
        for t in todo {
            if !objects.contains(t.entry.id) {
                missing.insert(t.entry.id)
                first = first ?? (t.path, t.entry.id)
            } else if t.entry.kind == .chunked {
                for c in try chunkedFile(t.entry.id).chunks where !objects.contains(c.id) {
                    missing.insert(c.id)
                    first = first ?? (t.path, c.id)
                }
            }
        }
        guard !missing.isEmpty else { return }
        guard let remote = try partialRemote() else {
            throw MLStoreError(.notFound, "object \(first?.id.hex ?? "?") (content of '\(first?.path ?? "?")') is not in the store\(missing.count > 1 ? ", nor \(missing.count - 1) more" : "")",
                               hint: "fetch it from a remote (`mlstore pull`), or run `mlstore fsck`")
        }
        _ = try fetchContent(missing, from: remote, progress: progress)
    }

    /// Writes one file or symlink through `writer` and returns its final stat.
    func writeEntry(_ path: String, _ entry: TreeEntry, writer: SafeWriter, progress: ProgressReporter?) throws -> FileStat {
        switch entry.kind {
        case .symlink:
            let target = String(decoding: try objects.read(entry.id, as: .blob), as: UTF8.self)
            return try writer.writeSymlink(path, target: target)
        case .file:
            let bytes = try objects.read(entry.id, as: .blob)
            guard bytes.count == entry.size else {
                throw MLStoreError.corruptObject(entry.id.hex, "is \(bytes.count) bytes but the tree says \(entry.size)")
            }
            return try writer.writeFile(path, mode: entry.mode) { emit in
                try bytes.withUnsafeBytes { try emit($0) }
                progress?.advance(bytes: Int64(bytes.count))
            }
        case .chunked:
            let file = try chunkedFile(entry.id)
            guard file.fileSize == entry.size else {
                throw MLStoreError.corruptObject(entry.id.hex, "describes \(file.fileSize) bytes but the tree says \(entry.size)")
            }
                        let chunks = file.chunks
            let objects = self.objects
            return try writer.writeFile(path, mode: entry.mode) { emit in
                try orderedParallelMap(count: chunks.count) { i in
                    let bytes = try objects.read(chunks[i].id, as: .blob)
                    guard bytes.count == Int(chunks[i].length) else {
                        throw MLStoreError.corruptObject(chunks[i].id.hex, "is \(bytes.count) bytes but its chunk list says \(chunks[i].length)")
                    }
                    return bytes
                } consume: { _, bytes in
                    try bytes.withUnsafeBytes { try emit($0) }
                    progress?.advance(bytes: Int64(bytes.count))
                }
            }
        case .directory:
            throw MLStoreError(.corrupt, "unexpected directory entry \(path) in a file list")
        }
    }

    /// Writes files and symlinks into any directory (not necessarily a workspace), safely.
    public func materialize(_ entries: [(path: String, entry: TreeEntry)], into directory: String, progress: ProgressReporter? = nil) throws {
        for (p, _) in entries { try Workspace.validateRelative(p) }
        try Sys.mkdirs(directory)
        let writer = try SafeWriter(root: directory)
        for (p, _) in entries { try writer.checkParents(p, allowReplacing: []) }
        try fetchMissingContent(entries, progress: progress)
        for (p, e) in entries { _ = try writeEntry(p, e, writer: writer, progress: progress) }
    }
}
