import MLStoreBasics
import MLStoreCore

/// `/registry` (models × stages) and `/registry/<model>` (each stage's full history, newest first, and the
/// model's registered versions).
extension WebUI {
    /// Stage columns in this order first, then custom stages by name.
    static let stageOrder = ["staging", "production", "archived"]

    static func sortedStages(_ names: some Sequence<String>) -> [String] {
        Set(names).sorted { a, b in
            let (i, j) = (stageOrder.firstIndex(of: a) ?? Int.max, stageOrder.firstIndex(of: b) ?? Int.max)
            return i != j ? i < j : a < b
        }
    }

    func registryPage() throws -> WebPage {
        let stages = try repo.stages()
        let versions = Dictionary(try repo.models().map { ($0.name, $0.version) }, uniquingKeysWith: { a, _ in a })
        let models = Set(stages.map(\.model)).union(versions.keys).sorted()
        guard !models.isEmpty else {
            let body: SafeHTML = """
                <h1>Registry</h1>
                \(Markup.empty("No models in any stage yet",
                    "Promote a run with <code>mlstore promote &lt;model&gt; &lt;rev&gt; --stage staging -m \"why\"</code> (or push a store that has some)."))
                """
            return page("Registry", nav: .registry, body)
        }
        let columns = Self.sortedStages(Self.stageOrder.prefix(2) + stages.map(\.stage))
        var cell: [String: (id: ObjectID, record: StageRecord)] = [:]
        for s in stages { cell[s.model + "\u{0}" + s.stage] = (s.id, s.record) }
        var heldVersion: [String: Int] = [:]  // "<model>\0<stage>" → the version it holds
        for model in Set(stages.map(\.model)) {
            for h in try repo.modelStages(model) { if let v = h.version { heldVersion[model + "\u{0}" + h.stage] = v } }
        }
        let index = try openIndex()
        let rows = models.html { model -> SafeHTML in
            let newest: SafeHTML = versions[model].map { v -> SafeHTML in "<span class=\"badge\">\(v.label)</span>" } ?? .empty
            let cells = columns.html { stage -> SafeHTML in
                guard let (_, r) = cell[model + "\u{0}" + stage] else { return "<td class=\"stage-cell empty-cell\" data-stage=\"\(stage)\">—</td>" }
                let what: SafeHTML = r.target.map { t -> SafeHTML in
                    let subject = (try? index.subject(of: t).0) ?? ""
                    let badge: SafeHTML = heldVersion[model + "\u{0}" + stage].map { v -> SafeHTML in "<span class=\"badge version\">v\(v)</span> " } ?? .empty
                    return "\(badge)\(Markup.runLink(t)) <span class=\"subject\">\(subject)</span>"
                } ?? "<span class=\"missing\">(cleared)</span>"
                return """
                    <td class="stage-cell" data-stage="\(stage)" data-run="\(r.target?.hex ?? "")">\(what)\
                    <div class="since">\(r.action.rawValue) \(Markup.time(r.actor.time)) by \(r.actor.name)</div></td>
                    """
            }
            return "<tr class=\"model-row\" data-model=\"\(model)\"><th scope=\"row\"><a href=\"\(Link.model(model))\">\(model)</a> \(newest)</th>\(cells)</tr>\n"
        }
        let body: SafeHTML = """
            <h1>Registry</h1>
            <p class="hint">Which run each model's stage holds now. A model's page has every move of every stage, with reasons.</p>
            <div class="table-wrap"><table class="registry" id="registry">
            <thead><tr><th scope="col">model</th>\(columns.html { "<th scope=\"col\">\($0)</th>" })</tr></thead>
            <tbody>
            \(rows)</tbody></table></div>
            """
        return page("Registry", nav: .registry, body)
    }

    func modelPage(_ model: String, _ query: [String: String]) throws -> WebPage {
        try RegistryName.validateModel(model)
        let stage = query["stage"].flatMap { $0.isEmpty ? nil : $0 }
        var events: [StageEvent]
        do {
            events = try repo.stageLog(model: model, stage: stage)
        } catch let e as MLStoreError where e.code == .notFound {
            events = []
        }
        let versions: [(id: ObjectID, version: ModelVersion)]
        do {
            versions = try repo.modelVersions(model)
        } catch let e as MLStoreError where e.code == .notFound {
            versions = []
        }
        let allStages = Self.sortedStages(try repo.stages().filter { $0.model == model }.map(\.stage))
        if events.isEmpty && versions.isEmpty && allStages.isEmpty {
            throw MLStoreError(.notFound, "no model named \(model) is registered or in any stage", hint: "see the registry page")
        }
        let index = try openIndex()
        func run(_ id: ObjectID?, version: Int? = nil) -> SafeHTML {
            guard let id else { return "<span class=\"missing\">—</span>" }
            let subject = (try? index.subject(of: id).0) ?? ""
            let badge: SafeHTML = version.map { v -> SafeHTML in "<span class=\"badge version\">v\(v)</span> " } ?? .empty
            return "\(badge)\(Markup.runLink(id)) <span class=\"subject\">\(subject)</span>"
        }
        let tabs: SafeHTML = allStages.count < 2 ? .empty : """
            <nav class="tabs" aria-label="stage"><a href="\(Link.model(model))"\(stage == nil ? Markup.active : .empty)>all stages</a>\
            \(allStages.html { s in "<a href=\"\(Link.model(model, stage: s))\"\(stage == s ? Markup.active : .empty)>\(s)</a>" })</nav>
            """
        let history: SafeHTML = events.isEmpty
            ? Markup.empty("No stage history", "Promote it with <code>mlstore promote \(model) &lt;rev&gt; --stage staging -m \"why\"</code>.")
            : """
                <div class="table-wrap"><table class="history" id="history">
                <thead><tr><th scope="col">when</th><th scope="col">who</th><th scope="col">stage</th><th scope="col">action</th>\
                <th scope="col">from</th><th scope="col"></th><th scope="col">to</th><th scope="col">reason</th></tr></thead>
                <tbody>
                \(events.html { e in
                    """
                    <tr class="stage-event" data-stage="\(e.stage)" data-action="\(e.action.rawValue)" data-record="\(e.record.hex)">\
                    <td><time datetime="\(Format.isoUTC(e.actor.time))">\(e.actor.isoDate)</time></td>\
                    <td title="\(e.actor.email)">\(e.actor.name)</td><td>\(e.stage)</td><td><span class="action \(e.action.rawValue)">\(e.action.rawValue)</span></td>\
                    <td>\(run(e.from, version: e.fromVersion))</td><td class="arrow">→</td><td>\(run(e.to, version: e.toVersion))\(e.path.map { p -> SafeHTML in " <code>\(p)</code>" } ?? .empty)</td>\
                    <td class="reason">\(e.reason.isEmpty ? SafeHTML("<span class=\"missing\">(no reason given)</span>") : "\(e.reason)")</td></tr>

                    """
                })</tbody></table></div>
                """
        let versionTable: SafeHTML = versions.isEmpty ? .empty : """
            <h2>Versions</h2>
            <div class="table-wrap"><table class="versions" id="versions">
            <thead><tr><th scope="col">version</th><th scope="col">run</th><th scope="col">registered</th><th scope="col">framework</th>\
            <th scope="col">files</th><th scope="col">description</th></tr></thead><tbody>
            \(versions.html { v in
                """
                <tr class="model-version" data-version="\(v.version.version)"><td>\(v.version.label)</td><td>\(run(v.version.commit))</td>\
                <td>\(Markup.time(v.version.author.time)) by \(v.version.author.name)</td>\
                <td>\([v.version.framework, v.version.flavor].compactMap { $0 }.joined(separator: " · "))</td>\
                <td>\(v.version.artifacts.html { a in "<code>\(a.path)</code> " })</td><td>\(v.version.subject)</td></tr>

                """
            })</tbody></table></div>
            """
        let body: SafeHTML = """
            <p class="crumbs"><a href="/registry">Registry</a> / \(model)</p>
            <h1>\(model)</h1>
            <h2>Stage history</h2>
            <p class="hint">Every move, newest first: who, when, from which run to which, and why.</p>
            \(tabs)
            \(history)
            \(versionTable)
            """
        return page(model, nav: .registry, body)
    }
}
