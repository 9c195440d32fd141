import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

/// JSON shape of a commit for `log --json` and `show --json`.
struct CommitJSON: Encodable {
    var id: String
    var tree: String
    var parents: [String]
    var author: Signature
    var committer: Signature
    var message: String
    var inputs: [Artifact]
    var outputs: [Artifact]
    var params: JSONValue?
    var metrics: JSONValue?
    var command: [String]?
    var code: [String: String]?
    var env: JSONValue?
    var extensions: [String: String]

    init(_ repo: Repository, _ id: ObjectID, _ c: MLStoreCore.Commit, full: Bool) throws {
        self.id = id.hex
        tree = c.tree.hex
        parents = c.parents.map(\.hex)
        author = c.author
        committer = c.committer
        message = c.message
        inputs = c.inputs
        outputs = c.outputs
        params = try c.params.map { try repo.json($0) }
        metrics = try c.metrics.map { try repo.json($0) }
        command = c.command
        if let code = c.code {
            var d = ["tree": code.tree.hex]
            if let g = code.gitCommit { d["git_commit"] = g }
            if let p = code.dirtyPatch { d["dirty_patch"] = p.hex }
            self.code = d
        }
        env = full ? try c.env.map { try repo.json($0) } : nil
        extensions = Dictionary(c.extensions.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
    }
}

extension MLStoreCommand {
    struct Log: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "log", abstract: "Show commit history (newest first).")

        @Argument(help: "Revisions to start from (default: HEAD).")
        var revisions: [String] = []

        @Flag(help: "One line per commit.")
        var oneline = false

        @Flag(help: "Draw the commit graph.")
        var graph = false

        @Option(name: .customShort("n"), help: "Show at most N commits.")
        var limit: Int?

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if let limit, limit < 0 { throw ValidationError("-n must be 0 or more") }
        }

        func run() throws {
            let repo = try options.repository()
            let starts: [ObjectID]
            if revisions.isEmpty {
                guard let h = try repo.refs.head().commit else {
                    if options.json { return try Terminal.printJSON([CommitJSON]()) }
                    throw MLStoreError(.notFound, "no commits yet", hint: "make one with `mlstore commit -m <message>`")
                }
                starts = [h]
            } else {
                starts = try revisions.map { try repo.resolveCommit($0) }
            }
            let commits = try repo.history(from: starts, limit: limit)
            if options.json { return try Terminal.printJSON(try commits.map { try CommitJSON(repo, $0.id, $0.commit, full: false) }) }
            let decorations = decorate(repo)
            var lanes: [ObjectID] = []
            for (n, (id, c)) in commits.enumerated() {
                var prefix = ""
                var after: [String] = []
                if graph {
                    (prefix, after) = graphLine(&lanes, id, c.parents)
                }
                let deco = decorations[id].map { " " + Terminal.paint("(" + $0.joined(separator: ", ") + ")", .cyan) } ?? ""
                if oneline {
                    print(prefix + Terminal.paint(id.short, .yellow) + deco + " " + c.subject)
                } else {
                    if n > 0 && !graph { print("") }
                    print(prefix + Terminal.paint("commit \(id.hex)", .yellow) + deco)
                    let pad = graph ? String(repeating: "│ ", count: max(1, lanes.count)).dropLast() + " " : ""
                    if c.parents.count > 1 { print(pad + "Merge: " + c.parents.map(\.short).joined(separator: " ")) }
                    print(pad + "Author: \(c.author.name) <\(c.author.email)>")
                    print(pad + "Date:   \(c.author.isoDate)")
                    var facts: [String] = []
                    if let m = c.metrics, let o = try? repo.json(m).object {
                        facts.append(o.keys.sorted().prefix(4).map { k in "\(k)=\(o[k]!.number.map(JSONValue.format) ?? "series")" }.joined(separator: " "))
                    }
                    if let cmd = c.command { facts.append("$ " + cmd.joined(separator: " ")) }
                    print(pad)
                    for line in c.message.split(separator: "\n", omittingEmptySubsequences: false).dropLast(c.message.hasSuffix("\n") ? 1 : 0) {
                        print(pad + "    " + line)
                    }
                    for f in facts where !f.isEmpty { print(pad + "    " + Terminal.paint(f, .dim)) }
                }
                for a in after { print(a) }
            }
        }

        /// Branches, tags and stages pointing at each commit.
        func decorate(_ repo: Repository) -> [ObjectID: [String]] {
            var out: [ObjectID: [String]] = [:]
            let head = try? repo.refs.head()
            if case .detached(let id)? = head { out[id, default: []].append("HEAD") }
            for (name, id) in repo.refs.list() {
                var label: String
                var target = id
                if name.hasPrefix("refs/heads/") {
                    label = String(name.dropFirst(11))
                    if head?.branchName == label { label = "HEAD -> " + label }
                } else if name.hasPrefix("refs/tags/") {
                    label = "tag: " + name.dropFirst(10)
                    target = (try? repo.peelToCommit(id, revision: name)) ?? id
                } else if name.hasPrefix("refs/stages/") {
                    let p = name.dropFirst(12).split(separator: "/")
                    label = "\(p.first ?? "")@\(p.last ?? "")"
                    target = (try? repo.stageRecord(id).target ?? nil) ?? id
                } else if name.hasPrefix("refs/remotes/") {
                    label = String(name.dropFirst(13))
                } else {
                    continue
                }
                out[target, default: []].append(label)
            }
            return out
        }

        /// One row of a simple lane graph: `*` for the commit, `│` for other open lanes.
        func graphLine(_ lanes: inout [ObjectID], _ id: ObjectID, _ parents: [ObjectID]) -> (String, [String]) {
            var col = lanes.firstIndex(of: id)
            if col == nil {
                lanes.append(id)
                col = lanes.count - 1
            }
            let c = col!
            var row = ""
            for i in 0..<lanes.count { row += (i == c ? "*" : "│") + " " }
            var after: [String] = []
            // Lanes that were waiting for this commit merge into its column.
            var merged: [Int] = []
            for i in (0..<lanes.count).reversed() where i != c && lanes[i] == id { merged.append(i) }
            for i in merged { lanes.remove(at: i) }
            if parents.isEmpty {
                lanes.remove(at: min(c, lanes.count - 1))
            } else {
                lanes[min(c, lanes.count - 1)] = parents[0]
                for p in parents.dropFirst() where !lanes.contains(p) {
                    lanes.append(p)
                    after.append(String(repeating: "│ ", count: lanes.count - 2) + "├─╮")
                }
            }
            if !merged.isEmpty { after.append(String(repeating: "│ ", count: max(0, lanes.count - 1)) + "├─╯") }
            return (row, after)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a commit: header, params, metrics, inputs, outputs, code, command and environment.")

        @Argument(help: "A revision (default: HEAD).")
        var revision: String = "HEAD"

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let id = try repo.resolve(revision)
            let (kind, _) = try repo.objects.info(id)
            if kind == .tag {
                let t = try repo.tagObject(id)
                if !options.json {
                    print(Terminal.paint("tag \(t.name)", .yellow))
                    print("Tagger: \(t.tagger.name) <\(t.tagger.email)>\nDate:   \(t.tagger.isoDate)\n\n\(t.message)")
                }
            }
            let cid = try repo.peelToCommit(id, revision: revision)
            let c = try repo.commit(cid)
            let j = try CommitJSON(repo, cid, c, full: true)
            if options.json { return try Terminal.printJSON(j) }
            print(Terminal.paint("commit \(cid.hex)", .yellow))
            for p in c.parents { print("Parent: \(p.hex)") }
            print("Tree:   \(c.tree.hex)")
            print("Author: \(c.author.name) <\(c.author.email)>")
            print("Date:   \(c.author.isoDate)\n")
            for line in c.message.split(separator: "\n", omittingEmptySubsequences: false).dropLast(c.message.hasSuffix("\n") ? 1 : 0) {
                print("    " + line)
            }
            if let cmd = c.command { print(Terminal.paint("Command:", .bold) + " " + cmd.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")) }
            if let p = j.params {
                print(Terminal.paint("Params:", .bold))
                for (k, v) in p.flattened().sorted(by: { $0.key < $1.key }) { print("  \(k) = \(v.display)") }
            }
            if let m = j.metrics?.object {
                print(Terminal.paint("Metrics:", .bold))
                for k in m.keys.sorted() {
                    let v = m[k]!
                    if let series = v.array {
                        let values = series.compactMap { $0["value"]?.number }
                        print("  \(k) = \(values.last.map(JSONValue.format) ?? "-") (\(values.count) steps) \(Sparkline.render(values))")
                    } else {
                        print("  \(k) = \(v.display)")
                    }
                }
            }
            if !c.inputs.isEmpty {
                print(Terminal.paint("Inputs:", .bold))
                for a in c.inputs { print("  \(a.id.short)  \(a.path)") }
            }
            if !c.outputs.isEmpty {
                print(Terminal.paint("Outputs:", .bold))
                for a in c.outputs { print("  \(a.id.short)  \(a.path)") }
            }
            if let code = c.code {
                print(Terminal.paint("Code:", .bold) + " git \(code.gitCommit ?? "(none)")\(code.dirtyPatch != nil ? " + uncommitted changes (patch \(code.dirtyPatch!.short))" : ""), code tree \(code.tree.short)")
            }
            if let env = j.env {
                let tools = env["tools"]?.object ?? [:]
                var parts = [env["os"]?.display ?? "?", "kernel " + (env["kernel"]?.display ?? "?"), env["arch"]?.display ?? "?"]
                if let py = tools["python"]?.display { parts.append("python " + py) }
                if let n = env["pip_freeze"]?.array?.count { parts.append("\(n) pip packages") }
                if let l = env["lock_files"]?.object, !l.isEmpty { parts.append("lock files: " + l.keys.sorted().joined(separator: ", ")) }
                print(Terminal.paint("Environment:", .bold) + " " + parts.joined(separator: ", "))
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "diff",
            abstract: "Compare two commits: files added, removed and changed (with sizes), params changed, metrics with deltas.")

        @Argument(help: "The older revision.")
        var from: String

        @Argument(help: "The newer revision (default: HEAD).")
        var to: String = "HEAD"

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let d = try repo.diff(try repo.resolveCommit(from), try repo.resolveCommit(to))
            if options.json { return try Terminal.printJSON(d) }
            print("diff \(d.from.short) → \(d.to.short)")
            if d.files.isEmpty && d.params.isEmpty && d.metrics.isEmpty { print("no differences"); return }
            if !d.files.isEmpty {
                print(Terminal.paint("Files:", .bold))
                for f in d.files {
                    let sizes: String
                    switch f.change {
                    case .added: sizes = Terminal.bytes(f.newSize ?? 0)
                    case .deleted: sizes = Terminal.bytes(f.oldSize ?? 0)
                    default: sizes = "\(Terminal.bytes(f.oldSize ?? 0)) → \(Terminal.bytes(f.newSize ?? 0))"
                    }
                    let color: Terminal.Color = f.change == .added ? .green : f.change == .deleted ? .red : .yellow
                    print("  " + Terminal.paint(f.change.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0), color) + f.path + "  (\(sizes))")
                }
            }
            for (title, values) in [("Params:", d.params), ("Metrics:", d.metrics)] where !values.isEmpty {
                print(Terminal.paint(title, .bold))
                for v in values {
                    func show(_ x: JSONValue?) -> String {
                        guard let x else { return "(none)" }
                        if let a = x.array { return (a.last?["value"]?.number).map(JSONValue.format).map { "\($0) (series)" } ?? "series" }
                        return x.display
                    }
                    var line = "  \(v.key): \(show(v.old)) → \(show(v.new))"
                    if let delta = v.delta {
                        let s = (delta >= 0 ? "+" : "") + JSONValue.format((delta * 1e6).rounded() / 1e6)
                        line += " " + Terminal.paint("(\(s))", delta >= 0 ? .green : .red)
                    }
                    print(line)
                }
            }
        }
    }

    struct Reflog: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reflog", abstract: "Show the local history of a ref (default HEAD): every move, who, when and why.")

        @Argument(help: "A ref: HEAD, a branch name, or a full ref name.")
        var ref: String = "HEAD"

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            var name = ref
            if ref != "HEAD" && !ref.hasPrefix("refs/") {
                name = (try repo.refs.read("refs/heads/" + ref)) != nil ? "refs/heads/" + ref : "refs/tags/" + ref
            }
            let entries = try repo.refs.log(name)
            if options.json { return try Terminal.printJSON(entries) }
            if entries.isEmpty { print("no reflog for \(name)") }
            for (i, e) in entries.enumerated() {
                print("\(Terminal.paint(e.new?.short ?? "(deleted)", .yellow)) \(name)@{\(i)}: \(e.message)  \(Terminal.paint(e.actor.name + ", " + e.actor.isoDate, .dim))")
            }
        }
    }
}

/// Terminal sparklines for metric series.
enum Sparkline {
    static let bars = Array("▁▂▃▄▅▆▇█")

    static func render(_ values: [Double], width: Int = 40) -> String {
        guard values.count > 1, let lo = values.min(), let hi = values.max() else { return "" }
        var sampled = values
        if values.count > width {
            sampled = (0..<width).map { values[$0 * values.count / width] }
        }
        return String(sampled.map { v in hi == lo ? bars[3] : bars[Int((v - lo) / (hi - lo) * Double(bars.count - 1))] })
    }
}
