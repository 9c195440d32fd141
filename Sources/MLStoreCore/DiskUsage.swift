import MLStoreBasics

/// `mlstore du`: what snapshots would take as plain files (logical bytes) against what the store keeps for
/// them (each distinct object once, compressed where it pays).
public struct DiskUsageReport: Sendable, Codable {
    public struct Entry: Sendable, Codable {
        public var path: String
        public var logicalBytes: Int64
        /// Stored bytes of the file's contents (shared chunks counted in full).
        public var storedBytes: Int64
    }
    public struct Store: Sendable, Codable {
        public var usage: StoreUsage
        /// Stored bytes of objects reachable from refs, reflogs and the index.
        public var reachableBytes: Int64
        /// Stored bytes of unreachable objects (gc deletes them once older than the grace period).
        public var unreachableBytes: Int64
    }

    /// The revisions measured, or `all` (every commit reachable from refs, reflogs and stage histories).
    public var revisions: [String]
    /// Distinct snapshots (root trees) measured.
    public var snapshots = 0
    /// Files (and symlinks) over all snapshots.
    public var files = 0
    /// Sum of their sizes: what the snapshots take as plain files.
    public var logicalBytes: Int64 = 0
    /// Distinct content objects (file blobs and chunks) and their bytes: after deduplication.
    public var uniqueContentObjects = 0
    public var uniqueContentBytes: Int64 = 0
    /// Stored bytes of those contents (after compression).
    public var storedContentBytes: Int64 = 0
    /// Stored bytes of trees, chunk lists and (for `all`) commits, stage records, params, …
    public var storedMetadataBytes: Int64 = 0
    public var storedBytes: Int64 = 0
    public var dedupSavedBytes: Int64 = 0
    public var compressionSavedBytes: Int64 = 0
    public var savedBytes: Int64 = 0
    /// Percent of the logical bytes not stored.
    public var savedPercent = 0.0
    /// Objects not in this store (a partial clone, or an evicted cache): counted logically only.
    public var missingObjects = 0
    /// Logical size of the distinct contents that are not in this store (counted as unique, not as stored).
    public var missingBytes: Int64 = 0
    public var store: Store?
    public var top: [Entry] = []
}

extension Repository {
    /// Logical vs. stored bytes for revisions (their trees), or for everything reachable when none is given.
    public func diskUsage(revisions: [String] = [], top: Int = 0) throws -> DiskUsageReport {
        var report = DiskUsageReport(revisions: revisions.isEmpty ? ["all"] : revisions)
        let inventory = try StoreInventory.take(self)
        var roots: [ObjectID] = []
        var reachableStored: Int64?
        if revisions.isEmpty {
            let marked = try markReachable(from: try localGCRoots(refs: try gcRefSnapshot()), partial: true)
            for (id, kind) in marked.kinds where kind == .commit { roots.append(try commit(id).tree) }
            let reachableBytes = marked.reachable.reduce(Int64(0)) { $0 + (inventory.storedSize[$1] ?? 0) }
            let total = inventory.storedSize.values.reduce(Int64(0), +)
            report.store = .init(usage: inventory.usage, reachableBytes: reachableBytes, unreachableBytes: total - reachableBytes)
            reachableStored = reachableBytes
        } else {
            for r in revisions { roots.append(try resolveTree(r)) }
        }
        let rootSet = Array(Set(roots)).sorted()
        report.snapshots = rootSet.count

        var treeFiles: [ObjectID: (files: Int, bytes: Int64)] = [:]
        var content = Set<ObjectID>()
        var metadata = Set<ObjectID>()
        var missing = Set<ObjectID>()
        var contentPayload: Int64 = 0
        var missingBytes: Int64 = 0
        func stored(_ id: ObjectID) -> Int64 { inventory.storedSize[id] ?? 0 }
        func addContent(_ id: ObjectID, payload: Int64) {
            guard content.insert(id).inserted else { return }
            contentPayload += payload
            if inventory.storedSize[id] == nil {
                missing.insert(id)
                missingBytes += payload
            }
        }
        func visit(_ id: ObjectID) throws -> (files: Int, bytes: Int64) {
            if let hit = treeFiles[id] { return hit }
            metadata.insert(id)
            guard objects.contains(id) else {
                missing.insert(id)
                treeFiles[id] = (0, 0)
                return (0, 0)
            }
            var files = 0
            var bytes: Int64 = 0
            for e in try tree(id).entries {
                switch e.kind {
                case .directory:
                    let sub = try visit(e.id)
                    files += sub.files
                    bytes += sub.bytes
                case .file, .symlink:
                    files += 1
                    bytes += e.size
                    addContent(e.id, payload: e.size)
                case .chunked:
                    files += 1
                    bytes += e.size
                    guard metadata.insert(e.id).inserted else { continue }
                    guard objects.contains(e.id) else {
                        missing.insert(e.id)
                        contentPayload += e.size
                        missingBytes += e.size
                        continue
                    }
                    for c in try chunkedFile(e.id).chunks { addContent(c.id, payload: Int64(c.length)) }
                }
            }
            treeFiles[id] = (files, bytes)
            return (files, bytes)
        }
        for r in rootSet {
            let (f, b) = try visit(r)
            report.files += f
            report.logicalBytes += b
        }
        report.uniqueContentObjects = content.count
        report.uniqueContentBytes = contentPayload
        report.storedContentBytes = content.reduce(Int64(0)) { $0 + stored($1) }
        // For `all`: everything else reachable (commits, stage records, params, code trees, …) is metadata.
        report.storedMetadataBytes = reachableStored.map { max(0, $0 - report.storedContentBytes) }
            ?? metadata.subtracting(content).reduce(Int64(0)) { $0 + stored($1) }
        report.storedBytes = report.storedContentBytes + report.storedMetadataBytes
        report.dedupSavedBytes = report.logicalBytes - report.uniqueContentBytes
        report.compressionSavedBytes = report.uniqueContentBytes - missingBytes - report.storedContentBytes
        report.savedBytes = report.dedupSavedBytes + report.compressionSavedBytes - report.storedMetadataBytes
        report.missingBytes = missingBytes
        report.savedPercent = report.logicalBytes > 0 ? (Double(report.savedBytes) * 1000 / Double(report.logicalBytes)).rounded() / 10 : 0
        report.missingObjects = missing.count

        if top > 0 {
            var best: [String: DiskUsageReport.Entry] = [:]
            for r in rootSet where objects.contains(r) {
                for (path, e) in try flatten(tree: r) where (best[path]?.logicalBytes ?? -1) < e.size {
                    var s = stored(e.id)
                    if e.kind == .chunked, objects.contains(e.id) { s += try chunkedFile(e.id).chunks.reduce(Int64(0)) { $0 + stored($1.id) } }
                    best[path] = .init(path: path, logicalBytes: e.size, storedBytes: s)
                }
            }
            report.top = Array(best.values.sorted { $0.logicalBytes != $1.logicalBytes ? $0.logicalBytes > $1.logicalBytes : $0.path < $1.path }.prefix(top))
        }
        return report
    }
}
