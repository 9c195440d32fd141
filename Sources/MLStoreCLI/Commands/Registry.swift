import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "promote",
            abstract: "Move a model's stage to a version (or commit), recording who, when and why.",
            discussion: """
                Writes a stage record chained to the previous one and moves refs/stages/<model>/<stage> by \
                compare-and-swap, so two people promoting at once cannot silently overwrite each other. For a \
                model with registered versions the record names the exact version (v2, <model>@v2, or a commit \
                that is a registered version); nothing but another promote or rollback changes what \
                <model>@<stage> delivers. Stages: \
                staging, production, archived, or a custom name (lower-case letters, digits, '_', '-'). \
                --require refuses a promotion whose metrics fail, e.g. --require 'metrics.acc>=0.9'.
                """)

        @Argument(help: "Model name.")
        var model: String

        @Argument(help: "The version or revision to promote (v2, fraud@v2, fraud@staging, a commit, tag, HEAD~1 …).")
        var revision: String

        @Option(help: "Target stage.")
        var stage: String

        @Option(name: .shortAndLong, help: "Why (recorded in the history).")
        var message: String = ""

        @Option(help: "The model's path inside the commit, when the commit holds more than the model.")
        var path: String?

        @Option(help: "Conditions on the commit's metrics/params, e.g. 'metrics.acc>=0.9, metrics.loss<0.3'.")
        var require: String?

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let reqs = try require.map { try Requirement.parse($0) } ?? []
            let (id, r) = try repo.promote(model: model, stage: stage, to: revision, path: path, reason: message, require: reqs)
            Tracking.refresh(repo)
            try Self.report(repo, model: model, stage: stage, id: id, record: r, verb: "→", json: options.json)
        }

        /// `fraud@production → v2 (commit 1a2b3c4d, record 5e6f7a8b)`, or the `--json` object.
        static func report(_ repo: Repository, model: String, stage: String, id: ObjectID, record r: StageRecord, verb: String, json: Bool) throws {
            let version = try r.version.map { try repo.modelVersion($0).version }
            if json {
                var out = ["record": id.hex, "model": model, "stage": stage, "target": r.target?.hex ?? ""]
                if let version, let v = r.version { out["version"] = "v\(version)"; out["version_id"] = v.hex }
                return try Terminal.printJSON(out)
            }
            let what = version.map { "\(Terminal.paint("v\($0)", .bold)) (commit \(Terminal.paint(r.target?.short ?? "-", .yellow)), record \(id.short))" }
                ?? "\(Terminal.paint(r.target?.short ?? "-", .yellow)) (record \(id.short))"
            print("\(model)@\(stage) \(verb) \(what)")
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rollback",
            abstract: "Move a model's stage back to the target it had before its latest promotion (a new record).")

        @Argument(help: "Model name.")
        var model: String

        @Option(help: "Stage to roll back.")
        var stage: String

        @Option(name: .shortAndLong, help: "Why (recorded in the history).")
        var message: String = ""

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            let (id, r) = try repo.rollback(model: model, stage: stage, reason: message)
            Tracking.refresh(repo)
            try Promote.report(repo, model: model, stage: stage, id: id, record: r, verb: "rolled back to", json: options.json)
        }
    }

    struct Stage: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stage",
            abstract: "The model registry: stages of every model, and their history.",
            subcommands: [List.self, Log.self], defaultSubcommand: List.self)

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "Models × stages: the commit each stage holds, when, by whom.")

            @OptionGroup var options: StoreOptions

            struct Row: Encodable {
                var model: String, stage: String, version: Int?, commit: String?, record: String, path: String?, since: String, by: String, subject: String
            }

            func run() throws {
                let repo = try options.repository()
                let stages = try repo.stages()
                var held: [String: Int] = [:]  // "<model>@<stage>" → the version it holds
                for model in Set(stages.map(\.model)) {
                    for h in try repo.modelStages(model) { if let v = h.version { held["\(model)@\(h.stage)"] = v } }
                }
                let rows = stages.map { s in
                    Row(model: s.model, stage: s.stage, version: held["\(s.model)@\(s.stage)"], commit: s.record.target?.hex, record: s.id.hex, path: s.record.path,
                        since: s.record.actor.isoDate, by: s.record.actor.name, subject: (try? s.record.target.map { try repo.commit($0).subject }) ?? nil ?? "")
                }
                if options.json { return try Terminal.printJSON(rows) }
                if rows.isEmpty { print("no models in any stage yet (promote one with `mlstore promote <model> <rev> --stage staging`)"); return }
                var t = Table(["MODEL", "STAGE", "VERSION", "COMMIT", "SINCE", "BY", "SUBJECT"])
                t.colors[3] = .yellow
                for r in rows {
                    t.add([r.model, r.stage, r.version.map { "v\($0)" } ?? "-", String(r.commit?.prefix(12) ?? "(cleared)"), r.since, r.by, r.subject])
                }
                print(t.render(), terminator: "")
            }
        }

        struct Log: ParsableCommand {
            static let configuration = CommandConfiguration(commandName: "log", abstract: "A model's stage history, newest first: when, who, action, from → to, why.")

            @Argument(help: "Model name.")
            var model: String

            @Option(help: "Only this stage.")
            var stage: String?

            @OptionGroup var options: StoreOptions

            func run() throws {
                let repo = try options.repository()
                let events = try repo.stageLog(model: model, stage: stage)
                if options.json { return try Terminal.printJSON(events) }
                print(Table.stageHistory(events).render(), terminator: "")
            }
        }
    }

    struct Lineage: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "lineage",
            abstract: "Trace provenance: what produced something and from what (--up), or what consumed it (--down).",
            discussion: "The start may be a revision (commit, tag, model@stage), a tracked path (looked up in HEAD), or an object id.")

        @Argument(help: "A revision, a path, or an object id.")
        var start: String

        @Flag(help: "Walk upstream: producers and their inputs (default).")
        var up = false

        @Flag(help: "Walk downstream: consumers and their outputs.")
        var down = false

        @Option(help: "Maximum depth.")
        var depth: Int = 50

        @Option(help: "Output format: text, dot, mermaid or json.")
        var format: String = "text"

        @OptionGroup var options: StoreOptions

        func validate() throws {
            if up && down { throw ValidationError("choose --up or --down, not both") }
            if !["text", "dot", "mermaid", "json"].contains(format) { throw ValidationError("--format must be text, dot, mermaid or json") }
            if depth < 1 { throw ValidationError("--depth must be at least 1") }
        }

        func run() throws {
            let repo = try options.repository()
            let graph = LineageGraph(index: try TrackingIndex.open(repo))
            let goingUp = !down
            // The start: a commit, or an artifact whose producers (up) or consumers (down) are the roots.
            var roots: [ObjectID] = []
            var artifact: ObjectID?
            if let id = try? repo.resolve(start), let kind = try? repo.objects.info(id).kind, [.commit, .tag, .stage].contains(kind) {
                roots = [try repo.peelToCommit(id, revision: start)]
            } else {
                if let id = try? repo.objects.resolve(prefix: start) {
                    artifact = id
                } else if let ws = try? options.workspace(), let rel = try? ws.relativePath(start, cwd: Sys.currentDirectory()),
                    let id = try (try repo.headTree()).flatMap({ try repo.lookup(rel, in: $0)?.id }) ?? WorkspaceIndex.load(repo)[rel]?.id
                {
                    artifact = id
                } else {
                    throw MLStoreError(.notFound, "'\(start)' is not a revision, a path in HEAD, or an object id")
                }
                roots = goingUp ? graph.producers(of: artifact!) : graph.consumers(of: artifact!)
                if roots.isEmpty {
                    throw MLStoreError(.notFound, "no commit records \(artifact!.short) as \(goingUp ? "an output" : "an input")",
                                       hint: "record lineage with `mlstore commit --input/--output` or `mlstore run`")
                }
            }
            let trees = roots.map { goingUp ? graph.up(from: $0, depth: depth) : graph.down(from: $0, depth: depth) }
            switch format {
            case "json": try Terminal.printJSON(trees)
            case "dot": for t in trees { print(LineageGraph.dot(t, up: goingUp), terminator: "") }
            case "mermaid": for t in trees { print(LineageGraph.mermaid(t, up: goingUp), terminator: "") }
            default: for t in trees { print(LineageGraph.text(t, up: goingUp), terminator: "") }
            }
        }
    }

    struct ConfigCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config", abstract: "Get or set store configuration (e.g. user.name, user.email).")

        @Argument(help: "Key, e.g. user.name.")
        var key: String?

        @Argument(help: "Value to set.")
        var value: String?

        @Flag(help: "Remove the key.")
        var unset = false

        @Flag(name: .shortAndLong, help: "List all settings.")
        var list = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let repo = try options.repository()
            var cfg = try repo.config()
            if list || key == nil {
                for (k, v) in cfg.entries { print("\(k)=\(v)") }
                return
            }
            guard let key, key.split(separator: ".").count >= 2 else { throw ValidationError("a key looks like section.name, e.g. user.name") }
            if unset || value != nil {
                cfg.set(key, unset ? nil : value)
                try cfg.save()
            } else {
                guard let v = cfg.get(key) else { throw MLStoreError(.notFound, "\(key) is not set") }
                print(v)
            }
        }
    }
}
