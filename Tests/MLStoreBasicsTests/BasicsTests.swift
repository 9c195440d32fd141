import MLStoreBasics
import MLStoreTestSupport
import Testing

@Suite struct BasicsTests {
    @Test func sha256KnownVectors() {
        #expect(Hex.encode(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.encode(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // Streaming in pieces equals one shot.
        let h = SHA256()
        for part in ["a", "b", "c"] { h.update(part) }
        #expect(Hex.encode(h.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func hmacRFC4231Case2() {
        let mac = HMACSHA256.mac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Hex.encode(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func hexRoundTripAndRejects() {
        #expect(Hex.decode("00ff10Ab") == [0, 255, 16, 171])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
        #expect(Hex.encode([0, 255, 16]) == "00ff10")
    }

    @Test func zlibRoundTrip() throws {
        let text = Array(String(repeating: "id,value\n1,0.5\n", count: 1000).utf8)
        let z = try #require(Zlib.compress(text))
        #expect(z.count < text.count / 10)
        #expect(try Zlib.decompress(z, expectedSize: text.count) == text)
    }

    @Test func zlibRejectsWrongSizeTruncationAndGarbage() throws {
        let data = Array(repeating: UInt8(7), count: 100_000)
        let z = try #require(Zlib.compress(data))
        // A "bomb": the stream expands past what the object declared; memory stays bounded by the declared size.
        #expect(throws: MLStoreError.self) { try Zlib.decompress(z, expectedSize: 10) }
        #expect(throws: MLStoreError.self) { try Zlib.decompress(z, expectedSize: 200_000) }
        #expect(throws: MLStoreError.self) { try Zlib.decompress(Array(z.prefix(z.count / 2)), expectedSize: data.count) }
        #expect(throws: MLStoreError.self) { try Zlib.decompress([1, 2, 3, 4, 5], expectedSize: 5) }
    }

    @Test func entropyEstimateSeparatesTextFromNoise() {
        var gen = SeededGenerator(seed: 1)
        let noise = gen.bytes(65536)
        let text = Array(String(repeating: "0.123,4.56,label_a\n", count: 4000).utf8)
        let noiseBits = noise.withUnsafeBytes { Entropy.bitsPerByte($0) }
        let textBits = text.withUnsafeBytes { Entropy.bitsPerByte($0) }
        #expect(noiseBits > 7.9)
        #expect(textBits < 4.5)
    }

    @Test func pathHelpers() {
        #expect(Path.absolute("a/../b/./c", base: "/x") == "/x/b/c")
        #expect(Path.absolute("/a//b/", base: "/x") == "/a/b")
        #expect(Path.relative("/w/a/b", to: "/w") == "a/b")
        #expect(Path.relative("/w", to: "/w") == "")
        #expect(Path.relative("/wx/a", to: "/w") == nil)
        #expect(Path.parent("a/b/c") == "a/b")
        #expect(Path.basename("a/b/c") == "c")
    }

    @Test func lockFileIsExclusiveAndReportsHolder() throws {
        let dir = TempDir("lock")
        let target = dir.file("ref")
        let lock = try LockFile(target)
        #expect {
            _ = try LockFile(target)
        } throws: { e in
            (e as? MLStoreError)?.code == .locked && "\(e)".contains("ref.lock")
        }
        try lock.write(Array("v1\n".utf8))
        try lock.commit()
        #expect(try Sys.readFile(target) == Array("v1\n".utf8))
        #expect(try Sys.lstatIfExists(target + ".lock") == nil)
        // A rolled-back lock leaves the target alone.
        let second = try LockFile(target)
        try second.write(Array("v2\n".utf8))
        second.rollback()
        #expect(try Sys.readFile(target) == Array("v1\n".utf8))
    }

    @Test func atomicWriteReplacesWholeFile() throws {
        let dir = TempDir("atomic")
        let p = dir.file("f")
        try Sys.writeFileAtomically(p, Array(repeating: 1, count: 10))
        try Sys.writeFileAtomically(p, Array(repeating: 2, count: 5))
        #expect(try Sys.readFile(p) == Array(repeating: 2, count: 5))
        #expect(try Sys.listDirectory(dir.path).count == 1)  // no temp files left
    }

    @Test func systemErrorsNameThePath() {
        #expect {
            _ = try Sys.readFile("/nonexistent/mlstore-test")
        } throws: { e in
            "\(e)".contains("/nonexistent/mlstore-test")
        }
    }
}
