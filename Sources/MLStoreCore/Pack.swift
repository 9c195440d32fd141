import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Pack files and their indexes (spec/objects.md §Packs).
///
/// A pack is `"MLSP" u32 version`, then entries `id(32) kind(u8) codec(u8) payloadSize(u64) storedSize(u64)
/// stored bytes`, then a footer `"MLSF" u64 count sha256(all entry headers, in order)`. It is named
/// `pack-<hex of that sha256>.pack`. Every entry's bytes verify against its id, and the footer digest binds
/// ids, kinds, codecs and sizes to their order, so the pack verifies itself without hashing its data a
/// second time. Its index `pack-<hex>.idx` is written after it.
enum PackFormat {
    static let magic: [UInt8] = Array("MLSP".utf8)
    static let footerMagic: [UInt8] = Array("MLSF".utf8)
    static let indexMagic: [UInt8] = Array("MLSI".utf8)
    static let version: UInt32 = 1
    static let headerSize = 8
    static let entryHeaderSize = 50
    static let footerSize = 4 + 8 + 32
    static let indexHeaderSize = 4 + 4 + 32 + 8
}

/// Writes one pack: streams entries to a temp file, then publishes pack and index (temp, fsync, rename).
final class PackWriter {
    let directory: String
    let tempPath: String
    private let fd: Int32
    private let hasher = SHA256()
    private var buffer: [UInt8] = []
    private(set) var offset: Int64 = 0
    private(set) var entries: [(ObjectID, Int64)] = []
    private(set) var storedBytes: Int64 = 0

    init(directory: String) throws {
        self.directory = directory
        try Sys.mkdirs(directory)
        tempPath = directory + "/tmp-pack-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        fd = try Sys.open(tempPath, O_WRONLY | O_CREAT | O_EXCL, mode: 0o444)
        buffer.reserveCapacity(1 << 20)
        var w = ByteWriter()
        w.raw(PackFormat.magic)
        w.u32(PackFormat.version)
        try append(w.bytes)
    }

    deinit {
        Sys.close(fd)
    }

    private func append(_ bytes: some Collection<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        offset += Int64(bytes.count)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private var writeBackFrom: Int64 = 0

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try Sys.write(fd, buffer, path: tempPath)
        buffer.removeAll(keepingCapacity: true)
        // Let the disk work while we hash: start write-back every 32 MiB so the final fsync is short.
        let written = offset - Int64(buffer.count)
        if written - writeBackFrom >= 32 << 20 {
            Sys.startWriteBack(fd, offset: writeBackFrom, length: written - writeBackFrom)
            writeBackFrom = written
        }
    }

    func add(_ obj: EncodedObject) throws {
        entries.append((obj.id, offset))
        let header = WireFormat.entryHeader(obj)
        hasher.update(header)
        try append(header)
        try append(obj.stored)
        storedBytes += Int64(obj.stored.count)
    }

    /// Finishes the pack, publishes pack then index, and returns the pack's name (`pack-<hex>`).
    func finish() throws -> String {
        var w = ByteWriter()
        w.raw(PackFormat.footerMagic)
        w.u64(UInt64(entries.count))
        buffer.append(contentsOf: w.bytes)
        try Sys.write(fd, buffer, path: tempPath)
        buffer.removeAll()
        let checksum = hasher.finalize()
        try Sys.write(fd, checksum, path: tempPath)
        try Sys.fsync(fd, path: tempPath)
        let name = "pack-" + Hex.encode(checksum)
        let packPath = directory + "/" + name + ".pack"
        try Sys.rename(tempPath, packPath)
        let idx = PackIndex.build(entries: entries, packChecksum: checksum)
        try Sys.writeFileAtomically(directory + "/" + name + ".idx", idx, mode: 0o444)
        return name
    }

    /// Removes the temp file (after an error).
    func abandon() {
        _ = try? Sys.unlink(tempPath)
    }
}

/// A pack index, memory-mapped: 256-entry fan-out, sorted ids, offsets, checksum.
final class PackIndex: @unchecked Sendable {
    let path: String
    let map: MappedFile
    let count: Int
    let packChecksum: [UInt8]
    private let idsOffset: Int
    private let offsetsOffset: Int

    static func build(entries: [(ObjectID, Int64)], packChecksum: [UInt8]) -> [UInt8] {
        let sorted = entries.sorted { $0.0 < $1.0 }
        var w = ByteWriter(capacity: PackFormat.indexHeaderSize + 1024 + sorted.count * 40 + 32)
        w.raw(PackFormat.indexMagic)
        w.u32(PackFormat.version)
        w.raw(packChecksum)
        w.u64(UInt64(sorted.count))
        var fan = [UInt32](repeating: 0, count: 256)
        for (id, _) in sorted { fan[Int(id.firstByte)] += 1 }
        var total: UInt32 = 0
        for i in 0..<256 {
            total += fan[i]
            w.u32(total)
        }
        for (id, _) in sorted { id.append(to: &w.bytes) }
        for (_, off) in sorted { w.u64(UInt64(off)) }
        w.raw(SHA256.hash(w.bytes))
        return w.bytes
    }

    /// Maps and checks the structure (sizes, fan-out monotonic). The trailing checksum is checked by
    /// ``verifyChecksum()`` (fsck), since objects are verified on read anyway.
    init(path: String) throws {
        self.path = path
        map = try Sys.mapFile(path)
        let buf = map.bytes
        var r = ByteReader(buf, what: "pack index \(path)")
        guard Array(try r.bytes(4)) == PackFormat.indexMagic else {
            throw MLStoreError(.corrupt, "pack index \(path) has a bad magic number", hint: "run `mlstore fsck`")
        }
        let v = try r.u32()
        guard v == PackFormat.version else {
            throw MLStoreError(
                .unsupported, "pack index \(path) has format version \(v); this mlstore reads version 1",
                hint: "upgrade mlstore")
        }
        packChecksum = Array(try r.bytes(32))
        let n = try r.u64()
        guard n <= UInt64(buf.count / 40) else {
            throw MLStoreError(.corrupt, "pack index \(path) declares \(n) objects but is only \(buf.count) bytes")
        }
        count = Int(n)
        guard buf.count == PackFormat.indexHeaderSize + 1024 + count * 40 + 32 else {
            throw MLStoreError(.corrupt, "pack index \(path) has the wrong size for \(count) objects")
        }
        var prev: UInt32 = 0
        for i in 0..<256 {
            let f = UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: PackFormat.indexHeaderSize + i * 4, as: UInt32.self))
            guard f >= prev else { throw MLStoreError(.corrupt, "pack index \(path) has a decreasing fan-out table") }
            prev = f
        }
        guard prev == UInt32(count) else { throw MLStoreError(.corrupt, "pack index \(path) fan-out does not match its count") }
        idsOffset = PackFormat.indexHeaderSize + 1024
        offsetsOffset = idsOffset + count * 32
    }

    func verifyChecksum() -> Bool {
        let body = UnsafeRawBufferPointer(rebasing: map.bytes[0..<(map.size - 32)])
        return SHA256.hash(body) == Array(map.bytes[(map.size - 32)...])
    }

    @inline(__always)
    private func fan(_ i: Int) -> Int {
        if i < 0 { return 0 }
        return Int(UInt32(bigEndian: map.bytes.loadUnaligned(fromByteOffset: PackFormat.indexHeaderSize + i * 4, as: UInt32.self)))
    }

    @inline(__always)
    func id(at i: Int) -> ObjectID { ObjectID(map.bytes, at: idsOffset + i * 32) }

    func offset(at i: Int) -> Int64 {
        Int64(bitPattern: UInt64(bigEndian: map.bytes.loadUnaligned(fromByteOffset: offsetsOffset + i * 8, as: UInt64.self)))
    }

    /// Position of `id` in the sorted table, or nil.
    func find(_ id: ObjectID) -> Int? {
        let b = Int(id.firstByte)
        var lo = fan(b - 1)
        var hi = fan(b)
        while lo < hi {
            let mid = (lo + hi) / 2
            let m = self.id(at: mid)
            if m == id { return mid }
            if m < id { lo = mid + 1 } else { hi = mid }
        }
        return nil
    }

    /// Ids whose hex starts with `prefix` (lower-case).
    func matching(prefix: String) -> [ObjectID] {
        guard let first = Hex.decode(prefix.count >= 2 ? String(prefix.prefix(2)) : prefix + "0") else { return [] }
        let range: ClosedRange<Int> = prefix.count >= 2 ? Int(first[0])...Int(first[0]) : Int(first[0])...(Int(first[0]) + 15)
        var out: [ObjectID] = []
        for b in range {
            for i in fan(b - 1)..<fan(b) {
                let id = self.id(at: i)
                if id.hex.hasPrefix(prefix) { out.append(id) }
            }
        }
        return out
    }
}

/// An open pack with its index: reads and verifies entries by offset.
final class PackReader: @unchecked Sendable {
    let name: String
    let packPath: String
    let index: PackIndex
    let fd: Int32
    let size: Int64

    init(directory: String, name: String) throws {
        self.name = name
        packPath = directory + "/" + name + ".pack"
        index = try PackIndex(path: directory + "/" + name + ".idx")
        fd = try Sys.open(packPath, O_RDONLY)
        size = try Sys.fstat(fd, path: packPath).size
    }

    deinit { Sys.close(fd) }

    struct EntryHeader {
        let id: ObjectID
        let kind: ObjectKind
        let codec: UInt8
        let payloadSize: Int
        let storedSize: Int
    }

    func header(at offset: Int64, expecting id: ObjectID?) throws -> EntryHeader {
        var raw = [UInt8](repeating: 0, count: PackFormat.entryHeaderSize)
        let n = try raw.withUnsafeMutableBytes {
            try Sys.pread(fd, $0.baseAddress!, PackFormat.entryHeaderSize, offset: offset, path: packPath)
        }
        let what = id?.hex ?? "at offset \(offset)"
        guard n == PackFormat.entryHeaderSize else {
            throw MLStoreError.corruptObject(what, "pack entry header is truncated", where: packPath)
        }
        return try raw.withUnsafeBytes { buf in
            var r = ByteReader(buf, what: "pack entry")
            let found = ObjectID(try r.bytes(32), at: 0)
            let code = try r.u8()
            let codec = try r.u8()
            let payload = try r.u64()
            let stored = try r.u64()
            if let id, found != id {
                throw MLStoreError.corruptObject(id.hex, "pack entry holds \(found.hex) instead", where: packPath)
            }
            guard let kind = ObjectKind(code: code) else {
                throw MLStoreError.corruptObject(found.hex, "unknown kind code \(code)", where: packPath)
            }
            guard payload <= UInt64(ObjectCodec.maxPayloadSize),
                stored <= UInt64(ObjectCodec.maxPayloadSize) + 1 << 20,
                offset + Int64(PackFormat.entryHeaderSize) + Int64(stored) <= size - Int64(PackFormat.footerSize)
            else {
                throw MLStoreError.corruptObject(found.hex, "entry sizes run past the end of the pack (truncated?)", where: packPath)
            }
            return EntryHeader(id: found, kind: kind, codec: codec, payloadSize: Int(payload), storedSize: Int(stored))
        }
    }

    /// The entry's header and its stored (still encoded) bytes.
    func readStored(at offset: Int64, id: ObjectID) throws -> (EntryHeader, [UInt8]) {
        let h = try header(at: offset, expecting: id)
        var stored = [UInt8](repeating: 0, count: h.storedSize)
        let n = try stored.withUnsafeMutableBytes {
            try Sys.pread(fd, $0.baseAddress!, h.storedSize, offset: offset + Int64(PackFormat.entryHeaderSize), path: packPath)
        }
        guard n == h.storedSize else { throw MLStoreError.corruptObject(id.hex, "pack entry is truncated", where: packPath) }
        return (h, stored)
    }

    func read(at offset: Int64, id: ObjectID) throws -> (ObjectKind, [UInt8]) {
        let h = try header(at: offset, expecting: id)
        var stored = [UInt8](repeating: 0, count: h.storedSize)
        let n = try stored.withUnsafeMutableBytes {
            try Sys.pread(fd, $0.baseAddress!, h.storedSize, offset: offset + Int64(PackFormat.entryHeaderSize), path: packPath)
        }
        guard n == h.storedSize else {
            throw MLStoreError.corruptObject(id.hex, "pack entry is truncated", where: packPath)
        }
        let payload = try stored.withUnsafeBytes {
            try ObjectCodec.decode(
                id: id, kind: h.kind, payloadSize: h.payloadSize, codec: h.codec, stored: $0, location: packPath)
        }
        return (h.kind, payload)
    }

    /// Verifies the pack's structure: walks every entry header from the start, checks that the entries
    /// tile the file exactly, that the footer's count and digest of the headers match, that the name and
    /// the index agree with it, and that every indexed offset is an entry start. (Entry contents are
    /// verified against their ids by reads and by fsck.)
    func verifyStructure() throws -> String? {
        guard size >= Int64(PackFormat.headerSize + PackFormat.footerSize) else { return "pack is too short" }
        var head = [UInt8](repeating: 0, count: PackFormat.headerSize)
        _ = try head.withUnsafeMutableBytes { try Sys.pread(fd, $0.baseAddress!, PackFormat.headerSize, offset: 0, path: packPath) }
        guard Array(head[0..<4]) == PackFormat.magic else { return "bad pack magic" }
        let h = SHA256()
        var offset = Int64(PackFormat.headerSize)
        let end = size - Int64(PackFormat.footerSize)
        var starts = Set<Int64>()
        var raw = [UInt8](repeating: 0, count: PackFormat.entryHeaderSize)
        while offset < end {
            let n = try raw.withUnsafeMutableBytes { try Sys.pread(fd, $0.baseAddress!, PackFormat.entryHeaderSize, offset: offset, path: packPath) }
            guard n == PackFormat.entryHeaderSize else { return "entry header at \(offset) is truncated" }
            let stored = raw.withUnsafeBytes { Int64(bitPattern: UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 42, as: UInt64.self))) }
            guard stored >= 0, offset + Int64(PackFormat.entryHeaderSize) + stored <= end else {
                return "entry at \(offset) runs past the end of the pack (truncated?)"
            }
            h.update(raw)
            starts.insert(offset)
            offset += Int64(PackFormat.entryHeaderSize) + stored
        }
        guard offset == end else { return "entries do not end where the footer starts" }
        var foot = [UInt8](repeating: 0, count: PackFormat.footerSize)
        _ = try foot.withUnsafeMutableBytes { try Sys.pread(fd, $0.baseAddress!, PackFormat.footerSize, offset: end, path: packPath) }
        guard Array(foot[0..<4]) == PackFormat.footerMagic else { return "bad footer magic (truncated?)" }
        let count = foot.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt64.self)) }
        guard count == UInt64(starts.count) else { return "footer counts \(count) entries, found \(starts.count)" }
        let digest = h.finalize()
        guard digest == Array(foot[12...]) else { return "footer digest does not match the entry headers" }
        guard name == "pack-" + Hex.encode(digest), digest == index.packChecksum else {
            return "pack name or index does not match the pack's digest"
        }
        guard index.count == starts.count else { return "index lists \(index.count) objects, pack holds \(starts.count)" }
        for i in 0..<index.count where !starts.contains(index.offset(at: i)) {
            return "index offset for \(index.id(at: i).hex) is not an entry start"
        }
        return nil
    }
}
