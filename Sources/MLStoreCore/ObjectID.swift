import MLStoreBasics

/// The name of an object: SHA-256 of its canonical form `"<kind> <payload length>\0" + payload`.
///
/// Stored as four big-endian 64-bit words so that comparison is byte order and hashing is cheap.
///
/// ```swift
/// let id = ObjectID.hash(kind: .blob, payload: Array("abc".utf8))
/// id.hex  // "c1cf6e46…35a6", the same as `git hash-object` in a sha256 repository
/// ```
public struct ObjectID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let w0: UInt64, w1: UInt64, w2: UInt64, w3: UInt64

    public static let byteCount = 32
    public static let hexLength = 64

    /// Builds an id from 32 raw bytes.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 32, "an object id has 32 bytes")
        var words: [UInt64] = [0, 0, 0, 0]
        for (i, b) in bytes.enumerated() { words[i / 8] = words[i / 8] << 8 | UInt64(b) }
        (w0, w1, w2, w3) = (words[0], words[1], words[2], words[3])
    }

    /// Reads 32 raw bytes at `offset` of a buffer.
    public init(_ buffer: UnsafeRawBufferPointer, at offset: Int) {
        func word(_ o: Int) -> UInt64 { UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset + o, as: UInt64.self)) }
        (w0, w1, w2, w3) = (word(0), word(8), word(16), word(24))
    }

    /// Parses 64 hex digits; nil for anything else.
    public init?(hex: some StringProtocol) {
        guard hex.utf8.count == 64, let bytes = Hex.decode(hex) else { return nil }
        self.init(bytes: bytes)
    }

    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [w0, w1, w2, w3] {
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(s))) }
        }
        return out
    }

    /// Appends the 32 raw bytes to `out`.
    public func append(to out: inout [UInt8]) {
        for w in [w0, w1, w2, w3] {
            for s in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(s))) }
        }
    }

    public var hex: String { Hex.encode(bytes) }
    public var description: String { hex }
    /// The abbreviation shown to people (12 hex digits).
    public var short: String { String(hex.prefix(12)) }
    /// The first byte, which selects the fan-out bucket and the loose-object directory.
    public var firstByte: UInt8 { UInt8(truncatingIfNeeded: w0 >> 56) }

    public static func < (a: ObjectID, b: ObjectID) -> Bool {
        if a.w0 != b.w0 { return a.w0 < b.w0 }
        if a.w1 != b.w1 { return a.w1 < b.w1 }
        if a.w2 != b.w2 { return a.w2 < b.w2 }
        return a.w3 < b.w3
    }

    /// The id of an object of `kind` whose payload is `payload`.
    public static func hash(kind: ObjectKind, payload: UnsafeRawBufferPointer) -> ObjectID {
        let h = SHA256()
        h.update(ObjectKind.header(kind, length: payload.count))
        h.update(payload)
        return ObjectID(bytes: h.finalize())
    }

    public static func hash(kind: ObjectKind, payload: [UInt8]) -> ObjectID {
        payload.withUnsafeBytes { hash(kind: kind, payload: $0) }
    }
}

/// The kinds of object. The raw value is the name used in the canonical header; the code is the byte
/// used in pack entries.
public enum ObjectKind: String, Sendable, CaseIterable {
    case blob, chunked, tree, commit, tag, stage, model

    public var code: UInt8 {
        switch self {
        case .blob: 1
        case .chunked: 2
        case .tree: 3
        case .commit: 4
        case .tag: 5
        case .stage: 6
        case .model: 7
        }
    }

    public init?(code: UInt8) {
        guard let k = ObjectKind.allCases.first(where: { $0.code == code }) else { return nil }
        self = k
    }

    /// `"<kind> <length>\0"`.
    public static func header(_ kind: ObjectKind, length: Int) -> [UInt8] {
        Array("\(kind.rawValue) \(length)".utf8) + [0]
    }
}

extension ObjectID: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let id = ObjectID(hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an object id: \(text)"))
        }
        self = id
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(hex)
    }
}
