import MLStoreBasics
import MLStoreCore

/// `/lineage/<revision or object>?direction=up|down&depth=N`: the provenance graph as an SVG DAG (data
/// flows left to right, producer → consumer) and as a nested list with the artifact each edge goes through.
extension WebUI {
    static let defaultLineageDepth = 50
    static let maxLineageDepth = 200

    func lineagePage(_ start: String, _ query: [String: String]) throws -> WebPage {
        let direction = query["direction"].flatMap { $0.isEmpty ? nil : $0 } ?? "up"
        guard direction == "up" || direction == "down" else {
            throw MLStoreError(.usage, "direction must be up or down, not '\(direction)'")
        }
        let up = direction == "up"
        let depth = try query["depth"].flatMap { $0.isEmpty ? nil : $0 }.map { text -> Int in
            guard let n = Int(text), (1...Self.maxLineageDepth).contains(n) else {
                throw MLStoreError(.usage, "depth must be a number from 1 to \(Self.maxLineageDepth), not '\(text)'")
            }
            return n
        } ?? Self.defaultLineageDepth
        let index = try openIndex()
        let graph = LineageGraph(index: index)

        // The start: a commit (or tag, stage, model version), else an artifact whose producers (up) or
        // consumers (down) are the roots. A store without HEAD (bare, as served) starts at its newest run.
        var note = SafeHTML.empty
        var startID: ObjectID
        if start == "HEAD" || start == "@", (try? repo.refs.head().commit) == nil {
            guard let newest = try index.runs(where: nil, sort: nil, limit: 1, columns: nil).rows.first?.id else {
                let body: SafeHTML = """
                    <h1>Lineage</h1>
                    \(Markup.empty("No runs yet — commit with params/metrics, or push to this server",
                        "Lineage links runs through the files they record with <code>--input</code> and <code>--output</code>."))
                    """
                return page("Lineage", nav: .lineage, body)
            }
            startID = newest
            note = "<p class=\"hint\">This store has no HEAD (a bare store); showing the newest run.</p>"
        } else if start.utf8.count == ObjectID.hexLength, let id = ObjectID(hex: start.lowercased()), !repo.objects.contains(id) {
            startID = id  // an artifact the index knows of, though its contents are not in this store
        } else {
            startID = try repo.resolve(start)
        }
        var artifact: ObjectID?
        let roots: [ObjectID]
        let kind = try? repo.objects.info(startID).kind
        if let kind, [.commit, .tag, .stage, .model].contains(kind) {
            roots = [try repo.peelToCommit(startID, revision: start)]
        } else {
            artifact = startID
            roots = up ? graph.producers(of: startID) : graph.consumers(of: startID)
            if roots.isEmpty {
                throw MLStoreError(.notFound, "no run records \(startID.short) as \(up ? "an output" : "an input")",
                                   hint: "record lineage with `mlstore commit --input/--output` or `mlstore run`")
            }
        }
        let trees = roots.map { up ? graph.up(from: $0, depth: depth) : graph.down(from: $0, depth: depth) }
        let hasEdges = trees.contains { !$0.children.isEmpty }
        let title = artifact.map { "\(up ? "Producers" : "Consumers") of \($0.short)" }
            ?? "\(up ? "Upstream" : "Downstream") of \(roots[0].short)"
        let other = up ? "down" : "up"
        let form: SafeHTML = """
            <form class="filter" method="get" action="\(Link.lineage(start))">
            <label for="direction">Direction</label>
            <select id="direction" name="direction">\
            <option value="up"\(up ? " selected" : "")>↑ upstream (what produced it)</option>\
            <option value="down"\(up ? "" : " selected")>↓ downstream (what used it)</option></select>
            <label for="depth">Depth</label>
            <input type="number" id="depth" name="depth" min="1" max="\(Self.maxLineageDepth)" value="\(depth)">
            <button type="submit" class="button">Show</button>
            <a href="\(Link.lineage(start, direction: other, depth: depth))">switch to \(other)stream</a>
            </form>
            """
        let explanation: SafeHTML = up
            ? "Arrows follow the data: each run on the left produced a file that the run to its right used as an input."
            : "Arrows follow the data: each run used as an input a file that the run to its left produced."
        let body: SafeHTML = """
            <p class="crumbs"><a href="/">Runs</a> / lineage</p>
            <h1>\(title)</h1>
            \(note)\(form)
            \(hasEdges ? "<p class=\"hint\">\(explanation)</p>" : Markup.empty(
                up ? "Nothing upstream" : "Nothing downstream",
                up ? "No input of this run was recorded as the output of another run." : "No output of this run was recorded as the input of another run."))
            \(LineageDiagram(roots: trees, up: up).html())
            <h2>As a tree</h2>
            <ul class="tree">\(trees.html { treeItem($0, up: up) })</ul>
            """
        return page("Lineage", nav: .lineage, body)
    }

    /// One node of the nested list, with the artifact that links it to its parent.
    func treeItem(_ n: LineageGraph.Node, up: Bool) -> SafeHTML {
        let via: SafeHTML = n.via.map { v -> SafeHTML in
            "<span class=\"via\">\(up ? "produced" : "used") <code>\(v.path)</code> \(Markup.objectID(v.id))</span>"
        } ?? .empty
        let children: SafeHTML = n.children.isEmpty ? .empty : "<ul>\(n.children.html { treeItem($0, up: up) })</ul>"
        return "<li class=\"lineage-item\" data-run=\"\(n.commit.hex)\">\(Markup.runLink(n.commit)) \(n.subject) \(via)\(children)</li>"
    }
}

/// Lays out lineage trees as a layered SVG graph: each distinct commit once, in the column of its longest
/// path from a root; roots on the right when walking upstream (so data always flows left to right).
struct LineageDiagram {
    var roots: [LineageGraph.Node]
    var up: Bool

    let boxWidth = 220.0, boxHeight = 46.0, columnGap = 130.0, rowGap = 16.0, pad = 12.0

    func html() -> SafeHTML {
        var level: [ObjectID: Int] = [:]
        var order: [ObjectID] = []
        var subject: [ObjectID: String] = [:]
        var edges: [(from: ObjectID, to: ObjectID, path: String)] = []
        var seenEdges = Set<String>()
        func visit(_ n: LineageGraph.Node, _ d: Int) {
            if level[n.commit] == nil { order.append(n.commit) }
            level[n.commit] = max(level[n.commit] ?? 0, d)
            subject[n.commit] = n.subject
            for c in n.children {
                // Producer → consumer: upstream children produced what the parent used.
                let (a, b) = up ? (c.commit, n.commit) : (n.commit, c.commit)
                let path = c.via?.path ?? ""
                if seenEdges.insert("\(a.hex) \(b.hex) \(path)").inserted { edges.append((a, b, path)) }
                visit(c, d + 1)
            }
        }
        for r in roots { visit(r, 0) }
        let maxLevel = level.values.max() ?? 0
        var rows: [Int: Int] = [:]
        var position: [ObjectID: (x: Double, y: Double)] = [:]
        for id in order {
            let l = level[id] ?? 0
            let column = up ? maxLevel - l : l
            let row = rows[column, default: 0]
            rows[column] = row + 1
            position[id] = (pad + Double(column) * (boxWidth + columnGap), pad + Double(row) * (boxHeight + rowGap))
        }
        let width = 2 * pad + Double(maxLevel + 1) * boxWidth + Double(maxLevel) * columnGap
        let height = 2 * pad + Double(rows.values.max() ?? 1) * (boxHeight + rowGap) - rowGap
        let rootIDs = Set(roots.map(\.commit))

        var labelsInto: [ObjectID: Int] = [:]
        let lines = edges.html { e -> SafeHTML in
            guard let a = position[e.from], let b = position[e.to] else { return .empty }
            let stacked = Double(labelsInto[e.to, default: 0])
            labelsInto[e.to, default: 0] += 1
            let (x1, y1) = (a.x + boxWidth, a.y + boxHeight / 2)
            let (x2, y2) = (b.x - 4, b.y + boxHeight / 2)
            let mid = (x1 + x2) / 2
            // The file the data flows through, named above the arrowhead (stacked when several edges end there).
            let name = String(e.path.split(separator: "/").last ?? "")
            let label = name.count > 20 ? String(name.prefix(19)) + "…" : name
            return """
                <path class="edge" d="M\(coordinate: x1),\(coordinate: y1) C\(coordinate: mid),\(coordinate: y1) \(coordinate: mid),\(coordinate: y2) \(coordinate: x2),\(coordinate: y2)" marker-end="url(#arrow)"><title>\(e.path)</title></path>
                <text class="edge-label" x="\(coordinate: x2 - 6)" y="\(coordinate: y2 - 6 - 12 * stacked)" text-anchor="end">\(label)<title>\(e.path)</title></text>

                """
        }
        let nodes = order.html { id -> SafeHTML in
            guard let p = position[id] else { return .empty }
            let s = subject[id] ?? ""
            let shown = s.count > 30 ? String(s.prefix(29)) + "…" : s
            return """
                <a class="lineage-node\(rootIDs.contains(id) ? " root" : "")" data-run="\(id.hex)" href="\(Link.run(id))">\
                <rect x="\(coordinate: p.x)" y="\(coordinate: p.y)" width="\(coordinate: boxWidth)" height="\(coordinate: boxHeight)" rx="6"/>\
                <text class="node-id" x="\(coordinate: p.x + 10)" y="\(coordinate: p.y + 19)">\(id.short)</text>\
                <text class="node-subject" x="\(coordinate: p.x + 10)" y="\(coordinate: p.y + 36)">\(shown)</text><title>\(id.short) \(s)</title></a>

                """
        }
        return """
            <div class="graph-wrap"><svg class="lineage" viewBox="0 0 \(coordinate: width) \(coordinate: height)" width="\(coordinate: width)" height="\(coordinate: height)" role="img" aria-label="lineage graph, \(Format.plural(order.count, "run"))">
            <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>
            \(lines)\(nodes)</svg></div>
            """
    }
}
