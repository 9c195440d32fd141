import MLStoreBasics

/// One ref's outcome in a push or fetch.
public struct RefUpdate: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        case created, updated, forced, deleted, upToDate = "up-to-date", rejected
    }
    public var ref: String
    public var old: ObjectID?
    public var new: ObjectID?
    public var status: Status
    public var reason: String?
}

public struct TransferReport: Sendable, Codable {
    public var remote: String
    public var refs: [RefUpdate] = []
    public var objects = 0
    public var bytes: Int64 = 0
    public var seconds = 0.0
    public var rejected: Bool { refs.contains { $0.status == .rejected } }
}

/// Which file contents a fetch brings (metadata — commits, trees, stage records, params — always comes).
public enum ContentFilter: Sendable {
    case all
    /// Only metadata; contents are fetched later when a checkout needs them.
    case none
    /// Only the contents of these objects (file blobs, chunked files, or subtrees), plus metadata.
    case only(Set<ObjectID>)
}

extension Repository {
    /// True if `ancestor` is `commit` or one of its ancestors (walks local commits only).
    public func isAncestor(_ ancestor: ObjectID, of commit: ObjectID) throws -> Bool {
        var queue = [commit]
        var seen = Set<ObjectID>()
        while let c = queue.popLast() {
            if c == ancestor { return true }
            guard seen.insert(c).inserted, objects.contains(c) else { continue }
            queue += try self.commit(c).parents
        }
        return false
    }

    /// True if stage record `older` is `newer` or in its `previous` chain.
    func isStageAncestor(_ older: ObjectID, of newer: ObjectID) throws -> Bool {
        var next: ObjectID? = newer
        var n = 0
        while let r = next, n < 1_000_000 {
            if r == older { return true }
            guard objects.contains(r) else { return false }
            next = try stageRecord(r).previous
            n += 1
        }
        return false
    }

    /// Objects reachable from `roots` that `have` does not report, children before parents (so any
    /// prefix of the list is closed under references given what `have` holds).
    /// - Parameters:
    ///   - have: which of a node's children (or of the roots) are there already — asked once per node, so a
    ///     network transport answers a directory of 10,000 files in one round trip.
    ///   - kindOf / payloadOf: where objects are read from (the local store for push, the remote for fetch).
    ///   - follow: whether to descend an edge (content filter).
    static func closure(roots: [ObjectID], have: ([ObjectID]) throws -> [Bool], kindOf: (ObjectID) throws -> ObjectKind,
                        payloadOf: (ObjectID) throws -> [UInt8], readJSON: (ObjectID) throws -> JSONValue?,
                        follow: (ObjectID, ObjectGraph.Edge) -> Bool = { _, _ in true }) throws -> [ObjectID] {
        var order: [ObjectID] = []
        // Objects handled: expanded, or found to be there already.
        var visited = Set<ObjectID>()
        /// The candidates not visited yet and not there already, in order, without duplicates.
        func missing(_ candidates: [ObjectID]) throws -> [ObjectID] {
            var seen = Set<ObjectID>()
            let fresh = candidates.filter { !visited.contains($0) && seen.insert($0).inserted }
            guard !fresh.isEmpty else { return [] }
            let flags = try have(fresh)
            var out: [ObjectID] = []
            for (id, there) in zip(fresh, flags) {
                if there { visited.insert(id) } else { out.append(id) }
            }
            return out
        }
        // Iterative post-order DFS (histories can be 100k commits deep).
        var stack: [(id: ObjectID, expanded: Bool)] = try missing(roots).reversed().map { ($0, false) }
        while let (id, expanded) = stack.popLast() {
            if expanded {
                order.append(id)
                continue
            }
            guard visited.insert(id).inserted else { continue }
            let kind = try kindOf(id)
            stack.append((id, true))
            guard kind != .blob else { continue }
            let children = try ObjectGraph.children(kind: kind, payload: try payloadOf(id), id: id, readJSON: readJSON)
            let wanted = try missing(children.filter { follow($0.id, $0.edge) }.map(\.id))
            for child in wanted.reversed() { stack.append((child, false)) }
        }
        return order
    }

    func refsToPush(_ names: [String], tags: Bool, stages: Bool, all: Bool) throws -> [(String, ObjectID)] {
        var out: [String: ObjectID] = [:]
        if names.isEmpty && !tags && !stages && !all {
            guard case .branch(let b, let id?) = try refs.head() else {
                throw MLStoreError(.usage, "nothing to push: HEAD is not on a branch with commits", hint: "name what to push, e.g. `mlstore push origin main`, or use --all")
            }
            out["refs/heads/" + b] = id
        }
        for n in names {
            var ref: String
            if n.hasPrefix("refs/") {
                ref = n
            } else if let at = n.lastIndex(of: "@"), at != n.startIndex {
                ref = "refs/stages/\(n[..<at])/\(n[n.index(after: at)...])"
            } else if (try refs.read("refs/heads/" + n)) != nil {
                ref = "refs/heads/" + n
            } else {
                ref = "refs/tags/" + n
            }
            guard let id = try refs.read(ref) else {
                throw MLStoreError(.notFound, "nothing named '\(n)' to push", hint: "push a branch, a tag, or model@stage")
            }
            out[ref] = id
        }
        for (prefix, on) in [("refs/heads/", all), ("refs/tags/", tags || all), ("refs/stages/", stages || all), ("refs/runs/", all), ("refs/models/", stages || all)] where on {
            for (n, id) in refs.list(prefix) { out[n] = id }
        }
        return out.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Pushes refs to a remote: uploads what it lacks (packs, children before parents), then moves each
    /// ref by compare-and-swap. A non-fast-forward, or a ref that moved since it was read, is rejected
    /// (unless `force`, which still swaps against the value just read).
    public func push(to remoteName: String, refs names: [String] = [], tags: Bool = false, stages: Bool = false, all: Bool = false,
                     force: Bool = false, progress: ProgressReporter? = nil) throws -> TransferReport {
        let started = Self.monotonic()
        let (name, remote) = try transport(named: remoteName)
        try remote.open(create: true)
        // gc --remote waits for this push (spec/remote.md §Garbage collection): take the lease before asking
        // the remote what it has.
        let lease = try remote.acquirePushLease()
        defer { lease?.release() }
        var report = TransferReport(remote: remote.location)
        let remoteRefs = try remote.refs()
        var accepted: [(ref: String, local: ObjectID, remote: ObjectID?)] = []
        for (ref, local) in try refsToPush(names, tags: tags, stages: stages, all: all) {
            let theirs = remoteRefs[ref]
            if theirs == local {
                report.refs.append(RefUpdate(ref: ref, old: theirs, new: local, status: .upToDate))
                continue
            }
            var reject: String?
            if let theirs {
                if ref.hasPrefix("refs/tags/") {
                    reject = "the tag already exists on the remote at \(theirs.short) (tags do not move)"
                } else if ref.hasPrefix("refs/runs/") {
                    reject = "the remote has another run for the same stage key (kept; runs are cache entries)"
                } else if ref.hasPrefix("refs/models/") {
                    if !(try isModelAncestor(theirs, of: local)) {
                        reject = "the remote model has versions you do not have; fetch, then register again"
                    }
                } else if ref.hasPrefix("refs/stages/") {
                    if !(try isStageAncestor(theirs, of: local)) {
                        reject = "the remote stage has records you do not have (someone else promoted); fetch, then promote again"
                    }
                } else if !(try isAncestor(theirs, of: local)) {
                    reject = "non-fast-forward: the remote branch has commits you do not have; fetch and pull, then push again"
                }
            }
            if let reject, !force {
                report.refs.append(RefUpdate(ref: ref, old: theirs, new: local, status: .rejected, reason: reject))
                continue
            }
            accepted.append((ref, local, theirs))
        }
        // Objects first: everything the accepted refs reach that the remote lacks, leaves first.
        if !accepted.isEmpty {
            let local = objects
            let order = try Self.closure(
                roots: accepted.map(\.local), have: { try remote.containsMany($0) },
                kindOf: { id in
                    guard local.contains(id) else {
                        throw MLStoreError(.notFound, "cannot push: object \(id.hex) is not in the local store (a partial clone?)",
                                           hint: "fetch the missing content first (`mlstore pull`), or push only refs whose content you have")
                    }
                    return try local.info(id).kind
                },
                payloadOf: { try local.read($0).payload }, readJSON: { try? self.json($0) })
            progress?.begin("uploading", totalBytes: Int64(order.count))
            let stats = try remote.upload { send in
                try orderedParallelMap(count: order.count) { i in try local.readEncoded(order[i]).object } consume: { _, obj in
                    try send(obj)
                    progress?.advance(bytes: 1)
                }
            }
            progress?.end()
            report.objects = stats.objectsWritten
            report.bytes = stats.storedBytes
        }
        // Then refs, each by compare-and-swap against what we read (or, forced, against its value now).
        let actor = try identity()
        for a in accepted {
            var expected: RefExpectation = a.remote.map { .value($0) } ?? .absent
            if force { expected = (try remote.refs()[a.ref]).map { .value($0) } ?? .absent }
            do {
                try remote.updateRef(a.ref, to: a.local, expecting: expected, actor: actor, message: "push")
                let status: RefUpdate.Status = a.remote == nil ? .created : (force ? .forced : .updated)
                report.refs.append(RefUpdate(ref: a.ref, old: a.remote, new: a.local, status: status))
                if let name { try updateTracking(remote: name, ref: a.ref, to: a.local, actor: actor) }
            } catch let e as MLStoreError where e.code == .conflict || e.code == .locked {
                let why = e.code == .locked ? e.message : "the remote ref moved while pushing (someone else pushed); fetch, then push again"
                report.refs.append(RefUpdate(ref: a.ref, old: a.remote, new: a.local, status: .rejected, reason: why))
            }
        }
        if try remote.defaultBranch() == nil, let b = accepted.first(where: { $0.ref.hasPrefix("refs/heads/") }) {
            try remote.setDefaultBranch(String(b.ref.dropFirst(11)))
        }
        report.refs.sort { $0.ref < $1.ref }
        report.seconds = Self.monotonic() - started
        return report
    }

    /// Remote-tracking name for a remote ref: branches under refs/remotes/<remote>/<branch>, stages under
    /// refs/remotes/<remote>/stages/<model>/<stage>; tags are not tracked (they are fetched into refs/tags).
    static func trackingRef(remote: String, ref: String) -> String? {
        if ref.hasPrefix("refs/heads/") { return "refs/remotes/\(remote)/" + ref.dropFirst(11) }
        if ref.hasPrefix("refs/stages/") { return "refs/remotes/\(remote)/stages/" + ref.dropFirst(12) }
        if ref.hasPrefix("refs/models/") { return "refs/remotes/\(remote)/models/" + ref.dropFirst(12) }
        return nil
    }

    func updateTracking(remote: String, ref: String, to id: ObjectID?, actor: Signature) throws {
        guard let t = Self.trackingRef(remote: remote, ref: ref) else { return }
        if try refs.read(t) == id { return }
        try refs.update(t, to: id, expecting: .any, actor: actor, message: "update by push/fetch")
    }

    /// Fetches what the remote's refs reach and the local store lacks. Every object is verified before it
    /// enters the local store; objects arrive in one pack (published atomically), so a failure leaves the
    /// local store unchanged. Updates remote-tracking refs, and local tags that do not exist yet.
    public func fetch(from remoteName: String, content: ContentFilter = .all, progress: ProgressReporter? = nil) throws -> TransferReport {
        let started = Self.monotonic()
        let (name, remote) = try transport(named: remoteName)
        try remote.open(create: false)
        var report = TransferReport(remote: remote.location)
        let remoteRefs = try remote.refs()
        try fetchObjects(remote: remote, roots: Array(Set(remoteRefs.values)), content: content, report: &report, progress: progress)
        let actor = try identity()
        if let name {
            // Tracking refs mirror the remote; ones whose remote ref disappeared are removed.
            var seen = Set<String>()
            for (ref, id) in remoteRefs.sorted(by: { $0.key < $1.key }) {
                if let t = Self.trackingRef(remote: name, ref: ref) {
                    seen.insert(t)
                    let old = try refs.read(t)
                    if old != id {
                        try refs.update(t, to: id, expecting: .any, actor: actor, message: "fetch")
                        report.refs.append(RefUpdate(ref: t, old: old, new: id, status: old == nil ? .created : .updated))
                    }
                } else if ref.hasPrefix("refs/tags/") || ref.hasPrefix("refs/runs/") {
                    let old = try refs.read(ref)
                    if old == nil {
                        try refs.update(ref, to: id, expecting: .absent, actor: actor, message: "fetch")
                        report.refs.append(RefUpdate(ref: ref, old: nil, new: id, status: .created))
                    } else if old != id {
                        if ref.hasPrefix("refs/tags/") {
                            report.refs.append(RefUpdate(ref: ref, old: old, new: id, status: .rejected, reason: "a local tag of the same name points elsewhere"))
                        }
                    }
                }
            }
            for (t, id) in refs.list("refs/remotes/\(name)/") where !seen.contains(t) {
                try refs.update(t, to: nil, expecting: .value(id), actor: actor, message: "fetch: deleted on the remote")
                report.refs.append(RefUpdate(ref: t, old: id, new: nil, status: .deleted))
            }
        }
        report.seconds = Self.monotonic() - started
        return report
    }

    /// Copies the closure of `roots` (filtered) from a remote into the local store, verified.
    func fetchObjects(remote: RemoteTransport, roots: [ObjectID], content: ContentFilter, report: inout TransferReport,
                      progress: ProgressReporter?) throws {
        let local = objects
        // Metadata read during the walk is kept to avoid reading it twice.
        final class Cache: @unchecked Sendable { var encoded: [ObjectID: (EncodedObject, [UInt8])] = [:] }
        let cache = Cache()
        func read(_ id: ObjectID) throws -> (EncodedObject, [UInt8]) {
            if let hit = cache.encoded[id] { return hit }
            let r = try remote.readEncoded(id)
            if r.object.kind != .blob || r.object.payloadSize < 1 << 16 { cache.encoded[id] = r }
            return r
        }
        let readJSON: (ObjectID) throws -> JSONValue? = { id in
            if let hit = cache.encoded[id] { return try JSONValue.parse(json: hit.1, what: "object \(id.short)") }
            if local.contains(id) { return try? self.json(id) }
            return try JSONValue.parse(json: try read(id).1, what: "object \(id.short)")
        }
        // Wanted contents first (whole closures, leaves first), then the metadata that names them.
        // Kinds come from the transport without reading file contents (which are read once, below).
        let kindOf: (ObjectID) throws -> ObjectKind = { id in try cache.encoded[id]?.0.kind ?? remote.kind(of: id) }
        var order: [ObjectID] = []
        if case .only(let ids) = content {
            order = try Self.closure(roots: ids.sorted(), have: { $0.map(local.contains) }, kindOf: kindOf,
                                     payloadOf: { try read($0).1 }, readJSON: readJSON)
        }
        let already = Set(order)
        order += try Self.closure(
            roots: roots, have: { $0.map { local.contains($0) || already.contains($0) } }, kindOf: kindOf,
            payloadOf: { try read($0).1 }, readJSON: readJSON,
            follow: { _, edge in
                if case .all = content { return true }
                return edge == .metadata
            })
        guard !order.isEmpty else { return }
        let ids = order
        try remote.willRead(ids.filter { cache.encoded[$0] == nil })
        let batch = local.batch(packOnly: true)
        progress?.begin("fetching", totalBytes: Int64(order.count))
        do {
            try orderedParallelMap(count: ids.count) { i in
                if let hit = cache.encoded[ids[i]] { return hit.0 }
                return try remote.readEncoded(ids[i]).object
            } consume: { _, obj in
                try batch.add(obj)
                progress?.advance(bytes: 1)
            }
            try batch.commit()
        } catch {
            batch.abandon()
            progress?.end()
            throw error
        }
        progress?.end()
        report.objects += batch.stats.objectsWritten
        report.bytes += batch.stats.storedBytes
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

#if canImport(Glibc)
    import Glibc
#endif
