import Foundation
import MLStoreBasics

/// The result of `mlstore reproduce`.
public struct ReproduceReport: Sendable, Codable {
    public struct Output: Sendable, Codable {
        public enum Status: String, Sendable, Codable { case identical, differs, missing }
        public var path: String
        public var status: Status
        public var recordedID: ObjectID
        public var newID: ObjectID?
        public var recordedSize: Int64?
        public var newSize: Int64?
    }
    public struct Metric: Sendable, Codable {
        public var key: String
        public var recorded: Double?
        public var new: Double?
        public var delta: Double?
        public var withinTolerance: Bool
    }
    public var commit: ObjectID
    public var directory: String
    public var command: [String]
    public var exitStatus: Int32
    public var seconds: Double
    public var environmentDifferences: [String]
    public var outputs: [Output]
    public var metrics: [Metric]
    public var reproduced: Bool
}

extension Repository {
    public struct ReproduceOptions: Sendable {
        /// Where to rebuild the run; nil = a new temporary directory.
        public var directory: String?
        /// Run in this workspace instead (restoring code and inputs over it).
        public var inPlace = false
        public var rebuildEnv = false
        /// Metrics-only check: pass when every metric is within this absolute tolerance.
        public var tolerance: Double?
        /// Send the command's standard output to standard error (for `--json`).
        public var stdoutToStderr = false
        public init() {}
    }

    /// The size of an output's recorded object (file size, or total size for a directory tree).
    func recordedSize(_ id: ObjectID) -> Int64? {
        guard let (kind, size) = try? objects.info(id) else { return nil }
        switch kind {
        case .blob: return Int64(size)
        case .chunked: return (try? chunkedFile(id))?.fileSize
        case .tree: return (try? tree(id))?.totalSize
        default: return nil
        }
    }

    /// Hashes a file or directory on disk the way `add` would (nothing is stored).
    public static func hashPath(_ path: String, importer: FileImporter = FileImporter()) throws -> (id: ObjectID, size: Int64)? {
        guard let st = try Sys.lstatIfExists(path) else { return nil }
        if st.type != .directory {
            let f = try importer.importPath(path, stat: st, into: nil)
            return (f.id, f.size)
        }
        var entries: [TreeEntry] = []
        for (name, _) in try Sys.listDirectory(path) where name != ".mlstore" && name != ".git" {
            let p = path + "/" + name
            guard let cst = try Sys.lstatIfExists(p) else { continue }
            if cst.type == .directory {
                guard let (id, size) = try hashPath(p, importer: importer) else { continue }
                entries.append(TreeEntry(kind: .directory, mode: 0o755, size: size, name: name, id: id))
            } else if cst.type == .regular || cst.type == .symlink {
                let f = try importer.importPath(p, stat: cst, into: nil)
                entries.append(TreeEntry(kind: f.kind, mode: IndexEntry.mode(for: f.kind, stat: cst), size: f.size, name: name, id: f.id))
            }
        }
        let tree = try Tree(entries: entries)
        return (tree.id, tree.totalSize)
    }

    /// Rebuilds a recorded run and checks whether it gives the same outputs: restores the code tree, the
    /// inputs and the params file into a directory, compares the environment, optionally rebuilds a Python
    /// venv from the recorded `pip freeze`, runs the recorded command, and hashes every output.
    public func reproduce(_ revision: String, options o: ReproduceOptions, progress: ProgressReporter? = nil) throws -> ReproduceReport {
        let id = try resolveCommit(revision)
        let c = try commit(id)
        guard let command = c.command, !command.isEmpty else {
            throw MLStoreError(.usage, "commit \(id.short) records no command, so there is nothing to re-run",
                               hint: "record runs with `mlstore run -- <cmd>` or `mlstore commit --command \"<cmd>\"`")
        }
        // 1. The directory.
        let dir: String
        if o.inPlace {
            dir = try requireWorkspace()
        } else if let d = o.directory {
            dir = Path.absolute(d, base: Sys.currentDirectory())
            let emptyDir = try Sys.lstatIfExists(dir).map { st in try st.isDirectory && Sys.listDirectory(dir).isEmpty } ?? true
            if !emptyDir {
                throw MLStoreError(.conflict, "\(dir) exists and is not empty", hint: "give a new directory, or --in-place")
            }
        } else {
            var template = Array("/tmp/mlstore-reproduce-\(id.short)-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw MLStoreError(.io, "cannot create a temporary directory")
            }
            dir = String(cString: made)
        }
        // 2. Code, inputs, params file.
        var entries: [(path: String, entry: TreeEntry)] = []
        if let code = c.code { entries += try flatten(tree: code.tree) }
        for input in c.inputs {
            let (kind, _) = try objects.info(input.id)
            if kind == .tree {
                entries += try flatten(tree: input.id, prefix: input.path == "." ? "" : input.path)
            } else {
                let size = recordedSize(input.id) ?? 0
                entries.append((input.path, TreeEntry(kind: kind == .chunked ? .chunked : .file, mode: 0o644, size: size, name: Path.basename(input.path), id: input.id)))
            }
        }
        var byPath: [String: TreeEntry] = [:]
        for e in entries { byPath[e.path] = e.entry }
        let recordedOutputs = Set(c.outputs.map(\.path))
        // Outputs are never restored (the command must make them). In place, files that exist are used as
        // they are — the check is then "does this workspace still reproduce the run?" — and only missing
        // code and inputs are restored, so no local edit is overwritten.
        var restore = byPath.filter { p, _ in !recordedOutputs.contains(p) && !recordedOutputs.contains { p.hasPrefix($0 + "/") } }
            .sorted { $0.key < $1.key }.map { (path: $0.key, entry: $0.value) }
        if o.inPlace { restore = try restore.filter { try Sys.lstatIfExists(dir + "/" + $0.path) == nil } }
        try materialize(restore, into: dir, progress: progress)
        if let pf = c.extensionValue("params-file"), let params = c.params, (try Sys.lstatIfExists(dir + "/" + pf)) == nil {
            try Workspace.validateRelative(pf)
            let value = try json(params)
            let text = pf.hasSuffix(".json") ? value.canonical + "\n" : YAMLWriter.write(value)
            try Sys.mkdirs(Path.parent(dir + "/" + pf))
            try Sys.writeFileAtomically(dir + "/" + pf, Array(text.utf8))
        }
        // 3. Environment.
        var envDiffs: [String] = []
        if let env = c.env {
            let scratch = objects.batch()
            let now = try EnvironmentCapture.capture(workspace: dir, into: scratch)
            scratch.abandon()
            envDiffs = EnvironmentCapture.differences(try json(env), now)
        }
        var environment = ProcessEnvironment.all
        if o.rebuildEnv {
            guard let env = c.env, let freeze = try json(env)["pip_freeze"]?.array else {
                throw MLStoreError(.usage, "commit \(id.short) recorded no pip freeze to rebuild from", hint: "run without --rebuild-env")
            }
            let venv = dir + "/.venv"
            let python = ProcessEnvironment.get("MLSTORE_PYTHON") ?? "python3"
            let mk = Subprocess.run([python, "-m", "venv", venv], timeout: 300)
            guard mk.ok else { throw MLStoreError(.failed, "cannot create a venv: \(mk.stderr)") }
            let reqs = freeze.compactMap(\.string).filter { !$0.hasPrefix("-e ") && !$0.contains(" @ file://") }
            try Sys.writeFileAtomically(venv + "/requirements.txt", Array((reqs.joined(separator: "\n") + "\n").utf8))
            if !reqs.isEmpty {
                let pip = Subprocess.run([venv + "/bin/pip", "install", "--disable-pip-version-check", "-q", "-r", venv + "/requirements.txt"], timeout: 1800)
                guard pip.ok else { throw MLStoreError(.failed, "pip could not rebuild the environment:\n\(pip.stderr.suffix(2000))") }
            }
            environment["PATH"] = venv + "/bin:" + (environment["PATH"] ?? "/usr/bin:/bin")
            environment["VIRTUAL_ENV"] = venv
        }
        // 4. Run.
        let cwd = c.extensionValue("cwd").map { dir + "/" + $0 } ?? dir
        let (status, seconds) = try CommandRunner.run(command, cwd: cwd, environment: environment, stdoutToStderr: o.stdoutToStderr)
        // 5. Compare outputs and metrics.
        var outputs: [ReproduceReport.Output] = []
        for out in c.outputs {
            let now = try Self.hashPath(dir + "/" + out.path)
            let st: ReproduceReport.Output.Status = now == nil ? .missing : (now!.id == out.id ? .identical : .differs)
            outputs.append(.init(path: out.path, status: st, recordedID: out.id, newID: now?.id, recordedSize: recordedSize(out.id), newSize: now?.size))
        }
        var metrics: [ReproduceReport.Metric] = []
        if let mid = c.metrics, let mf = c.extensionValue("metrics-file"), let recorded = try json(mid).object {
            let fresh = (try? RunValues.metrics(files: [dir + "/" + mf], assignments: []))??.object ?? [:]
            func last(_ v: JSONValue?) -> Double? { v?.number ?? v?.array?.last?["value"]?.number }
            for k in Set(recorded.keys).union(fresh.keys).sorted() {
                let a = last(recorded[k]), b = last(fresh[k])
                let delta = a.flatMap { x in b.map { $0 - x } }
                metrics.append(.init(key: k, recorded: a, new: b, delta: delta, withinTolerance: delta.map { abs($0) <= (o.tolerance ?? 0) } ?? false))
            }
        }
        let reproduced: Bool
        if o.tolerance != nil {
            reproduced = status == 0 && !metrics.isEmpty && metrics.allSatisfy(\.withinTolerance)
        } else {
            reproduced = status == 0 && outputs.allSatisfy { $0.status == .identical }
        }
        return ReproduceReport(commit: id, directory: dir, command: command, exitStatus: status, seconds: seconds,
                               environmentDifferences: envDiffs, outputs: outputs, metrics: metrics, reproduced: reproduced)
    }
}

/// Writes a JSON object as simple YAML (for restoring a params.yaml).
enum YAMLWriter {
    static func write(_ v: JSONValue, indent: String = "") -> String {
        guard let o = v.object else { return scalar(v) + "\n" }
        var out = ""
        for k in o.keys.sorted() {
            let value = o[k]!
            if let inner = value.object, !inner.isEmpty {
                out += "\(indent)\(k):\n" + write(value, indent: indent + "  ")
            } else {
                out += "\(indent)\(k): \(scalar(value))\n"
            }
        }
        return out
    }

    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .string(let s):
            return JSONValue.infer(s) == .string(s) && !s.contains(":") && !s.contains("#") && !s.isEmpty ? s : JSONValue.string(s).canonical
        default: return v.canonical
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
