import MLStoreBasics

extension Workspace {
    /// Builds the tree objects for `entries` (workspace-relative file entries) into `batch`; returns the root id.
    public static func buildTree(_ entries: [IndexEntry], into batch: ObjectBatch?) throws -> (id: ObjectID, size: Int64) {
        var children: [String: [IndexEntry]] = [:]
        var files: [TreeEntry] = []
        for e in entries {
            if let slash = e.path.firstIndex(of: "/") {
                let dir = String(e.path[..<slash])
                var child = e
                child.path = String(e.path[e.path.index(after: slash)...])
                children[dir, default: []].append(child)
            } else {
                files.append(TreeEntry(kind: e.kind, mode: e.mode, size: e.size, name: e.path, id: e.id))
            }
        }
        for (name, list) in children {
            let (id, size) = try buildTree(list, into: batch)
            files.append(TreeEntry(kind: .directory, mode: 0o755, size: size, name: name, id: id))
        }
        let tree = try Tree(entries: files)
        let id = try batch?.add(kind: .tree, payload: tree.encoded()) ?? tree.id
        return (id, tree.totalSize)
    }

    /// The id of a path made of `entries` (all at or below `prefix`): the file's own id when `prefix` is one
    /// file, else the tree of the entries with `prefix/` removed (stored into `batch` when given).
    public static func artifactID(_ entries: [IndexEntry], at prefix: String, into batch: ObjectBatch?) throws -> ObjectID {
        if entries.count == 1, entries[0].path == prefix { return entries[0].id }
        let stripped = entries.map { e -> IndexEntry in
            var c = e
            c.path = prefix.isEmpty ? e.path : String(e.path.dropFirst(prefix.count + 1))
            return c
        }
        return try buildTree(stripped, into: batch).id
    }

    /// Writes the staged state as trees and returns the root tree id (`write-tree`).
    public func writeTree() throws -> ObjectID {
        let index = try WorkspaceIndex.load(repo)
        let batch = repo.objects.batch()
        do {
            let (id, _) = try Self.buildTree(index.entries, into: batch)
            try batch.commit()
            return id
        } catch {
            batch.abandon()
            throw error
        }
    }
}

extension Repository {
    /// Largest number of paths a checkout expands a tree into (bounds memory for hostile trees whose
    /// subtrees repeat).
    public static let maxFlattenedEntries = 10_000_000

    /// Reads a tree object.
    public func tree(_ id: ObjectID) throws -> Tree {
        try Tree(decoding: try objects.read(id, as: .tree), id: id)
    }

    /// Reads a chunked object.
    public func chunkedFile(_ id: ObjectID) throws -> ChunkedFile {
        try ChunkedFile(decoding: try objects.read(id, as: .chunked), id: id)
    }

    /// All files and symlinks below a tree, keyed by workspace-relative path. Every tree is parsed
    /// (names validated) before this returns, so callers can reject a malicious tree before writing.
    public func flatten(tree id: ObjectID, prefix: String = "") throws -> [(path: String, entry: TreeEntry)] {
        var out: [(String, TreeEntry)] = []
        var seen = Set<ObjectID>()
        func visit(_ id: ObjectID, _ prefix: String, depth: Int) throws {
            guard depth < 256 else {
                throw MLStoreError(.corrupt, "tree \(id.hex) nests more than 256 levels deep (a cycle?)")
            }
            let t = try tree(id)
            guard out.count + t.entries.count <= Self.maxFlattenedEntries else {
                throw MLStoreError(.corrupt, "tree \(id.hex) expands to more than \(Self.maxFlattenedEntries) paths (a hostile tree?)")
            }
            for e in t.entries {
                let p = Path.join(prefix, e.name)
                if e.kind == .directory {
                    try visit(e.id, p, depth: depth + 1)
                } else {
                    out.append((p, e))
                }
            }
            seen.insert(id)
        }
        try visit(id, prefix, depth: 0)
        return out
    }

    /// The entry at a workspace-relative path inside a tree (a subtree for directories), or nil.
    public func lookup(_ path: String, in root: ObjectID) throws -> TreeEntry? {
        var current = TreeEntry(kind: .directory, mode: 0o755, size: 0, name: "", id: root)
        for part in path.split(separator: "/") {
            guard current.kind == .directory, let next = try tree(current.id)[String(part)] else { return nil }
            current = next
        }
        return current
    }
}
