import MLStoreBasics

/// How an object's payload is stored. Independent of the id, which is computed on the raw payload.
public enum Codec: UInt8, Sendable {
    case identity = 0
    case zlib = 1
    // 2 is reserved for zstd.

    public var name: String { self == .identity ? "identity" : "zlib" }
}

/// An object ready to store: its id, kind, raw payload size, codec and stored (encoded) bytes.
public struct EncodedObject: Sendable {
    public let id: ObjectID
    public let kind: ObjectKind
    public let payloadSize: Int
    public let codec: Codec
    /// The stored bytes; for identity-coded chunks a slice of the block they were read in (no copy).
    public let stored: ArraySlice<UInt8>
}

/// Encoding and verification of object payloads (spec/objects.md §Codecs).
public enum ObjectCodec {
    /// Largest payload a reader accepts; anything larger is treated as corrupt (bounds memory).
    public static let maxPayloadSize = 1 << 30

    /// Blob payloads whose sampled entropy is at least this many bits per byte are stored as-is.
    public static let entropyThreshold = 7.0
    /// A compressed payload is kept only if it is at most this fraction of the raw size.
    public static let keepRatio = 0.9

    /// Hashes and encodes a payload, choosing the codec: metadata is always offered to zlib; blobs only
    /// when a sample's entropy says compression will pay; either way compression is kept only if it
    /// saves at least 10 %.
    public static func encode(kind: ObjectKind, payload: UnsafeRawBufferPointer, id knownID: ObjectID? = nil) -> EncodedObject {
        let id = knownID ?? ObjectID.hash(kind: kind, payload: payload)
        let (codec, stored) = chooseEncoding(kind: kind, payload: payload)
        return EncodedObject(id: id, kind: kind, payloadSize: payload.count, codec: codec, stored: stored[...])
    }

    /// Encodes the blob `block[range]`; an identity-coded result shares the block's storage.
    public static func encodeBlob(_ block: [UInt8], _ range: Range<Int>, id: ObjectID) -> EncodedObject {
        let (codec, stored): (Codec, [UInt8]?) = block.withUnsafeBytes { buf in
            let payload = UnsafeRawBufferPointer(rebasing: buf[range])
            let (c, s) = chooseEncoding(kind: .blob, payload: payload, copyIdentity: false)
            return (c, s)
        }
        return EncodedObject(id: id, kind: .blob, payloadSize: range.count, codec: codec, stored: stored.map { $0[...] } ?? block[range])
    }

    public static func encode(kind: ObjectKind, payload: [UInt8]) -> EncodedObject {
        payload.withUnsafeBytes { encode(kind: kind, payload: $0) }
    }

    static func chooseEncoding(kind: ObjectKind, payload: UnsafeRawBufferPointer) -> (Codec, [UInt8]) {
        let (codec, stored) = chooseEncoding(kind: kind, payload: payload, copyIdentity: true)
        return (codec, stored ?? [])
    }

    /// The codec choice; with `copyIdentity: false` an identity result is nil (the caller keeps the bytes).
    static func chooseEncoding(kind: ObjectKind, payload: UnsafeRawBufferPointer, copyIdentity: Bool) -> (Codec, [UInt8]?) {
        let identity: (Codec, [UInt8]?) = (.identity, copyIdentity ? Array(payload) : nil)
        guard payload.count >= 64 else { return identity }
        let level: Int32
        if kind == .blob {
            guard Entropy.bitsPerByte(payload) < entropyThreshold else { return identity }
            level = 1
        } else {
            level = 6
        }
        if let z = Zlib.compress(payload, level: level), Double(z.count) <= Double(payload.count) * keepRatio {
            return (.zlib, z)
        }
        return identity
    }

    /// Decodes stored bytes and verifies them against `id`: size and SHA-256 over the canonical form.
    /// - Parameter location: where the bytes came from, for error messages (a path or remote).
    public static func decode(
        id: ObjectID, kind: ObjectKind, payloadSize: Int, codec: UInt8, stored: UnsafeRawBufferPointer,
        location: String
    ) throws -> [UInt8] {
        guard payloadSize >= 0 && payloadSize <= maxPayloadSize else {
            throw MLStoreError.corruptObject(id.hex, "declares \(payloadSize) bytes", where: location)
        }
        let payload: [UInt8]
        switch Codec(rawValue: codec) {
        case .identity:
            guard stored.count == payloadSize else {
                throw MLStoreError.corruptObject(
                    id.hex, "has \(stored.count) bytes, expected \(payloadSize) (truncated?)", where: location)
            }
            payload = Array(stored)
        case .zlib:
            do {
                payload = try Zlib.decompress(stored, expectedSize: payloadSize)
            } catch let e as MLStoreError {
                throw MLStoreError.corruptObject(id.hex, e.message, where: location)
            }
        case nil:
            throw MLStoreError(
                .unsupported, "object \(id.hex) in \(location) uses codec \(codec), which this mlstore does not know",
                hint: "upgrade mlstore; codec 2 (zstd) is reserved for a later version")
        }
        let actual = ObjectID.hash(kind: kind, payload: payload)
        guard actual == id else {
            throw MLStoreError.corruptObject(id.hex, "content hashes to \(actual.hex)", where: location)
        }
        return payload
    }
}
