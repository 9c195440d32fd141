import Foundation
import MLStoreBasics

/// Runs a command with inherited standard streams; returns its exit status (128 + signal if killed).
public enum CommandRunner {
    /// With `stdoutToStderr` the command's standard output goes to mlstore's standard error (so `--json`
    /// output stays clean).
    public static func run(_ argv: [String], cwd: String, environment: [String: String]? = nil, stdoutToStderr: Bool = false) throws -> (status: Int32, seconds: Double) {
        guard !argv.isEmpty else { throw MLStoreError(.usage, "no command to run") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        p.currentDirectoryURL = URL(fileURLWithPath: cwd)
        if let environment { p.environment = environment }
        if stdoutToStderr { p.standardOutput = FileHandle.standardError }
        let start = Repository.monotonic()
        do { try p.run() } catch {
            throw MLStoreError(.failed, "cannot start \(argv[0]): \(error)")
        }
        p.waitUntilExit()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return (status, Repository.monotonic() - start)
    }
}

/// The outcome of `mlstore run`.
public struct RunResult: Sendable, Codable {
    public var commit: ObjectID?
    public var exitStatus: Int32
    public var seconds: Double
    public var recorded: Bool
}

extension Workspace {
    public struct RunOptions: Sendable {
        public var command: [String]
        public var name: String?
        public var inputs: [String] = []
        public var outputs: [String] = []
        public var paramsFiles: [String] = []
        public var paramAssignments: [String] = []
        public var metricsFiles: [String] = []
        public var recordFailures = false
        public var captureCode = true
        public var captureEnv = true
        /// Workspace-relative directory the command runs in.
        public var cwd = ""
        /// Send the command's standard output to standard error (for `--json`).
        public var stdoutToStderr = false
        public init(command: [String]) { self.command = command }
    }

    /// `mlstore run`: snapshots the inputs, runs the command (its output streams through), then — if it
    /// succeeded, or with `recordFailures` — adds the outputs, reads params and metrics, and commits a lineage
    /// record with the command (argv), exit status, duration, code and environment.
    public func run(_ o: RunOptions) throws -> RunResult {
        for p in o.inputs + o.outputs where p.isEmpty {
            throw MLStoreError(.usage, "the workspace root cannot be an input or output of a run", hint: "name the files or directories")
        }
        // Validate params before running anything.
        let params = try RunValues.params(files: o.paramsFiles.map { absolute($0) }, assignments: o.paramAssignments)
        if !o.inputs.isEmpty { _ = try add(o.inputs) }
        let (status, seconds) = try CommandRunner.run(o.command, cwd: absolute(o.cwd), stdoutToStderr: o.stdoutToStderr)
        guard status == 0 || o.recordFailures else {
            return RunResult(commit: nil, exitStatus: status, seconds: seconds, recorded: false)
        }
        let produced = o.outputs.filter { (try? Sys.lstatIfExists(absolute($0))) != nil }
        if produced.count < o.outputs.count && status == 0 {
            let missing = o.outputs.filter { !produced.contains($0) }
            throw MLStoreError(.failed, "the command succeeded but did not produce: \(missing.joined(separator: ", "))",
                               hint: "check the --output paths (relative to the workspace root)")
        }
        if !produced.isEmpty { _ = try add(produced) }
        var c = CommitOptions(message: o.name ?? "run: " + o.command.joined(separator: " "))
        c.inputs = o.inputs
        c.outputs = produced
        c.params = params
        c.metrics = try RunValues.metrics(files: o.metricsFiles.filter { (try? Sys.lstatIfExists(absolute($0))) != nil }.map { absolute($0) }, assignments: [])
        c.command = o.command
        c.captureCode = o.captureCode
        c.captureEnv = o.captureEnv
        c.allowEmpty = true
        c.extensions = [("exit-status", String(status)), ("duration-seconds", String(format: "%.3f", seconds))]
        if !o.cwd.isEmpty { c.extensions.append(("cwd", o.cwd)) }
        if let f = o.paramsFiles.first { c.extensions.append(("params-file", f)) }
        if let f = o.metricsFiles.first { c.extensions.append(("metrics-file", f)) }
        let (id, _) = try commit(c)
        return RunResult(commit: id, exitStatus: status, seconds: seconds, recorded: true)
    }
}

extension Commit {
    public func extensionValue(_ key: String) -> String? { extensions.first { $0.key == key }?.value }
}
