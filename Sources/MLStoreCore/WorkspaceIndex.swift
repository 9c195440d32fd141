import MLStoreBasics

/// One tracked path of the workspace index: what was staged, and the stat data that proves the
/// workspace file still has that content (spec/objects.md §Workspace index).
public struct IndexEntry: Sendable, Equatable {
    public var path: String  // workspace-relative, '/'-separated
    public var kind: TreeEntry.Kind  // file, chunked or symlink
    public var mode: UInt32
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64
    public var inode: UInt64
    public var id: ObjectID

    public init(path: String, kind: TreeEntry.Kind, mode: UInt32, size: Int64, mtimeNs: Int64, ctimeNs: Int64, inode: UInt64, id: ObjectID) {
        self.path = path
        self.kind = kind
        self.mode = mode
        self.size = size
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
        self.inode = inode
        self.id = id
    }

    init(path: String, imported: ImportedFile, stat: FileStat) {
        self.init(
            path: path, kind: imported.kind, mode: IndexEntry.mode(for: imported.kind, stat: stat), size: imported.size,
            mtimeNs: stat.mtimeNs, ctimeNs: stat.ctimeNs, inode: stat.inode, id: imported.id)
    }

    static func mode(for kind: TreeEntry.Kind, stat: FileStat) -> UInt32 {
        switch kind {
        case .symlink: 0o777
        case .directory: 0o755
        case .file, .chunked: stat.isExecutable ? 0o755 : 0o644
        }
    }

    /// True if `stat` matches what was recorded (size, times, inode, type, executable bit).
    func statMatches(_ st: FileStat) -> Bool {
        let typeOK = kind == .symlink ? st.type == .symlink : st.type == .regular
        return typeOK && st.size == size && st.mtimeNs == mtimeNs && st.ctimeNs == ctimeNs && st.inode == inode
            && (kind == .symlink || IndexEntry.mode(for: kind, stat: st) == mode)
    }

    /// An entry with no stat data (forces a re-hash on the next status).
    var smudged: IndexEntry {
        var e = self
        e.mtimeNs = 0
        e.ctimeNs = 0
        e.inode = 0
        return e
    }
}

/// The staging area: sorted entries plus the directories the user added as units ("tracked roots").
public struct WorkspaceIndex: Sendable, Equatable {
    static let magic: [UInt8] = Array("MLSX".utf8)
    static let version: UInt32 = 1

    public private(set) var entries: [IndexEntry] = []
    public var roots: Set<String> = []
    /// mtime of the index file when it was read: entries modified at or after it are "racy".
    public var fileMtimeNs: Int64 = 0
    private var positions: [String: Int] = [:]

    public init() {}

    public init(entries: [IndexEntry], roots: Set<String>) {
        self.roots = roots
        replaceAll(entries)
    }

    public subscript(path: String) -> IndexEntry? {
        positions[path].map { entries[$0] }
    }

    public mutating func replaceAll(_ list: [IndexEntry]) {
        entries = list.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        positions = Dictionary(entries.enumerated().map { ($1.path, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Adds or replaces entries, and removes the given paths.
    public mutating func update(set: [IndexEntry], remove: Set<String> = []) {
        var map = Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        for p in remove { map.removeValue(forKey: p) }
        for e in set { map[e.path] = e }
        replaceAll(Array(map.values))
    }

    /// Entries at `prefix` or below it (a file path or a directory).
    public func entries(under prefix: String) -> [IndexEntry] {
        if prefix.isEmpty { return entries }
        return entries.filter { $0.path == prefix || $0.path.hasPrefix(prefix + "/") }
    }

    /// Racy: the file's mtime is not older than the index file, so the stat data cannot prove the
    /// content is unchanged (git's racy-clean rule).
    func isRacy(_ e: IndexEntry) -> Bool { e.mtimeNs >= fileMtimeNs }

    // MARK: Encoding

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + entries.count * 96)
        w.raw(Self.magic)
        w.u32(Self.version)
        let sortedRoots = roots.sorted()
        w.u32(UInt32(sortedRoots.count))
        for r in sortedRoots {
            w.u16(UInt16(r.utf8.count))
            w.string(r)
        }
        w.u32(UInt32(entries.count))
        for e in entries {
            w.u16(UInt16(e.path.utf8.count))
            w.string(e.path)
            w.u8(UInt8(ascii: e.kind.rawValue.unicodeScalars.first!))
            w.u16(UInt16(e.mode))
            w.i64(e.size)
            w.i64(e.mtimeNs)
            w.i64(e.ctimeNs)
            w.u64(e.inode)
            e.id.append(to: &w.bytes)
        }
        w.raw(SHA256.hash(w.bytes))
        return w.bytes
    }

    public init(decoding bytes: [UInt8], path: String) throws {
        func bad(_ detail: String) -> MLStoreError {
            MLStoreError(.corrupt, "the workspace index \(path) is damaged: \(detail)", hint: "remove it and run `mlstore add` on your data again (no stored object is lost)")
        }
        guard bytes.count >= 44 else { throw bad("too short") }
        let body = Array(bytes[0..<(bytes.count - 32)])
        guard SHA256.hash(body) == Array(bytes[(bytes.count - 32)...]) else { throw bad("checksum mismatch") }
        var list: [IndexEntry] = []
        var roots = Set<String>()
        try body.withUnsafeBytes { buf in
            var r = ByteReader(buf, what: "workspace index")
            guard Array(try r.bytes(4)) == Self.magic else { throw bad("bad magic") }
            let v = try r.u32()
            guard v == Self.version else {
                throw MLStoreError(.unsupported, "the workspace index has version \(v); this mlstore reads version 1", hint: "upgrade mlstore")
            }
            for _ in 0..<(try r.u32()) {
                let n = Int(try r.u16())
                roots.insert(String(decoding: try r.bytes(n), as: UTF8.self))
            }
            let count = try r.u32()
            list.reserveCapacity(Int(min(count, 1 << 24)))
            for _ in 0..<count {
                let n = Int(try r.u16())
                let p = String(decoding: try r.bytes(n), as: UTF8.self)
                let k = try r.u8()
                guard let kind = TreeEntry.Kind(rawValue: Character(Unicode.Scalar(k))), kind != .directory else {
                    throw bad("entry \(p) has kind \(k)")
                }
                let mode = UInt32(try r.u16())
                let size = try r.i64()
                let mt = try r.i64()
                let ct = try r.i64()
                let ino = try r.u64()
                let id = ObjectID(try r.bytes(32), at: 0)
                list.append(IndexEntry(path: p, kind: kind, mode: mode, size: size, mtimeNs: mt, ctimeNs: ct, inode: ino, id: id))
            }
            guard r.atEnd else { throw bad("trailing bytes") }
        }
        self.init(entries: list, roots: roots)
    }

    /// Reads the index (an empty one if there is none yet).
    public static func load(_ repo: Repository) throws -> WorkspaceIndex {
        guard let st = try Sys.lstatIfExists(repo.indexPath) else { return WorkspaceIndex() }
        var idx = try WorkspaceIndex(decoding: try Sys.readFile(repo.indexPath), path: repo.indexPath)
        idx.fileMtimeNs = st.mtimeNs
        return idx
    }

    /// Writes the index under its lock (temp + fsync + rename).
    public func save(_ repo: Repository, lock: LockFile) throws {
        try lock.write(encoded())
        try lock.commit()
    }
}
