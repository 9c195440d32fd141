import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Commit: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "commit",
            abstract: "Record a lineage commit: the staged snapshot plus params, metrics, inputs, outputs, code and environment.",
            discussion: """
                A commit that changes no files but records params, metrics, inputs, outputs or a command is a run and is \
                allowed; one that records nothing new needs --allow-empty. Params files may be YAML or JSON (e.g. \
                params.yaml); metrics files JSON or YAML with numbers or step series ([0.9, 0.8] or \
                [{"step": 1, "value": 0.9}]). Author: MLSTORE_AUTHOR_NAME/_EMAIL, else user.name/user.email in \
                .mlstore/config, else git's config.
                """)

        @Option(name: .shortAndLong, help: "The commit message.")
        var message: String

        @Option(name: .customLong("input"), help: "A tracked path this run consumed (repeatable).")
        var inputs: [String] = []

        @Option(name: .customLong("output"), help: "A tracked path this run produced (repeatable).")
        var outputs: [String] = []

        @Option(name: .customLong("param"), help: "A parameter key=value (repeatable; dotted keys nest).")
        var params: [String] = []

        @Option(name: .customLong("params"), help: "A params file (YAML or JSON).")
        var paramsFiles: [String] = []

        @Option(name: .customLong("metric"), help: "A metric key=number (repeatable).")
        var metrics: [String] = []

        @Option(name: .customLong("metrics"), help: "A metrics file (JSON or YAML).")
        var metricsFiles: [String] = []

        @Option(help: "The command that produced the outputs, e.g. \"python train.py --lr 0.1\".")
        var command: String?

        @Flag(name: .customLong("no-code"), help: "Do not record the code version (git HEAD, patch, code tree).")
        var noCode = false

        @Flag(name: .customLong("no-env"), help: "Do not record the environment (OS, toolchains, pip freeze, lock files).")
        var noEnv = false

        @Flag(name: .customLong("allow-empty"), help: "Allow a commit that records nothing new.")
        var allowEmpty = false

        @OptionGroup var options: StoreOptions

        func run() throws {
            let ws = try options.workspace()
            let cwd = Sys.currentDirectory()
            var o = Workspace.CommitOptions(message: message)
            o.inputs = try inputs.map { try ws.relativePath($0, cwd: cwd) }
            o.outputs = try outputs.map { try ws.relativePath($0, cwd: cwd) }
            o.params = try RunValues.params(files: paramsFiles, assignments: params)
            o.metrics = try RunValues.metrics(files: metricsFiles, assignments: metrics)
            o.command = try command.map { try RunValues.splitCommand($0) }
            o.captureCode = !noCode
            o.captureEnv = !noEnv
            o.allowEmpty = allowEmpty
            let (id, c) = try ws.commit(o)
            Tracking.refresh(ws.repo)
            if options.json {
                return try Terminal.printJSON(["commit": id.hex, "tree": c.tree.hex, "branch": (try? ws.repo.refs.head().branchName) ?? nil])
            }
            let branch = (try? ws.repo.refs.head().branchName).flatMap { $0 } ?? "detached HEAD"
            print("[\(branch) \(Terminal.paint(id.short, .yellow))] \(c.subject)")
            var facts: [String] = []
            if let p = o.params { facts.append("\(p.flattened().count) params") }
            if let m = o.metrics { facts.append("\(m.object?.count ?? 0) metrics") }
            if !c.inputs.isEmpty { facts.append("\(c.inputs.count) inputs") }
            if !c.outputs.isEmpty { facts.append("\(c.outputs.count) outputs") }
            if c.code != nil { facts.append("code \(c.code?.gitCommit.map { String($0.prefix(10)) } ?? "tree")\(c.code?.dirtyPatch != nil ? " (dirty)" : "")") }
            if c.env != nil { facts.append("env") }
            if !facts.isEmpty { print(Terminal.paint(" recorded: " + facts.joined(separator: ", "), .dim)) }
        }
    }
}
