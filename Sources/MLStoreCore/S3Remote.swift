import Dispatch
import Foundation
import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A remote in an S3-compatible bucket (spec/remote.md §S3): the bare-store layout under a key prefix,
/// packs only. Packs and indexes are uploaded with `If-None-Match: *` and a SHA-256 checksum (pack before
/// its index, earlier packs before later ones); refs move by compare-and-swap with `If-Match: <etag>`
/// (`If-None-Match: *` to create). Objects are read with ranged GETs at the offsets the pack indexes give,
/// adjacent entries coalesced into one request, a few requests in flight; every object is verified.
public final class S3Remote: RemoteTransport, @unchecked Sendable {
    public let bucket: String
    /// Key prefix without leading or trailing `/` (may be empty).
    public let prefix: String
    public let settings: S3Settings
    public let client: S3Client
    public var location: String { "s3://\(bucket)" + (prefix.isEmpty ? "" : "/" + prefix) }

    /// Packs above this size go up in parts (`MLSTORE_S3_MULTIPART_THRESHOLD`, bytes, for tests and tuning).
    static let multipartThreshold: Int64 = Int64(tuning("MLSTORE_S3_MULTIPART_THRESHOLD", 64 << 20, min: 5 << 20))
    /// Part size (`MLSTORE_S3_PART_SIZE`; S3 requires at least 5 MiB for all parts but the last).
    static let partSize = tuning("MLSTORE_S3_PART_SIZE", 16 << 20, min: 5 << 20)

    static func tuning(_ name: String, _ value: Int, min: Int) -> Int { HTTPClient.tuning(name, value, min: min) }
    /// Parts in flight at once (`MLSTORE_S3_PARALLEL_PARTS`).
    static let parallelParts = tuning("MLSTORE_S3_PARALLEL_PARTS", 4, min: 1)
    /// Ranged reads: adjacent entries are merged into requests of up to this size...
    static let segmentLimit: Int64 = 8 << 20
    /// ...across gaps of at most this many bytes; this many requests run ahead of the reader.
    static let segmentGap: Int64 = 64 << 10
    static let readAhead = 2

    private let scratchBase: String
    private let ownsScratch: Bool

    struct RemotePack {
        let name: String
        let index: PackIndex
        let packSize: Int64
        /// Entry offsets in file order (for entry ends).
        let offsets: [Int64]
        var packKey: String
        func end(of offset: Int64) -> Int64 {
            var lo = 0, hi = offsets.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if offsets[mid] <= offset { lo = mid + 1 } else { hi = mid }
            }
            return lo < offsets.count ? offsets[lo] : packSize - Int64(PackFormat.footerSize)
        }
    }

    final class Segment: @unchecked Sendable {
        let pack: Int
        let start: Int64
        let end: Int64
        var started = false
        /// Planned entries not read yet; the data is dropped when it reaches 0.
        var remaining = 0
        var data: PageBuffer?
        var error: Error?
        let done = DispatchGroup()
        init(pack: Int, start: Int64, end: Int64) {
            self.pack = pack
            self.start = start
            self.end = end
        }
    }

    private struct State {
        var opened = false
        var packsLoaded = false
        var packs: [RemotePack] = []
        var loose = Set<ObjectID>()
        /// Kinds learned from trees and chunked files already read (so a walk need not read blobs).
        /// Objects read to answer `kind(of:)`, handed out once by the next `readEncoded`.
        var recent: [ObjectID: (EncodedObject, [UInt8])] = [:]
        var recentBytes = 0
        var plan: [ObjectID: Int] = [:]
        var segments: [Segment] = []
        var consumedUpTo = 0
    }
    private let state = Mutex(State())
    private let kindHints = ObjectGraph.KindHints()

    /// - Parameters:
    ///   - url: `s3://bucket[/prefix]`, optionally with `?endpoint=…&region=…&path-style=true`.
    ///   - settings: stored settings; the URL's query overrides them.
    ///   - scratchDirectory: where packs are built before upload and remote pack indexes are cached
    ///     (the local store's `tmp/`); a private temp directory (removed at the end) when nil.
    public init(url: String, settings: S3Settings = S3Settings(), scratchDirectory: String? = nil,
                environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let parsed = try Self.parse(url)
        bucket = parsed.bucket
        prefix = parsed.prefix
        var s = settings
        if !parsed.query.isEmpty {
            let q = try S3Settings(entries: parsed.query)
            s.endpoint = q.endpoint ?? s.endpoint
            s.region = q.region ?? s.region
            s.pathStyle = q.pathStyle ?? s.pathStyle
            if !q.conditionalWrites { s.conditionalWrites = false }
        }
        self.settings = s
        client = try S3Client(bucket: bucket, settings: s, environment: environment)
        if let scratchDirectory {
            scratchBase = scratchDirectory
            ownsScratch = false
        } else {
            let tmp = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            scratchBase = tmp + "/mlstore-s3-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            ownsScratch = true
        }
    }

    deinit {
        if ownsScratch { TempRemoval.removeTree(scratchBase) }
    }

    /// Splits `s3://bucket/prefix?k=v&…`.
    public static func parse(_ url: String) throws -> (bucket: String, prefix: String, query: [String: String]) {
        guard url.hasPrefix("s3://") else { throw MLStoreError(.usage, "not an s3:// URL: \(url)") }
        var rest = String(url.dropFirst(5))
        var query: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") where !pair.isEmpty {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let k = String(kv[0]).removingPercentEncoding ?? String(kv[0])
                let v = kv.count > 1 ? (String(kv[1]).removingPercentEncoding ?? String(kv[1])) : "true"
                query[k] = v
            }
            rest = String(rest[..<q])
        }
        let parts = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let bucket = String(parts[0])
        guard !bucket.isEmpty else { throw MLStoreError(.usage, "no bucket in \(url)", hint: "use s3://<bucket>/<prefix>") }
        guard !bucket.contains("@"), !bucket.contains(":") else {
            throw MLStoreError(.usage, "\(url): credentials and ports do not belong in an s3:// URL",
                               hint: "give credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, and the server with --endpoint")
        }
        var prefix = parts.count > 1 ? String(parts[1]) : ""
        while prefix.hasPrefix("/") { prefix.removeFirst() }
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard !prefix.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw MLStoreError(.usage, "\(url): the prefix must not contain . or .. components")
        }
        return (bucket, prefix, query)
    }

    func key(_ rel: String) -> String { prefix.isEmpty ? rel : prefix + "/" + rel }
    func url(_ rel: String) -> String { "s3://\(bucket)/" + key(rel) }

    private var scratch: String {
        get throws {
            try Sys.mkdirs(scratchBase)
            return scratchBase
        }
    }

    /// The local cache of this remote's pack indexes (immutable, so safe to keep between commands).
    private func indexCache() throws -> String {
        let id = Hex.encode(SHA256.hash(Array("\(client.endpoint)\n\(bucket)\n\(prefix)".utf8)).prefix(8))
        let dir = try scratch + "/s3-index-cache-" + id
        try Sys.mkdirs(dir)
        return dir
    }

    // MARK: Store

    public func open(create: Bool) throws {
        if state.withLock({ $0.opened }) { return }
        var format = try client.get(key("format"))
        if format == nil {
            guard create else {
                throw MLStoreError(.notFound, "no mlstore store at \(location) (\(client.endpoint))",
                                   hint: "check the URL and --endpoint, or push to it (the first push creates it)")
            }
            let body = Data(Repository.formatFileContents(Repository.formatVersion))
            if settings.conditionalWrites {
                _ = try client.put(key("format"), body, condition: .absent)
            } else {
                _ = try client.put(key("format"), body)
            }
            format = try client.get(key("format"))
        }
        let text = String(decoding: format?.data ?? Data(), as: UTF8.self)
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, parts[0] == "mlstore-format", let v = Int(parts[1]) else {
            throw MLStoreError(.corrupt, "\(url("format")) is malformed: \(text.prefix(80).debugDescription)")
        }
        guard v <= Repository.formatVersion else {
            throw MLStoreError(.unsupported, "the remote at \(location) uses a newer store format: version \(v); this mlstore understands up to \(Repository.formatVersion)",
                               hint: "upgrade mlstore to use this remote")
        }
        state.withLock { $0.opened = true }
    }

    public func refs() throws -> [String: ObjectID] {
        try open(create: false)
        let listed = try client.list(prefix: key("refs/"))
        let names: [String] = listed.compactMap { item in
            let rel = prefix.isEmpty ? item.key : String(item.key.dropFirst(prefix.count + 1))
            // Every shared namespace (heads, tags, stages, runs, models, …); remote-tracking refs never travel.
            guard rel.hasPrefix("refs/"), !rel.hasPrefix("refs/remotes/"), (try? Refs.validate(rel)) != nil else { return nil }
            return rel
        }
        let out = LockedBox<[String: ObjectID]>([:])
        try boundedParallel(count: names.count, width: 8) { i in
            if let (id, _) = try self.readRef(names[i]) { out.withLock { $0[names[i]] = id } }
        }
        return out.withLock { $0 }
    }

    /// A ref's value and ETag, or nil if absent.
    func readRef(_ name: String) throws -> (ObjectID, String?)? {
        guard let (data, etag) = try client.get(key(name)) else { return nil }
        let text = String(decoding: data.prefix(4096), as: UTF8.self).trimmingCharacters(in: " \n\r\t")
        guard let id = ObjectID(hex: text) else {
            throw MLStoreError(.corrupt, "ref \(name) on \(location) is malformed: \(text.prefix(80).debugDescription)", hint: "fix or delete \(url(name))")
        }
        return (id, etag)
    }

    public func defaultBranch() throws -> String? {
        guard let (data, _) = try client.get(key("HEAD")) else { return nil }
        let text = String(decoding: data.prefix(4096), as: UTF8.self).trimmingCharacters(in: " \n")
        return text.hasPrefix("ref: refs/heads/") ? String(text.dropFirst("ref: refs/heads/".count)) : nil
    }

    public func setDefaultBranch(_ branch: String) throws {
        // Created once, by the first push: If-None-Match never replaces an existing HEAD.
        let body = Data("ref: refs/heads/\(branch)\n".utf8)
        if settings.conditionalWrites {
            _ = try client.put(key("HEAD"), body, condition: .absent)
        } else if try client.get(key("HEAD")) == nil {
            _ = try client.put(key("HEAD"), body)
        }
    }

    // MARK: Pack indexes

    /// Lists `objects/` and opens every pack index (downloaded once into the local cache).
    func loadPacks(force: Bool = false) throws {
        if !force, state.withLock({ $0.packsLoaded }) { return }
        let listed = try client.list(prefix: key("objects/"))
        var sizes: [String: Int64] = [:]
        var idxNames: [String] = []
        var loose = Set<ObjectID>()
        for item in listed {
            let rel = prefix.isEmpty ? item.key : String(item.key.dropFirst(prefix.count + 1))
            if rel.hasPrefix("objects/pack/pack-"), rel.hasSuffix(".pack") {
                sizes[String(rel.dropFirst(13).dropLast(5))] = item.size
            } else if rel.hasPrefix("objects/pack/pack-"), rel.hasSuffix(".idx") {
                idxNames.append(String(rel.dropFirst(13).dropLast(4)))
            } else if rel.count == 8 + 64 + 1, let id = ObjectID(hex: rel.dropFirst(8).replacingOccurrences(of: "/", with: "")) {
                loose.insert(id)
            }
        }
        let known = Set(state.withLock { $0.packs.map(\.name) })
        let packSizes = sizes
        let cache = try indexCache()
        let fresh = LockedBox<[RemotePack]>([])
        // Readers use only packs that have an index (the index is uploaded after its pack).
        let wanted = idxNames.filter { !known.contains($0) && packSizes[$0] != nil }.sorted()
        try boundedParallel(count: wanted.count, width: 4) { i in
            let name = wanted[i]
            let path = cache + "/" + name + ".idx"
            var index = try? PackIndex(path: path)
            if let i = index, !i.verifyChecksum() { index = nil }
            if index == nil {
                guard let (data, _) = try self.client.get(self.key("objects/pack/\(name).idx")) else { return }
                let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                try Sys.writeFileAtomically(tmp, Array(data))
                try Sys.rename(tmp, path)
                let opened = try PackIndex(path: path)
                guard opened.verifyChecksum() else {
                    _ = try? Sys.unlink(path)
                    throw MLStoreError(.corrupt, "pack index \(self.url("objects/pack/\(name).idx")) is damaged (checksum mismatch)",
                                       hint: "run `mlstore fsck --remote` on this remote")
                }
                index = opened
            }
            guard let index else { return }
            let offsets = (0..<index.count).map { index.offset(at: $0) }.sorted()
            let pack = RemotePack(name: name, index: index, packSize: packSizes[name] ?? 0, offsets: offsets, packKey: self.key("objects/pack/\(name).pack"))
            fresh.withLock { $0.append(pack) }
        }
        let added = fresh.withLock { $0 }.sorted { $0.name < $1.name }
        state.withLock { s in
            let have = Set(s.packs.map(\.name))
            s.packs += added.filter { !have.contains($0.name) }
            s.loose = loose
            s.packsLoaded = true
        }
    }

    private func locate(_ id: ObjectID) -> (pack: Int, offset: Int64, end: Int64, packSize: Int64)? {
        state.withLock { s in
            for (n, p) in s.packs.enumerated() {
                if let i = p.index.find(id) {
                    let off = p.index.offset(at: i)
                    return (n, off, p.end(of: off), p.packSize)
                }
            }
            return nil
        }
    }

    public func contains(_ id: ObjectID) throws -> Bool {
        try loadPacks()
        return locate(id) != nil || state.withLock { $0.loose.contains(id) }
    }

    // MARK: Reading objects

    public func kind(of id: ObjectID) throws -> ObjectKind {
        if let k = kindHints[id] ?? state.withLock({ $0.recent[id]?.0.kind }) { return k }
        let r = try readEncoded(id)
        if r.payload.count <= 1 << 20 {
            state.withLock { s in
                if s.recentBytes > 64 << 20 {
                    s.recent.removeAll()
                    s.recentBytes = 0
                }
                s.recent[id] = r
                s.recentBytes += r.payload.count + r.object.stored.count
            }
        }
        return r.object.kind
    }

    public func willRead(_ ids: [ObjectID]) throws {
        try loadPacks()
        // Entries of the same pack that lie close together become one ranged GET, in the order first needed.
        var located: [(id: ObjectID, pack: Int, offset: Int64, end: Int64)] = []
        var seen = Set<ObjectID>()
        for id in ids where seen.insert(id).inserted {
            if let l = locate(id) { located.append((id, l.pack, l.offset, l.end)) }
        }
        let firstNeed = Dictionary(located.enumerated().map { ($0.element.id, $0.offset) }, uniquingKeysWith: { a, _ in a })
        let byPlace = located.sorted { ($0.pack, $0.offset) < ($1.pack, $1.offset) }
        var groups: [(pack: Int, start: Int64, end: Int64, ids: [ObjectID], first: Int)] = []
        for e in byPlace {
            if var g = groups.last, g.pack == e.pack, e.offset >= g.end, e.offset - g.end <= Self.segmentGap, e.end - g.start <= Self.segmentLimit {
                g.end = e.end
                g.ids.append(e.id)
                g.first = min(g.first, firstNeed[e.id] ?? 0)
                groups[groups.count - 1] = g
            } else {
                groups.append((e.pack, e.offset, e.end, [e.id], firstNeed[e.id] ?? 0))
            }
        }
        groups.sort { $0.first < $1.first }
        state.withLock { s in
            s.plan = [:]
            s.segments = []
            s.consumedUpTo = 0
            for (n, g) in groups.enumerated() {
                let seg = Segment(pack: g.pack, start: g.start, end: g.end)
                seg.remaining = g.ids.count
                s.segments.append(seg)
                for id in g.ids { s.plan[id] = n }
            }
        }
    }

    private func startSegment(_ seg: Segment, key: String) {
        seg.done.enter()
        networkQueue.async {
            do {
                let data = try self.client.getRange(key, offset: seg.start, length: Int(seg.end - seg.start))
                self.state.withLock { _ in seg.data = data }
            } catch {
                self.state.withLock { _ in seg.error = error }
            }
            seg.done.leave()
        }
    }

    /// The raw bytes of the entry `[offset, end)` of a pack: from a planned segment (fetching it and the
    /// next few if needed), else with a ranged GET of its own.
    private func entryBytes(_ id: ObjectID, pack: Int, offset: Int64, end: Int64) throws -> (PageBuffer, Range<Int>) {
        let packKey = state.withLock { $0.packs[pack].packKey }
        let planned: (Segment, [Segment])? = state.withLock { s in
            guard let n = s.plan[id] else { return nil }
            let seg = s.segments[n]
            guard seg.pack == pack, seg.start <= offset, end <= seg.end else { return nil }
            // Drop what readers have long moved past (entries read elsewhere); start this segment and a few ahead.
            let margin = 8
            if n > s.consumedUpTo {
                for old in max(0, s.consumedUpTo - margin)..<max(0, n - margin) where s.segments[old].started {
                    s.segments[old].data = nil
                }
                s.consumedUpTo = n
            }
            var toStart: [Segment] = []
            for k in n..<min(s.segments.count, n + 1 + Self.readAhead) where !s.segments[k].started {
                s.segments[k].started = true
                toStart.append(s.segments[k])
            }
            return (seg, toStart)
        }
        if let (seg, toStart) = planned {
            for t in toStart {
                let k = state.withLock { $0.packs[t.pack].packKey }
                startSegment(t, key: k)
            }
            seg.done.wait()
            let (data, error): (PageBuffer?, (any Error)?) = state.withLock { s in
                let d = seg.data
                if d != nil {
                    s.plan[id] = nil
                    seg.remaining -= 1
                    if seg.remaining <= 0 { seg.data = nil }
                }
                return (d, seg.error)
            }
            if let error { throw error }
            if let data { return (data, Int(offset - seg.start)..<Int(end - seg.start)) }
            // Already released (read twice): fall through to a read of its own.
        }
        let data = try client.getRange(packKey, offset: offset, length: Int(end - offset))
        return (data, 0..<data.count)
    }

    public func readEncoded(_ id: ObjectID) throws -> (object: EncodedObject, payload: [UInt8]) {
        if let hit = state.withLock({ s -> (EncodedObject, [UInt8])? in
            guard let r = s.recent.removeValue(forKey: id) else { return nil }
            s.recentBytes -= r.1.count + r.0.stored.count
            return r
        }) {
            return hit
        }
        try loadPacks()
        var place = locate(id)
        if place == nil, !state.withLock({ $0.loose.contains(id) }) {
            try loadPacks(force: true)  // published since we listed
            place = locate(id)
        }
        let result: (EncodedObject, [UInt8])
        if let place {
            result = try decodeEntry(id, pack: place.pack, offset: place.offset, end: place.end)
        } else if state.withLock({ $0.loose.contains(id) }) {
            result = try readLoose(id)
        } else {
            throw MLStoreError(.notFound, "object \(id.hex) is not on the remote \(location)")
        }
        kindHints.learn(from: result.0.kind, payload: result.1, id: id)
        return result
    }

    private func decodeEntry(_ id: ObjectID, pack: Int, offset: Int64, end: Int64) throws -> (EncodedObject, [UInt8]) {
        let packURL = state.withLock { "s3://\(bucket)/" + $0.packs[pack].packKey }
        let headerSize = Int64(PackFormat.entryHeaderSize)
        guard offset >= Int64(PackFormat.headerSize), end - offset >= headerSize else {
            throw MLStoreError.corruptObject(id.hex, "the pack is shorter than its index says (truncated?)", where: packURL)
        }
        let (buffer, range): (PageBuffer, Range<Int>)
        do {
            (buffer, range) = try entryBytes(id, pack: pack, offset: offset, end: end)
        } catch let e as MLStoreError where e.code == .corrupt {
            throw MLStoreError.corruptObject(id.hex, e.message, where: packURL)
        }
        return try withExtendedLifetime(buffer) {
            let buf = UnsafeRawBufferPointer(rebasing: buffer.bytes[range])
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: buf[0..<PackFormat.entryHeaderSize]), what: "pack entry")
            let found = ObjectID(try r.bytes(32), at: 0)
            let code = try r.u8()
            let codecByte = try r.u8()
            let payloadSize = try r.u64()
            let storedSize = try r.u64()
            guard found == id else { throw MLStoreError.corruptObject(id.hex, "pack entry holds \(found.hex) instead", where: packURL) }
            guard let kind = ObjectKind(code: code) else { throw MLStoreError.corruptObject(id.hex, "unknown kind code \(code)", where: packURL) }
            guard storedSize == UInt64(buf.count - PackFormat.entryHeaderSize), payloadSize <= UInt64(ObjectCodec.maxPayloadSize) else {
                throw MLStoreError.corruptObject(id.hex, "entry sizes do not match the pack index (truncated or damaged pack)", where: packURL)
            }
            let stored = UnsafeRawBufferPointer(rebasing: buf[PackFormat.entryHeaderSize...])
            let payload = try ObjectCodec.decode(id: id, kind: kind, payloadSize: Int(payloadSize), codec: codecByte, stored: stored, location: packURL)
            guard let codec = Codec(rawValue: codecByte) else {
                throw MLStoreError(.unsupported, "object \(id.hex) uses unknown codec \(codecByte)", hint: "upgrade mlstore")
            }
            return (EncodedObject(id: id, kind: kind, payloadSize: Int(payloadSize), codec: codec, stored: Array(stored)[...]), payload)
        }
    }

    private func readLoose(_ id: ObjectID) throws -> (EncodedObject, [UInt8]) {
        let rel = "objects/" + id.hex.prefix(2) + "/" + id.hex.dropFirst(2)
        guard let (data, _) = try client.get(key(rel)) else {
            throw MLStoreError(.notFound, "object \(id.hex) is not on the remote \(location)")
        }
        // A loose object: "mlso" version codec kind reserved u64 payloadSize, stored bytes (spec/objects.md §4).
        let where_ = url(rel)
        return try data.withUnsafeBytes { buf -> (EncodedObject, [UInt8]) in
            var r = ByteReader(buf, what: "loose object \(where_)")
            guard buf.count >= 16, Array(try r.bytes(4)) == Array("mlso".utf8) else {
                throw MLStoreError.corruptObject(id.hex, "bad loose-object header", where: where_)
            }
            let version = try r.u8()
            guard version == 1 else { throw MLStoreError(.unsupported, "\(where_) has format version \(version)", hint: "upgrade mlstore") }
            let codecByte = try r.u8()
            let code = try r.u8()
            _ = try r.u8()
            let size = try r.u64()
            guard let kind = ObjectKind(code: code), let codec = Codec(rawValue: codecByte), size <= UInt64(ObjectCodec.maxPayloadSize) else {
                throw MLStoreError.corruptObject(id.hex, "bad loose-object header", where: where_)
            }
            let stored = UnsafeRawBufferPointer(rebasing: buf[16...])
            let payload = try ObjectCodec.decode(id: id, kind: kind, payloadSize: Int(size), codec: codecByte, stored: stored, location: where_)
            return (EncodedObject(id: id, kind: kind, payloadSize: Int(size), codec: codec, stored: Array(stored)[...]), payload)
        }
    }


    // MARK: Uploading

    /// Removes work directories (`s3-push-<pid>-…`, `s3-fsck-<pid>-…`) of processes that no longer run
    /// (a push killed mid-way).
    private func removeStaleWork() {
        guard let names = try? Sys.listDirectory(scratchBase) else { return }
        for (name, _) in names where name.hasPrefix("s3-push-") || name.hasPrefix("s3-fsck-") {
            let parts = name.split(separator: "-")
            guard parts.count >= 3, let pid = Int32(parts[2]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { TempRemoval.removeTree(scratchBase + "/" + name) }
        }
    }

    public func upload(_ produce: ((EncodedObject) throws -> Void) throws -> Void) throws -> ObjectBatch.Stats {
        try open(create: true)
        try loadPacks()
        removeStaleWork()
        let dir = try scratch + "/s3-push-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { TempRemoval.removeTree(dir) }
        var stats = ObjectBatch.Stats()
        var seen = Set<ObjectID>()
        var writer: PackWriter?
        do {
            try produce { obj in
                if try seen.contains(obj.id) || self.contains(obj.id) {
                    stats.objectsSkipped += 1
                    return
                }
                seen.insert(obj.id)
                stats.objectsWritten += 1
                stats.storedBytes += Int64(obj.stored.count)
                stats.payloadBytes += Int64(obj.payloadSize)
                if writer == nil { writer = try PackWriter(directory: dir, durable: false) }
                try writer?.add(obj)
                if let w = writer, w.offset >= ObjectBatch.packByteLimit {
                    writer = nil
                    try self.publish(try w.finish(), from: dir)
                }
            }
            if let w = writer {
                writer = nil
                try publish(try w.finish(), from: dir)
            }
        } catch {
            writer?.abandon()
            throw error
        }
        return stats
    }

    /// Uploads a finished pack, then its index (each only if absent: an existing pack of the same name has
    /// the same entries), and starts using the index.
    private func publish(_ name: String, from dir: String) throws {
        let packPath = dir + "/" + name + ".pack", idxPath = dir + "/" + name + ".idx"
        try uploadFile(key("objects/pack/\(name).pack"), path: packPath)
        let idx = try Sys.readFile(idxPath)
        let condition: S3Client.Condition = settings.conditionalWrites ? .absent : .none
        _ = try client.put(key("objects/pack/\(name).idx"), Data(idx), condition: condition)
        let size = try Sys.lstat(packPath).size
        _ = try Sys.unlink(packPath)
        let cached = try indexCache() + "/" + name + ".idx"
        try Sys.writeFileAtomically(cached, idx)
        _ = try Sys.unlink(idxPath)
        let index = try PackIndex(path: cached)
        let offsets = (0..<index.count).map { index.offset(at: $0) }.sorted()
        state.withLock { s in
            if !s.packs.contains(where: { $0.name == name }) {
                s.packs.append(RemotePack(name: name, index: index, packSize: size, offsets: offsets, packKey: key("objects/pack/\(name).pack")))
            }
        }
    }

    /// PUTs a file: in one request up to 64 MiB, else as a multipart upload of 16 MiB parts, four at a
    /// time, read from the file part by part (memory stays bounded). SHA-256 checksums throughout.
    func uploadFile(_ key: String, path: String) throws {
        let size = try Sys.lstat(path).size
        let condition: S3Client.Condition = settings.conditionalWrites ? .absent : .none
        if size <= Self.multipartThreshold {
            let digest = try SHA256.hash(file: path).digest
            _ = try client.put(key, file: path, sha256: digest, condition: condition)
            return
        }
        let partSize = max(Int64(Self.partSize), (size + 9_999) / 10_000)
        let count = Int((size + partSize - 1) / partSize)
        let uploadID = try client.createMultipartUpload(key)
        let parts = LockedBox<[S3Client.Part]>([])
        do {
            let fd = try Sys.open(path, O_RDONLY)
            defer { Sys.close(fd) }
            try boundedParallel(count: count, width: Self.parallelParts) { i in
                let start = Int64(i) * partSize
                let length = Int(min(partSize, size - start))
                // Each part is copied to a file of its own (page cache, not process memory: URLSession streams
                // files but copies in-memory bodies several times), hashed on the way.
                let partPath = path + ".part-\(i + 1)"
                defer { _ = try? Sys.unlink(partPath) }
                let digest = try Self.copyRange(fd, from: path, offset: start, length: length, to: partPath)
                let part = try self.client.uploadPart(key, uploadID: uploadID, number: i + 1, file: partPath, sha256: digest)
                parts.withLock { $0.append(part) }
            }
            let outcome = try client.completeMultipartUpload(key, uploadID: uploadID, parts: parts.withLock { $0 }, condition: condition)
            if outcome == .preconditionFailed { client.abortMultipartUpload(key, uploadID: uploadID) }
        } catch {
            client.abortMultipartUpload(key, uploadID: uploadID)
            throw error
        }
    }

    /// Copies `length` bytes at `offset` of an open file into a new file; returns their SHA-256.
    static func copyRange(_ fd: Int32, from path: String, offset: Int64, length: Int, to dest: String) throws -> [UInt8] {
        let out = try Sys.open(dest, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
        defer { Sys.close(out) }
        let h = SHA256()
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        var done = 0
        while done < length {
            let want = min(buf.count, length - done)
            let n = try buf.withUnsafeMutableBytes { try Sys.pread(fd, $0.baseAddress!, want, offset: offset + Int64(done), path: path) }
            guard n > 0 else { throw MLStoreError(.io, "short read of \(path)") }
            try buf.withUnsafeBytes {
                let chunk = UnsafeRawBufferPointer(rebasing: $0[0..<n])
                h.update(chunk)
                try Sys.write(out, chunk, path: dest)
            }
            done += n
        }
        return h.finalize()
    }

    // MARK: Refs

    public func updateRef(_ name: String, to new: ObjectID?, expecting: RefExpectation, actor: Signature, message: String) throws {
        try Refs.validate(name)
        let k = key(name)
        var attempts = 0
        while true {
            attempts += 1
            let current = try readRef(name)
            switch expecting {
            case .any: break
            case .absent:
                if let (cur, _) = current {
                    throw MLStoreError(.conflict, "\(name) already exists on \(location) (at \(cur.short))", hint: "choose another name, or delete it first")
                }
            case .value(let v):
                if current?.0 != v {
                    throw MLStoreError(.conflict, "\(name) moved: expected \(v.short), found \(current?.0.short ?? "nothing")",
                                       hint: "someone else updated it meanwhile; look at the new value and run the command again")
                }
            }
            var condition: S3Client.Condition = .none
            if settings.conditionalWrites {
                if let (_, etag) = current {
                    guard let etag else { throw MLStoreError(.unsupported, "\(client.endpoint) returned no ETag for \(url(name)); refs cannot be updated safely") }
                    condition = .etag(etag)
                } else {
                    condition = .absent
                }
            }
            let outcome: S3Client.PutOutcome
            if let new {
                outcome = try client.put(k, Data((new.hex + "\n").utf8), condition: condition)
            } else if current == nil {
                outcome = .stored(etag: nil)
            } else {
                outcome = try client.delete(k, condition: condition)
            }
            if outcome == .preconditionFailed {
                // Someone moved it between our read and our write.
                if case .any = expecting, attempts < 5 { continue }
                let now = (try? readRef(name))??.0
                throw MLStoreError(.conflict, "\(name) moved: expected \(current?.0.short ?? "nothing"), found \(now?.short ?? "nothing")",
                                   hint: "someone else updated it meanwhile; look at the new value and run the command again")
            }
            appendLog(name, old: current?.0, new: new, actor: actor, message: message)
            return
        }
    }

    /// Remote reflog: one immutable object per update, `logs/<ref>/<time ns>-<random>`, holding the same line a
    /// directory remote appends (S3 has no append). Best effort: the ref has already moved.
    private func appendLog(_ name: String, old: ObjectID?, new: ObjectID?, actor: Signature, message: String) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let stamp = String(format: "%020lld", Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
        let line = "\(old?.hex ?? Refs.zero) \(new?.hex ?? Refs.zero) \(actor.encoded)\t\(message.replacingNewlines)\n"
        _ = try? client.put(key("logs/\(name)/\(stamp)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"), Data(line.utf8))
    }

    // MARK: Capability probe

    /// Checks that the store honours `If-None-Match: *` and `If-Match` on PUT (what makes ref updates
    /// safe with several pushers), with a scratch object under the prefix that is deleted afterwards.
    /// - Returns: nil if it does; otherwise what went wrong.
    /// - Throws: on access errors (403 names the bucket and endpoint, a missing bucket is `.notFound`).
    public func probeConditionalWrites() throws -> String? {
        // A listing first: a missing bucket or bad credentials fail here, before anything is written (some
        // stores create a missing bucket on the first PUT).
        _ = try client.list(prefix: key("refs/"), maxKeys: 1)
        let probe = key(".mlstore-probe-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        defer { _ = try? client.delete(probe) }
        func attempt(_ body: String, _ condition: S3Client.Condition) throws -> S3Client.PutOutcome? {
            do {
                return try client.put(probe, Data(body.utf8), condition: condition)
            } catch let e as MLStoreError where e.code == .io && (e.message.contains("HTTP 501") || e.message.contains("HTTP 400")) {
                return nil  // NotImplemented / InvalidRequest: conditions not supported
            }
        }
        guard case .stored(let etag)? = try attempt("1", .absent) else { return "a PUT with If-None-Match: * was refused" }
        guard try attempt("2", .absent) == .preconditionFailed else {
            return "a PUT with If-None-Match: * over an existing object succeeded (the condition was ignored)"
        }
        guard try attempt("3", .etag("\"00000000000000000000000000000000\"")) == .preconditionFailed else {
            return "a PUT with a stale If-Match succeeded (the condition was ignored)"
        }
        if let etag {
            guard case .stored? = try attempt("4", .etag(etag)) else { return "a PUT with the current ETag in If-Match was refused" }
        }
        return nil
    }

    public static func conditionalWritesRefusal(_ location: String, endpoint: String, reason: String) -> MLStoreError {
        MLStoreError(.unsupported, "\(location) at \(endpoint) does not support conditional writes: \(reason)",
                     hint: "without them two people pushing at the same time can overwrite each other's ref updates and lose commits. Use a store that supports If-Match/If-None-Match (AWS S3, SeaweedFS, MinIO, Ceph RGW …), or add the remote with --unsafe-no-conditional-writes if only one person ever pushes to it")
    }

    // MARK: fsck

    public func fsck(progress: ProgressReporter?) throws -> FsckReport {
        try open(create: false)
        let dir = try scratch + "/s3-fsck-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        defer { TempRemoval.removeTree(dir) }
        // A local copy of the remote in the bare-store layout, then the local checks on it.
        let repo = try Repository.initializeBare(at: dir)
        let listed = try client.list(prefix: prefix.isEmpty ? "" : prefix + "/")
        var notes: [String] = []
        var files: [(rel: String, size: Int64)] = []
        for item in listed {
            let rel = prefix.isEmpty ? item.key : String(item.key.dropFirst(prefix.count + 1))
            if rel.hasPrefix("objects/") || rel.hasPrefix("refs/") || rel == "HEAD" {
                files.append((rel, item.size))
            } else if rel.hasPrefix(".mlstore-probe-") {
                notes.append("leftover probe object \(url(rel)) (from an interrupted `remote add`)")
            }
        }
        let toGet = files
        progress?.begin("downloading", totalBytes: toGet.reduce(0) { $0 + max(0, $1.size) })
        try boundedParallel(count: toGet.count, width: 4) { i in
            let f = toGet[i]
            let path = dir + "/" + f.rel
            try Sys.mkdirs(Path.parent(path))
            _ = try? Sys.unlink(path)
            guard try self.client.download(self.key(f.rel), to: path) else { return }
            progress?.advance(bytes: max(0, f.size))
        }
        progress?.end()
        try repo.objects.reloadPacks()
        var report = try repo.fsck(progress: progress)
        func fix(_ s: String) -> String { s.replacingOccurrences(of: dir, with: location) }
        report.problems = report.problems.map { FsckReport.Problem(subject: fix($0.subject), message: fix($0.message)) }
        report.notes = report.notes.map(fix) + notes
        if let uploads = try? client.listMultipartUploads(prefix: prefix.isEmpty ? "" : prefix + "/") {
            for u in uploads {
                report.notes.append("unfinished multipart upload of s3://\(bucket)/\(u.key) started \(u.initiated) (an interrupted push; abort it, or let a lifecycle rule expire it)")
            }
        }
        return report
    }
}

/// Network waits run here, not on the global pool: a custom queue gets a thread even when blocked workers
/// fill the pool (GCD would otherwise add threads slowly, stalling transfers).
let networkQueue = DispatchQueue(label: "mlstore.io", attributes: .concurrent)

/// Runs `work(i)` for i in 0..<count with at most `width` running at once (network-bound work); the first
/// error is rethrown after the running ones finish, and stops new ones from starting.
func boundedParallel(count: Int, width: Int, _ work: @escaping @Sendable (Int) throws -> Void) throws {
    guard count > 0 else { return }
    if count == 1 || width <= 1 {
        for i in 0..<count { try work(i) }
        return
    }
    let slots = DispatchSemaphore(value: width)
    let group = DispatchGroup()
    let firstError = LockedBox<(any Error)?>(nil)
    for i in 0..<count {
        slots.wait()
        if firstError.withLock({ $0 != nil }) {
            slots.signal()
            break
        }
        group.enter()
        networkQueue.async {
            do { try work(i) } catch { firstError.withLock { if $0 == nil { $0 = error } } }
            slots.signal()
            group.leave()
        }
    }
    group.wait()
    if let e = firstError.withLock({ $0 }) { throw e }
}

/// A value behind a lock, shareable with escaping closures.
final class LockedBox<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
