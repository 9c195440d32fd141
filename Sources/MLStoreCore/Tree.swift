import MLStoreBasics

/// One entry of a tree (spec/objects.md §Tree).
public struct TreeEntry: Sendable, Equatable {
    public enum Kind: Character, Sendable {
        case file = "f"  // blob
        case chunked = "c"  // chunked file
        case symlink = "l"  // blob holding the link target
        case directory = "d"  // subtree

        /// The kind of object the entry's id must name.
        public var objectKind: ObjectKind {
            switch self {
            case .file, .symlink: .blob
            case .chunked: .chunked
            case .directory: .tree
            }
        }
    }

    public var kind: Kind
    /// 0o644 or 0o755 for files, 0o777 for symlinks, 0o755 for directories.
    public var mode: UInt32
    /// File size; for a directory, the total size of the files below it.
    public var size: Int64
    public var name: String
    public var id: ObjectID

    public init(kind: Kind, mode: UInt32, size: Int64, name: String, id: ObjectID) {
        self.kind = kind
        self.mode = mode
        self.size = size
        self.name = name
        self.id = id
    }

    public var isFile: Bool { kind == .file || kind == .chunked }
    public var isExecutable: Bool { mode == 0o755 && isFile }

    /// Checks a single path component: 1–255 bytes, no NUL or `/`, not `.`, `..` or `.mlstore`.
    public static func validateName(_ name: String) throws {
        let bytes = name.utf8
        guard !bytes.isEmpty, bytes.count <= 255 else {
            throw MLStoreError(.unsafePath, "tree entry name '\(name)' must be 1 to 255 bytes long")
        }
        guard !bytes.contains(0), !bytes.contains(UInt8(ascii: "/")) else {
            throw MLStoreError(.unsafePath, "tree entry name \(name.debugDescription) contains NUL or '/'")
        }
        guard name != ".", name != "..", name != ".mlstore" else {
            throw MLStoreError(.unsafePath, "tree entry name '\(name)' is not allowed (., .. and .mlstore are reserved)")
        }
        guard String(decoding: bytes, as: UTF8.self) == name, name.utf8.elementsEqual(bytes) else {
            throw MLStoreError(.unsafePath, "tree entry name is not valid UTF-8")
        }
    }
}

/// A directory listing: entries sorted bytewise by name, unique.
public struct Tree: Sendable, Equatable {
    public private(set) var entries: [TreeEntry]

    /// Builds a tree, sorting entries and rejecting bad or duplicate names.
    public init(entries: [TreeEntry]) throws {
        let sorted = entries.sorted { Self.less($0.name, $1.name) }
        for (i, e) in sorted.enumerated() {
            try TreeEntry.validateName(e.name)
            if i > 0 && sorted[i - 1].name == e.name {
                throw MLStoreError(.usage, "tree has two entries named '\(e.name)'")
            }
        }
        self.entries = sorted
    }

    public static let empty = try! Tree(entries: [])

    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    public var totalSize: Int64 { entries.reduce(0) { $0 + $1.size } }

    public subscript(name: String) -> TreeEntry? { entries.first { $0.name == name } }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: entries.count * 64)
        for e in entries {
            w.u8(UInt8(ascii: e.kind.rawValue.unicodeScalars.first!))
            w.string(" " + String(e.mode, radix: 8) + " " + String(e.size) + " ")
            w.string(e.name)
            w.u8(0)
            e.id.append(to: &w.bytes)
        }
        return w.bytes
    }

    public var id: ObjectID { ObjectID.hash(kind: .tree, payload: encoded()) }

    /// Parses and validates a tree payload: kinds, modes, sizes, names, order.
    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "tree \(id?.hex ?? "")"
        func bad(_ detail: String) -> MLStoreError {
            MLStoreError(.corrupt, "\(what) is malformed: \(detail)")
        }
        var entries: [TreeEntry] = []
        try payload.withUnsafeBytes { buf in
            var r = ByteReader(buf, what: what)
            while !r.atEnd {
                let kindByte = try r.u8()
                guard let kind = TreeEntry.Kind(rawValue: Character(Unicode.Scalar(kindByte))) else {
                    throw bad("unknown entry kind byte \(kindByte)")
                }
                guard try r.u8() == UInt8(ascii: " ") else { throw bad("missing space after kind") }
                let modeText = String(decoding: try r.until(UInt8(ascii: " "), limit: 4), as: UTF8.self)
                // Canonical text only (no sign, no leading zeros): one payload per tree, one id per tree.
                guard ["644", "755", "777"].contains(modeText), let mode = UInt32(modeText, radix: 8) else { throw bad("bad mode '\(modeText)'") }
                let validMode: Bool
                switch kind {
                case .file, .chunked: validMode = mode == 0o644 || mode == 0o755
                case .symlink: validMode = mode == 0o777
                case .directory: validMode = mode == 0o755
                }
                guard validMode else { throw bad("mode \(modeText) is not valid for kind \(kind.rawValue)") }
                let sizeText = String(decoding: try r.until(UInt8(ascii: " "), limit: 20), as: UTF8.self)
                guard let size = Int64(sizeText), size >= 0, String(size) == sizeText else {
                    throw bad("bad size '\(sizeText)'")
                }
                let nameBytes = try r.until(0, limit: 255)
                guard let name = String(validating: nameBytes, as: UTF8.self) else { throw bad("entry name is not UTF-8") }
                do { try TreeEntry.validateName(name) } catch let e as MLStoreError { throw bad(e.message) }
                let idBytes = try r.bytes(32)
                if let last = entries.last, !Tree.less(last.name, name) {
                    throw bad("entries are not sorted or repeat a name ('\(last.name)' then '\(name)')")
                }
                entries.append(TreeEntry(kind: kind, mode: mode, size: size, name: name, id: ObjectID(idBytes, at: 0)))
            }
        }
        self.entries = entries
    }
}

/// The payload of a `chunked` object: a large file as an ordered list of blob chunks (spec/objects.md §Chunked).
public struct ChunkedFile: Sendable, Equatable {
    public struct Chunk: Sendable, Equatable {
        public var id: ObjectID
        public var length: UInt32
        public init(id: ObjectID, length: UInt32) {
            self.id = id
            self.length = length
        }
    }

    public static let version: UInt8 = 1
    public static let algorithmFastCDC2020: UInt8 = 1
    static let headerSize = 4 + 12 + 8 + 32 + 8
    /// Readers refuse chunks longer than this (a lying chunk list cannot make us allocate more).
    public static let maxChunkLength: UInt32 = 64 << 20

    public var minSize: UInt32, avgSize: UInt32, maxSize: UInt32, level: UInt8
    public var fileSize: Int64
    /// Plain SHA-256 of the whole file content (equals `sha256sum`, S3 and LFS checksums).
    public var contentSHA256: [UInt8]
    public var chunks: [Chunk]

    public init(cdc: FastCDC, fileSize: Int64, contentSHA256: [UInt8], chunks: [Chunk]) {
        minSize = UInt32(cdc.minSize)
        avgSize = UInt32(cdc.avgSize)
        maxSize = UInt32(cdc.maxSize)
        level = UInt8(cdc.level)
        self.fileSize = fileSize
        self.contentSHA256 = contentSHA256
        self.chunks = chunks
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter(capacity: Self.headerSize + chunks.count * 36)
        w.u8(Self.version)
        w.u8(Self.algorithmFastCDC2020)
        w.u8(level)
        w.u8(0)
        w.u32(minSize)
        w.u32(avgSize)
        w.u32(maxSize)
        w.u64(UInt64(fileSize))
        w.raw(contentSHA256)
        w.u64(UInt64(chunks.count))
        for c in chunks {
            c.id.append(to: &w.bytes)
            w.u32(c.length)
        }
        return w.bytes
    }

    public init(decoding payload: [UInt8], id: ObjectID? = nil) throws {
        let what = "chunked object \(id?.hex ?? "")"
        func bad(_ detail: String) -> MLStoreError { MLStoreError(.corrupt, "\(what) is malformed: \(detail)") }
        var parsed: (UInt32, UInt32, UInt32, UInt8, Int64, [UInt8], [Chunk]) = (0, 0, 0, 0, 0, [], [])
        try payload.withUnsafeBytes { buf in
            var r = ByteReader(buf, what: what)
            let v = try r.u8()
            guard v == Self.version else {
                throw MLStoreError(.unsupported, "\(what) has version \(v); this mlstore reads version 1", hint: "upgrade mlstore")
            }
            let algo = try r.u8()
            guard algo == Self.algorithmFastCDC2020 else { throw bad("unknown chunker \(algo)") }
            let level = try r.u8()
            guard try r.u8() == 0 else { throw bad("reserved byte is not 0") }
            let mn = try r.u32(), avg = try r.u32(), mx = try r.u32()
            let size = try r.u64()
            guard size <= UInt64(Int64.max) else { throw bad("file size overflows") }
            let sha = Array(try r.bytes(32))
            let count = try r.u64()
            guard count == UInt64(r.remaining / 36), r.remaining % 36 == 0 else {
                throw bad("declares \(count) chunks but holds \(r.remaining) bytes of chunk list")
            }
            var chunks: [Chunk] = []
            chunks.reserveCapacity(Int(count))
            var total: UInt64 = 0
            for _ in 0..<count {
                let cid = ObjectID(try r.bytes(32), at: 0)
                let len = try r.u32()
                guard len > 0, len <= Self.maxChunkLength else { throw bad("chunk \(cid.hex) has length \(len)") }
                total += UInt64(len)
                chunks.append(Chunk(id: cid, length: len))
            }
            guard total == size else { throw bad("chunk lengths sum to \(total), but the file size is \(size)") }
            parsed = (mn, avg, mx, level, Int64(size), sha, chunks)
        }
        (minSize, avgSize, maxSize, level, fileSize, contentSHA256, chunks) = parsed
    }
}
