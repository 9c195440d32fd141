import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

#if canImport(Glibc)
    import Glibc
#endif

/// Hostile input for every parser: each malformed payload is rejected with an `MLStoreError` (never a crash,
/// never an allocation sized by a lying length field). See spec/guarantees.md.
@Suite struct HostileParserTests {
    static let zeroID = ObjectID(bytes: [UInt8](repeating: 0, count: 32))
    static let someID = ObjectID(bytes: (0..<32).map { UInt8($0) })

    /// Runs `body` and requires that it throws an MLStoreError (any code in `codes`, if given).
    static func rejects(_ what: String, _ codes: [MLStoreError.Code] = [], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        do {
            try body()
            Issue.record("\(what): accepted", sourceLocation: sourceLocation)
        } catch let e as MLStoreError {
            if !codes.isEmpty && !codes.contains(e.code) {
                Issue.record("\(what): rejected with \(e.code), expected \(codes): \(e.message)", sourceLocation: sourceLocation)
            }
            #expect(!e.message.isEmpty, sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(what): threw a non-MLStoreError \(error)", sourceLocation: sourceLocation)
        }
    }

    static func treeEntry(_ header: String, _ name: [UInt8], _ id: ObjectID = someID) -> [UInt8] {
        var out = Array(header.utf8) + [UInt8(ascii: " ")] + name + [0]
        id.append(to: &out)
        return out
    }

    // MARK: Trees

    @Test func malformedTreesAreRejected() {
        let t = { (h: String, n: String) in Self.treeEntry(h, Array(n.utf8)) }
        let cases: [(String, [UInt8])] = [
            ("unknown kind", t("x 644 1", "a")),
            ("file mode 4755", t("f 4755 1", "a")),
            ("file mode 777", t("f 777 1", "a")),
            ("dir mode 644", t("d 644 1", "a")),
            ("symlink mode 644", t("l 644 1", "a")),
            ("negative size", t("f 644 -1", "a")),
            ("leading zero size", t("f 644 01", "a")),
            ("overflowing size", t("f 644 99999999999999999999", "a")),
            ("empty size", t("f 644 ", "a")),
            ("long mode", t("f 0000644 1", "a")),
            // Found by fuzz/Targets/TreeFuzz (round-trip): non-canonical modes are accepted, so two payloads
            // (two ids) decode to one tree. Regression: fixtures/fuzz-corpus/regressions/tree-noncanonical-mode.
            ("mode with a leading zero", t("f 0644 1", "a")),
            ("mode with a plus sign", t("f +644 1", "a")),
            ("name ..", t("f 644 1", "..")),
            ("name .", t("f 644 1", ".")),
            ("name .mlstore", t("d 755 1", ".mlstore")),
            ("empty name", t("f 644 1", "")),
            ("name with slash", t("f 644 1", "a/b")),
            ("absolute name", t("f 644 1", "/etc")),
            ("256-byte name", t("f 644 1", String(repeating: "n", count: 256))),
            ("invalid UTF-8 name", Self.treeEntry("f 644 1", [0x61, 0xFF, 0xFE])),
            ("truncated id", Array(t("f 644 1", "a").dropLast(5))),
            ("no NUL after name", Array("f 644 1 abc".utf8)),
            ("unsorted", t("f 644 1", "b") + t("f 644 1", "a")),
            ("duplicate", t("f 644 1", "a") + t("d 755 1", "a")),
            ("case-sensitive order is bytewise", t("f 644 1", "a") + t("f 644 1", "A")),
            ("missing space after kind", Array("f644 1 a".utf8) + [0] + [UInt8](repeating: 0, count: 32)),
        ]
        for (what, payload) in cases {
            Self.rejects("tree: \(what)", [.corrupt, .unsafePath]) { _ = try Tree(decoding: payload) }
        }
        // Upper- and lower-case names are distinct and both kept (bytewise order: "A" < "a").
        let both = try? Tree(decoding: t("f 644 1", "A") + t("f 644 1", "a"))
        #expect(both?.entries.map(\.name) == ["A", "a"])
    }

    @Test func everyMutationOfAValidTreeIsParsedOrRejectedCleanly() throws {
        let good = try Tree(entries: [
            TreeEntry(kind: .file, mode: 0o644, size: 3, name: "a.txt", id: Self.someID),
            TreeEntry(kind: .directory, mode: 0o755, size: 10, name: "dir", id: Self.zeroID),
            TreeEntry(kind: .symlink, mode: 0o777, size: 4, name: "link", id: Self.someID),
        ]).encoded()
        var rng = SeededGenerator(seed: 10)
        for i in 0..<good.count {
            for v: UInt8 in [0, 0x20, 0x2F, 0x2E, 0xFF, UInt8(truncatingIfNeeded: rng.next())] {
                var m = good
                m[i] = v
                do { _ = try Tree(decoding: m) } catch is MLStoreError {} catch { Issue.record("tree mutation \(i)=\(v): \(error)") }
            }
            do { _ = try Tree(decoding: Array(good.prefix(i))) } catch is MLStoreError {} catch { Issue.record("truncation \(i): \(error)") }
        }
    }

    // MARK: Chunked files

    static func chunked(version: UInt8 = 1, algo: UInt8 = 1, size: UInt64, count: UInt64, lengths: [UInt32]) -> [UInt8] {
        var w: [UInt8] = [version, algo, 2, 0]
        func u32(_ v: UInt32) { w += withUnsafeBytes(of: v.bigEndian, Array.init) }
        func u64(_ v: UInt64) { w += withUnsafeBytes(of: v.bigEndian, Array.init) }
        u32(16384); u32(65536); u32(262144)
        u64(size)
        w += [UInt8](repeating: 7, count: 32)
        u64(count)
        for l in lengths {
            Self.someID.append(to: &w)
            u32(l)
        }
        return w
    }

    @Test func chunkListsThatLieAreRejected() {
        let cases: [(String, [UInt8], [MLStoreError.Code])] = [
            ("version 2", Self.chunked(version: 2, size: 10, count: 1, lengths: [10]), [.unsupported]),
            ("unknown chunker", Self.chunked(algo: 9, size: 10, count: 1, lengths: [10]), [.corrupt]),
            ("count larger than the list", Self.chunked(size: 10, count: 2, lengths: [10]), [.corrupt]),
            ("count UInt64.max", Self.chunked(size: 10, count: .max, lengths: [10]), [.corrupt]),
            ("count smaller than the list", Self.chunked(size: 20, count: 1, lengths: [10, 10]), [.corrupt]),
            ("zero-length chunk", Self.chunked(size: 0, count: 1, lengths: [0]), [.corrupt]),
            ("chunk over 64 MiB", Self.chunked(size: 64 << 20 + 1, count: 1, lengths: [64 << 20 + 1]), [.corrupt]),
            ("lengths sum to less", Self.chunked(size: 30, count: 2, lengths: [10, 10]), [.corrupt]),
            ("lengths sum to more", Self.chunked(size: 10, count: 2, lengths: [10, 10]), [.corrupt]),
            ("file size over Int64.max", Self.chunked(size: .max, count: 1, lengths: [10]), [.corrupt]),
            ("truncated header", Array(Self.chunked(size: 10, count: 1, lengths: [10]).prefix(30)), [.corrupt]),
            ("ragged list", Self.chunked(size: 10, count: 1, lengths: [10]) + [1, 2, 3], [.corrupt]),
            ("empty", [], [.corrupt]),
            // Found by fuzz/Targets/ChunkedFuzz (round-trip): a non-zero reserved byte is accepted, so two payloads
            // decode to one chunk list. Regression: fixtures/fuzz-corpus/regressions/chunked-reserved-byte-nonzero.
            ("reserved byte 1", { var b = Self.chunked(size: 10, count: 1, lengths: [10]); b[3] = 1; return b }(), [.corrupt]),
        ]
        for (what, payload, codes) in cases {
            Self.rejects("chunked: \(what)", codes) { _ = try ChunkedFile(decoding: payload) }
        }
        #expect((try? ChunkedFile(decoding: Self.chunked(size: 20, count: 2, lengths: [10, 10])))?.chunks.count == 2)
    }

    // MARK: Commits, stage records, tags

    @Test func malformedCommitsStageRecordsAndTagsAreRejected() {
        let sig = "A <a@example.com> 1700000000 +0000"
        let tree = "tree \(Self.someID.hex)\n"
        let commits: [(String, [UInt8])] = [
            ("not UTF-8", [0xFF, 0xFE, 0x00]),
            ("empty", []),
            ("missing tree", Array("author \(sig)\ncommitter \(sig)\n\nm".utf8)),
            ("bad tree id", Array("tree 1234\nauthor \(sig)\ncommitter \(sig)\n\nm".utf8)),
            ("unknown header", Array("\(tree)author \(sig)\ncommitter \(sig)\nevil yes\n\nm".utf8)),
            ("bad signature", Array("\(tree)author nobody\ncommitter \(sig)\n\nm".utf8)),
            ("bad command JSON", Array("\(tree)author \(sig)\ncommitter \(sig)\ncommand [1,\n\nm".utf8)),
            ("command of numbers", Array("\(tree)author \(sig)\ncommitter \(sig)\ncommand [1]\n\nm".utf8)),
            ("deeply nested command", Array("\(tree)author \(sig)\ncommitter \(sig)\ncommand \(String(repeating: "[", count: 100_000))\n\nm".utf8)),
            ("artifact without path", Array("\(tree)input \(Self.someID.hex)\nauthor \(sig)\ncommitter \(sig)\n\nm".utf8)),
            ("bad code line", Array("\(tree)code \(Self.someID.hex)\nauthor \(sig)\ncommitter \(sig)\n\nm".utf8)),
        ]
        for (what, payload) in commits {
            Self.rejects("commit: \(what)") { _ = try Commit(decoding: payload) }
        }
        let stages: [(String, String)] = [
            ("missing ref", "action promote\ntarget \(Self.someID.hex)\nactor \(sig)\n\nm"),
            ("ref outside stages", "ref refs/heads/main\naction promote\ntarget \(Self.someID.hex)\nactor \(sig)\n\nm"),
            ("traversing ref", "ref refs/stages/a/b/../../x\naction promote\ntarget \(Self.someID.hex)\nactor \(sig)\n\nm"),
            ("bad action", "ref refs/stages/m/production\naction explode\ntarget \(Self.someID.hex)\nactor \(sig)\n\nm"),
            ("promote without target", "ref refs/stages/m/production\naction promote\nactor \(sig)\n\nm"),
            ("bad target", "ref refs/stages/m/production\naction promote\ntarget zz\nactor \(sig)\n\nm"),
            ("missing actor", "ref refs/stages/m/production\naction promote\ntarget \(Self.someID.hex)\n\nm"),
        ]
        for (what, text) in stages {
            Self.rejects("stage record: \(what)") { _ = try StageRecord(decoding: Array(text.utf8)) }
        }
        Self.rejects("stage record: not UTF-8") { _ = try StageRecord(decoding: [0xC0, 0x80]) }
        for garbage in ["", "object zz\n\nm", "object \(Self.someID.hex)\ntype nothing\ntag v1\ntagger \(sig)\n\nm"] {
            Self.rejects("tag: \(garbage.debugDescription)") { _ = try TagObject(decoding: Array(garbage.utf8)) }
        }
    }

    @Test func randomBytesNeverCrashAnyParser() {
        var rng = SeededGenerator(seed: 0x5EED)
        for i in 0..<3000 {
            let n = Int(rng.next() % 300)
            var bytes = rng.bytes(n)
            // Bias towards almost-valid text: sprinkle header words and separators.
            if i % 2 == 0 {
                let words = ["tree ", "parent ", "f 644 ", "d 755 ", "\n", " ", "\0", "ref refs/stages/", "action promote\n"]
                bytes = Array(words[Int(rng.next() % UInt64(words.count))].utf8) + bytes
            }
            _ = try? Tree(decoding: bytes)
            _ = try? ChunkedFile(decoding: bytes)
            _ = try? Commit(decoding: bytes)
            _ = try? StageRecord(decoding: bytes)
            _ = try? TagObject(decoding: bytes)
            _ = try? WorkspaceIndex(decoding: bytes, path: "index")
            _ = try? JSONValue.parse(json: bytes, what: "fuzz")
        }
    }

    // MARK: Codecs and loose objects

    @Test func decompressionBombFailsWithinTheDeclaredSize() throws {
        // 256 MiB of zeros compress to ~256 KiB; calloc'd zero pages are not resident, so making the bomb is cheap.
        let big = 256 << 20
        let raw = try #require(calloc(big, 1))
        defer { free(raw) }
        let bomb = try #require(Zlib.compress(UnsafeRawBufferPointer(start: raw, count: big), level: 9))
        #expect(bomb.count < 2 << 20)
        var before = rusage()
        getrusage(RUSAGE_SELF.rawValue, &before)
        for declared in [0, 1000, 1 << 20] {
            Self.rejects("bomb declaring \(declared) bytes", [.corrupt]) {
                _ = try bomb.withUnsafeBytes {
                    try ObjectCodec.decode(id: Self.someID, kind: .blob, payloadSize: declared, codec: 1, stored: $0, location: "test")
                }
            }
        }
        var after = rusage()
        getrusage(RUSAGE_SELF.rawValue, &after)
        // ru_maxrss is in KiB; inflating the bomb would have needed 256 MiB.
        #expect(after.ru_maxrss - before.ru_maxrss < 128 << 10, "peak RSS grew by \(after.ru_maxrss - before.ru_maxrss) KiB")
        // Declared sizes over the 1 GiB limit are refused before any allocation.
        Self.rejects("declared 2^40 bytes", [.corrupt]) {
            _ = try bomb.withUnsafeBytes {
                try ObjectCodec.decode(id: Self.someID, kind: .blob, payloadSize: 1 << 40, codec: 1, stored: $0, location: "test")
            }
        }
        Self.rejects("negative declared size", [.corrupt]) {
            _ = try bomb.withUnsafeBytes {
                try ObjectCodec.decode(id: Self.someID, kind: .blob, payloadSize: -1, codec: 1, stored: $0, location: "test")
            }
        }
        Self.rejects("unknown codec", [.unsupported]) {
            _ = try [1, 2, 3].withUnsafeBytes {
                try ObjectCodec.decode(id: Self.someID, kind: .blob, payloadSize: 3, codec: 2, stored: $0, location: "test")
            }
        }
        Self.rejects("truncated zlib", [.corrupt]) {
            let z = Zlib.compress(Array(repeating: UInt8(1), count: 10_000), level: 6)!
            _ = try Array(z.prefix(z.count / 2)).withUnsafeBytes {
                try ObjectCodec.decode(id: Self.someID, kind: .blob, payloadSize: 10_000, codec: 1, stored: $0, location: "test")
            }
        }
    }

    @Test func looseObjectWithLyingHeaderIsRejected() throws {
        let f = try Fixture("hostile-loose")
        let id = try f.repo.objects.write(kind: .blob, payload: Array(repeating: 0x41, count: 5000))
        let path = f.repo.objects.loose.path(id)
        let original = try Sys.readFile(path)
        func header(codec: UInt8, kind: UInt8, size: UInt64) -> [UInt8] {
            Array("mlso".utf8) + [1, codec, kind, 0] + withUnsafeBytes(of: size.bigEndian, Array.init)
        }
        let cases: [(String, [UInt8])] = [
            ("declares 2^40 bytes", header(codec: original[5], kind: 1, size: 1 << 40) + original.dropFirst(16)),
            ("declares UInt64.max", header(codec: original[5], kind: 1, size: .max) + original.dropFirst(16)),
            ("declares fewer bytes", header(codec: original[5], kind: 1, size: 10) + original.dropFirst(16)),
            ("unknown kind", header(codec: original[5], kind: 99, size: 5000) + original.dropFirst(16)),
            ("wrong kind", header(codec: original[5], kind: 3, size: 5000) + original.dropFirst(16)),
            ("header only", Array(original.prefix(16))),
            ("short header", Array(original.prefix(7))),
            ("empty", []),
        ]
        for (what, bytes) in cases {
            chmod(path, 0o644)
            try TestFiles.write(path, bytes)
            Self.rejects("loose object: \(what)") { _ = try f.repo.objects.read(id) }
        }
    }

    // MARK: Packs and pack indexes

    @Test func malformedPackIndexesAreRejected() throws {
        let dir = TempDir("hostile-idx")
        let good = PackIndex.build(entries: [(Self.someID, 8), (Self.zeroID, 100)], packChecksum: [UInt8](repeating: 1, count: 32))
        func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.bigEndian, Array.init) }
        var decreasing = good
        decreasing[48 + 4 * 10 + 3] = 9  // fanout[10] = 9 > fanout[11]
        var wrongTotal = good
        wrongTotal[48 + 4 * 255 + 3] = 1
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("magic only", Array("MLSI".utf8)),
            ("bad magic", Array("XXXX".utf8) + good.dropFirst(4)),
            ("version 2", Array(good.prefix(4)) + [0, 0, 0, 2] + good.dropFirst(8)),
            ("count UInt64.max", Array(good.prefix(40)) + u64(.max) + good.dropFirst(48)),
            ("count 2^61", Array(good.prefix(40)) + u64(1 << 61) + good.dropFirst(48)),
            ("count 3 for 2 entries", Array(good.prefix(40)) + u64(3) + good.dropFirst(48)),
            ("truncated", Array(good.dropLast(1))),
            ("trailing byte", good + [0]),
            ("decreasing fan-out", decreasing),
            ("fan-out total ≠ count", wrongTotal),
        ]
        for (i, (what, bytes)) in cases.enumerated() {
            let p = dir.file("bad\(i).idx")
            try TestFiles.write(p, bytes)
            Self.rejects("pack index: \(what)", [.corrupt, .unsupported]) { _ = try PackIndex(path: p) }
        }
    }

    @Test func packIndexOffsetsThatLieAreRejectedOnRead() throws {
        let f = try Fixture("hostile-pack")
        let batch = f.repo.objects.batch(packOnly: true)
        var ids: [ObjectID] = []
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<40 { ids.append(try batch.add(kind: .blob, payload: rng.bytes(200))) }
        try batch.commit()
        let idx = try #require(try Sys.listDirectory(f.path(".mlstore/objects/pack")).map(\.0).first { $0.hasSuffix(".idx") })
        let idxPath = f.path(".mlstore/objects/pack/" + idx)
        let original = try Sys.readFile(idxPath)
        let offsetsAt = 48 + 1024 + 40 * 32
        for bad: UInt64 in [.max, 1 << 62, UInt64(Int64.max), 1, 9_999_999, 4] {
            var b = original
            for i in 0..<40 { b.replaceSubrange((offsetsAt + i * 8)..<(offsetsAt + i * 8 + 8), with: withUnsafeBytes(of: bad.bigEndian, Array.init)) }
            chmod(idxPath, 0o644)
            try TestFiles.write(idxPath, b)
            let fresh = try Repository.open(at: f.dir.path)
            for id in ids.prefix(3) {
                do { _ = try fresh.objects.read(id) } catch is MLStoreError {} catch is SystemError {} catch {
                    Issue.record("offset \(bad): unexpected \(error)")
                }
            }
            // fsck reports the damage instead of crashing.
            if let report = try? fresh.fsck() { #expect(!report.problems.isEmpty, "offset \(bad): fsck found nothing") }
        }
    }

    // MARK: Workspace index, refs, config, params

    @Test func malformedWorkspaceIndexesAreRejected() {
        func sealed(_ body: [UInt8]) -> [UInt8] { body + SHA256.hash(body) }
        let magic = Array("MLSX".utf8) + [0, 0, 0, 1]
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("short", Array(repeating: 0, count: 43)),
            ("checksum mismatch", magic + [0, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 32)),
            ("bad magic", sealed(Array("XXXX".utf8) + [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0])),
            ("version 9", sealed(Array("MLSX".utf8) + [0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0])),
            ("root count lies", sealed(magic + [0xFF, 0xFF, 0xFF, 0xFF, 0, 3, 0x61])),
            ("entry count lies", sealed(magic + [0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 0x61])),
            ("directory entry", sealed(magic + [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0x61, UInt8(ascii: "d")] + [UInt8](repeating: 0, count: 2 + 32 + 32))),
            ("trailing bytes", sealed(magic + [0, 0, 0, 0, 0, 0, 0, 0, 42])),
        ]
        for (what, bytes) in cases {
            Self.rejects("workspace index: \(what)", [.corrupt, .unsupported]) { _ = try WorkspaceIndex(decoding: bytes, path: "index") }
        }
    }

    @Test func malformedRefsAndConfigAreHandled() throws {
        let f = try Fixture("hostile-refs")
        let refs = Refs(storeDirectory: f.repo.storeDirectory)
        let bad: [(String, [UInt8])] = [
            ("empty", []), ("short hex", Array("abcd\n".utf8)), ("garbage", Array("ref: ../../../etc/passwd\n".utf8)),
            ("binary", [0, 1, 2, 0xFF]), ("huge", [UInt8](repeating: 0x61, count: 100_000)),
            ("upper-case hex", Array((Self.someID.hex.uppercased() + "x\n").utf8)),
        ]
        for (what, bytes) in bad {
            try TestFiles.write(f.path(".mlstore/refs/heads/evil"), bytes)
            Self.rejects("ref: \(what)") { _ = try refs.read("refs/heads/evil") }
        }
        // A directory where a ref should be: an error, not a crash.
        try Sys.mkdirs(f.path(".mlstore/refs/heads/dir"))
        Self.rejects("ref that is a directory") { _ = try refs.read("refs/heads/dir") }
        for name in ["refs/heads/../../x", "refs/heads/a..b", "refs/heads/.hidden", "refs/heads/x.lock", "refs/heads/a b", "refs/heads/a\u{0}b", "refs/heads/"] {
            Self.rejects("ref name \(name.debugDescription)") { try Refs.validate(name) }
        }
        // Garbage config: parsed leniently, never a crash; an unknown key reads as absent.
        var rng = SeededGenerator(seed: 9)
        for i in 0..<50 {
            var bytes = rng.bytes(500)
            if i % 2 == 0 { bytes = Array("[remote \"\u{0}\n[[[\n= = =\n\"\n".utf8) + bytes }
            try TestFiles.write(f.path(".mlstore/config"), bytes)
            let c = try Config(path: f.path(".mlstore/config"))
            _ = c.entries
            #expect(c.get("remote.origin.url") == nil || i % 2 == 1)
        }
        // A 2 MiB config is refused (read limit 1 MiB) or read; either way no crash.
        try TestFiles.write(f.path(".mlstore/config"), [UInt8](repeating: 0x61, count: 2 << 20))
        _ = try? Config(path: f.path(".mlstore/config"))
    }

    @Test func oversizedOrHostileParamsFilesAreRefused() throws {
        let dir = TempDir("hostile-params")
        let big = dir.file("params.json")
        var text = Array("{\"pad\": \"".utf8) + [UInt8](repeating: 0x61, count: 17 << 20) + Array("\"}".utf8)
        try TestFiles.write(big, text)
        Self.rejects("17 MiB params.json", [.usage]) { _ = try JSONValue.load(file: big, what: "params file") }
        text = Array("a: \"".utf8) + [UInt8](repeating: 0x61, count: 17 << 20) + Array("\"\n".utf8)
        try TestFiles.write(dir.file("params.yaml"), text)
        Self.rejects("17 MiB params.yaml", [.usage]) { _ = try JSONValue.load(file: dir.file("params.yaml"), what: "params file") }
        try TestFiles.write(dir.file("deep.json"), String(repeating: "[", count: 200_000))
        Self.rejects("JSON nested 200,000 deep") { _ = try JSONValue.load(file: dir.file("deep.json"), what: "params file") }
        try TestFiles.write(dir.file("bin.yaml"), [0xFF, 0xFE, 0, 1])
        Self.rejects("binary YAML", [.usage]) { _ = try JSONValue.load(file: dir.file("bin.yaml"), what: "params file") }
    }

    // MARK: Trees as graphs, and checkout

    @Test func nestingDeeperThanTheLimitFailsCleanly() throws {
        let f = try Fixture("hostile-deep")
        let blob = try f.repo.objects.write(kind: .blob, payload: Array("x".utf8))
        var t = try f.repo.objects.write(kind: .tree, payload: Self.treeEntry("f 644 1", Array("x".utf8), blob))
        for _ in 0..<300 { t = try f.repo.objects.write(kind: .tree, payload: Self.treeEntry("d 755 1", Array("d".utf8), t)) }
        Self.rejects("300-deep tree", [.corrupt]) { _ = try f.repo.flatten(tree: t) }
        Self.rejects("checkout of a 300-deep tree") { _ = try f.ws.checkout(tree: t) }
        #expect(try Sys.lstatIfExists(f.path("d")) == nil, "checkout wrote part of a rejected tree")
    }

    @Test func aTreeThatNamesItselfFailsCleanly() throws {
        // A cycle needs a hash collision, so a hostile store can only fake one with an object whose content
        // does not match its id: reading it fails verification.
        let f = try Fixture("hostile-cycle")
        let fake = Self.someID
        let payload = Self.treeEntry("d 755 1", Array("loop".utf8), fake)
        let real = try f.repo.objects.write(kind: .tree, payload: payload)
        let dest = f.repo.objects.loose.path(fake)
        try Sys.mkdirs(String(dest.prefix(upTo: dest.lastIndex(of: "/")!)))
        try TestFiles.write(dest, try Sys.readFile(f.repo.objects.loose.path(real)))
        Self.rejects("self-referencing tree", [.corrupt]) { _ = try f.repo.flatten(tree: fake) }
        Self.rejects("checkout of a self-referencing tree") { _ = try f.ws.checkout(tree: fake) }
        #expect(try Sys.lstatIfExists(f.path("loop")) == nil)
    }

    @Test func caseCollidingNamesAreBothWrittenAndNothingIsLost() throws {
        let f = try Fixture("hostile-case")
        let upper = try f.repo.objects.write(kind: .blob, payload: Array("UPPER".utf8))
        let lower = try f.repo.objects.write(kind: .blob, payload: Array("lower".utf8))
        let tree = try f.repo.objects.write(
            kind: .tree, payload: Self.treeEntry("f 644 5", Array("A".utf8), upper) + Self.treeEntry("f 644 5", Array("a".utf8), lower))
        _ = try f.ws.checkout(tree: tree)
        // Linux file systems are case-sensitive: both files exist with their own content. (On a case-insensitive
        // file system the second write would replace the first; see spec/guarantees.md.)
        #expect(try Sys.readFile(f.path("A")) == Array("UPPER".utf8))
        #expect(try Sys.readFile(f.path("a")) == Array("lower".utf8))
    }

    @Test func symlinkEntriesNeverLetCheckoutWriteOutside() throws {
        let f = try Fixture("hostile-symlink")
        let outside = TempDir("hostile-outside")
        let target = try f.repo.objects.write(kind: .blob, payload: Array(outside.path.utf8))
        let secret = try f.repo.objects.write(kind: .blob, payload: Array("pwned".utf8))
        // Tree 1: `escape` is a symlink to a directory outside the workspace.
        let t1 = try f.repo.objects.write(kind: .tree, payload: Self.treeEntry("l 777 \(outside.path.utf8.count)", Array("escape".utf8), target))
        _ = try f.ws.checkout(tree: t1)
        // Tree 2: `escape` is a directory holding a file; checkout must replace the symlink, not write through it.
        let inner = try f.repo.objects.write(kind: .tree, payload: Self.treeEntry("f 644 5", Array("owned.txt".utf8), secret))
        let t2 = try f.repo.objects.write(kind: .tree, payload: Self.treeEntry("d 755 5", Array("escape".utf8), inner))
        do { _ = try f.ws.checkout(tree: t2, options: .init(force: true)) } catch let e as MLStoreError { _ = e }
        #expect(try Sys.listDirectory(outside.path).isEmpty, "checkout wrote through a symlink into \(outside.path)")
    }

    // MARK: Fuzz corpus and regressions

    /// Replays every seed and every crash the fuzzers found (fixtures/fuzz-corpus/**, see fuzz/README.md)
    /// through every parser: each must parse or throw an MLStoreError.
    @Test func fuzzCorpusAndRegressionsParseOrFailCleanly() throws {
        let root = TestFiles.fixtures() + "/fuzz-corpus"
        var files = 0
        for (dir, _) in try Sys.listDirectory(root) {
            for (name, _) in try Sys.listDirectory(root + "/" + dir) {
                let bytes = try Sys.readFile(root + "/" + dir + "/" + name)
                files += 1
                for parse in Self.parsers {
                    do { try parse(bytes) } catch is MLStoreError {} catch is SystemError {} catch {
                        Issue.record("\(dir)/\(name): \(error)")
                    }
                }
            }
        }
        #expect(files > 0)
    }

    static let parsers: [@Sendable ([UInt8]) throws -> Void] = [
        { _ = try Tree(decoding: $0) },
        { _ = try ChunkedFile(decoding: $0) },
        { _ = try Commit(decoding: $0) },
        { _ = try StageRecord(decoding: $0) },
        { _ = try TagObject(decoding: $0) },
        { _ = try WorkspaceIndex(decoding: $0, path: "index") },
        { bytes in
            guard bytes.count >= 4 else { return }
            let declared = Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
            _ = try Array(bytes.dropFirst(4)).withUnsafeBytes {
                try ObjectCodec.decode(id: Self.zeroID, kind: .blob, payloadSize: declared, codec: bytes[0] & 3, stored: $0, location: "fuzz")
            }
        },
        { bytes in
            let dir = TempDir("fuzz-replay")
            try TestFiles.write(dir.file("x.idx"), bytes)
            let idx = try PackIndex(path: dir.file("x.idx"))
            for i in 0..<min(idx.count, 1000) { _ = idx.find(idx.id(at: i)) }
        },
    ]
}
