import Dispatch
import MLStoreBasics
import Synchronization

/// What happened to one stage in `repro`.
public struct StageOutcome: Sendable, Codable {
    public enum Status: String, Sendable, Codable {
        /// Its key matched a recorded run and its outputs were already in place.
        case upToDate = "up-to-date"
        /// Its key matched a recorded run; the outputs were restored from the store without running.
        case restored
        case ran
        case failed
        /// Not run because an upstream stage failed.
        case skipped
        /// `--dry-run`: would run.
        case wouldRun = "would-run"
    }
    public var stage: String
    public var status: Status
    public var key: String
    public var commit: ObjectID?
    public var seconds: Double
    public var exitStatus: Int32?
}

extension Workspace {
    public struct ReproOptions: Sendable {
        public var target: String?
        public var jobs = 1
        /// Run every selected stage even if its key is cached.
        public var force = false
        public var dryRun = false
        public var captureEnv = true
        /// Send stage commands' standard output to standard error (for `--json`).
        public var stdoutToStderr = false
        public init() {}
    }

    /// Runs what is out of date in dependency order (spec/pipeline.md): a stage whose key — command, dep
    /// contents, param values, outs — matches a recorded run is skipped, or its outputs are restored from the
    /// store; other stages run (up to `jobs` at once when independent) and record a lineage commit that
    /// `refs/runs/<key>` keeps (the run cache, shared by push and fetch).
    public func repro(_ o: ReproOptions, log: @escaping @Sendable (String) -> Void) throws -> [StageOutcome] {
        let pipeline = try Pipeline.load(workspace: self)
        let order = try pipeline.order(target: o.target)
        let runner = PipelineRunner(ws: self, pipeline: pipeline, options: o, log: log)
        return try runner.run(order)
    }
}

/// Schedules and executes stages; shared state is behind one mutex.
final class PipelineRunner: @unchecked Sendable {
    let ws: Workspace
    let pipeline: Pipeline
    let options: Workspace.ReproOptions
    let log: @Sendable (String) -> Void
    /// Index changes (adding outputs, restoring) are serialized: the workspace index has one lock.
    let indexLock = Mutex(())
    let statCache: Mutex<WorkspaceIndex>
    let statCachePath: String
    let params = Mutex<[String: [String: JSONValue]]>([:])
    let envID = Mutex<ObjectID??>(nil)

    init(ws: Workspace, pipeline: Pipeline, options: Workspace.ReproOptions, log: @escaping @Sendable (String) -> Void) {
        self.ws = ws
        self.pipeline = pipeline
        self.options = options
        self.log = log
        statCachePath = ws.repo.storeDirectory + "/pipeline-index"
        var cache = WorkspaceIndex()
        if let st = try? Sys.lstatIfExists(statCachePath), let bytes = try? Sys.readFile(statCachePath),
            var loaded = try? WorkspaceIndex(decoding: bytes, path: statCachePath)
        {
            loaded.fileMtimeNs = st.mtimeNs
            cache = loaded
        }
        statCache = Mutex(cache)
    }

    func run(_ order: [PipelineStage]) throws -> [StageOutcome] {
        struct State {
            var done = Set<String>()
            var failed = Set<String>()
            var running = Set<String>()
            var outcomes: [String: StageOutcome] = [:]
            var error: (any Error)?
        }
        let state = Mutex(State())
        let finished = DispatchSemaphore(value: 0)
        var pending = order
        let jobs = max(1, options.jobs)
        while true {
            // Launch every stage whose upstream is done, up to `jobs` at once.
            var launchedAny = false
            var i = 0
            while i < pending.count {
                let s = pending[i]
                let ups = pipeline.upstream(of: s).map(\.name).filter { n in order.contains { $0.name == n } }
                let (blocked, upstreamFailed, slots) = state.withLock { st in
                    (ups.contains { !st.done.contains($0) && !st.failed.contains($0) }, ups.contains { st.failed.contains($0) }, jobs - st.running.count)
                }
                if blocked || (slots <= 0 && !upstreamFailed) {
                    i += 1
                    continue
                }
                pending.remove(at: i)
                if upstreamFailed {
                    state.withLock { st in
                        st.failed.insert(s.name)
                        st.outcomes[s.name] = StageOutcome(stage: s.name, status: .skipped, key: "", commit: nil, seconds: 0, exitStatus: nil)
                    }
                    log("Stage '\(s.name)' skipped: an upstream stage failed")
                    continue
                }
                state.withLock { _ = $0.running.insert(s.name) }
                launchedAny = true
                DispatchQueue.global().async {
                    let result = Result { try self.execute(s) }
                    state.withLock { st in
                        st.running.remove(s.name)
                        switch result {
                        case .success(let outcome):
                            st.outcomes[s.name] = outcome
                            if outcome.status == .failed { st.failed.insert(s.name) } else { st.done.insert(s.name) }
                        case .failure(let e):
                            st.failed.insert(s.name)
                            if st.error == nil { st.error = e }
                        }
                    }
                    finished.signal()
                }
            }
            let (running, hasError) = state.withLock { ($0.running.count, $0.error != nil) }
            if running == 0 && (pending.isEmpty || !launchedAny && hasError) { break }
            if running == 0 && !launchedAny { break }
            finished.wait()
        }
        try saveStatCache()
        let st = state.withLock { $0 }
        if let e = st.error { throw e }
        return order.compactMap { st.outcomes[$0.name] }
    }

    // MARK: Keys

    /// Content id of a dependency, using the stat cache so unchanged files are not re-read.
    func id(of rel: String) throws -> ObjectID? {
        let path = ws.absolute(rel)
        guard let st = try Sys.lstatIfExists(path) else { return nil }
        if st.type == .directory {
            var entries: [IndexEntry] = []
            for (p, fst) in try ws.walk(rel) {
                guard let e = try fileEntry(p, fst) else { continue }
                var c = e
                c.path = String(p.dropFirst(rel.count + 1))
                entries.append(c)
            }
            return try Workspace.buildTree(entries, into: nil).id
        }
        return try fileEntry(rel, st)?.id
    }

    func fileEntry(_ rel: String, _ st: FileStat) throws -> IndexEntry? {
        if let e = statCache.withLock({ c in c[rel].flatMap { $0.statMatches(st) && !c.isRacy($0) ? $0 : nil } }) { return e }
        let f = try ws.importer.importPath(ws.absolute(rel), stat: st, into: nil)
        let e = IndexEntry(path: rel, imported: f, stat: st)
        statCache.withLock { $0.update(set: [e]) }
        return e
    }

    func paramValue(_ ref: PipelineStage.ParamRef, stage: String) throws -> JSONValue {
        let values = try params.withLock { cache -> [String: JSONValue] in
            if let v = cache[ref.file] { return v }
            let file = ws.absolute(ref.file)
            guard (try Sys.lstatIfExists(file)) != nil else {
                throw MLStoreError(.notFound, "stage '\(stage)' uses params from \(ref.file), which does not exist")
            }
            let v = try JSONValue.load(file: file, what: "params file").flattened()
            cache[ref.file] = v
            return v
        }
        guard let v = values[ref.key] else {
            throw MLStoreError(.notFound, "stage '\(stage)': param '\(ref.key)' is not in \(ref.file)", hint: "add it to \(ref.file) or remove it from the stage's params")
        }
        return v
    }

    struct StageKey {
        var key: String
        var deps: [(path: String, id: ObjectID)]
        var params: JSONValue
    }

    func key(for s: PipelineStage) throws -> StageKey {
        var deps: [(String, ObjectID)] = []
        var depsJSON: [String: JSONValue] = [:]
        for d in s.deps.map(Pipeline.normalize) {
            guard let id = try id(of: d) else {
                throw MLStoreError(.notFound, "stage '\(s.name)': dependency '\(d)' does not exist", hint: "an upstream stage should have produced it; check its outs")
            }
            deps.append((d, id))
            depsJSON[d] = .string(id.hex)
        }
        var paramsJSON = JSONValue.object([:])
        var keyParams: [String: JSONValue] = [:]
        for p in s.params {
            let v = try paramValue(p, stage: s.name)
            paramsJSON.set(p.key, v)
            keyParams[p.file + ":" + p.key] = v
        }
        let material = JSONValue.object([
            "cmd": .array(s.commands.map { .string($0) }), "deps": .object(depsJSON), "params": .object(keyParams),
            "outs": .array(s.outs.map { .string(Pipeline.normalize($0)) }), "wdir": .string(s.wdir),
        ])
        return StageKey(key: Hex.encode(SHA256.hash(material.bytes)), deps: deps, params: paramsJSON)
    }

    // MARK: Execution

    func execute(_ s: PipelineStage) throws -> StageOutcome {
        let start = Repository.monotonic()
        let k = try key(for: s)
        let outs = s.outs.map(Pipeline.normalize)
        let runRef = "refs/runs/\(k.key)"
        if !options.force, let cached = try ws.repo.refs.read(runRef), ws.repo.objects.contains(cached) {
            let c = try ws.repo.commit(cached)
            let recorded = Dictionary(c.outputs.map { ($0.path, $0.id) }, uniquingKeysWith: { a, _ in a })
            let inPlace = try outs.allSatisfy { try id(of: $0) == recorded[$0] }
            if inPlace {
                log("Stage '\(s.name)' is up to date")
                return StageOutcome(stage: s.name, status: .upToDate, key: k.key, commit: cached, seconds: Repository.monotonic() - start, exitStatus: nil)
            }
            if options.dryRun { return StageOutcome(stage: s.name, status: .wouldRun, key: k.key, commit: cached, seconds: 0, exitStatus: nil) }
            try indexLock.withLock { _ in _ = try ws.checkout(tree: c.tree, paths: outs, options: .init(force: true)) }
            log("Stage '\(s.name)' restored from the run cache (\(cached.short)) without running")
            return StageOutcome(stage: s.name, status: .restored, key: k.key, commit: cached, seconds: Repository.monotonic() - start, exitStatus: nil)
        }
        if options.dryRun {
            log("Stage '\(s.name)' would run: \(s.commands.joined(separator: " && "))")
            return StageOutcome(stage: s.name, status: .wouldRun, key: k.key, commit: nil, seconds: 0, exitStatus: nil)
        }
        log("Running stage '\(s.name)':\n> \(s.commands.joined(separator: "\n> "))")
        let cwd = s.wdir.isEmpty ? ws.root : ws.absolute(Pipeline.normalize(s.wdir))
        for cmd in s.commands {
            let (status, _) = try CommandRunner.run(["sh", "-c", cmd], cwd: cwd, stdoutToStderr: options.stdoutToStderr)
            if status != 0 {
                log("Stage '\(s.name)' failed: `\(cmd)` exited with status \(status)")
                return StageOutcome(stage: s.name, status: .failed, key: k.key, commit: nil, seconds: Repository.monotonic() - start, exitStatus: status)
            }
        }
        let missing = try outs.filter { try Sys.lstatIfExists(ws.absolute($0)) == nil }
        guard missing.isEmpty else {
            throw MLStoreError(.failed, "stage '\(s.name)' ran but did not produce: \(missing.joined(separator: ", "))", hint: "fix the stage's cmd or outs")
        }
        let seconds = Repository.monotonic() - start
        let commitID = try indexLock.withLock { _ -> ObjectID in
            _ = try ws.add(outs, options: .init(force: true, updateGitignore: true))
            return try record(s, key: k, outs: outs, seconds: seconds)
        }
        try ws.repo.refs.update(runRef, to: commitID, expecting: .any, actor: try ws.repo.identity(), message: "repro: stage \(s.name)")
        log("Stage '\(s.name)' done in \(String(format: "%.2f", seconds)) s, recorded \(commitID.short)")
        return StageOutcome(stage: s.name, status: .ran, key: k.key, commit: commitID, seconds: seconds, exitStatus: 0)
    }

    /// Writes the stage's lineage commit: outputs as its tree, deps as inputs (their contents stored, so
    /// the run can be reproduced), param values, metrics, the command, and the environment.
    func record(_ s: PipelineStage, key: StageKey, outs: [String], seconds: Double) throws -> ObjectID {
        let repo = ws.repo
        let index = try WorkspaceIndex.load(repo)
        var outEntries: [IndexEntry] = []
        var outputs: [Artifact] = []
        let batch = repo.objects.batch()
        do {
            for o in outs {
                let under = index.entries(under: o)
                outEntries += under
                outputs.append(Artifact(id: try Workspace.artifactID(under, at: o, into: batch), path: o))
            }
            // Store dependency contents that are not stored yet (code files, mostly).
            for (d, _) in key.deps where index.entries(under: d).isEmpty {
                if let st = try Sys.lstatIfExists(ws.absolute(d)) {
                    if st.isDirectory {
                        // One walk, one read per file: the same importer `add` uses.
                        let entries = try ws.importFiles(try ws.walk(d), into: batch, progress: nil)
                        _ = try Workspace.artifactID(entries, at: d, into: batch)
                    } else {
                        _ = try ws.importer.importPath(ws.absolute(d), stat: st, into: batch)
                    }
                }
            }
            let tree = try Workspace.buildTree(outEntries, into: batch).id
            let actor = try repo.identity()
            var c = Commit(tree: tree, author: actor, committer: try repo.identity(role: "COMMITTER"), message: "stage \(s.name)\n")
            c.inputs = key.deps.map { Artifact(id: $0.id, path: $0.path) }
            c.outputs = outputs
            if key.params != .object([:]) { c.params = try batch.add(kind: .blob, payload: key.params.bytes) }
            if let m = try RunValues.metrics(files: s.metrics.map { ws.absolute(Pipeline.normalize($0)) }.filter { (try? Sys.lstatIfExists($0)) != nil }, assignments: []) {
                c.metrics = try batch.add(kind: .blob, payload: m.bytes)
            }
            c.command = ["sh", "-c", s.commands.joined(separator: " && ")]
            if options.captureEnv { c.env = try environment(batch) }
            c.extensions = [("stage", s.name), ("pipeline-key", key.key), ("duration-seconds", String(format: "%.3f", seconds))]
            if !s.wdir.isEmpty { c.extensions.append(("cwd", Pipeline.normalize(s.wdir))) }
            if let mf = s.metrics.first { c.extensions.append(("metrics-file", Pipeline.normalize(mf))) }
            let id = try batch.add(kind: .commit, payload: c.encoded())
            try batch.commit()
            return id
        } catch {
            batch.abandon()
            throw error
        }
    }

    /// The environment record, captured once per repro.
    func environment(_ batch: ObjectBatch) throws -> ObjectID {
        if let cached = envID.withLock({ $0 }), let id = cached { return id }
        let id = try batch.add(kind: .blob, payload: try EnvironmentCapture.capture(workspace: ws.root, into: batch).bytes)
        envID.withLock { $0 = .some(id) }
        return id
    }

    func saveStatCache() throws {
        let cache = statCache.withLock { $0 }
        guard let lock = try? LockFile(statCachePath) else { return }
        if let newest = cache.entries.map(\.mtimeNs).max() { Workspace.waitPastRacyWindow(newest) }
        try cache.save(ws.repo, lock: lock)
    }
}
