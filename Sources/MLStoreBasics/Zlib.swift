internal import CMLStoreZlib

/// zlib (RFC 1950) compression for stored objects.
public enum Zlib {
    /// Compresses `input` at `level` (1 fastest … 9 smallest). Returns nil if zlib fails (out of memory).
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 1) -> [UInt8]? {
        var stream = z_stream()
        guard CMLStoreZlib_deflateInit(&stream, level) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let produced: Int? = out.withUnsafeMutableBufferPointer { o in
            stream.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = o.baseAddress
            stream.avail_out = uInt(o.count)
            let rc = deflate(&stream, Z_FINISH)
            return rc == Z_STREAM_END ? Int(stream.total_out) : nil
        }
        guard let produced else { return nil }
        out.removeSubrange(produced...)
        return out
    }

    public static func compress(_ input: [UInt8], level: Int32 = 1) -> [UInt8]? {
        input.withUnsafeBytes { compress($0, level: level) }
    }

    /// Decompresses `input`, which must expand to exactly `expectedSize` bytes.
    ///
    /// The output never grows past `expectedSize`, so a decompression bomb costs no more memory than the
    /// size the object declared (and callers bound that).
    /// - Throws: ``MLStoreError`` `.corrupt` if the stream is malformed, truncated, or of another size.
    public static func decompress(_ input: UnsafeRawBufferPointer, expectedSize: Int) throws -> [UInt8] {
        var stream = z_stream()
        guard CMLStoreZlib_inflateInit(&stream) == Z_OK else {
            throw MLStoreError(.io, "zlib could not start (out of memory?)")
        }
        defer { inflateEnd(&stream) }
        // One spare byte detects streams that expand past the declared size.
        var out = [UInt8](repeating: 0, count: expectedSize + 1)
        let rc: Int32 = out.withUnsafeMutableBufferPointer { o in
            stream.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = o.baseAddress
            stream.avail_out = uInt(o.count)
            return inflate(&stream, Z_FINISH)
        }
        guard rc == Z_STREAM_END else {
            let what = rc == Z_BUF_ERROR && stream.avail_out == 0 ? "expands past its declared size" :
                rc == Z_BUF_ERROR ? "is truncated" : "is not valid zlib data (code \(rc))"
            throw MLStoreError(.corrupt, "compressed data \(what)")
        }
        guard Int(stream.total_out) == expectedSize else {
            throw MLStoreError(
                .corrupt, "compressed data expands to \(stream.total_out) bytes, expected \(expectedSize)")
        }
        guard stream.avail_in == 0 else {
            throw MLStoreError(.corrupt, "compressed data has \(stream.avail_in) trailing bytes")
        }
        out.removeLast()
        return out
    }

    public static func decompress(_ input: [UInt8], expectedSize: Int) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, expectedSize: expectedSize) }
    }
}

/// Cheap estimate of whether data will compress: order-0 Shannon entropy of a sample, in bits per byte.
///
/// This is the pre-filter of the codec probe (the same idea as btrfs's compression heuristic): counting
/// bytes runs at memory speed, while zlib on incompressible data runs at ~30 MB/s.
public enum Entropy {
    /// Entropy in bits per byte of up to `sampleSize` bytes taken in 16 evenly spaced slices.
    public static func bitsPerByte(_ data: UnsafeRawBufferPointer, sampleSize: Int = 4096) -> Double {
        guard data.count > 0 else { return 0 }
        var counts = [Int](repeating: 0, count: 256)
        var total = 0
        counts.withUnsafeMutableBufferPointer { c in
            if data.count <= sampleSize {
                for b in data { c[Int(b)] += 1 }
                total = data.count
            } else {
                let slices = 16
                let sliceLen = sampleSize / slices
                let stride = data.count / slices
                for s in 0..<slices {
                    let start = s * stride
                    for i in start..<(start + sliceLen) { c[Int(data[i])] += 1 }
                }
                total = slices * sliceLen
            }
        }
        var bits = 0.0
        let n = Double(total)
        for c in counts where c > 0 {
            let p = Double(c) / n
            bits -= p * log2(p)
        }
        return bits
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
