import Foundation
import MLStoreBasics
import Testing

@Suite("plumbing: hash-object, cat-object, bad input")
struct ObjectCommandTests {
    @Test("hash-object ids equal git hash-object in a sha256 repository")
    func hashObjectMatchesGit() throws {
        try #require(CLI.hasGit, "git is needed for this test")
        let tmp = try TempDir()
        defer { tmp.remove() }
        let g = try CLI.run("git", ["-c", "init.defaultBranch=main", "init", "-q", "--object-format=sha256", "."], in: tmp.path)
        try #require(g.status == 0, "git init --object-format=sha256: \(g)")
        let files: [(String, Data)] = [
            ("empty", Data()),
            ("hello.txt", Data("hello\n".utf8)),
            ("binary.bin", FS.randomData(count: 1000, seed: 7)),
            ("zeros.bin", Data(count: 70_000)),
            ("exact.bin", FS.randomData(count: 262_144, seed: 8)),
            ("name with spaces.txt", Data("spaces\n".utf8)),
        ]
        for (name, data) in files { try FS.write(tmp.path + "/" + name, data) }
        let names = files.map(\.0)
        let git = try CLI.run("git", ["hash-object"] + names, in: tmp.path)
        try #require(git.status == 0, "\(git)")
        // hash-object needs no store.
        let ml = try CLI.mlstore(["hash-object"] + names, in: tmp.path)
        try #require(ml.status == 0, "\(ml)")
        #expect(git.lines.count == files.count)
        #expect(ml.lines == git.lines, "mlstore: \(ml.lines)\ngit: \(git.lines)")
        #expect(ml.lines.allSatisfy(isObjectID))
        // Known value from spec: sha256 of "blob 3\0abc".
        try FS.write(tmp.path + "/abc", "abc")
        let abc = try CLI.mlstore(["hash-object", "abc"], in: tmp.path)
        let expected = hex(MLStoreBasics.SHA256.hash(Array("blob 3\0abc".utf8)))
        #expect(abc.stdout.trimmingCharacters(in: .newlines) == expected)

        // A file over 256 KiB gets a chunked id that differs from git's blob id.
        try FS.write(tmp.path + "/over.bin", FS.randomData(count: 262_145, seed: 9))
        let j = try CLI.mlstore(["hash-object", "--json", "over.bin"], in: tmp.path)
        #expect(j.status == 0, "\(j)")
        let rows = try JSONSerialization.jsonObject(with: j.stdoutData) as? [[String: String]]
        #expect(rows?.first?["kind"] == "chunked", "\(j.stdout)")
        #expect(rows?.first?["size"] == "262145")

        // Directories and missing files are refused.
        let dir = try CLI.mlstore(["hash-object", "."], in: tmp.path)
        #expect(dir.status == 2, "\(dir)")
        let missing = try CLI.mlstore(["hash-object", "nope"], in: tmp.path)
        #expect(missing.status == 3, "\(missing)")
        #expect(!missing.stderr.isEmpty)
    }

    @Test("hash-object -w stores objects; cat-object -t/-s/-p print kind, size, content")
    func catObject() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        let content = Data("some content\nwith two lines\n".utf8)
        try ws.write("d/f.txt", content)
        try ws.write("d/big.bin", FS.randomData(count: 600_000, seed: 11))
        let w = try ws.run("hash-object", "-w", "d/f.txt")
        #expect(w.status == 0, "\(w)")
        let id = w.stdout.trimmingCharacters(in: .newlines)
        try #require(isObjectID(id), "\(w)")
        #expect(ws.looseObjects().contains { $0.id == id }, "hash-object -w must write the object")

        #expect(try ws.run("cat-object", "-t", id).stdout == "blob\n")
        #expect(try ws.run("cat-object", "-s", id).stdout == "\(content.count)\n")
        let p = try ws.run("cat-object", "-p", id)
        #expect(p.status == 0 && p.stdoutData == content, "\(p)")
        let raw = try ws.run("cat-object", String(id.prefix(8)))
        #expect(raw.status == 0 && raw.stdoutData == content, "prefix lookup: \(raw)")
        #expect(try ws.run("cat-object", id.uppercased()).stdoutData == content, "ids are case-insensitive")

        // Trees and chunked files.
        try ws.ok("add", "d")
        let tree = try ws.writeTree()
        #expect(try ws.run("cat-object", "-t", tree).stdout == "tree\n")
        let top = try ws.run("cat-object", "-p", tree)
        #expect(top.status == 0)
        // Entry lines: <kind> <mode> <id> <size>\t<name>; the kind is printed as the tree's code letter
        // (d/f/c/l) or spelled out as ls-tree does.
        func kindToken(_ line: String) -> String { String(line.prefix { $0 != " " }) }
        #expect(top.lines.count == 1 && top.stdout.hasSuffix("\td\n"), "\(top.stdout)")
        #expect(["d", "tree"].contains(kindToken(top.stdout)), "\(top.stdout)")
        #expect(top.stdout.split(separator: " ").dropFirst().first == "755", "\(top.stdout)")
        let sub = try #require(top.stdout.split(separator: " ").dropFirst(2).first.map(String.init))
        let listing = try ws.run("cat-object", "-p", sub)
        #expect(listing.lines.count == 2, "\(listing.stdout)")
        let fileLine = try #require(listing.lines.first { $0.hasSuffix("\tf.txt") })
        #expect(["f", "file"].contains(kindToken(fileLine)), "\(fileLine)")
        #expect(fileLine.contains(" 644 \(id) ") && fileLine.contains(" \(content.count)\t"), "\(fileLine)")
        let bigLine = try #require(listing.lines.first { $0.hasSuffix("\tbig.bin") })
        #expect(["c", "chunked"].contains(kindToken(bigLine)) && bigLine.contains(" 644 "), "\(bigLine)")
        let chunkedID = String(bigLine.split(separator: " ")[2])
        #expect(try ws.run("cat-object", "-t", chunkedID).stdout == "chunked\n")
        let desc = try ws.run("cat-object", "-p", chunkedID)
        #expect(desc.status == 0)
        #expect(desc.lines.first == "size 600000", "\(desc.stdout)")
        let chunkCount = try #require(desc.lines.first { $0.hasPrefix("chunks ") }.flatMap { Int($0.dropFirst(7)) })
        #expect(chunkCount >= 2, "\(desc.stdout)")
        // Chunk lines: id, offset, length; lengths add up to the file size.
        let chunkLines = desc.lines.filter { $0.split(separator: " ").count == 3 && isObjectID(String($0.prefix(64))) }
        #expect(chunkLines.count == chunkCount)
        #expect(chunkLines.compactMap { Int($0.split(separator: " ")[2]) }.reduce(0, +) == 600_000)

        // Only one of -t/-s/-p.
        let both = try ws.run("cat-object", "-t", "-s", id)
        #expect(both.status == 2, "\(both)")
    }

    @Test("bad object names and arguments give the documented exit codes and an error on stderr")
    func badInput() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("d/f.txt", "f\n")
        try ws.ok("add", "d")
        let tree = try ws.writeTree()
        let blob = try #require(ws.looseObjects().first { $0.id != tree }?.id)

        let cases: [(args: [String], status: Int32, mentions: String?)] = [
            (["cat-object", "-t", "ffff0000ffff"], 3, "ffff0000ffff"),  // unknown prefix
            (["cat-object", String(repeating: "0", count: 64)], 3, nil),  // unknown full id
            (["cat-object", "abc"], 2, "abc"),  // too short
            (["cat-object", "not-hex!"], 3, "not-hex!"),  // neither an id nor a ref name that exists
            (["cat-object", "zzzzzzzz"], 3, nil),
            (["cat-object", String(repeating: "a", count: 65)], 2, nil),  // too long
            (["checkout", blob], 2, "blob"),  // not a tree
            (["ls-tree", blob], 2, nil),
            (["checkout", "ffff0000ffff"], 3, nil),
            (["add", "does-not-exist"], 3, "does-not-exist"),
            (["add"], 2, nil),  // no paths
            (["checkout"], 2, nil),  // nothing to check out
            (["frobnicate"], 2, nil),  // unknown command
            (["status", "--bogus"], 2, nil),
        ]
        for c in cases {
            let r = try ws.run(c.args)
            #expect(r.status == c.status, "mlstore \(c.args.joined(separator: " ")): \(r)")
            #expect(!r.stderr.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "mlstore \(c.args): empty stderr")
            #expect(r.stdout.isEmpty, "mlstore \(c.args): stdout should be empty: \(r.stdout)")
            if let m = c.mentions { #expect(r.stderr.contains(m), "mlstore \(c.args): \(r.stderr)") }
        }
        // mlstore's own errors carry a prefix and usually a hint.
        let notTree = try ws.run("checkout", blob)
        #expect(notTree.stderr.hasPrefix("error: ") && notTree.stderr.contains("hint: "), "\(notTree.stderr)")
    }

    @Test("an ambiguous prefix is a usage error listing the candidates")
    func ambiguousPrefix() throws {
        // Find two small contents whose blob ids share their first 4 hex digits (a few hundred hashes).
        var seen: [String: String] = [:]
        var pair: (String, String, String)?
        for i in 0..<200_000 {
            let text = "\(i)\n"
            let id = hex(MLStoreBasics.SHA256.hash(Array("blob \(text.utf8.count)\0\(text)".utf8)))
            let key = String(id.prefix(4))
            if let other = seen[key] {
                pair = (other, text, key)
                break
            }
            seen[key] = text
        }
        let (a, b, prefix) = try #require(pair)
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("a.txt", a)
        try ws.write("b.txt", b)
        let w = try ws.run("hash-object", "-w", "a.txt", "b.txt")
        #expect(w.status == 0, "\(w)")
        #expect(w.lines.count == 2 && w.lines.allSatisfy { $0.hasPrefix(prefix) }, "\(w.stdout)")
        let r = try ws.run("cat-object", prefix)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("ambiguous"), "\(r.stderr)")
        for id in w.lines { #expect(r.stderr.contains(id), "candidate \(id) not listed: \(r.stderr)") }
        // A longer prefix disambiguates.
        let ok = try ws.run("cat-object", String(w.lines[0].prefix(20)))
        #expect(ok.status == 0 && ok.stdout == a, "\(ok)")
    }

    @Test("a store with a newer format version is refused with an upgrade hint")
    func futureFormat() throws {
        let ws = try Workspace()
        defer { ws.remove() }
        try ws.write("f.txt", "f\n")
        try ws.ok("add", "f.txt")
        try FS.write(ws.path(".mlstore/format"), "mlstore-format 99\n")
        for args in [["status"], ["add", "f.txt"], ["write-tree"], ["fsck"]] {
            let r = try ws.run(args)
            #expect(r.status == 4, "\(args): \(r)")
            #expect(r.stderr.lowercased().contains("upgrad"), "\(args): \(r.stderr)")
            #expect(r.stderr.contains("99"), "\(args): \(r.stderr)")
        }
        // A malformed format file is corrupt, not silently accepted.
        try FS.write(ws.path(".mlstore/format"), "something else\n")
        let bad = try ws.run("status")
        #expect(bad.status == 4, "\(bad)")
        #expect(!bad.stderr.isEmpty)
    }
}
