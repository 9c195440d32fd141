import MLStoreBasics

/// Content-defined chunking with FastCDC (2020 variant, normalized chunking), cut-compatible with the
/// public reference implementations (spec/objects.md, fixtures/fastcdc/VECTORS.md).
///
/// ```swift
/// let cdc = FastCDC.standard             // 16 KiB / 64 KiB / 256 KiB, level 2
/// let (hash, length) = cdc.cut(buffer)   // length of the first chunk of `buffer`
/// ```
public struct FastCDC: Sendable, Equatable {
    public let minSize: Int
    public let avgSize: Int
    public let maxSize: Int
    public let level: Int
    public let seed: UInt64

    let gear: [UInt64]
    let gearLS: [UInt64]
    let maskS: UInt64, maskL: UInt64, maskSLS: UInt64, maskLLS: UInt64

    /// mlstore's parameters: min 16 KiB, average 64 KiB, max 256 KiB, normalization level 2.
    public static let standard = FastCDC(minSize: 16 << 10, avgSize: 64 << 10, maxSize: 256 << 10, level: 2)

    static let masks: [UInt64] = [
        0, 0, 0, 0, 0,
        0x0000_0000_0180_4110, 0x0000_0000_0180_3110, 0x0000_0000_1803_5100, 0x0000_0018_0003_5300,
        0x0000_0190_0035_3000, 0x0000_5900_0353_0000, 0x0000_d900_0353_0000, 0x0000_d901_0353_0000,
        0x0000_d903_0353_0000, 0x0000_d903_1353_0000, 0x0000_d90f_0353_0000, 0x0000_d903_0353_7000,
        0x0000_d907_0353_7000, 0x0000_d907_0753_7000, 0x0000_d917_0753_7000, 0x0000_d917_4753_7000,
        0x0000_d917_6753_7000, 0x0000_d937_6753_7000, 0x0000_d937_7753_7000, 0x0000_d937_7757_7000,
        0x0000_db37_7757_7000,
    ]

    public init(minSize: Int, avgSize: Int, maxSize: Int, level: Int, seed: UInt64 = 0) {
        precondition(minSize >= 64 && minSize <= avgSize && avgSize <= maxSize, "FastCDC sizes must be ordered")
        self.minSize = minSize
        self.avgSize = avgSize
        self.maxSize = maxSize
        self.level = level
        self.seed = seed
        gear = fastCDCGear.map { $0 ^ seed }
        gearLS = fastCDCGear.map { ($0 << 1) ^ (seed << 1) }
        let bits = Int(log2(Double(avgSize)).rounded())
        maskS = Self.masks[min(25, bits + level)]
        maskL = Self.masks[max(0, bits - level)]
        maskSLS = maskS << 1
        maskLLS = maskL << 1
    }

    public static func == (a: FastCDC, b: FastCDC) -> Bool {
        a.minSize == b.minSize && a.avgSize == b.avgSize && a.maxSize == b.maxSize && a.level == b.level
            && a.seed == b.seed
    }

    /// Finds the first cut point of `source`: returns the gear hash at the cut and the chunk length.
    /// `source` should hold at least `maxSize` bytes unless it is the end of the input.
    @inline(__always)
    public func cut(_ source: UnsafeRawBufferPointer) -> (hash: UInt64, length: Int) {
        var remaining = source.count
        if remaining <= minSize { return (0, remaining) }
        var center = avgSize
        if remaining > maxSize {
            remaining = maxSize
        } else if remaining < center {
            center = remaining
        }
        let src = source.bindMemory(to: UInt8.self)
        return gear.withUnsafeBufferPointer { g in
            gearLS.withUnsafeBufferPointer { gl in
                var index = minSize / 2
                var hash: UInt64 = 0
                let halfCenter = center / 2
                while index < halfCenter {
                    let a = index &* 2
                    hash = (hash &<< 2) &+ gl[Int(src[a])]
                    if hash & maskSLS == 0 { return (hash, a) }
                    hash = hash &+ g[Int(src[a &+ 1])]
                    if hash & maskS == 0 { return (hash, a &+ 1) }
                    index &+= 1
                }
                let halfRemaining = remaining / 2
                while index < halfRemaining {
                    let a = index &* 2
                    hash = (hash &<< 2) &+ gl[Int(src[a])]
                    if hash & maskLLS == 0 { return (hash, a) }
                    hash = hash &+ g[Int(src[a &+ 1])]
                    if hash & maskL == 0 { return (hash, a &+ 1) }
                    index &+= 1
                }
                return (hash, remaining)
            }
        }
    }

    /// All cut points of an in-memory buffer, as (hash, length) pairs in order.
    public func chunks(of data: UnsafeRawBufferPointer) -> [(hash: UInt64, length: Int)] {
        var out: [(UInt64, Int)] = []
        var offset = 0
        while offset < data.count {
            let (h, n) = cut(UnsafeRawBufferPointer(rebasing: data[offset...]))
            out.append((h, n))
            offset += n
        }
        return out
    }
}

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a file descriptor in blocks of a few MiB and cuts each block into content-defined chunks.
/// A chunk never spans two blocks: the incomplete tail of a block starts the next one. Each block is a
/// fresh array, so it can be shared with other threads while the next one is read.
public struct ChunkBlockReader {
    let cdc: FastCDC
    let fd: Int32
    let path: String
    let blockSize: Int
    private var carry: [UInt8] = []
    private var eof = false

    public init(fd: Int32, path: String, cdc: FastCDC, blockSize: Int = 8 << 20) {
        self.cdc = cdc
        self.fd = fd
        self.path = path
        self.blockSize = max(blockSize, 2 * cdc.maxSize)
    }

    /// The next block and the byte ranges of its chunks, in order; nil at end of input.
    public mutating func next() throws -> (bytes: [UInt8], chunks: [Range<Int>])? {
        if eof && carry.isEmpty { return nil }
        let carried = carry
        let capacity = carried.count + blockSize
        let fd = self.fd
        let path = self.path
        var hitEOF = false
        var block = try [UInt8](unsafeUninitializedCapacity: capacity) { buf, count in
            let base = UnsafeMutableRawPointer(buf.baseAddress!)
            carried.withUnsafeBytes { if $0.count > 0 { base.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
            count = carried.count
            while count < capacity {
                let n = try Sys.read(fd, base + count, capacity - count, path: path)
                if n == 0 {
                    hitEOF = true
                    break
                }
                count += n
            }
        }
        eof = eof || hitEOF
        var chunks: [Range<Int>] = []
        var offset = 0
        block.withUnsafeBytes { buf in
            while offset < buf.count {
                if buf.count - offset < cdc.maxSize && !eof { break }
                let (_, length) = cdc.cut(UnsafeRawBufferPointer(rebasing: buf[offset...]))
                chunks.append(offset..<(offset + length))
                offset += length
            }
        }
        carry = Array(block[offset...])
        block.removeSubrange(offset...)
        if chunks.isEmpty { return eof && carry.isEmpty ? nil : try next() }
        return (block, chunks)
    }
}
