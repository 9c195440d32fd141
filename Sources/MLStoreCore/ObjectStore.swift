import MLStoreBasics
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The object database: loose objects plus packs, read with verification, written crash-safely.
///
/// ```swift
/// let store = try ObjectStore(directory: "/repo/.mlstore/objects")
/// let id = try store.write(kind: .blob, payload: Array("abc".utf8))
/// let (kind, bytes) = try store.read(id)   // verified against id
/// ```
public final class ObjectStore: @unchecked Sendable {
    public let directory: String
    let loose: LooseObjects
    let packDirectory: String
    private let packs = Mutex<[PackReader]>([])
    /// Content reads noted for the size-bounded cache's LRU order (Cache.swift); nil unless enabled.
    let accessLog: AccessLog?
    /// Packs already touched by ``freshen(_:)`` in this process.
    private let freshenedPacks = Mutex<Set<String>>([])

    public init(directory: String) throws {
        self.directory = directory
        loose = LooseObjects(directory: directory)
        packDirectory = directory + "/pack"
        accessLog = AccessLog.open(storeDirectory: Path.parent(directory))
        try reloadPacks()
    }

    /// Marks an object that a writer found already stored as recently written (its loose file's or pack's
    /// mtime), so a concurrent `gc` does not delete it as old garbage just as it is referenced again
    /// (GC.swift). Best effort.
    func freshen(_ id: ObjectID) {
        if let (p, _) = locate(id) {
            guard freshenedPacks.withLock({ $0.insert(p.name).inserted }) else { return }
            _ = utimensat(AT_FDCWD, p.packPath, nil, 0)
        } else {
            _ = utimensat(AT_FDCWD, loose.path(id), nil, 0)
        }
    }

    /// Re-reads the pack directory (after this or another process published packs).
    public func reloadPacks() throws {
        guard (try Sys.lstatIfExists(packDirectory)) != nil else { return }
        let names = try Sys.listDirectory(packDirectory).map(\.name)
            .filter { $0.hasPrefix("pack-") && $0.hasSuffix(".idx") }
            .map { String($0.dropLast(4)) }
        let current = packs.withLock { $0 }
        var byName = Dictionary(current.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var next: [PackReader] = []
        for name in names.sorted() {
            if let p = byName.removeValue(forKey: name) {
                next.append(p)
            } else if (try? Sys.lstatIfExists(packDirectory + "/" + name + ".pack")) != nil {
                next.append(try PackReader(directory: packDirectory, name: name))
            }
        }
        packs.withLock { $0 = next }
    }

    var packReaders: [PackReader] { packs.withLock { $0 } }

    private func locate(_ id: ObjectID) -> (PackReader, Int64)? {
        for p in packReaders {
            if let i = p.index.find(id) { return (p, p.index.offset(at: i)) }
        }
        return nil
    }

    /// True if the object is stored (loose or packed). Does not verify it.
    public func contains(_ id: ObjectID) -> Bool {
        locate(id) != nil || loose.contains(id)
    }

    /// Reads and verifies an object.
    /// - Throws: `.notFound` if absent, `.corrupt` if it fails verification (the message names the id).
    public func read(_ id: ObjectID) throws -> (kind: ObjectKind, payload: [UInt8]) {
        if let (p, off) = locate(id) { return try p.read(at: off, id: id) }
        if let r = try loose.read(id) { return r }
        try reloadPacks()
        if let (p, off) = locate(id) { return try p.read(at: off, id: id) }
        throw MLStoreError(
            .notFound, "object \(id.hex) is not in the store",
            hint: "the store may be incomplete; fetch it from a remote or run `mlstore fsck`")
    }

    /// Reads an object with its stored encoding (for copying between stores without re-encoding);
    /// the payload is decoded and verified against the id.
    public func readEncoded(_ id: ObjectID) throws -> (object: EncodedObject, payload: [UInt8]) {
        func fromPack(_ p: PackReader, _ off: Int64) throws -> (EncodedObject, [UInt8]) {
            let (h, stored) = try p.readStored(at: off, id: id)
            let payload = try stored.withUnsafeBytes {
                try ObjectCodec.decode(id: id, kind: h.kind, payloadSize: h.payloadSize, codec: h.codec, stored: $0, location: p.packPath)
            }
            guard let codec = Codec(rawValue: h.codec) else { throw MLStoreError(.unsupported, "object \(id.hex) uses unknown codec \(h.codec)") }
            return (EncodedObject(id: id, kind: h.kind, payloadSize: h.payloadSize, codec: codec, stored: stored[...]), payload)
        }
        if let (p, off) = locate(id) { return try fromPack(p, off) }
        if let r = try loose.readEncoded(id) { return r }
        try reloadPacks()
        if let (p, off) = locate(id) { return try fromPack(p, off) }
        throw MLStoreError(.notFound, "object \(id.hex) is not in the store at \(directory)")
    }

    /// Reads an object that must be of `kind`.
    public func read(_ id: ObjectID, as kind: ObjectKind) throws -> [UInt8] {
        let (k, payload) = try read(id)
        guard k == kind else {
            throw MLStoreError(.usage, "object \(id.short) is a \(k.rawValue), not a \(kind.rawValue)")
        }
        if k == .blob || k == .chunked { accessLog?.note(id) }
        return payload
    }

    /// Kind and payload size, without decoding.
    public func info(_ id: ObjectID) throws -> (kind: ObjectKind, size: Int) {
        if let (p, off) = locate(id) {
            let h = try p.header(at: off, expecting: id)
            return (h.kind, h.payloadSize)
        }
        if let r = try loose.info(id) { return r }
        try reloadPacks()
        if let (p, off) = locate(id) {
            let h = try p.header(at: off, expecting: id)
            return (h.kind, h.payloadSize)
        }
        throw MLStoreError(.notFound, "object \(id.hex) is not in the store")
    }

    /// Writes one object as a loose file (for small writes); returns its id.
    @discardableResult
    public func write(kind: ObjectKind, payload: [UInt8]) throws -> ObjectID {
        let obj = ObjectCodec.encode(kind: kind, payload: payload)
        if !contains(obj.id) { try loose.write(obj) } else { freshen(obj.id) }
        return obj.id
    }

    func writeLoose(_ obj: EncodedObject) throws {
        if !contains(obj.id) { try loose.write(obj) } else { freshen(obj.id) }
    }

    /// A bulk writer: objects go to a pack (or loose files if few), published by ``ObjectBatch/commit()``.
    /// With `packOnly`, even a few objects go to a pack (one atomic publication).
    public func batch(packOnly: Bool = false) -> ObjectBatch { ObjectBatch(store: self, packOnly: packOnly) }

    /// Resolves a full id or a unique prefix of at least 4 hex digits.
    public func resolve(prefix text: String) throws -> ObjectID {
        let p = text.lowercased()
        if let id = ObjectID(hex: p) { return id }
        guard p.count >= 4, p.count < 64, Hex.isHex(p) else {
            throw MLStoreError(
                .usage, "'\(text)' is not an object id", hint: "give a full id or a unique prefix of at least 4 hex digits")
        }
        var found = Set<ObjectID>()
        for pack in packReaders { found.formUnion(pack.index.matching(prefix: p)) }
        let dir = directory + "/" + p.prefix(2)
        if let names = try? Sys.listDirectory(dir) {
            for (n, _) in names where (p.prefix(2) + n).hasPrefix(p) {
                if let id = ObjectID(hex: p.prefix(2) + n) { found.insert(id) }
            }
        }
        if found.count == 1 { return found.first! }
        if found.isEmpty { throw MLStoreError(.notFound, "no object id starts with \(p)", hint: "check the id; `mlstore write-tree` prints the staged tree") }
        let list = found.sorted().prefix(10).map { "  \($0.hex)" }.joined(separator: "\n")
        throw MLStoreError(
            .usage, "object prefix \(p) is ambiguous; it matches \(found.count) objects:\n\(list)",
            hint: "give more hex digits")
    }

    /// Every stored id with where it lives (for fsck and gc).
    public func allObjects() throws -> [(id: ObjectID, location: String)] {
        var out: [(ObjectID, String)] = []
        for p in packReaders {
            for i in 0..<p.index.count { out.append((p.index.id(at: i), p.packPath)) }
        }
        for id in try loose.all() { out.append((id, loose.path(id))) }
        return out
    }
}

/// Collects objects written by one command into a pack (or loose files when there are few), and
/// publishes them atomically at ``commit()``. Thread-safe; objects already stored are skipped.
public final class ObjectBatch: @unchecked Sendable {
    public struct Stats: Sendable {
        public var objectsWritten = 0
        public var objectsSkipped = 0
        public var storedBytes: Int64 = 0
        public var payloadBytes: Int64 = 0
    }

    /// Up to this many objects (and bytes) stay in memory and become loose files; beyond, a pack is used.
    static let looseObjectLimit = 32
    static let looseByteLimit = 1 << 20
    static let packByteLimit: Int64 = 1 << 30

    let store: ObjectStore
    let packOnly: Bool
    private struct State {
        var pending: [EncodedObject] = []
        var pendingBytes = 0
        var seen = Set<ObjectID>()
        var pack: PackWriter?
        var published: [String] = []
        var stats = Stats()
    }
    private let state = Mutex<State>(State())

    init(store: ObjectStore, packOnly: Bool = false) {
        self.store = store
        self.packOnly = packOnly
    }

    public var stats: Stats { state.withLock { $0.stats } }

    /// Adds an encoded object unless it is already stored or already in this batch.
    public func add(_ obj: EncodedObject) throws {
        try state.withLock { s in
            if s.seen.contains(obj.id) || store.contains(obj.id) {
                if !s.seen.contains(obj.id) { store.freshen(obj.id) }
                s.stats.objectsSkipped += 1
                return
            }
            s.seen.insert(obj.id)
            s.stats.objectsWritten += 1
            s.stats.storedBytes += Int64(obj.stored.count)
            s.stats.payloadBytes += Int64(obj.payloadSize)
            if let pack = s.pack {
                try pack.add(obj)
                if pack.offset >= Self.packByteLimit {
                    s.published.append(try pack.finish())
                    s.pack = nil
                    s.pack = try PackWriter(directory: store.packDirectory)
                }
                return
            }
            s.pending.append(obj)
            s.pendingBytes += obj.stored.count
            if packOnly || s.pending.count > Self.looseObjectLimit || s.pendingBytes > Self.looseByteLimit {
                let pack = try PackWriter(directory: store.packDirectory)
                for o in s.pending { try pack.add(o) }
                s.pending.removeAll()
                s.pack = pack
            }
        }
    }

    /// Encodes and adds a payload; returns its id.
    @discardableResult
    public func add(kind: ObjectKind, payload: [UInt8]) throws -> ObjectID {
        let obj = ObjectCodec.encode(kind: kind, payload: payload)
        try add(obj)
        return obj.id
    }

    /// True if the object is stored or pending in this batch.
    public func contains(_ id: ObjectID) -> Bool {
        state.withLock { $0.seen.contains(id) } || store.contains(id)
    }

    /// Publishes everything added: the pack (then its index), or the loose files.
    public func commit() throws {
        try state.withLock { s in
            if let pack = s.pack {
                do {
                    s.published.append(try pack.finish())
                } catch {
                    pack.abandon()
                    throw error
                }
                s.pack = nil
            }
            for o in s.pending { try store.writeLoose(o) }
            s.pending.removeAll()
        }
        try store.reloadPacks()
    }

    /// Drops unpublished work (a temp pack file is removed).
    public func abandon() {
        state.withLock { s in
            s.pack?.abandon()
            s.pack = nil
            s.pending.removeAll()
        }
    }
}
