import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

@Suite struct ObjectIDTests {
    @Test func designVectors() {
        #expect(ObjectID.hash(kind: .blob, payload: Array("abc".utf8)).hex == "c1cf6e465077930e88dc5136641d402f72a229ddd996f627d60e9639eaba35a6")
        #expect(Tree.empty.id.hex == "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321")
        #expect(ObjectID.hash(kind: .blob, payload: []).hex == "473a0f4c3be8a93681a267e3b1e9a7dcda1185436fe141f7749120a303721813")
    }

    /// git in sha256 mode is the oracle for blob ids.
    @Test(arguments: [0, 1, 3, 100, 4096, 262_144])
    func blobIDsMatchGit(size: Int) throws {
        let dir = TempDir("git-oracle")
        var gen = SeededGenerator(seed: UInt64(size) + 7)
        let bytes = gen.bytes(size)
        try TestFiles.write(dir.file("f"), bytes)
        let r = shell("git init -q --object-format=sha256 repo && git --git-dir=repo/.git hash-object f", cwd: dir.path)
        try #require(r.status == 0, "git failed: \(r.output)")
        let gitID = r.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(ObjectID.hash(kind: .blob, payload: bytes).hex == gitID)
    }

    @Test func hexRoundTripAndOrdering() throws {
        let a = ObjectID.hash(kind: .blob, payload: [1])
        #expect(ObjectID(hex: a.hex) == a)
        #expect(ObjectID(bytes: a.bytes) == a)
        #expect(ObjectID(hex: "xyz") == nil)
        let ids = (0..<50).map { ObjectID.hash(kind: .blob, payload: [UInt8($0)]) }
        #expect(ids.sorted().map(\.hex) == ids.map(\.hex).sorted())
    }
}

@Suite struct CodecTests {
    @Test func randomFloatsAreStoredIdentity() {
        var gen = SeededGenerator(seed: 3)
        var buf = [UInt8](repeating: 0, count: 65536)
        buf.withUnsafeMutableBytes { gen.fillFloats($0) }
        let obj = ObjectCodec.encode(kind: .blob, payload: buf)
        #expect(obj.codec == .identity)
        #expect(Array(obj.stored) == buf)
    }

    @Test func csvIsCompressed() {
        var text = "id,feature_a,feature_b,label\n"
        var gen = SeededGenerator(seed: 4)
        for i in 0..<3000 { text += "\(i),\(gen.next() % 1000),\(Double(gen.next() % 10000) / 100),\(gen.next() % 2)\n" }
        let obj = ObjectCodec.encode(kind: .blob, payload: Array(text.utf8))
        #expect(obj.codec == .zlib)
        #expect(obj.stored.count < text.utf8.count / 2)
    }

    @Test func metadataIsCompressedWhenItPays() throws {
        let entries = (0..<200).map { TreeEntry(kind: .file, mode: 0o644, size: 10, name: "file-\($0).csv", id: ObjectID.hash(kind: .blob, payload: [UInt8($0 % 256)])) }
        let tree = try Tree(entries: entries)
        let obj = ObjectCodec.encode(kind: .tree, payload: tree.encoded())
        #expect(obj.codec == .zlib)
    }

    @Test func decodeVerifiesHashSizeAndCodec() throws {
        let payload = Array("hello world, hello world, hello world, hello world, hello world!".utf8)
        let obj = ObjectCodec.encode(kind: .blob, payload: payload)
        let ok = try obj.stored.withUnsafeBytes {
            try ObjectCodec.decode(id: obj.id, kind: .blob, payloadSize: payload.count, codec: obj.codec.rawValue, stored: $0, location: "test")
        }
        #expect(ok == payload)
        // Wrong kind → hash mismatch naming the id.
        #expect {
            try obj.stored.withUnsafeBytes {
                _ = try ObjectCodec.decode(id: obj.id, kind: .tree, payloadSize: payload.count, codec: obj.codec.rawValue, stored: $0, location: "test")
            }
        } throws: { e in (e as? MLStoreError)?.code == .corrupt && "\(e)".contains(obj.id.hex) }
        // Unknown codec → unsupported, with advice.
        #expect {
            try obj.stored.withUnsafeBytes {
                _ = try ObjectCodec.decode(id: obj.id, kind: .blob, payloadSize: payload.count, codec: 2, stored: $0, location: "test")
            }
        } throws: { e in (e as? MLStoreError)?.code == .unsupported && "\(e)".contains("upgrade") }
        // Huge declared size → corrupt, without allocating it.
        #expect(throws: MLStoreError.self) {
            try obj.stored.withUnsafeBytes {
                _ = try ObjectCodec.decode(id: obj.id, kind: .blob, payloadSize: Int.max, codec: 0, stored: $0, location: "test")
            }
        }
    }
}

@Suite struct TreeTests {
    func id(_ n: UInt8) -> ObjectID { ObjectID.hash(kind: .blob, payload: [n]) }

    @Test func encodeDecodeRoundTripSortedBytewise() throws {
        let t = try Tree(entries: [
            TreeEntry(kind: .file, mode: 0o644, size: 3, name: "b", id: id(1)),
            TreeEntry(kind: .directory, mode: 0o755, size: 10, name: "a", id: id(2)),
            TreeEntry(kind: .symlink, mode: 0o777, size: 1, name: "B", id: id(3)),
            TreeEntry(kind: .chunked, mode: 0o755, size: 1 << 30, name: "model.bin", id: id(4)),
        ])
        #expect(t.entries.map(\.name) == ["B", "a", "b", "model.bin"])
        #expect(try Tree(decoding: t.encoded()) == t)
        #expect(t.totalSize == 3 + 10 + 1 + (1 << 30))
    }

    @Test(arguments: ["..", ".", ".mlstore", "", "a/b", "nul\0name", String(repeating: "x", count: 256)])
    func badNamesAreRejected(name: String) {
        #expect(throws: MLStoreError.self) {
            _ = try Tree(entries: [TreeEntry(kind: .file, mode: 0o644, size: 0, name: name, id: id(0))])
        }
    }

    /// Hand-built payloads that a hostile remote could send.
    @Test(arguments: [
        "f 644 1 ..\0", "f 644 1 a/b\0", "f 644 1 .mlstore\0", "x 644 1 a\0", "f 600 1 a\0", "l 644 1 a\0",
        "f 644 -1 a\0", "f 644 01 a\0", "d 755 0 \0",
    ])
    func maliciousPayloadsAreRejected(header: String) {
        var payload = Array(header.utf8)
        payload += [UInt8](repeating: 0xab, count: 32)
        #expect(throws: MLStoreError.self) { _ = try Tree(decoding: payload) }
    }

    @Test func unsortedOrDuplicatePayloadsAreRejected() {
        func entry(_ n: String) -> [UInt8] { Array("f 644 1 \(n)\0".utf8) + [UInt8](repeating: 1, count: 32) }
        #expect(throws: MLStoreError.self) { _ = try Tree(decoding: entry("b") + entry("a")) }
        #expect(throws: MLStoreError.self) { _ = try Tree(decoding: entry("a") + entry("a")) }
        #expect(throws: MLStoreError.self) { _ = try Tree(decoding: entry("a") + [0x66, 0x20]) }  // truncated
    }

    @Test func chunkedPayloadRoundTripAndLies() throws {
        let chunks = [ChunkedFile.Chunk(id: id(1), length: 100), .init(id: id(2), length: 50)]
        let c = ChunkedFile(cdc: .standard, fileSize: 150, contentSHA256: [UInt8](repeating: 9, count: 32), chunks: chunks)
        #expect(try ChunkedFile(decoding: c.encoded()) == c)
        var lying = c
        lying.fileSize = 151
        #expect(throws: MLStoreError.self) { _ = try ChunkedFile(decoding: lying.encoded()) }
        var zero = c
        zero.chunks[0].length = 0
        zero.fileSize = 50
        #expect(throws: MLStoreError.self) { _ = try ChunkedFile(decoding: zero.encoded()) }
        #expect(throws: MLStoreError.self) { _ = try ChunkedFile(decoding: Array(c.encoded().dropLast(3))) }
    }
}
