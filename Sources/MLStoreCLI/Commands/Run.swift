import ArgumentParser
import Foundation
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run",
            abstract: "Run a command and record it as a lineage commit: inputs, outputs, params, metrics, code, environment.",
            discussion: """
                mlstore run --input data/ --output model.pkl --params params.yaml --metrics metrics.json -- python train.py
                The inputs are added before the command runs, the outputs after. A failing command records nothing \
                (unless --record-failures) and mlstore exits with the command's status.
                """)

        @Option(help: "Name of the run (the commit message).") var name: String?
        @Option(name: .customLong("input"), help: "A path the command reads (repeatable).") var inputs: [String] = []
        @Option(name: .customLong("output"), help: "A path the command writes (repeatable).") var outputs: [String] = []
        @Option(name: .customLong("params"), help: "A params file (YAML or JSON) the command reads.") var paramsFiles: [String] = []
        @Option(name: .customLong("param"), help: "An extra parameter key=value to record.") var params: [String] = []
        @Option(name: .customLong("metrics"), help: "A metrics file the command writes (read after it ends).") var metricsFiles: [String] = []
        @Flag(name: .customLong("record-failures"), help: "Record the run even if the command fails.") var recordFailures = false
        @Flag(name: .customLong("no-code"), help: "Do not record the code version.") var noCode = false
        @Flag(name: .customLong("no-env"), help: "Do not record the environment.") var noEnv = false
        @Argument(parsing: .postTerminator, help: "The command (after --).") var command: [String] = []
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if command.isEmpty { throw ValidationError("give the command after --, e.g. mlstore run -- python train.py") }
        }

        func run() throws {
            let ws = try options.workspace()
            let cwd = Sys.currentDirectory()
            var o = Workspace.RunOptions(command: command)
            o.name = name
            o.inputs = try inputs.map { try ws.relativePath($0, cwd: cwd) }
            o.outputs = try outputs.map { try ws.relativePath($0, cwd: cwd) }
            o.paramsFiles = try paramsFiles.map { try ws.relativePath($0, cwd: cwd) }
            o.paramAssignments = params
            o.metricsFiles = try metricsFiles.map { try ws.relativePath($0, cwd: cwd) }
            o.recordFailures = recordFailures
            o.captureCode = !noCode
            o.captureEnv = !noEnv
            o.cwd = try ws.relativePath(cwd, cwd: cwd)
            o.stdoutToStderr = options.json
            let r = try ws.run(o)
            if r.recorded { Tracking.refresh(ws.repo) }
            if options.json {
                try Terminal.printJSON(r)
            } else if let c = r.commit {
                FileHandle.standardError.write(Data("mlstore: recorded run \(c.short) (exit \(r.exitStatus), \(String(format: "%.2f", r.seconds)) s)\n".utf8))
            } else {
                FileHandle.standardError.write(Data("mlstore: the command exited with status \(r.exitStatus); nothing recorded (use --record-failures to record failed runs)\n".utf8))
            }
            if r.exitStatus != 0 { throw CommandFailure(status: r.exitStatus) }
        }
    }

    struct Reproduce: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "reproduce",
            abstract: "Re-run a recorded run from its lineage and prove whether it gives the same outputs.",
            discussion: """
                Restores the code tree, the inputs and the params file of the commit into a fresh directory (or \
                --dir, or --in-place), reports every difference between the recorded and the current environment, \
                optionally rebuilds a Python venv from the recorded pip freeze, runs the recorded command, and \
                compares each output (identical / differs, with sizes) and the metrics. Exit 0 only if every output \
                is identical — or, with --tolerance, if every metric is within it (a metrics-only check).
                """)

        @Argument(help: "The run: a commit, tag, HEAD~N, model@stage …") var revision: String
        @Option(help: "Directory to rebuild in (new or empty).") var dir: String?
        @Flag(name: .customLong("in-place"), help: "Rebuild in this workspace.") var inPlace = false
        @Flag(name: .customLong("rebuild-env"), help: "Create a venv from the recorded pip freeze and run in it.") var rebuildEnv = false
        @Option(help: "Metrics-only check: pass if every metric differs by at most this much.") var tolerance: Double?
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if dir != nil && inPlace { throw ValidationError("use either --dir or --in-place") }
            if let tolerance, tolerance < 0 { throw ValidationError("--tolerance must be 0 or more") }
        }

        func run() throws {
            let repo = try options.repository()
            var o = Repository.ReproduceOptions()
            o.directory = dir
            o.inPlace = inPlace
            o.rebuildEnv = rebuildEnv
            o.tolerance = tolerance
            o.stdoutToStderr = options.json
            let r = try repo.reproduce(revision, options: o, progress: Terminal.progressBar())
            if options.json {
                try Terminal.printJSON(r)
            } else {
                print("reproduce \(r.commit.short) in \(r.directory)")
                print("  $ " + r.command.joined(separator: " ") + "   (exit \(r.exitStatus), \(String(format: "%.2f", r.seconds)) s)")
                if r.environmentDifferences.isEmpty {
                    print(Terminal.paint("  environment: same as recorded", .green))
                } else {
                    print(Terminal.paint("  environment differs:", .yellow))
                    for d in r.environmentDifferences.prefix(30) { print("    " + d) }
                    if r.environmentDifferences.count > 30 { print("    … \(r.environmentDifferences.count - 30) more (--json lists all)") }
                }
                for out in r.outputs {
                    let color: Terminal.Color = out.status == .identical ? .green : .red
                    let sizes = out.status == .identical ? Terminal.bytes(out.newSize ?? 0) : "\(out.recordedSize.map { Terminal.bytes($0) } ?? "?") → \(out.newSize.map { Terminal.bytes($0) } ?? "none")"
                    print("  " + Terminal.paint(out.status.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0), color) + " \(out.path)  (\(sizes))")
                }
                for m in r.metrics {
                    let d = m.delta.map { (($0 >= 0) ? "+" : "") + JSONValue.format(($0 * 1e9).rounded() / 1e9) } ?? "n/a"
                    print("  metric \(m.key): \(m.recorded.map(JSONValue.format) ?? "-") → \(m.new.map(JSONValue.format) ?? "-") (\(d))")
                }
                print(r.reproduced ? Terminal.paint("reproduced", .green) : Terminal.paint("NOT reproduced", .red))
            }
            if !r.reproduced { throw CommandFailure(status: 1) }
        }
    }

    struct Repro: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "repro",
            abstract: "Run the pipeline in mlstore.yaml: only stages whose command, dependencies or params changed.",
            discussion: "A stage whose key was run before is skipped, or its outputs are restored from the run cache without running. -j runs independent stages in parallel.")

        @Argument(help: "Run this stage and what it depends on (default: all).") var stage: String?
        @Option(name: .customShort("j"), help: "Run up to N independent stages at once.") var jobs: Int = 1
        @Flag(name: .shortAndLong, help: "Run the selected stages even if cached.") var force = false
        @Flag(name: .customLong("dry-run"), help: "Show what would run.") var dryRun = false
        @Flag(name: .customLong("no-env"), help: "Do not record the environment.") var noEnv = false
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if jobs < 1 { throw ValidationError("-j must be at least 1") }
        }

        func run() throws {
            let ws = try options.workspace()
            var o = Workspace.ReproOptions()
            o.target = stage
            o.jobs = jobs
            o.force = force
            o.dryRun = dryRun
            o.captureEnv = !noEnv
            o.stdoutToStderr = options.json
            let json = options.json
            let outcomes = try ws.repro(o) { line in
                if !json { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            }
            Tracking.refresh(ws.repo)
            if json { return try Terminal.printJSON(outcomes) }
            let ran = outcomes.filter { $0.status == .ran }.count
            let restored = outcomes.filter { $0.status == .restored }.count
            let failed = outcomes.filter { $0.status == .failed || $0.status == .skipped }
            if ran == 0 && restored == 0 && failed.isEmpty && !dryRun {
                print("Pipeline is up to date: nothing to reproduce.")
            } else {
                print("\(ran) ran, \(restored) restored from the run cache, \(outcomes.count - ran - restored - failed.count) up to date\(failed.isEmpty ? "" : ", \(failed.count) failed or skipped")")
            }
            if let f = failed.first { throw CommandFailure(status: f.exitStatus ?? 1) }
        }
    }

    struct Dag: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dag", abstract: "Show the pipeline's stages and their dependencies.")
        @Option(help: "text, dot or mermaid.") var format: String = "text"
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if !["text", "dot", "mermaid"].contains(format) { throw ValidationError("--format must be text, dot or mermaid") }
        }

        func run() throws {
            let p = try Pipeline.load(workspace: try options.workspace())
            switch format {
            case "dot": print(try p.dot(), terminator: "")
            case "mermaid": print(try p.mermaid(), terminator: "")
            default: print(try p.text(), terminator: "")
            }
        }
    }
}
