import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct WriteTree: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "write-tree", abstract: "Write the staged state as tree objects and print the root tree id.")

        @OptionGroup var options: StoreOptions

        func run() throws {
            let id = try options.workspace().writeTree()
            if options.json { return try Terminal.printJSON(["tree": id.hex]) }
            print(id.hex)
        }
    }

    struct LsTree: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ls-tree", abstract: "List a tree: mode, kind, id, size and name of each entry.")

        @Argument(help: "A tree id (or unique prefix).")
        var tree: String

        @Flag(name: .shortAndLong, help: "Recurse into subtrees.")
        var recursive = false

        @OptionGroup var options: StoreOptions

        struct Row: Codable {
            var path: String
            var kind: String
            var mode: String
            var size: Int64
            var id: String
        }

        func run() throws {
            let repo = try options.repository()
            let id = try repo.resolveTree(tree)
            var rows: [Row] = []
            func kindName(_ k: TreeEntry.Kind) -> String {
                switch k {
                case .file: "file"
                case .chunked: "chunked"
                case .symlink: "symlink"
                case .directory: "tree"
                }
            }
            func visit(_ t: ObjectID, _ prefix: String) throws {
                for e in try repo.tree(t).entries {
                    let p = Path.join(prefix, e.name)
                    if recursive && e.kind == .directory {
                        try visit(e.id, p)
                    } else {
                        rows.append(Row(path: p, kind: kindName(e.kind), mode: String(e.mode, radix: 8), size: e.size, id: e.id.hex))
                    }
                }
            }
            try visit(id, "")
            if options.json { return try Terminal.printJSON(rows) }
            for r in rows {
                print("\(r.mode) \(r.kind.padding(toLength: 7, withPad: " ", startingAt: 0)) \(r.id) \(String(r.size).leftPad(12))\t\(r.path)")
            }
        }
    }

    struct CatObject: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cat-object", abstract: "Print an object's content, kind or size (verified against its id).")

        @Flag(name: .customShort("t"), help: "Print the object's kind.")
        var kind = false

        @Flag(name: .customShort("s"), help: "Print the payload size in bytes.")
        var size = false

        @Flag(name: .customShort("p"), help: "Pretty-print according to kind.")
        var pretty = false

        @Argument(help: "An object id (or unique prefix).")
        var object: String

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if [kind, size, pretty].filter({ $0 }).count > 1 { throw ValidationError("use only one of -t, -s and -p") }
        }

        func run() throws {
            let repo = try options.repository()
            let id = try repo.resolve(object)
            if kind || size {
                let (k, n) = try repo.objects.info(id)
                print(kind ? k.rawValue : String(n))
                return
            }
            let (k, payload) = try repo.objects.read(id)
            guard pretty else {
                FileHandle.standardOutput.write(Data(payload))
                return
            }
            switch k {
            case .tree:
                for e in try Tree(decoding: payload, id: id).entries {
                    print("\(e.kind.rawValue) \(String(e.mode, radix: 8)) \(e.id.hex) \(String(e.size).leftPad(12))\t\(e.name)")
                }
            case .chunked:
                let c = try ChunkedFile(decoding: payload, id: id)
                print("size \(c.fileSize)")
                print("sha256 \(Hex.encode(c.contentSHA256))")
                print("chunker fastcdc-2020 min \(c.minSize) avg \(c.avgSize) max \(c.maxSize) level \(c.level)")
                print("chunks \(c.chunks.count)")
                var offset: Int64 = 0
                for ch in c.chunks {
                    print("\(ch.id.hex) \(String(offset).leftPad(12)) \(ch.length)")
                    offset += Int64(ch.length)
                }
            default:
                FileHandle.standardOutput.write(Data(payload))
            }
        }
    }

    struct HashObject: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hash-object", abstract: "Print the id a file would have in the store (a blob, or a chunked object for large files).")

        @Argument(help: "Files to hash.")
        var files: [String]

        @Flag(name: .customShort("w"), help: "Also write the objects into the store.")
        var write = false

        @Flag(help: "Print machine-readable JSON.")
        var json = false

        func run() throws {
            let batch = write ? try Repository.discover(from: Sys.currentDirectory()).objects.batch() : nil
            let importer = FileImporter()
            var rows: [[String: String]] = []
            for f in files {
                guard let st = try Sys.lstatIfExists(f) else {
                    throw MLStoreError(.notFound, "'\(f)' does not exist")
                }
                guard st.type == .regular || st.type == .symlink else {
                    throw MLStoreError(.usage, "'\(f)' is not a file", hint: "hash-object hashes files; use `mlstore add` for directories")
                }
                let r = try importer.importPath(f, stat: st, into: batch)
                rows.append(["path": f, "id": r.id.hex, "kind": r.kind == .chunked ? "chunked" : "blob", "size": String(r.size)])
            }
            try batch?.commit()
            if json { return try Terminal.printJSON(rows) }
            for r in rows { print(r["id"]!) }
        }
    }

    struct Fsck: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "fsck",
            abstract: "Verify every object, pack and index; report each damaged or missing object by id.",
            discussion: "Exits 4 if anything is damaged or missing.")

        @Option(help: "Verify a remote instead (its packs, indexes, objects, refs and stage chains).")
        var remote: String?

        @OptionGroup var options: StoreOptions

        func run() throws {
            let report: FsckReport
            if let remote {
                let transport = try (try? options.repository()).map { try $0.transport(named: remote).transport } ?? Repository.transport(for: remote)
                try transport.open(create: false)
                report = try transport.fsck(progress: Terminal.progressBar())
            } else {
                report = try options.repository().fsck(progress: Terminal.progressBar())
            }
            if options.json {
                try Terminal.printJSON(report)
            } else {
                for n in report.notes { print(Terminal.paint("note: " + n, .dim)) }
                for p in report.problems { print(Terminal.paint("bad", .red) + " \(p.subject): \(p.message)") }
                let summary = "\(report.objectsChecked) objects in \(report.packsChecked) packs and loose files checked, \(report.problems.count) problems"
                print(report.isClean ? Terminal.paint(summary, .green) : Terminal.paint(summary, .red))
            }
            if !report.isClean { throw CommandFailure(status: MLStoreError.Code.corrupt.exitStatus) }
        }
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
