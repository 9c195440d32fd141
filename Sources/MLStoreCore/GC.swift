import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

// Garbage collection (spec/remote.md §Garbage collection): mark everything reachable from the roots,
// copy the live objects of sparse packs and all live loose objects into a new pack, publish it, and only
// then delete what is unreachable and older than the grace period (or evicted from a cache, Cache.swift).
// The same engine serves local stores, bare stores and directory remotes; RemoteGC.swift adds the lock
// and lease protocol every run goes through.

// MARK: Options and report

/// How old an unreachable object must be before gc deletes it (`--prune <age>`).
public enum PruneAge: Sendable, Equatable, CustomStringConvertible {
    /// Delete unreachable objects of any age (unsafe while other processes write to the store).
    case now
    /// Never delete unreachable objects (gc only repacks).
    case never
    /// Delete unreachable objects older than this many seconds.
    case seconds(Int64)

    /// Two weeks, as git.
    public static let standard = PruneAge.seconds(14 * 86_400)

    /// Parses `now`, `never`, `90s`, `30m`, `12h`, `3d`, `2w`, `2.weeks.ago`, `3 days`, or plain seconds.
    public static func parse(_ text: String) throws -> PruneAge {
        let t = text.lowercased().trimmingCharacters(in: " \t")
        if t == "now" || t == "all" { return .now }
        if t == "never" || t == "false" || t == "off" { return .never }
        var s = Substring(t)
        for suffix in [".ago", " ago"] where s.hasSuffix(suffix) { s = s.dropLast(suffix.count) }
        let digits = s.prefix { $0.isNumber }
        var unit = s.dropFirst(digits.count).trimmingCharacters(in: " .")
        guard let n = Int64(digits), n >= 0 else {
            throw MLStoreError(.usage, "'\(text)' is not an age", hint: "use now, never, or a number with a unit: 90s, 30m, 12h, 3d, 2w, 2.weeks.ago")
        }
        if unit.hasSuffix("s") && unit.count > 1 { unit = String(unit.dropLast()) }
        let scale: Int64
        switch unit {
        case "", "s", "sec", "second": scale = 1
        case "m", "min", "minute": scale = 60
        case "h", "hr", "hour": scale = 3600
        case "d", "day": scale = 86_400
        case "w", "week": scale = 7 * 86_400
        default:
            throw MLStoreError(.usage, "'\(text)' has an unknown unit '\(unit)'", hint: "use s, m, h, d or w (e.g. 2w, 2.weeks.ago)")
        }
        return n == 0 ? .now : .seconds(n * scale)
    }

    public var description: String {
        switch self {
        case .now: return "now"
        case .never: return "never"
        case .seconds(let s):
            for (unit, n) in [("w", Int64(7 * 86_400)), ("d", 86_400), ("h", 3600), ("m", 60)] where s % n == 0 { return "\(s / n)\(unit)" }
            return "\(s)s"
        }
    }

    /// Copies whose mtime (ns) is before the cutoff are "old"; nil: nothing is old.
    func cutoffNs(nowNs: Int64) -> Int64? {
        switch self {
        case .now: return Int64.max
        case .never: return nil
        case .seconds(let s): return nowNs - s * 1_000_000_000
        }
    }
}

public struct GCOptions: Sendable {
    public var prune: PruneAge = .standard
    public var dryRun = false
    /// How long to wait for pushes in progress (their leases) before giving up (exit 8).
    public var leaseWaitSeconds: Double = 60
    public init(prune: PruneAge = .standard, dryRun: Bool = false) {
        self.prune = prune
        self.dryRun = dryRun
    }
}

/// Object count and bytes on disk of a store.
public struct StoreUsage: Sendable, Codable, Equatable {
    /// Stored copies (pack entries plus loose files; an object stored twice counts twice).
    public var objects = 0
    public var packs = 0
    public var looseObjects = 0
    /// Disk space of pack files, pack indexes and loose object files (allocated blocks, as `du` counts).
    public var bytes: Int64 = 0
}

public struct GCReport: Sendable, Codable {
    public var store: String
    public var dryRun: Bool
    public var prune: String
    public var before = StoreUsage()
    /// After the run (for a dry run: what the run would leave).
    public var after = StoreUsage()
    public var freedBytes: Int64 = 0
    public var reachableObjects = 0
    public var unreachableObjects = 0
    /// Unreachable objects deleted (or, dry run, that would be).
    public var removedObjects = 0
    /// Unreachable objects kept because they are younger than the grace period.
    public var keptYoungObjects = 0
    /// File contents evicted from a size-bounded cache (Cache.swift).
    public var evictedObjects = 0
    public var packsWritten: [String] = []
    public var packsRemoved = 0
    public var looseRemoved = 0
    public var tempFilesRemoved = 0
    /// Contents a partial clone has not fetched (not an error).
    public var missingContent = 0
    /// Pushes (leases) waited for, and for how long.
    public var leasesWaitedFor = 0
    public var waitedSeconds = 0.0
    public var notes: [String] = []
}

// MARK: Inventory

/// Every stored copy of every object, with sizes and ages (pack mtime for packed objects).
final class StoreInventory {
    struct Pack {
        let name: String
        let packPath: String
        let idxPath: String
        let mtimeNs: Int64
        /// Disk space of the pack and its index (allocated blocks, as `du` counts).
        let bytes: Int64
        /// Entries in pack order (by offset).
        let ids: [ObjectID]
        let stored: [Int64]
    }
    struct Loose {
        let id: ObjectID
        let path: String
        let mtimeNs: Int64
        /// Disk space (allocated blocks).
        let bytes: Int64
    }
    struct Temp {
        let path: String
        let mtimeNs: Int64
        let isDirectory: Bool
    }

    var packs: [Pack] = []
    var loose: [Loose] = []
    var temps: [Temp] = []
    /// Stored (encoded) size of each object (any copy).
    var storedSize: [ObjectID: Int64] = [:]
    /// Newest mtime of any copy.
    var newestCopyNs: [ObjectID: Int64] = [:]

    var allIDs: Set<ObjectID> { Set(storedSize.keys) }

    var usage: StoreUsage {
        StoreUsage(objects: packs.reduce(0) { $0 + $1.ids.count } + loose.count, packs: packs.count, looseObjects: loose.count,
                   bytes: packs.reduce(Int64(0)) { $0 + $1.bytes } + loose.reduce(Int64(0)) { $0 + $1.bytes })
    }

    /// Allocated disk space of a file (what `du` reports), or its size where blocks are not reported.
    static func diskBytes(_ path: String, size: Int64) -> Int64 {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_blocks > 0 else { return roundUp(size) }
        return Int64(st.st_blocks) * 512
    }

    static func roundUp(_ n: Int64) -> Int64 { (n + 4095) / 4096 * 4096 }

    static func take(_ repo: Repository) throws -> StoreInventory {
        let inv = StoreInventory()
        let store = repo.objects
        try store.reloadPacks()
        for p in store.packReaders {
            guard let st = try Sys.lstatIfExists(p.packPath), let ist = try Sys.lstatIfExists(p.index.path) else { continue }
            let n = p.index.count
            var entries = (0..<n).map { (id: p.index.id(at: $0), offset: p.index.offset(at: $0)) }
            entries.sort { $0.offset < $1.offset }
            var stored: [Int64] = []
            stored.reserveCapacity(n)
            let end = p.size - Int64(PackFormat.footerSize)
            for (i, e) in entries.enumerated() {
                let next = i + 1 < n ? entries[i + 1].offset : end
                let s = next - e.offset - Int64(PackFormat.entryHeaderSize)
                guard s >= 0 else {
                    throw MLStoreError(.corrupt, "pack \(p.packPath) has overlapping entries (its index is damaged); gc stopped, nothing was deleted",
                                       hint: "run `mlstore fsck`")
                }
                stored.append(s)
                inv.storedSize[e.id] = s
                inv.newestCopyNs[e.id] = max(inv.newestCopyNs[e.id] ?? 0, st.mtimeNs)
            }
            inv.packs.append(Pack(name: p.name, packPath: p.packPath, idxPath: p.index.path, mtimeNs: st.mtimeNs,
                                  bytes: diskBytes(p.packPath, size: st.size) + diskBytes(p.index.path, size: ist.size),
                                  ids: entries.map(\.id), stored: stored))
        }
        // Loose objects and leftovers of interrupted writes.
        let objectsDir = store.directory
        for (d, _) in (try? Sys.listDirectory(objectsDir)) ?? [] where d.utf8.count == 2 && Hex.isHex(d) {
            let dir = objectsDir + "/" + d
            for (f, _) in (try? Sys.listDirectory(dir)) ?? [] {
                let path = dir + "/" + f
                guard let st = try Sys.lstatIfExists(path) else { continue }
                if f.hasPrefix(".tmp-") {
                    inv.temps.append(Temp(path: path, mtimeNs: st.mtimeNs, isDirectory: false))
                } else if let id = ObjectID(hex: d + f), st.type == .regular {
                    inv.loose.append(Loose(id: id, path: path, mtimeNs: st.mtimeNs, bytes: diskBytes(path, size: st.size)))
                    inv.storedSize[id] = inv.storedSize[id] ?? max(0, st.size - Int64(LooseObjects.headerSize))
                    inv.newestCopyNs[id] = max(inv.newestCopyNs[id] ?? 0, st.mtimeNs)
                }
            }
        }
        let packDir = store.packDirectory
        let packNames = Set(((try? Sys.listDirectory(packDir)) ?? []).map(\.name))
        for n in packNames.sorted() {
            let orphan = (n.hasSuffix(".pack") && !packNames.contains(String(n.dropLast(5)) + ".idx"))
                || (n.hasSuffix(".idx") && !packNames.contains(String(n.dropLast(4)) + ".pack"))
            if n.hasPrefix("tmp-") || n.hasPrefix(".tmp-") || orphan, let st = try Sys.lstatIfExists(packDir + "/" + n) {
                inv.temps.append(Temp(path: packDir + "/" + n, mtimeNs: st.mtimeNs, isDirectory: false))
            }
        }
        for (n, _) in (try? Sys.listDirectory(repo.storeDirectory)) ?? [] where n.hasPrefix(".tmp-") {
            if let st = try Sys.lstatIfExists(repo.storeDirectory + "/" + n) {
                inv.temps.append(Temp(path: repo.storeDirectory + "/" + n, mtimeNs: st.mtimeNs, isDirectory: false))
            }
        }
        // Scratch space: entries whose newest file is old (S3 index caches are managed by S3Remote).
        for (n, _) in (try? Sys.listDirectory(repo.tempDirectory)) ?? [] where !n.hasPrefix("s3-index-cache") {
            let p = repo.tempDirectory + "/" + n
            guard let st = try Sys.lstatIfExists(p) else { continue }
            inv.temps.append(Temp(path: p, mtimeNs: newestMtime(p, st), isDirectory: st.isDirectory))
        }
        return inv
    }

    private static func newestMtime(_ path: String, _ st: FileStat) -> Int64 {
        guard st.isDirectory else { return st.mtimeNs }
        var newest = st.mtimeNs
        for (n, _) in (try? Sys.listDirectory(path)) ?? [] {
            if let c = try? Sys.lstatIfExists(path + "/" + n) { newest = max(newest, newestMtime(path + "/" + n, c)) }
        }
        return newest
    }
}

// MARK: Mark

/// A starting point of the mark phase.
struct GCRoot {
    let id: ObjectID
    let edge: ObjectGraph.Edge
    /// For messages: "ref refs/heads/main", "reflog logs/HEAD", …
    let what: String
    /// Reflog lines and index entries may name objects that are gone; refs may not.
    let mayBeMissing: Bool
}

/// What the mark phase found.
struct Reachability {
    var reachable = Set<ObjectID>()
    /// Roots and objects reached through a metadata edge: never evicted from a cache.
    var metadata = Set<ObjectID>()
    /// File contents (file blobs, chunked files) reached from a tree, commit or the index: the units a
    /// cache evicts, least recently used first.
    var fileContents = Set<ObjectID>()
    /// Chunk lists of the chunked files reached.
    var chunks: [ObjectID: [ObjectID]] = [:]
    var kinds: [ObjectID: ObjectKind] = [:]
    var missingContent = 0
    var notes: [String] = []
}

extension Repository {
    /// True if any remote is configured as partial (contents may be absent by design).
    var isPartialStore: Bool {
        (try? config().entries.contains { $0.key.hasSuffix(".partial") && $0.value == "true" }) ?? false
    }

    /// Every ref under refs/ (strict: a malformed ref stops gc rather than letting its history be collected).
    func gcRefSnapshot() throws -> [String: ObjectID] {
        var out: [String: ObjectID] = [:]
        func walk(_ rel: String) throws {
            let abs = storeDirectory + "/" + rel
            guard let entries = try? Sys.listDirectory(abs) else { return }
            for (n, _) in entries {
                let child = rel + "/" + n
                guard let st = try Sys.lstatIfExists(storeDirectory + "/" + child) else { continue }
                if st.isDirectory {
                    try walk(child)
                } else if !n.hasSuffix(".lock") && !n.hasPrefix(".tmp-") {
                    do {
                        if let id = try refs.read(child) { out[child] = id }
                    } catch let e as MLStoreError {
                        throw MLStoreError(.corrupt, "gc stopped: \(e.message); nothing was deleted",
                                           hint: "fix or remove the ref first (gc never guesses what a damaged ref protected)")
                    }
                }
            }
        }
        try walk("refs")
        // HEAD: a detached commit is a root too.
        if let bytes = try? Sys.readFile(storeDirectory + "/HEAD", limit: 4096) {
            let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n\r\t")
            if let id = ObjectID(hex: text) { out["HEAD"] = id }
        }
        return out
    }

    /// Roots of a workspace or local store: refs, HEAD, every object in every reflog line, the index.
    func localGCRoots(refs snapshot: [String: ObjectID]) throws -> [GCRoot] {
        var roots = snapshot.sorted { $0.key < $1.key }.map { GCRoot(id: $0.value, edge: .metadata, what: $0.key, mayBeMissing: false) }
        func walkLogs(_ rel: String) {
            let abs = storeDirectory + "/" + rel
            guard let entries = try? Sys.listDirectory(abs) else { return }
            for (n, _) in entries {
                let p = abs + "/" + n
                guard let st = try? Sys.lstatIfExists(p) else { continue }
                if st.isDirectory { walkLogs(rel + "/" + n); continue }
                guard let bytes = try? Sys.readFile(p) else { continue }
                for line in bytes.split(separator: UInt8(ascii: "\n")) {
                    let fields = line.prefix(129).split(separator: UInt8(ascii: " "), maxSplits: 2)
                    for f in fields.prefix(2) {
                        if let id = ObjectID(hex: String(decoding: f, as: UTF8.self)), id.w0 | id.w1 | id.w2 | id.w3 != 0 {
                            roots.append(GCRoot(id: id, edge: .metadata, what: "reflog \(rel)/\(n)", mayBeMissing: true))
                        }
                    }
                }
            }
        }
        walkLogs("logs")
        if workspaceRoot != nil {
            let index: WorkspaceIndex
            do { index = try WorkspaceIndex.load(self) } catch let e as MLStoreError {
                throw MLStoreError(.corrupt, "gc stopped: the workspace index cannot be read (\(e.message)); nothing was deleted", hint: "run `mlstore fsck`")
            }
            for e in index.entries {
                roots.append(GCRoot(id: e.id, edge: e.kind == .symlink ? .metadata : .content, what: "index entry \(e.path)", mayBeMissing: true))
            }
        }
        return roots
    }

    /// Marks everything reachable from `roots` (content and metadata edges, ObjectGraph). In a partial
    /// store, missing contents are counted, not errors; any other missing or damaged object stops gc.
    /// - Parameter known: objects already marked (with everything they reach): the walk stops there.
    func markReachable(from roots: [GCRoot], partial: Bool, known: Set<ObjectID> = []) throws -> Reachability {
        var r = Reachability()
        let store = objects
        struct Item { let id: ObjectID; let edge: ObjectGraph.Edge; let fileContent: Bool; let from: String; let mayBeMissing: Bool }
        var stack = roots.reversed().map { Item(id: $0.id, edge: $0.edge, fileContent: $0.edge == .content, from: $0.what, mayBeMissing: $0.mayBeMissing) }
        var missing = Set<ObjectID>()
        let readJSON: (ObjectID) throws -> JSONValue? = { id in
            guard let (kind, payload) = try? store.read(id), kind == .blob else { return nil }
            return try? JSONValue.parse(json: payload, what: "object \(id.short)")
        }
        while let item = stack.popLast() {
            let id = item.id
            if item.edge == .metadata { r.metadata.insert(id) } else if item.fileContent { r.fileContents.insert(id) }
            if r.reachable.contains(id) || missing.contains(id) || known.contains(id) { continue }
            let kind: ObjectKind
            do {
                kind = try store.info(id).kind
            } catch let e as MLStoreError where e.code == .notFound {
                missing.insert(id)
                if partial && item.edge == .content {
                    r.missingContent += 1
                } else if item.mayBeMissing {
                    r.notes.append("\(item.from) names \(id.short), which is not in the store (ignored)")
                } else {
                    throw MLStoreError(.corrupt, "gc stopped: object \(id.hex) (reached from \(item.from)) is missing; nothing was deleted",
                                       hint: "run `mlstore fsck`; fetch the missing objects from a remote before running gc")
                }
                continue
            }
            r.reachable.insert(id)
            r.kinds[id] = kind
            guard kind != .blob else { continue }
            let children: [(id: ObjectID, edge: ObjectGraph.Edge)]
            do {
                let payload = try store.read(id).payload
                children = try ObjectGraph.children(kind: kind, payload: payload, id: id, readJSON: readJSON)
            } catch let e as MLStoreError {
                throw MLStoreError(.corrupt, "gc stopped: object \(id.hex) (reached from \(item.from)) cannot be read: \(e.message); nothing was deleted",
                                   hint: "run `mlstore fsck`")
            }
            if kind == .chunked { r.chunks[id] = children.map(\.id) }
            let from = "\(kind.rawValue) \(id.short)"
            for c in children.reversed() {
                stack.append(Item(id: c.id, edge: c.edge, fileContent: c.edge == .content && kind != .chunked, from: from, mayBeMissing: false))
            }
        }
        return r
    }
}

// MARK: Plan

/// What one gc run does, decided before anything is written.
struct GCPlan {
    /// Packs rewritten (then deleted), by index into the inventory.
    var rewrite: [Int] = []
    /// Live objects copied into the new pack, in source order.
    var newPack: [ObjectID] = []
    /// Unreachable objects younger than the grace period from rewritten packs: a "cruft" pack whose mtime
    /// is the newest of their source packs, so their age is kept.
    var cruft: [ObjectID] = []
    var cruftMtimeNs: Int64 = 0
    var deleteLoose: [Int] = []
    var deleteTemps: [Int] = []
    /// Objects present in packs that are kept.
    var keptPackIDs = Set<ObjectID>()
    /// Ids that will no longer be stored at all.
    var gone = Set<ObjectID>()
    var unreachable = 0
    var removedUnreachable = 0
    var keptYoung = 0
    var evicted = 0
    var projected = StoreUsage()

    var isEmpty: Bool { rewrite.isEmpty && deleteLoose.isEmpty && deleteTemps.isEmpty && newPack.isEmpty }
}

enum GCPlanner {
    /// Packs under this size are merged when there are several (or loose objects to pack with them).
    static let smallPackBytes: Int64 = 32 << 20
    /// Temp files are never removed younger than this, whatever the grace period (a write may be in progress).
    static let minimumTempAgeNs: Int64 = 3600 * 1_000_000_000

    static func packBytes(_ ids: [ObjectID], _ inv: StoreInventory) -> Int64 {
        guard !ids.isEmpty else { return 0 }
        let entries = ids.reduce(Int64(0)) { $0 + Int64(PackFormat.entryHeaderSize) + (inv.storedSize[$1] ?? 0) }
        let pack = Int64(PackFormat.headerSize + PackFormat.footerSize + 32) + entries
        let idx = Int64(PackFormat.indexHeaderSize + 1024 + ids.count * 40 + 32)
        return StoreInventory.roundUp(pack) + StoreInventory.roundUp(idx)
    }

    /// - Parameters:
    ///   - keep: reachable objects (minus evicted ones) that must survive.
    ///   - evict: reachable contents to delete regardless of age (the remote holds them).
    ///   - cutoffNs: copies older than this are old (nil: none).
    static func plan(_ inv: StoreInventory, reachable: Set<ObjectID>, evict: Set<ObjectID>, cutoffNs: Int64?, nowNs: Int64) -> GCPlan {
        var plan = GCPlan()
        func keep(_ id: ObjectID) -> Bool { reachable.contains(id) && !evict.contains(id) }
        func old(_ ns: Int64) -> Bool { cutoffNs.map { ns < $0 } ?? false }
        func removable(_ id: ObjectID, copyNs: Int64) -> Bool { !keep(id) && (evict.contains(id) || old(copyNs)) }

        let youngLooseGarbage = Set(inv.loose.filter { !keep($0.id) && !evict.contains($0.id) && !old($0.mtimeNs) }.map(\.id))
        let looseLive = inv.loose.filter { keep($0.id) }
        var dirty = Set<Int>()
        for (i, p) in inv.packs.enumerated() where p.ids.contains(where: { removable($0, copyNs: p.mtimeNs) }) { dirty.insert(i) }
        // Small packs with live objects are merged; a pack of young garbage only (an earlier gc's "cruft"
        // pack) is left alone until its objects are old, so repeated runs do not rewrite it.
        let small = inv.packs.indices.filter { inv.packs[$0].bytes < smallPackBytes && inv.packs[$0].ids.contains(where: keep) }
        var rewrite = dirty
        let smallToMerge = small.filter { !dirty.contains($0) }
        if smallToMerge.count + dirty.count >= 2 || (!smallToMerge.isEmpty && (!looseLive.isEmpty || !dirty.isEmpty)) {
            rewrite.formUnion(smallToMerge)
        }
        plan.rewrite = rewrite.sorted()
        for (i, p) in inv.packs.enumerated() where !rewrite.contains(i) { plan.keptPackIDs.formUnion(p.ids) }

        var added = Set<ObjectID>()
        var cruftAdded = Set<ObjectID>()
        for i in plan.rewrite {
            let p = inv.packs[i]
            for id in p.ids {
                if keep(id) {
                    if !plan.keptPackIDs.contains(id), added.insert(id).inserted { plan.newPack.append(id) }
                } else if !removable(id, copyNs: p.mtimeNs), !plan.keptPackIDs.contains(id), !youngLooseGarbage.contains(id),
                    cruftAdded.insert(id).inserted
                {
                    plan.cruft.append(id)
                    plan.cruftMtimeNs = max(plan.cruftMtimeNs, p.mtimeNs)
                }
            }
        }
        for l in looseLive where !plan.keptPackIDs.contains(l.id) && added.insert(l.id).inserted { plan.newPack.append(l.id) }
        // A cruft object that is also live (impossible) or young-garbage duplicates are handled above.
        for (j, l) in inv.loose.enumerated() {
            if keep(l.id) {
                if added.contains(l.id) || plan.keptPackIDs.contains(l.id) { plan.deleteLoose.append(j) }
            } else if evict.contains(l.id) || old(l.mtimeNs) {
                plan.deleteLoose.append(j)
            }
        }
        let tempCutoff = min(cutoffNs ?? Int64.min, nowNs - minimumTempAgeNs)
        for (k, t) in inv.temps.enumerated() where t.mtimeNs < tempCutoff { plan.deleteTemps.append(k) }

        // What remains, and what is gone.
        var remaining = plan.keptPackIDs
        remaining.formUnion(plan.newPack)
        remaining.formUnion(plan.cruft)
        let deletedLoose = Set(plan.deleteLoose)
        for (j, l) in inv.loose.enumerated() where !deletedLoose.contains(j) { remaining.insert(l.id) }
        let all = inv.allIDs
        plan.gone = all.subtracting(remaining)
        let unreachable = all.filter { !reachable.contains($0) }
        plan.unreachable = unreachable.count
        plan.removedUnreachable = unreachable.filter { plan.gone.contains($0) }.count
        plan.keptYoung = plan.unreachable - plan.removedUnreachable
        plan.evicted = evict.filter { plan.gone.contains($0) }.count

        var after = StoreUsage()
        for (i, p) in inv.packs.enumerated() where !rewrite.contains(i) {
            after.packs += 1
            after.objects += p.ids.count
            after.bytes += p.bytes
        }
        for (j, l) in inv.loose.enumerated() where !deletedLoose.contains(j) {
            after.looseObjects += 1
            after.objects += 1
            after.bytes += l.bytes
        }
        for list in [plan.newPack, plan.cruft] where !list.isEmpty {
            after.packs += 1
            after.objects += list.count
            after.bytes += packBytes(list, inv)
        }
        plan.projected = after
        return plan
    }
}

// MARK: Execute

enum GCExecutor {
    /// Writes `ids` (read and verified from the store, stored bytes copied as they are) into packs of at
    /// most 1 GiB; returns the published pack names.
    static func writePacks(_ ids: [ObjectID], store: ObjectStore) throws -> [String] {
        guard !ids.isEmpty else { return [] }
        var names: [String] = []
        var writer = try PackWriter(directory: store.packDirectory)
        do {
            for id in ids {
                let obj = try store.readEncoded(id).object
                try writer.add(obj)
                if writer.offset >= ObjectBatch.packByteLimit {
                    names.append(try writer.finish())
                    writer = try PackWriter(directory: store.packDirectory)
                }
            }
            if !writer.entries.isEmpty { names.append(try writer.finish()) } else { writer.abandon() }
        } catch {
            writer.abandon()
            throw error
        }
        return names
    }

    static func setMtime(_ path: String, ns: Int64) {
        var times = [timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000)),
                     timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    static func remove(_ path: String, isDirectory: Bool) -> Bool {
        if isDirectory {
            TempRemoval.removeTree(path)
            return (try? Sys.lstatIfExists(path)) == .some(nil)
        }
        return (try? Sys.unlink(path)) != nil
    }

    /// Publishes the new packs, checks that every rewritten pack is fully accounted for, runs `beforeDelete`
    /// (the lock and ref re-checks), then deletes.
    static func execute(_ plan: GCPlan, inventory inv: StoreInventory, repo: Repository, reachable: Set<ObjectID>, evict: Set<ObjectID>,
                        cutoffNs: Int64?, beforeDelete: () throws -> Set<ObjectID>, report: inout GCReport) throws {
        let store = repo.objects
        // 1. New packs first (pack, then index, directory fsynced): nothing is deleted before they are durable.
        let live = try writePacks(plan.newPack, store: store)
        let cruft = try writePacks(plan.cruft, store: store)
        for name in cruft {
            setMtime(store.packDirectory + "/" + name + ".pack", ns: plan.cruftMtimeNs)
            setMtime(store.packDirectory + "/" + name + ".idx", ns: plan.cruftMtimeNs)
        }
        report.packsWritten = live + cruft
        try store.reloadPacks()
        let written = Set(live + cruft)
        var present = Set<ObjectID>()
        for p in store.packReaders where written.contains(p.name) {
            for i in 0..<p.index.count { present.insert(p.index.id(at: i)) }
        }
        // 2. Re-check (lock, leases, refs): objects that became reachable meanwhile are kept. A failure here
        //    leaves only harmless duplicates behind.
        let resurrected = try beforeDelete()
        // 3. Delete: a rewritten pack only if each of its objects is in a new pack, in a kept pack, or
        //    removable (unreachable and old, or evicted).
        func removableCopy(_ id: ObjectID, _ ns: Int64) -> Bool {
            let keep = (reachable.contains(id) && !evict.contains(id)) || resurrected.contains(id)
            return !keep && (evict.contains(id) || (cutoffNs.map { ns < $0 } ?? false))
        }
        for i in plan.rewrite {
            let p = inv.packs[i]
            guard !written.contains(p.name) else { continue }
            if let stray = p.ids.first(where: { !present.contains($0) && !plan.keptPackIDs.contains($0) && !removableCopy($0, p.mtimeNs) }) {
                report.notes.append("kept \(p.name): object \(stray.short) is not in the new pack")
                continue
            }
            _ = try? Sys.unlink(p.idxPath)  // index first: readers stop using the pack
            _ = try? Sys.unlink(p.packPath)
            report.packsRemoved += 1
        }
        for j in plan.deleteLoose {
            let l = inv.loose[j]
            let keep = (reachable.contains(l.id) && !evict.contains(l.id)) || resurrected.contains(l.id)
            if keep && !present.contains(l.id) && !plan.keptPackIDs.contains(l.id) { continue }
            if remove(l.path, isDirectory: false) { report.looseRemoved += 1 }
        }
        for k in plan.deleteTemps where remove(inv.temps[k].path, isDirectory: inv.temps[k].isDirectory) { report.tempFilesRemoved += 1 }
        try store.reloadPacks()
    }
}

// MARK: Entry points

extension Repository {
    static func nowNs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The grace period: `gc.prune` in the config, else two weeks.
    public func configuredPrune() throws -> PruneAge {
        if let v = try config().get("gc.prune") { return try PruneAge.parse(v) }
        return .standard
    }

    /// Garbage-collects this store (spec/remote.md §Garbage collection): keeps everything reachable from
    /// refs (heads, tags, every stage record and its targets, runs, remote-tracking refs), HEAD, every
    /// reflog line and the index; deletes unreachable objects older than the grace period; repacks loose
    /// objects and sparse packs. A bare store is collected with the remote protocol's roots (refs only).
    public func collectGarbage(_ options: GCOptions = GCOptions()) throws -> GCReport {
        try runGC(options, roots: { snapshot in
            self.isBare ? self.remoteGCRoots(refs: snapshot) : try self.localGCRoots(refs: snapshot)
        }, partial: !isBare && isPartialStore, chooseEviction: nil)
    }

    /// Roots of a remote (bare store): its refs and a detached HEAD. Reflogs there are an audit trail of
    /// pushes, not roots, so force-pushed-away history can be collected.
    func remoteGCRoots(refs snapshot: [String: ObjectID]) -> [GCRoot] {
        snapshot.sorted { $0.key < $1.key }.map { GCRoot(id: $0.value, edge: .metadata, what: $0.key, mayBeMissing: false) }
    }

    /// The engine behind `gc`, `gc --remote` and `cache`: lock and leases (RemoteGC.swift), mark, plan,
    /// write, re-check, delete. A dry run only marks and plans.
    func runGC(_ options: GCOptions, roots: ([String: ObjectID]) throws -> [GCRoot], partial: Bool,
               chooseEviction: ((Reachability, StoreInventory, Int64?) throws -> Set<ObjectID>)?) throws -> GCReport {
        var report = GCReport(store: storeDirectory, dryRun: options.dryRun, prune: options.prune.description)
        // One gc at a time. Pushes go on while gc marks and writes its new packs ("mark" phase).
        let lock = options.dryRun ? nil : try StoreLease.acquireGCLock(storeDirectory: storeDirectory)
        defer { lock?.release() }

        let nowNs = Self.nowNs()
        let cutoff = options.prune.cutoffNs(nowNs: nowNs)
        let inventory = try StoreInventory.take(self)
        let snapshot = try gcRefSnapshot()
        let marked = try markReachable(from: try roots(snapshot), partial: partial)
        let evict = try chooseEviction?(marked, inventory, cutoff) ?? []
        let plan = GCPlanner.plan(inventory, reachable: marked.reachable, evict: evict, cutoffNs: cutoff, nowNs: nowNs)
        report.before = inventory.usage
        report.reachableObjects = marked.reachable.count
        report.unreachableObjects = plan.unreachable
        report.removedObjects = plan.removedUnreachable
        report.keptYoungObjects = plan.keptYoung
        report.evictedObjects = plan.evicted
        report.missingContent = marked.missingContent
        report.notes = Array(marked.notes.prefix(20))
        if marked.notes.count > 20 { report.notes.append("… and \(marked.notes.count - 20) more") }

        if options.dryRun || plan.isEmpty {
            report.after = options.dryRun ? plan.projected : report.before
            if options.dryRun {
                report.packsRemoved = plan.rewrite.count
                report.looseRemoved = plan.deleteLoose.count
                report.tempFilesRemoved = plan.deleteTemps.count
            }
            report.freedBytes = report.before.bytes - report.after.bytes
            return report
        }
        var waited = (leases: 0, seconds: 0.0)
        var resurrected = 0
        try GCExecutor.execute(plan, inventory: inventory, repo: self, reachable: marked.reachable, evict: evict, cutoffNs: cutoff, beforeDelete: {
            // Deletion phase: from now on pushers wait for gc; wait for the pushes in progress to finish,
            // then re-read the refs and mark what they reach now (stopping at what was marked before): any
            // object about to be deleted that a finished push (or a local command) made reachable is kept.
            try lock!.setPhase("delete")
            waited = try StoreLease.waitForLeases(storeDirectory: self.storeDirectory, timeout: options.leaseWaitSeconds, gcLock: lock!)
            try lock!.checkStillHeld()
            let again = try self.markReachable(from: try roots(try self.gcRefSnapshot()), partial: partial, known: marked.reachable)
            let keep = plan.gone.filter { again.reachable.contains($0) && !evict.contains($0) }
            resurrected = keep.count
            return keep
        }, report: &report)
        report.leasesWaitedFor = waited.leases
        report.waitedSeconds = waited.seconds
        if resurrected > 0 {
            report.notes.append("\(resurrected) object(s) became reachable while gc ran (a push or a local command) and were kept")
            report.removedObjects = max(0, report.removedObjects - resurrected)
        }
        report.after = try StoreInventory.take(self).usage
        report.freedBytes = report.before.bytes - report.after.bytes
        return report
    }
}
