import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Loose objects: one file per object under `objects/xx/<62 hex>` (spec/objects.md §Loose objects).
struct LooseObjects: Sendable {
    static let magic: [UInt8] = Array("mlso".utf8)
    static let version: UInt8 = 1
    static let headerSize = 16

    let directory: String  // <store>/objects

    func path(_ id: ObjectID) -> String {
        let hex = id.hex
        return directory + "/" + hex.prefix(2) + "/" + hex.dropFirst(2)
    }

    func contains(_ id: ObjectID) -> Bool {
        var st = stat()
        return lstat(path(id), &st) == 0
    }

    static func fileBytes(_ obj: EncodedObject) -> [UInt8] {
        var w = ByteWriter(capacity: headerSize + obj.stored.count)
        w.raw(magic)
        w.u8(version)
        w.u8(obj.codec.rawValue)
        w.u8(obj.kind.code)
        w.u8(0)
        w.u64(UInt64(obj.payloadSize))
        w.raw(obj.stored)
        return w.bytes
    }

    /// Writes the object unless present: temp file, fsync, rename, fsync directory.
    func write(_ obj: EncodedObject) throws {
        let final = path(obj.id)
        if (try? Sys.lstatIfExists(final)) != nil, (try? Sys.lstatIfExists(final)) != .some(nil) { return }
        let dir = Path.parent(final)
        try Sys.mkdir(dir)
        try Sys.writeFileAtomically(final, Self.fileBytes(obj), mode: 0o444)
    }

    struct Header {
        let codec: UInt8
        let kind: ObjectKind
        let payloadSize: Int
    }

    static func parseHeader(_ r: inout ByteReader, id: ObjectID, location: String) throws -> Header {
        do {
            let m = try r.bytes(4)
            guard Array(m) == magic else { throw MLStoreError.corruptObject(id.hex, "bad magic", where: location) }
            let v = try r.u8()
            guard v == version else {
                throw MLStoreError(
                    .unsupported, "object \(id.hex) in \(location) has format version \(v); this mlstore reads version \(version)",
                    hint: "upgrade mlstore to read this store")
            }
            let codec = try r.u8()
            let code = try r.u8()
            _ = try r.u8()
            let size = try r.u64()
            guard let kind = ObjectKind(code: code) else {
                throw MLStoreError.corruptObject(id.hex, "unknown object kind code \(code)", where: location)
            }
            guard size <= UInt64(ObjectCodec.maxPayloadSize) else {
                throw MLStoreError.corruptObject(id.hex, "declares \(size) bytes", where: location)
            }
            return Header(codec: codec, kind: kind, payloadSize: Int(size))
        } catch let e as MLStoreError where e.code == .corrupt && !e.message.contains(id.hex) {
            throw MLStoreError.corruptObject(id.hex, e.message, where: location)
        }
    }

    /// Reads and verifies an object; nil if there is no loose file for it.
    func read(_ id: ObjectID) throws -> (ObjectKind, [UInt8])? {
        try readEncoded(id).map { ($0.0.kind, $0.1) }
    }

    /// The object with its stored encoding, verified; nil if there is no loose file for it.
    func readEncoded(_ id: ObjectID) throws -> (EncodedObject, [UInt8])? {
        let p = path(id)
        let bytes: [UInt8]
        do {
            bytes = try Sys.readFile(p, limit: ObjectCodec.maxPayloadSize + Self.headerSize + 1 << 20)
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        }
        return try bytes.withUnsafeBytes { buf in
            var r = ByteReader(buf, what: "loose object \(id.hex)")
            let h = try Self.parseHeader(&r, id: id, location: p)
            let stored = UnsafeRawBufferPointer(rebasing: buf[r.offset...])
            let payload = try ObjectCodec.decode(id: id, kind: h.kind, payloadSize: h.payloadSize, codec: h.codec, stored: stored, location: p)
            guard let codec = Codec(rawValue: h.codec) else { throw MLStoreError(.unsupported, "object \(id.hex) uses unknown codec \(h.codec)") }
            return (EncodedObject(id: id, kind: h.kind, payloadSize: h.payloadSize, codec: codec, stored: ArraySlice(stored)), payload)
        }
    }

    /// Kind and size without decoding; nil if absent.
    func info(_ id: ObjectID) throws -> (ObjectKind, Int)? {
        let p = path(id)
        let fd: Int32
        do {
            fd = try Sys.open(p, O_RDONLY)
        } catch let e as SystemError where e.errno == ENOENT {
            return nil
        }
        defer { Sys.close(fd) }
        var head = [UInt8](repeating: 0, count: Self.headerSize)
        let n = try head.withUnsafeMutableBytes { try Sys.readFully(fd, $0.baseAddress!, Self.headerSize, path: p) }
        return try head.withUnsafeBytes { buf in
            var r = ByteReader(UnsafeRawBufferPointer(rebasing: buf[0..<n]), what: "loose object \(id.hex)")
            let h = try Self.parseHeader(&r, id: id, location: p)
            return (h.kind, h.payloadSize)
        }
    }

    /// Every loose object id (by listing the fan-out directories).
    func all() throws -> [ObjectID] {
        var out: [ObjectID] = []
        guard (try Sys.lstatIfExists(directory)) != nil else { return [] }
        for (d, _) in try Sys.listDirectory(directory) where d.utf8.count == 2 && Hex.isHex(d) {
            for (f, _) in try Sys.listDirectory(directory + "/" + d) {
                if let id = ObjectID(hex: d + f) { out.append(id) }
            }
        }
        return out
    }
}
