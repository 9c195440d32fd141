import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// A size-bounded local cache for clones (spec/remote.md §Local cache): file contents that the remote still
// holds (reachable from its refs) are evicted least recently used first, until the store fits; metadata and
// contents only this clone has are never evicted. The clone then behaves as a partial clone.

// MARK: Access log

/// When file contents were last read: `<store>/cache/access.log`, append-only records of 40 bytes
/// (32-byte object id, u64 big-endian unix seconds). Present only in stores where `mlstore cache` has run.
/// Reads through ``ObjectStore/read(_:as:)`` of blobs and chunked files (what checkout and restore use;
/// fsck, gc and transfers read otherwise and do not count) are noted once per process, buffered, and
/// appended at exit. Objects never read count from when they arrived (their pack or loose file's mtime).
final class AccessLog: @unchecked Sendable {
    static let relativePath = "cache/access.log"
    static let recordSize = 40
    let path: String
    private struct State {
        var seen = Set<ObjectID>()
        var buffer: [UInt8] = []
    }
    private let state = Mutex<State>(State())

    init(path: String) { self.path = path }

    /// The store's access log, if it has one.
    static func open(storeDirectory: String) -> AccessLog? {
        let p = storeDirectory + "/" + relativePath
        guard Sys.fileExists(p) else { return nil }
        let log = AccessLog(path: p)
        AccessLogRegistry.register(log)
        return log
    }

    func note(_ id: ObjectID) {
        let full: [UInt8]? = state.withLock { s in
            guard s.seen.insert(id).inserted else { return nil }
            id.append(to: &s.buffer)
            let now = UInt64(max(0, Repository.nowNs() / 1_000_000_000))
            withUnsafeBytes(of: now.bigEndian) { s.buffer.append(contentsOf: $0) }
            guard s.buffer.count >= 64 << 10 else { return nil }
            defer { s.buffer.removeAll(keepingCapacity: true) }
            return s.buffer
        }
        if let full { append(full) }
    }

    func flush() {
        let bytes: [UInt8] = state.withLock { s in
            defer { s.buffer.removeAll() }
            return s.buffer
        }
        if !bytes.isEmpty { append(bytes) }
    }

    /// Best effort: a lost record only makes the LRU order slightly less precise.
    private func append(_ bytes: [UInt8]) {
        guard let fd = try? Sys.open(path, O_WRONLY | O_APPEND) else { return }
        defer { Sys.close(fd) }
        try? Sys.write(fd, bytes, path: path)
    }

    deinit { flush() }

    /// Latest access time (unix seconds) per object; a torn trailing record is ignored.
    static func read(_ path: String) -> [ObjectID: Int64] {
        guard let bytes = try? Sys.readFile(path) else { return [:] }
        var out: [ObjectID: Int64] = [:]
        bytes.withUnsafeBytes { buf in
            var o = 0
            while o + recordSize <= buf.count {
                let id = ObjectID(buf, at: o)
                let t = Int64(bitPattern: UInt64(bigEndian: buf.loadUnaligned(fromByteOffset: o + 32, as: UInt64.self)))
                out[id] = max(out[id] ?? 0, t)
                o += recordSize
            }
        }
        return out
    }

    /// Rewrites the log with one record per object still stored (atomically; a concurrent append may be lost).
    static func compact(_ path: String, keep: (ObjectID) -> Bool) {
        let times = read(path)
        var out: [UInt8] = []
        out.reserveCapacity(times.count * recordSize)
        for (id, t) in times.sorted(by: { $0.key < $1.key }) where keep(id) {
            id.append(to: &out)
            withUnsafeBytes(of: UInt64(bitPattern: t).bigEndian) { out.append(contentsOf: $0) }
        }
        try? Sys.writeFileAtomically(path, out)
    }
}

/// Flushes every open access log when the process exits (commands end with `exit`).
enum AccessLogRegistry {
    final class WeakLog: @unchecked Sendable { weak var log: AccessLog? }
    static let logs = Mutex<[WeakLog]>([])
    private static let installed: Bool = {
        atexit { AccessLogRegistry.flushAll() }
        return true
    }()

    static func register(_ log: AccessLog) {
        _ = installed
        let w = WeakLog()
        w.log = log
        logs.withLock { list in
            list.removeAll { $0.log == nil }
            list.append(w)
        }
    }

    static func flushAll() {
        let live = logs.withLock { $0.compactMap(\.log) }
        for l in live { l.flush() }
    }
}

// MARK: Eviction

public struct CacheOptions: Sendable {
    /// Target size of the object store (packs, indexes and loose objects), in bytes.
    public var maxBytes: Int64
    /// The remote that must hold evicted contents (default: the partial remote, else origin).
    public var remote: String?
    public var dryRun = false
    public var prune: PruneAge = .standard
    public init(maxBytes: Int64, remote: String? = nil, dryRun: Bool = false, prune: PruneAge = .standard) {
        self.maxBytes = maxBytes
        self.remote = remote
        self.dryRun = dryRun
        self.prune = prune
    }
}

public struct CacheReport: Sendable, Codable {
    public var remote: String
    public var maxBytes: Int64
    /// Size the store's live objects take before and after eviction (stored bytes plus pack overhead).
    public var liveBytesBefore: Int64 = 0
    public var liveBytesAfter: Int64 = 0
    /// File contents (files; their chunks count with them) evicted, and their stored bytes.
    public var evictedFiles = 0
    public var evictedObjects = 0
    public var evictedBytes: Int64 = 0
    /// Contents that could be evicted (the remote holds them) but were not needed to reach the limit.
    public var evictableBytesLeft: Int64 = 0
    /// Bytes that are never evicted: metadata, and contents the remote lacks.
    public var pinnedBytes: Int64 = 0
    public var reachedLimit = true
    /// `remote.<name>.partial` was set so checkouts fetch evicted contents again.
    public var markedPartial = false
    public var gc: GCReport
}

extension Repository {
    public var accessLogPath: String { storeDirectory + "/" + AccessLog.relativePath }

    /// Starts recording content reads for LRU eviction (idempotent).
    public func enableAccessLog() throws {
        try Sys.mkdirs(storeDirectory + "/cache")
        if !Sys.fileExists(accessLogPath) {
            let fd = try Sys.open(accessLogPath, O_WRONLY | O_CREAT | O_APPEND, mode: 0o644)
            Sys.close(fd)
        }
    }

    /// The remote eviction relies on: `name`, else the partial remote, else origin, else the only remote.
    public func cacheRemote(_ name: String?) throws -> String {
        if let name { return name }
        if let p = try partialRemote() { return p }
        let all = try remotes()
        if all.contains(where: { $0.name == "origin" }) { return "origin" }
        if all.count == 1 { return all[0].name }
        throw MLStoreError(.usage, "no remote to fetch evicted contents from", hint: "give one with --remote, or add origin (`mlstore remote add origin <path>`)")
    }

    /// Every object reachable from the remote's current refs (metadata read locally when present, else from
    /// the remote; contents are not read).
    func remoteReachable(_ remote: RemoteTransport) throws -> Set<ObjectID> {
        let local = objects
        var seen = Set<ObjectID>()
        var stack = Array(Set(try remote.refs().values))
        let readJSON: (ObjectID) throws -> JSONValue? = { id in
            let payload = local.contains(id) ? try local.read(id).payload : try remote.readEncoded(id).payload
            return try? JSONValue.parse(json: payload, what: "object \(id.short)")
        }
        while let id = stack.popLast() {
            guard seen.insert(id).inserted else { continue }
            let kind = local.contains(id) ? try local.info(id).kind : try remote.kind(of: id)
            guard kind != .blob else { continue }
            let payload = local.contains(id) ? try local.read(id).payload : try remote.readEncoded(id).payload
            for c in try ObjectGraph.children(kind: kind, payload: payload, id: id, readJSON: readJSON) where !seen.contains(c.id) {
                stack.append(c.id)
            }
        }
        return seen
    }

    /// Evicts least recently used file contents that the remote still holds until the store's live objects
    /// take at most `maxBytes`, together with a normal gc (same lock, leases and grace period). Metadata and
    /// contents the remote lacks are never evicted. Afterwards the remote is marked partial, so checkouts
    /// fetch what they need again.
    public func trimCache(_ options: CacheOptions) throws -> CacheReport {
        let name = try cacheRemote(options.remote)
        let (_, transport) = try self.transport(named: name)
        try transport.open(create: false)
        var report = CacheReport(remote: name, maxBytes: options.maxBytes, gc: GCReport(store: storeDirectory, dryRun: options.dryRun, prune: options.prune.description))
        if !options.dryRun { try enableAccessLog() }
        let access = AccessLog.read(accessLogPath)
        var stats = (before: Int64(0), after: Int64(0), files: 0, objects: 0, bytes: Int64(0), left: Int64(0), pinned: Int64(0), reached: true)
        // The checked-out snapshot (the index) is in use: its contents stay (fsck and `checkout -- <path>`
        // expect them).
        let indexIDs = Set(((try? WorkspaceIndex.load(self))?.entries ?? []).map(\.id))

        var gcOptions = GCOptions(prune: options.prune, dryRun: options.dryRun)
        gcOptions.leaseWaitSeconds = 60
        report.gc = try runGC(gcOptions, roots: { try self.localGCRoots(refs: $0) }, partial: isPartialStore, chooseEviction: { marked, inv, cutoff in
            let onRemote = try self.remoteReachable(transport)
            func cost(_ id: ObjectID) -> Int64 { (inv.storedSize[id] ?? 0) + Int64(PackFormat.entryHeaderSize + 40) }
            // What stays: reachable objects and unreachable ones still inside the grace period.
            let kept = inv.allIDs.filter { id in
                marked.reachable.contains(id) || !(cutoff.map { (inv.newestCopyNs[id] ?? 0) < $0 } ?? false)
            }
            var live = kept.reduce(Int64(0)) { $0 + cost($1) }
            stats.before = live
            func evictable(_ id: ObjectID) -> Bool {
                guard let k = marked.kinds[id], k == .blob || k == .chunked else { return false }
                return !marked.metadata.contains(id) && onRemote.contains(id) && inv.storedSize[id] != nil
            }
            // Units: file contents; each needs itself and its chunks. An object goes when no kept unit needs it.
            let units = marked.fileContents.filter { marked.kinds[$0] == .blob || marked.kinds[$0] == .chunked }
            var holders: [ObjectID: Int] = [:]
            func needs(_ u: ObjectID) -> [ObjectID] { [u] + (marked.chunks[u] ?? []) }
            for u in units { for o in Set(needs(u)) { holders[o, default: 0] += 1 } }
            func lastUse(_ u: ObjectID) -> Int64 {
                let t = (inv.newestCopyNs[u] ?? 0) / 1_000_000_000
                return max(t, access[u] ?? 0)
            }
            let order = units.filter { evictable($0) && !indexIDs.contains($0) }.map { ($0, lastUse($0)) }.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
            var evict = Set<ObjectID>()
            var evictedUnits = 0
            for (u, _) in order {
                if live <= options.maxBytes { break }
                evictedUnits += 1
                for o in Set(needs(u)) {
                    holders[o, default: 1] -= 1
                    if holders[o] == 0, evictable(o), !marked.metadata.contains(o), evict.insert(o).inserted { live -= cost(o) }
                }
            }
            // Never the only copy: ask the remote once more for each object about to go.
            if let d = transport as? DirectoryRemote { try d.store().objects.reloadPacks() }
            for o in evict {
                if try !transport.contains(o) {
                    evict.remove(o)
                    live += cost(o)
                }
            }
            stats.after = live
            stats.files = evictedUnits
            stats.objects = evict.count
            stats.bytes = evict.reduce(Int64(0)) { $0 + (inv.storedSize[$1] ?? 0) }
            stats.reached = live <= options.maxBytes
            let evictableUnits = Set(order.map(\.0))
            let pinnedByUnits = Set(units.filter { !evictableUnits.contains($0) }.flatMap(needs))
            let candidates = Set(evictableUnits.flatMap(needs)).filter { evictable($0) && !pinnedByUnits.contains($0) && !evict.contains($0) }
            stats.left = candidates.reduce(Int64(0)) { $0 + (inv.storedSize[$1] ?? 0) }
            stats.pinned = kept.filter { !evictable($0) }.reduce(Int64(0)) { $0 + (inv.storedSize[$1] ?? 0) }
            return evict
        })
        report.liveBytesBefore = stats.before
        report.liveBytesAfter = stats.after
        report.evictedFiles = stats.files
        report.evictedObjects = stats.objects
        report.evictedBytes = stats.bytes
        report.evictableBytesLeft = stats.left
        report.pinnedBytes = stats.pinned
        report.reachedLimit = stats.reached
        if !options.dryRun {
            let currentPartial = try partialRemote()
            if stats.objects > 0 && currentPartial != name {
                var cfg = try config()
                cfg.set("remote.\(name).partial", "true")
                try cfg.save()
                report.markedPartial = true
            }
            let store = objects
            AccessLog.compact(accessLogPath) { store.contains($0) }
        }
        return report
    }
}
