import MLStoreBasics

/// Objects on the wire (spec/http.md §Objects): a pack entry — `id(32) kind(u8) codec(u8) payloadSize(u64)
/// storedSize(u64)` then the stored bytes — alone, in a run of entries, or in a whole pack stream (the pack
/// file format of spec/objects.md). Nothing read from the wire is trusted before it verifies against its id.
public enum WireFormat {
    public static let entryHeaderSize = PackFormat.entryHeaderSize
    public static let objectMediaType = "application/x-mlstore-objects"
    public static let packMediaType = "application/x-mlstore-pack"

    /// A parsed, not yet verified entry.
    public struct Entry: Sendable {
        public var id: ObjectID
        public var kind: ObjectKind
        public var codec: UInt8
        public var payloadSize: Int
        public var stored: ArraySlice<UInt8>
    }

    public static func appendEntry(_ obj: EncodedObject, to out: inout [UInt8]) {
        out.append(contentsOf: entryHeader(obj))
        out.append(contentsOf: obj.stored)
    }

    static func entryHeader(_ obj: EncodedObject) -> [UInt8] {
        var w = ByteWriter(capacity: entryHeaderSize)
        obj.id.append(to: &w.bytes)
        w.u8(obj.kind.code)
        w.u8(obj.codec.rawValue)
        w.u64(UInt64(obj.payloadSize))
        w.u64(UInt64(obj.stored.count))
        return w.bytes
    }

    /// A whole pack stream (header, entries in order, footer) in memory — what `POST /api/v1/packs` takes.
    /// For tests and small uploads; ``HTTPRemote`` streams large uploads from a pack file.
    public static func packStream(_ objects: [EncodedObject]) -> [UInt8] {
        var w = ByteWriter()
        w.raw(PackFormat.magic)
        w.u32(PackFormat.version)
        var out = w.bytes
        let hasher = SHA256()
        for o in objects {
            let h = entryHeader(o)
            hasher.update(h)
            out += h
            out.append(contentsOf: o.stored)
        }
        var f = ByteWriter()
        f.raw(PackFormat.footerMagic)
        f.u64(UInt64(objects.count))
        out += f.bytes
        out += hasher.finalize()
        return out
    }

    /// Parses one entry header at the start of `buf`; nil if fewer than ``entryHeaderSize`` bytes.
    static func header(_ buf: UnsafeRawBufferPointer, location: String) throws -> (id: ObjectID, kind: ObjectKind, codec: UInt8, payloadSize: Int, storedSize: Int)? {
        guard buf.count >= entryHeaderSize else { return nil }
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: buf[0..<entryHeaderSize]), what: "object entry from \(location)")
        let id = ObjectID(try r.bytes(32), at: 0)
        let code = try r.u8()
        let codec = try r.u8()
        let payload = try r.u64()
        let stored = try r.u64()
        guard let kind = ObjectKind(code: code) else {
            throw MLStoreError.corruptObject(id.hex, "has unknown kind code \(code)", where: location)
        }
        guard payload <= UInt64(ObjectCodec.maxPayloadSize), stored <= UInt64(ObjectCodec.maxPayloadSize) + 1 << 20 else {
            throw MLStoreError.corruptObject(id.hex, "declares impossible sizes (\(payload) / \(stored) bytes)", where: location)
        }
        return (id, kind, codec, Int(payload), Int(stored))
    }

    /// Splits a run of entries; the bytes must end exactly at an entry boundary.
    public static func parseEntries(_ bytes: [UInt8], location: String) throws -> [Entry] {
        var out: [Entry] = []
        var pos = 0
        try bytes.withUnsafeBytes { buf in
            while pos < buf.count {
                guard let h = try header(UnsafeRawBufferPointer(rebasing: buf[pos...]), location: location),
                    buf.count - pos - entryHeaderSize >= h.storedSize
                else {
                    throw MLStoreError(.corrupt, "truncated object data from \(location) (\(buf.count - pos) bytes left at an entry)",
                                       hint: "the connection was cut or the server failed mid-response; try again")
                }
                let start = pos + entryHeaderSize
                out.append(Entry(id: h.id, kind: h.kind, codec: h.codec, payloadSize: h.payloadSize, stored: bytes[start..<start + h.storedSize]))
                pos = start + h.storedSize
            }
        }
        return out
    }

    /// Verifies an entry against its id and returns it as an encoded object with its payload.
    public static func decode(_ e: Entry, location: String) throws -> (object: EncodedObject, payload: [UInt8]) {
        let payload = try e.stored.withUnsafeBytes {
            try ObjectCodec.decode(id: e.id, kind: e.kind, payloadSize: e.payloadSize, codec: e.codec, stored: $0, location: location)
        }
        guard let codec = Codec(rawValue: e.codec) else {
            throw MLStoreError(.unsupported, "object \(e.id.hex) uses unknown codec \(e.codec)", hint: "upgrade mlstore")
        }
        return (EncodedObject(id: e.id, kind: e.kind, payloadSize: e.payloadSize, codec: codec, stored: e.stored), payload)
    }
}

/// Receives a pack stream (an upload), verifying as bytes arrive: the header; every entry against its id;
/// that every object an entry names is already stored or came earlier in the stream (so the store stays
/// closed under references); and the footer's count and digest. Objects go into one batch that is published
/// only by ``finish()`` — a stream that fails at any point stores nothing. Used by one thread at a time.
public final class PackStreamReceiver: @unchecked Sendable {
    public let location: String
    private let repo: Repository
    private let batch: ObjectBatch
    private let maxBytes: Int64
    private var buffer: [UInt8] = []
    private var pos = 0
    private var sawHeader = false
    private var entries = 0
    private var received: Int64 = 0
    private let hasher = SHA256()
    /// Set when the stream went past `maxBytes` (the server answers 413 rather than 422).
    public private(set) var exceededLimit = false
    /// JSON-looking blobs of this stream up to 1 MiB (env records name lock files), 256 MiB in all; ones
    /// not kept are remembered, so a commit naming one as its env is refused rather than left unchecked.
    private var jsonBlobs: [ObjectID: [UInt8]] = [:]
    private var jsonBlobBytes = 0
    private var uncheckedJSONBlobs = Set<ObjectID>()
    /// The largest entry accepted: an upload holds one entry in memory while verifying it.
    public static let maxEntryBytes = 128 << 20
    /// Kinds of the objects of this stream (children's kinds are checked against what trees and chunked files say).
    private var kinds: [ObjectID: ObjectKind] = [:]

    /// - Parameters:
    ///   - maxBytes: the largest stream accepted (request body limit).
    ///   - location: for messages (e.g. "upload from 10.0.0.7").
    public init(repository: Repository, maxBytes: Int64, location: String) {
        repo = repository
        batch = repository.objects.batch(packOnly: true)
        self.maxBytes = maxBytes
        self.location = location
    }

    /// Consumes the next bytes of the stream.
    public func consume(_ bytes: some Collection<UInt8>) throws {
        received += Int64(bytes.count)
        guard received <= maxBytes else {
            exceededLimit = true
            throw MLStoreError(.usage, "the upload is larger than the server's limit of \(maxBytes) bytes",
                               hint: "push in smaller steps, or restart the server with a larger --max-body")
        }
        buffer.append(contentsOf: bytes)
        try drain()
        if pos >= 1 << 20 || pos == buffer.count {
            buffer.removeFirst(pos)
            pos = 0
        }
    }

    /// Parses every complete entry in the buffer. The footer (44 bytes) is shorter than an entry header
    /// (50), so while 50 bytes remain, they cannot be the footer.
    private func drain() throws {
        if !sawHeader {
            guard buffer.count - pos >= PackFormat.headerSize else { return }
            var r = buffer.withUnsafeBytes { ByteReader(UnsafeRawBufferPointer(rebasing: $0[pos..<pos + PackFormat.headerSize]), what: "pack header") }
            guard Array(try r.bytes(4)) == PackFormat.magic else {
                throw MLStoreError(.corrupt, "the upload is not a pack stream (bad magic)", hint: "upload with mlstore push")
            }
            let version = try r.u32()
            guard version == PackFormat.version else {
                throw MLStoreError(.unsupported, "pack stream version \(version) is not supported by this server", hint: "upgrade the server")
            }
            pos += PackFormat.headerSize
            sawHeader = true
        }
        while buffer.count - pos >= WireFormat.entryHeaderSize {
            let parsed = try buffer.withUnsafeBytes { buf in
                try WireFormat.header(UnsafeRawBufferPointer(rebasing: buf[pos...]), location: location)
            }
            guard let h = parsed else { return }
            guard h.storedSize <= Self.maxEntryBytes, h.payloadSize <= Self.maxEntryBytes else {
                throw MLStoreError(.corrupt, "object \(h.id.hex) is larger than the server accepts in one piece (\(Self.maxEntryBytes >> 20) MiB)",
                                   hint: "large files travel as chunks; nothing from this upload was stored")
            }
            guard buffer.count - pos - WireFormat.entryHeaderSize >= h.storedSize else { return }
            let start = pos + WireFormat.entryHeaderSize
            hasher.update(buffer[pos..<start])
            let entry = WireFormat.Entry(id: h.id, kind: h.kind, codec: h.codec, payloadSize: h.payloadSize,
                                         stored: ArraySlice(buffer[start..<start + h.storedSize]))
            pos = start + h.storedSize
            try accept(entry)
        }
    }

    private func accept(_ entry: WireFormat.Entry) throws {
        let (obj, payload) = try WireFormat.decode(entry, location: location)
        if obj.kind == .blob {
            if payload.first == UInt8(ascii: "{") {
                if payload.count <= 1 << 20, jsonBlobBytes < 256 << 20 {
                    jsonBlobs[obj.id] = payload
                    jsonBlobBytes += payload.count
                } else {
                    uncheckedJSONBlobs.insert(obj.id)
                }
            }
        } else {
            let children = try ObjectGraph.children(kind: obj.kind, payload: payload, id: obj.id) { id in
                if let p = self.jsonBlobs[id] { return try? JSONValue.parse(json: p, what: "object \(id.short)") }
                if self.uncheckedJSONBlobs.contains(id) {
                    throw MLStoreError(.corrupt, "object \(obj.id.hex) names \(id.hex) as its environment record, which is too large to check (over 1 MiB)",
                                       hint: "nothing from this upload was stored")
                }
                return self.repo.objects.contains(id) ? try? self.repo.json(id) : nil
            }
            for (child, _) in children where !batch.contains(child) {
                throw MLStoreError(.corrupt, "object \(obj.id.hex) (\(obj.kind.rawValue)) names \(child.hex), which is neither on the server nor earlier in the upload",
                                   hint: "objects must be sent children first; nothing from this upload was stored")
            }
            for (child, expected) in ObjectGraph.childKinds(kind: obj.kind, payload: payload, id: obj.id) {
                let actual = kinds[child] ?? (try? repo.objects.info(child).kind)
                guard actual == expected else {
                    throw MLStoreError(.corrupt, "object \(obj.id.hex) (\(obj.kind.rawValue)) names \(child.hex) as a \(expected.rawValue), but it is a \(actual?.rawValue ?? "?")",
                                       hint: "nothing from this upload was stored")
                }
            }
        }
        try batch.add(obj)
        kinds[obj.id] = obj.kind
        entries += 1
    }

    /// Checks the footer and publishes the objects. - Returns: what was stored.
    public func finish() throws -> ObjectBatch.Stats {
        let rest = buffer.count - pos
        guard sawHeader, rest == PackFormat.footerSize else {
            throw MLStoreError(.corrupt, "the upload ended \(sawHeader ? "inside an object or without its footer" : "before the pack header") (\(rest) bytes left over)",
                               hint: "the connection was cut; push again (nothing from this upload was stored)")
        }
        try buffer.withUnsafeBytes { buf in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: buf[pos...]), what: "pack footer")
            guard Array(try r.bytes(4)) == PackFormat.footerMagic else { throw MLStoreError(.corrupt, "the pack stream's footer is missing") }
            let count = try r.u64()
            let digest = Array(try r.bytes(32))
            guard count == UInt64(entries) else {
                throw MLStoreError(.corrupt, "the pack stream's footer counts \(count) objects, \(entries) arrived")
            }
            guard digest == hasher.finalize() else {
                throw MLStoreError(.corrupt, "the pack stream's footer digest does not match its entries")
            }
        }
        try batch.commit()
        return batch.stats
    }

    /// Drops everything received (nothing is published).
    public func abandon() { batch.abandon() }
}
