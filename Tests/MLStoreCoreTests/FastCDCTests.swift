import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

@Suite struct FastCDCTests {
    static let image: [UInt8] = (try? Sys.readFile(TestFiles.fixtures() + "/fastcdc/SekienAkashita.jpg")) ?? []

    @Test func fixtureIsIntact() {
        #expect(Self.image.count == 109_466)
        #expect(Hex.encode(SHA256.hash(Self.image)) == "d9e749d9367fc908876749d6502eb212fee88c9a94892fb07da5ef3ba8bc39ed")
    }

    @Test func gearTableIsMD5Derived() {
        for i in 0..<256 {
            let digest = MD5.hash([UInt8](repeating: UInt8(i), count: 64))
            let word = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            #expect(fastCDCGear[i] == word, "gear[\(i)]")
        }
        #expect(fastCDCGear[0] == 0x3b5d_3c7d_207e_37dc)
        #expect(fastCDCGear[1] == 0x784d_68ba_9112_3086)
    }

    struct Vector: Sendable, CustomTestStringConvertible {
        let min: Int, avg: Int, max: Int, level: Int, seed: UInt64
        let cuts: [(UInt64, Int)]
        var testDescription: String { "min \(min) avg \(avg) max \(max) level \(level) seed \(seed)" }
    }

    /// The published vectors of fixtures/fastcdc/VECTORS.md.
    static let vectors: [Vector] = [
        Vector(min: 4096, avg: 16384, max: 65535, level: 1, seed: 0, cuts: [
            (17_968_276_318_003_433_923, 21325), (8_197_189_939_299_398_838, 17140), (13_019_990_849_178_155_730, 28084),
            (4_509_236_223_063_678_303, 18217), (2_504_464_741_100_432_583, 24700),
        ]),
        Vector(min: 4096, avg: 16384, max: 65535, level: 1, seed: 666, cuts: [
            (9_312_357_714_466_240_148, 10605), (226_910_853_333_574_584, 55745), (12_271_755_243_986_371_352, 11346),
            (14_153_975_939_352_546_047, 5883), (5_890_158_701_071_314_778, 11586), (8_981_594_897_574_481_255, 14301),
        ]),
        Vector(min: 8192, avg: 32768, max: 131_072, level: 1, seed: 0, cuts: [
            (15_733_367_461_443_853_673, 66549), (6_321_136_627_705_800_457, 42917),
        ]),
        Vector(min: 16384, avg: 65536, max: 262_144, level: 1, seed: 0, cuts: [(2_504_464_741_100_432_583, 109_466)]),
        Vector(min: 4096, avg: 16384, max: 65535, level: 0, seed: 0, cuts: [
            (443_122_261_039_895_162, 6634), (15_733_367_461_443_853_673, 59915), (10_460_176_299_449_652_894, 25597),
            (6_197_802_202_431_009_942, 5237), (6_321_136_627_705_800_457, 12083),
        ]),
        Vector(min: 8192, avg: 16384, max: 32768, level: 3, seed: 0, cuts: [
            (10_718_006_254_707_412_376, 17350), (13_104_072_099_671_895_560, 19911), (12_322_483_109_039_221_194, 17426),
            (16_009_206_469_796_846_404, 17519), (2_473_608_525_189_754_172, 19940), (2_504_464_741_100_432_583, 17320),
        ]),
    ]

    @Test(arguments: vectors)
    func referenceVectors(_ v: Vector) {
        let cdc = FastCDC(minSize: v.min, avgSize: v.avg, maxSize: v.max, level: v.level, seed: v.seed)
        let got = Self.image.withUnsafeBytes { cdc.chunks(of: $0) }
        #expect(got.map(\.length) == v.cuts.map(\.1))
        #expect(got.map(\.hash) == v.cuts.map(\.0))
    }

    /// The streaming reader cuts exactly like the in-memory cutter, across buffer refills.
    @Test func streamingReaderMatchesInMemory() throws {
        let dir = TempDir("cdc")
        try TestFiles.write(dir.file("f"), size: 3_000_000, seed: 5)
        let data = try Sys.readFile(dir.file("f"))
        let cdc = FastCDC(minSize: 4096, avgSize: 16384, maxSize: 65536, level: 2)
        let expected = data.withUnsafeBytes { cdc.chunks(of: $0) }.map(\.length)
        let fd = try Sys.open(dir.file("f"), O_RDONLY)
        defer { Sys.close(fd) }
        var reader = ChunkBlockReader(fd: fd, path: dir.file("f"), cdc: cdc, blockSize: 200_000)
        var lengths: [Int] = []
        while let (_, ranges) = try reader.next() { lengths += ranges.map(\.count) }
        #expect(lengths == expected)
        #expect(lengths.allSatisfy { $0 <= 65536 })
    }
}

#if canImport(Glibc)
    import Glibc
#endif
