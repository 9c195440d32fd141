import MLStoreBasics

extension Repository {
    /// Resolves a revision to an object id: a full id or a unique prefix of at least 4 hex digits
    /// (spec/refs.md lists the full revision syntax).
    public func resolve(_ revision: String) throws -> ObjectID {
        try objects.resolve(prefix: revision)
    }

    /// Resolves a revision that must name a tree.
    public func resolveTree(_ revision: String) throws -> ObjectID {
        let id = try resolve(revision)
        let (kind, _) = try objects.info(id)
        guard kind == .tree else {
            throw MLStoreError(.usage, "'\(revision)' names a \(kind.rawValue), not a tree", hint: "give a tree id (see `mlstore write-tree`)")
        }
        return id
    }
}
