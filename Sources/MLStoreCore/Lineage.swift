import MLStoreBasics

/// The provenance graph over every known commit: which commit produced an object (outputs) and which
/// consumed it (inputs). Up = what produced X and from what, recursively; down = what consumed X and
/// what those runs produced.
public struct LineageGraph {
    public struct Node: Sendable, Codable {
        public var commit: ObjectID
        public var subject: String
        public var time: Int64
        /// The artifact of the parent node this node relates through (consumed or produced).
        public var via: Artifact?
        public var children: [Node]
    }

    /// Where the graph's facts come from: an in-memory walk of every commit, or the query index.
    let producersOf: (ObjectID) -> [ObjectID]
    let consumersOf: (ObjectID) -> [ObjectID]
    let artifactsOf: (ObjectID, _ role: String) -> [Artifact]
    let describe: (ObjectID) -> (subject: String, time: Int64)

    /// Builds the graph by walking every commit reachable from any ref (no index needed).
    public init(repo: Repository) throws {
        var commits: [ObjectID: Commit] = [:]
        var producers: [ObjectID: [ObjectID]] = [:]
        var consumers: [ObjectID: [ObjectID]] = [:]
        for (id, c) in try repo.allCommits() {
            commits[id] = c
            for o in c.outputs { producers[o.id, default: []].append(id) }
            for i in c.inputs { consumers[i.id, default: []].append(id) }
        }
        let sort: ([ObjectID]) -> [ObjectID] = { ids in
            ids.sorted { (commits[$0]?.committer.time ?? 0, $0) < (commits[$1]?.committer.time ?? 0, $1) }
        }
        producersOf = { sort(producers[$0] ?? []) }
        consumersOf = { sort(consumers[$0] ?? []) }
        artifactsOf = { id, role in role == "input" ? commits[id]?.inputs ?? [] : commits[id]?.outputs ?? [] }
        describe = { (commits[$0]?.subject ?? "", commits[$0]?.committer.time ?? 0) }
    }

    /// Uses the query index, so lineage stays fast on large histories.
    public init(index: TrackingIndex) {
        producersOf = { (try? index.producers(of: $0)) ?? [] }
        consumersOf = { (try? index.consumers(of: $0)) ?? [] }
        artifactsOf = { id, role in (try? index.artifacts(of: id, role: role)) ?? [] }
        describe = { (try? index.subject(of: $0)) ?? ("", 0) }
    }

    /// Commits that recorded `object` as an output, oldest first.
    public func producers(of object: ObjectID) -> [ObjectID] { producersOf(object) }
    public func consumers(of object: ObjectID) -> [ObjectID] { consumersOf(object) }

    func node(_ id: ObjectID, via: Artifact?, children: [Node]) -> Node {
        let d = describe(id)
        return Node(commit: id, subject: d.subject, time: d.time, via: via, children: children)
    }

    /// Upstream of a commit: for each input, the commits that produced it, recursively.
    public func up(from id: ObjectID, depth: Int, visited: Set<ObjectID> = []) -> Node {
        var seen = visited
        seen.insert(id)
        guard depth > 0 else { return node(id, via: nil, children: []) }
        var children: [Node] = []
        for input in artifactsOf(id, "input") {
            for p in producers(of: input.id) where !seen.contains(p) {
                var child = up(from: p, depth: depth - 1, visited: seen)
                child.via = input
                children.append(child)
            }
        }
        return node(id, via: nil, children: children)
    }

    /// Downstream of a commit: for each output, the commits that consumed it, recursively.
    public func down(from id: ObjectID, depth: Int, visited: Set<ObjectID> = []) -> Node {
        var seen = visited
        seen.insert(id)
        guard depth > 0 else { return node(id, via: nil, children: []) }
        var children: [Node] = []
        for output in artifactsOf(id, "output") {
            for k in consumers(of: output.id) where !seen.contains(k) {
                var child = down(from: k, depth: depth - 1, visited: seen)
                child.via = output
                children.append(child)
            }
        }
        return node(id, via: nil, children: children)
    }

    // MARK: Rendering

    public static func text(_ root: Node, up: Bool) -> String {
        var out = "\(root.commit.short) \(root.subject)\n"
        func walk(_ n: Node, _ prefix: String) {
            for (i, c) in n.children.enumerated() {
                let last = i == n.children.count - 1
                let rel = up ? "produced \(c.via?.path ?? "?")" : "consumed \(c.via?.path ?? "?")"
                out += prefix + (last ? "└─ " : "├─ ") + "\(c.commit.short) \(c.subject)  [\(rel) \(c.via?.id.short ?? "")]\n"
                walk(c, prefix + (last ? "   " : "│  "))
            }
        }
        walk(root, "")
        return out
    }

    static func edges(_ root: Node) -> [(from: Node, to: Node)] {
        var out: [(Node, Node)] = []
        func walk(_ n: Node) {
            for c in n.children {
                out.append((n, c))
                walk(c)
            }
        }
        walk(root)
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    }

    public static func dot(_ root: Node, up: Bool) -> String {
        var out = "digraph lineage {\n  rankdir=\(up ? "BT" : "TB");\n  node [shape=box, fontname=\"monospace\"];\n"
        var nodes: [ObjectID: Node] = [root.commit: root]
        for (_, to) in edges(root) { nodes[to.commit] = to }
        for (id, n) in nodes.sorted(by: { $0.key < $1.key }) {
            out += "  \"\(id.short)\" [label=\"\(id.short)\\n\(escape(n.subject))\"];\n"
        }
        var seen = Set<String>()
        for (from, to) in edges(root) {
            // Arrows follow the data: producer → consumer.
            let (a, b) = up ? (to, from) : (from, to)
            let line = "  \"\(a.commit.short)\" -> \"\(b.commit.short)\" [label=\"\(escape(to.via?.path ?? ""))\"];\n"
            if seen.insert(line).inserted { out += line }
        }
        return out + "}\n"
    }

    public static func mermaid(_ root: Node, up: Bool) -> String {
        var out = "graph \(up ? "BT" : "TD")\n"
        var nodes: [ObjectID: Node] = [root.commit: root]
        for (_, to) in edges(root) { nodes[to.commit] = to }
        for (id, n) in nodes.sorted(by: { $0.key < $1.key }) {
            let label = n.subject.replacingOccurrences(of: "\"", with: "'")
            out += "  c\(id.short)[\"\(id.short) \(label)\"]\n"
        }
        var seen = Set<String>()
        for (from, to) in edges(root) {
            let (a, b) = up ? (to, from) : (from, to)
            let line = "  c\(a.commit.short) -->|\(to.via?.path ?? "")| c\(b.commit.short)\n"
            if seen.insert(line).inserted { out += line }
        }
        return out
    }
}
