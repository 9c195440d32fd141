/// Appends big-endian integers and bytes to a growing buffer.
public struct ByteWriter {
    public var bytes: [UInt8] = []
    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) { append(v) }
    public mutating func u32(_ v: UInt32) { append(v) }
    public mutating func u64(_ v: UInt64) { append(v) }
    public mutating func i64(_ v: Int64) { append(UInt64(bitPattern: v)) }
    public mutating func raw(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
    public mutating func string(_ s: String) { bytes.append(contentsOf: s.utf8) }

    private mutating func append<T: FixedWidthInteger>(_ v: T) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { bytes.append(contentsOf: $0) }
    }
}

/// Reads big-endian integers from a buffer with bounds checks; every overrun throws `.corrupt`
/// with the name of what was being read.
public struct ByteReader {
    public let buffer: UnsafeRawBufferPointer
    public var offset: Int
    let what: String

    public init(_ buffer: UnsafeRawBufferPointer, offset: Int = 0, what: String) {
        self.buffer = buffer
        self.offset = offset
        self.what = what
    }

    public var remaining: Int { buffer.count - offset }
    public var atEnd: Bool { offset >= buffer.count }

    public mutating func need(_ n: Int) throws {
        guard n >= 0, n <= remaining else {
            throw MLStoreError(.corrupt, "\(what) is truncated at byte \(offset) (needs \(n) more, has \(remaining))")
        }
    }

    public mutating func u8() throws -> UInt8 { try int(UInt8.self) }
    public mutating func u16() throws -> UInt16 { try int(UInt16.self) }
    public mutating func u32() throws -> UInt32 { try int(UInt32.self) }
    public mutating func u64() throws -> UInt64 { try int(UInt64.self) }
    public mutating func i64() throws -> Int64 { Int64(bitPattern: try u64()) }

    public mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + n)])
    }

    /// Reads up to (not including) the next byte equal to `terminator`, and skips the terminator.
    public mutating func until(_ terminator: UInt8, limit: Int) throws -> UnsafeRawBufferPointer {
        var i = offset
        let stop = min(buffer.count, offset + limit + 1)
        while i < stop && buffer[i] != terminator { i += 1 }
        guard i < stop, buffer[i] == terminator else {
            throw MLStoreError(.corrupt, "\(what) has an unterminated field at byte \(offset)")
        }
        defer { offset = i + 1 }
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<i])
    }

    private mutating func int<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        defer { offset += MemoryLayout<T>.size }
        return T(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
