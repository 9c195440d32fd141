import MLStoreBasics

/// Differences between two commits: files, params and metrics (spec/cli.md `diff`).
public struct CommitDiff: Sendable, Codable {
    public struct File: Sendable, Codable {
        public var path: String
        public var change: StatusReport.Change
        public var oldSize: Int64?
        public var newSize: Int64?
    }
    public struct Value: Sendable, Codable {
        public var key: String
        public var old: JSONValue?
        public var new: JSONValue?
        /// new − old for numbers (the last point for series).
        public var delta: Double?
    }
    public var from: ObjectID
    public var to: ObjectID
    public var files: [File] = []
    public var params: [Value] = []
    public var metrics: [Value] = []
}

extension Repository {
    /// File-level differences between two trees (either may be nil = empty).
    public func diffTrees(_ a: ObjectID?, _ b: ObjectID?) throws -> [CommitDiff.File] {
        // Identical subtrees are skipped without reading them.
        var out: [CommitDiff.File] = []
        func walk(_ x: ObjectID?, _ y: ObjectID?, _ prefix: String) throws {
            if x == y { return }
            let tx = try x.map { try tree($0) }?.entries ?? []
            let ty = try y.map { try tree($0) }?.entries ?? []
            let mx = Dictionary(tx.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let my = Dictionary(ty.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for name in Set(mx.keys).union(my.keys).sorted() {
                let p = Path.join(prefix, name)
                let ex = mx[name], ey = my[name]
                let dx = ex?.kind == .directory, dy = ey?.kind == .directory
                if dx || dy {
                    try walk(dx ? ex?.id : nil, dy ? ey?.id : nil, p)
                    if let ex, !dx { out.append(.init(path: p, change: .deleted, oldSize: ex.size, newSize: nil)) }
                    if let ey, !dy { out.append(.init(path: p, change: .added, oldSize: nil, newSize: ey.size)) }
                    continue
                }
                switch (ex, ey) {
                case (nil, let n?): out.append(.init(path: p, change: .added, oldSize: nil, newSize: n.size))
                case (let o?, nil): out.append(.init(path: p, change: .deleted, oldSize: o.size, newSize: nil))
                case (let o?, let n?) where o.id != n.id || o.mode != n.mode:
                    out.append(.init(path: p, change: (o.kind == .symlink) != (n.kind == .symlink) ? .typeChanged : .modified, oldSize: o.size, newSize: n.size))
                default: break
                }
            }
        }
        try walk(a, b, "")
        return out.sorted { $0.path < $1.path }
    }

    /// Metrics as key → value, series reduced to their last value for comparison.
    public func metricValues(_ c: Commit) throws -> [String: JSONValue] {
        guard let m = c.metrics, let o = try json(m).object else { return [:] }
        return o
    }

    public func paramValues(_ c: Commit) throws -> [String: JSONValue] {
        guard let p = c.params else { return [:] }
        return try json(p).flattened()
    }

    public func diff(_ a: ObjectID, _ b: ObjectID) throws -> CommitDiff {
        let ca = try commit(a), cb = try commit(b)
        var d = CommitDiff(from: a, to: b)
        d.files = try diffTrees(ca.tree, cb.tree)
        func compare(_ x: [String: JSONValue], _ y: [String: JSONValue]) -> [CommitDiff.Value] {
            Set(x.keys).union(y.keys).sorted().compactMap { k in
                let o = x[k], n = y[k]
                guard o != n else { return nil }
                func last(_ v: JSONValue?) -> Double? { v?.number ?? v?.array?.last?["value"]?.number }
                let delta = last(o).flatMap { lo in last(n).map { $0 - lo } }
                return CommitDiff.Value(key: k, old: o, new: n, delta: delta)
            }
        }
        d.params = compare(try paramValues(ca), try paramValues(cb))
        d.metrics = compare(try metricValues(ca), try metricValues(cb))
        return d
    }
}
