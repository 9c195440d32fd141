import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Receives progress of long operations (bytes processed out of a known total).
public protocol ProgressReporter: Sendable {
    func begin(_ label: String, totalBytes: Int64)
    func advance(bytes: Int64)
    func end()
}

/// The files of a repository's workspace: path resolution, walking with ignore rules, and the
/// operations `add`, `status`, `write-tree` and `checkout` (in Workspace+*.swift).
public struct Workspace: Sendable {
    public let repo: Repository
    public let root: String
    public let ignore: IgnoreRules
    public let importer: FileImporter

    public init(_ repo: Repository, importer: FileImporter = FileImporter()) throws {
        self.repo = repo
        root = try repo.requireWorkspace()
        ignore = IgnoreRules(workspaceRoot: root)
        self.importer = importer
    }

    public func absolute(_ rel: String) -> String { rel.isEmpty ? root : root + "/" + rel }

    /// Turns a user-supplied path (relative to `cwd`) into a workspace-relative path.
    /// - Throws: `.usage` for paths outside the workspace or inside `.mlstore`.
    public func relativePath(_ userPath: String, cwd: String) throws -> String {
        let abs = Path.absolute(userPath, base: cwd)
        guard let rel = Path.relative(abs, to: root) else {
            throw MLStoreError(.usage, "'\(userPath)' is outside the workspace \(root)", hint: "give a path inside the workspace")
        }
        if rel == Repository.storeDirectoryName || rel.hasPrefix(Repository.storeDirectoryName + "/") {
            throw MLStoreError(.usage, "'\(userPath)' is inside the store directory .mlstore", hint: "mlstore manages .mlstore itself; add your data files instead")
        }
        return rel
    }

    /// Checks a workspace-relative path for unsafe components (used for paths that come from trees or
    /// remotes): no empty, `.`, `..` or `.mlstore` component, no NUL, not absolute.
    public static func validateRelative(_ rel: String) throws {
        guard !rel.hasPrefix("/") else { throw MLStoreError(.unsafePath, "path '\(rel)' is absolute") }
        for part in rel.split(separator: "/", omittingEmptySubsequences: false) {
            do { try TreeEntry.validateName(String(part)) } catch let e as MLStoreError {
                throw MLStoreError(.unsafePath, "path '\(rel)' is unsafe: \(e.message)")
            }
        }
    }

    /// Every non-ignored file and symlink at or below `rel` (a directory), with its stat.
    /// Does not follow symlinks; skips `.mlstore` and `.git`.
    public func walk(_ rel: String) throws -> [(path: String, stat: FileStat)] {
        var out: [(String, FileStat)] = []
        var stack = [rel]
        while let dir = stack.popLast() {
            let absDir = absolute(dir)
            let listing: [(name: String, type: FileType?)]
            do {
                listing = try Sys.listDirectory(absDir)
            } catch let e as SystemError where e.errno == ENOENT || e.errno == ENOTDIR {
                continue
            }
            for (name, _) in listing {
                let p = Path.join(dir, name)
                guard let st = try Sys.lstatIfExists(absDir + "/" + name) else { continue }
                switch st.type {
                case .directory:
                    if !ignore.matches(p, isDirectory: true, parentsOf: dir) { stack.append(p) }
                case .regular, .symlink:
                    if !ignore.matches(p, isDirectory: false, parentsOf: dir) { out.append((p, st)) }
                case .other:
                    continue
                }
            }
        }
        return out
    }

    /// Hashes files, storing new objects in `batch` (nil: hash only). Small files run in parallel; large
    /// files run one at a time, each with its own parallel chunk pipeline.
    func importFiles(_ files: [(path: String, stat: FileStat)], into batch: ObjectBatch?, progress: ProgressReporter?)
        throws -> [IndexEntry]
    {
        let threshold = Int64(importer.chunkThreshold)
        let small = files.filter { $0.stat.type != .regular || $0.stat.size <= threshold }
        let large = files.filter { $0.stat.type == .regular && $0.stat.size > threshold }
        let total = files.reduce(Int64(0)) { $0 + $1.stat.size }
        progress?.begin("hashing", totalBytes: total)
        defer { progress?.end() }
        var out: [IndexEntry] = []
        out.reserveCapacity(files.count)
        let importer = self.importer
        let root = self.root
        try orderedParallelMap(count: small.count, window: 64) { i in
            let f = small[i]
            let imported = try importer.importPath(root + "/" + f.path, stat: f.stat, into: batch)
            return IndexEntry(path: f.path, imported: imported, stat: f.stat)
        } consume: { _, entry in
            out.append(entry)
            progress?.advance(bytes: entry.size)
        }
        for f in large {
            let imported = try importer.importPath(root + "/" + f.path, stat: f.stat, into: batch)
            out.append(IndexEntry(path: f.path, imported: imported, stat: f.stat))
            progress?.advance(bytes: imported.size)
        }
        return out
    }

    /// Sleeps until the file-system clock has passed `mtimeNs`, so entries written now are not racy
    /// against the index file written next.
    static func waitPastRacyWindow(_ mtimeNs: Int64) {
        for _ in 0..<50 {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME_COARSE, &now)
            let ns = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
            if ns > mtimeNs { return }
            usleep(2000)
        }
    }
}
