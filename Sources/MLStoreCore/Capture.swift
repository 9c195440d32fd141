import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// Parsing of params and metrics from flags and files (spec/lineage.md §Params and metrics).
public enum RunValues {
    /// `key=value` with a YAML-typed value (numbers, booleans, null, else string); dotted keys nest.
    public static func parseAssignment(_ text: String, flag: String) throws -> (String, JSONValue) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw MLStoreError(.usage, "\(flag) '\(text)' is not key=value", hint: "write e.g. \(flag) lr=0.01")
        }
        let key = String(text[..<eq])
        guard key.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty }),
            !key.contains(where: { $0.isWhitespace })
        else {
            throw MLStoreError(.usage, "\(flag) '\(text)': '\(key)' is not a valid key", hint: "keys are names separated by dots, without spaces")
        }
        return (key, JSONValue.infer(String(text[text.index(after: eq)...])))
    }

    /// Builds the params object from a file (YAML or JSON) and `--param` flags (flags win).
    public static func params(files: [String], assignments: [String]) throws -> JSONValue? {
        var value = JSONValue.object([:])
        for f in files {
            let v = try JSONValue.load(file: f, what: "params file")
            guard case .object(let o) = v else {
                throw MLStoreError(.usage, "params file \(f) must hold a mapping of names to values")
            }
            for (k, x) in JSONValue.object(o).flattened() { value.set(k, x) }
        }
        for a in assignments {
            let (k, v) = try parseAssignment(a, flag: "--param")
            value.set(k, v)
        }
        return value == .object([:]) ? nil : value
    }

    /// Builds the metrics object: numeric scalars, or step series given as arrays of numbers or of
    /// `{step, value}` objects (normalized to the latter). Anything else is an error naming the key.
    public static func metrics(files: [String], assignments: [String]) throws -> JSONValue? {
        var merged: [String: JSONValue] = [:]
        for f in files {
            let v = try JSONValue.load(file: f, what: "metrics file")
            guard case .object = v else { throw MLStoreError(.usage, "metrics file \(f) must hold a mapping of names to numbers") }
            for (k, x) in v.flattenedMetrics() { merged[k] = x }
        }
        for a in assignments {
            let (k, v) = try parseAssignment(a, flag: "--metric")
            merged[k] = v
        }
        var out: [String: JSONValue] = [:]
        for (k, v) in merged { out[k] = try normalizeMetric(k, v) }
        return out.isEmpty ? nil : .object(out)
    }

    static func normalizeMetric(_ key: String, _ v: JSONValue) throws -> JSONValue {
        switch v {
        case .number: return v
        case .bool(let b): return .number(b ? 1 : 0)
        case .object(let o) where o["value"]?.number != nil:
            // One {step, value} point: a series of one.
            return try normalizeMetric(key, .array([v]))
        case .array(let items):
            var series: [JSONValue] = []
            for (i, item) in items.enumerated() {
                switch item {
                case .number(let n):
                    series.append(.object(["step": .number(Double(i)), "value": .number(n)]))
                case .object(let o):
                    guard let value = o["value"]?.number else {
                        throw MLStoreError(.usage, "metric \(key)[\(i)] has no numeric 'value'", hint: "write a series as [{\"step\": 1, \"value\": 0.5}, ...] or [0.5, 0.4, ...]")
                    }
                    let step = o["step"]?.number ?? Double(i)
                    series.append(.object(["step": .number(step), "value": .number(value)]))
                default:
                    throw MLStoreError(.usage, "metric \(key)[\(i)] is not a number or {step, value}")
                }
            }
            return .array(series)
        default:
            throw MLStoreError(.usage, "metric \(key) = \(v.canonical.prefix(40)) is not a number or a series", hint: "metrics are numbers; put text in params or the message")
        }
    }

    /// Splits a command line like a POSIX shell (quotes and backslashes; no expansion).
    public static func splitCommand(_ text: String) throws -> [String] {
        var args: [String] = []
        var cur = ""
        var inWord = false
        var quote: Character?
        var escape = false
        for c in text {
            if escape {
                cur.append(c)
                escape = false
                inWord = true
                continue
            }
            if let q = quote {
                if c == q { quote = nil } else if c == "\\" && q == "\"" { escape = true } else { cur.append(c) }
                continue
            }
            switch c {
            case "\\": escape = true
            case "'", "\"":
                quote = c
                inWord = true
            case " ", "\t", "\n":
                if inWord {
                    args.append(cur)
                    cur = ""
                    inWord = false
                }
            default:
                cur.append(c)
                inWord = true
            }
        }
        if quote != nil { throw MLStoreError(.usage, "--command has an unterminated quote") }
        if inWord { args.append(cur) }
        return args
    }
}

extension JSONValue {
    /// Metrics files may nest (`{"eval": {"acc": 0.9}}`): flatten to dotted keys, keeping series whole.
    func flattenedMetrics(prefix: String = "") -> [String: JSONValue] {
        guard case .object(let o) = self else { return [prefix: self] }
        var out: [String: JSONValue] = [:]
        for (k, v) in o {
            let key = prefix.isEmpty ? k : prefix + "." + k
            if case .object(let inner) = v, inner["value"] == nil {
                out.merge(v.flattenedMetrics(prefix: key)) { a, _ in a }
            } else {
                out[key] = v
            }
        }
        return out
    }
}

/// Captures the code version: git HEAD, a patch of uncommitted changes, and a tree of the code files.
public enum CodeCapture {
    /// Largest file, and most files, the code tree takes outside git.
    public static let plainFileLimit: Int64 = 1 << 20
    public static let plainCountLimit = 10_000

    /// Inside git: HEAD, patch and the git-listed files. Outside git: a code tree of the workspace files
    /// mlstore does not track (not ignored, at most 1 MiB each), so a run can still be rebuilt.
    public static func capture(workspace root: String, into batch: ObjectBatch, importer: FileImporter = FileImporter(),
                               tracked: Set<String> = [], walk: (() throws -> [(path: String, stat: FileStat)])? = nil) throws -> CodeVersion? {
        let top = Subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd: root)
        guard top.ok else {
            guard let walk else { return nil }
            var entries: [IndexEntry] = []
            for (p, st) in try walk() where !tracked.contains(p) && st.size <= plainFileLimit && p != ".gitignore" {
                if entries.count >= plainCountLimit { break }
                let f = try importer.importPath(root + "/" + p, stat: st, into: batch)
                entries.append(IndexEntry(path: p, imported: f, stat: st))
            }
            guard !entries.isEmpty else { return nil }
            return CodeVersion(tree: try Workspace.buildTree(entries, into: batch).id, gitCommit: nil, dirtyPatch: nil)
        }
        let gitRoot = top.stdout.trimmingCharacters(in: "\n ")
        let head = Subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd: gitRoot)
        let commit = head.ok ? head.stdout.trimmingCharacters(in: "\n ") : nil
        // Code files: tracked plus untracked-but-not-ignored, as they are now in the work tree.
        let ls = Subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd: gitRoot)
        guard ls.ok else { throw MLStoreError(.failed, "git ls-files failed: \(ls.stderr)") }
        var entries: [IndexEntry] = []
        var seen = Set<String>()
        for raw in ls.stdoutBytes.split(separator: 0) {
            let path = String(decoding: raw, as: UTF8.self)
            guard seen.insert(path).inserted else { continue }
            guard (try? Workspace.validateRelative(path)) != nil else { continue }
            guard let st = try Sys.lstatIfExists(gitRoot + "/" + path), st.type == .regular || st.type == .symlink else { continue }
            let f = try importer.importPath(gitRoot + "/" + path, stat: st, into: batch)
            entries.append(IndexEntry(path: path, imported: f, stat: st))
        }
        let (tree, _) = try Workspace.buildTree(entries, into: batch)
        var patch: ObjectID?
        if commit != nil {
            let diff = Subprocess.run(["git", "diff", "HEAD", "--binary"], cwd: gitRoot)
            if diff.ok && !diff.stdoutBytes.isEmpty {
                patch = try batch.add(kind: .blob, payload: diff.stdoutBytes)
            }
        }
        let untracked = Subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd: gitRoot)
        if commit != nil, patch == nil, untracked.ok, !untracked.stdout.isEmpty {
            // New files are in the code tree; mark the run dirty with an empty patch so it is visible.
            patch = try batch.add(kind: .blob, payload: [])
        }
        return CodeVersion(tree: tree, gitCommit: commit, dirtyPatch: patch)
    }
}

/// Captures the environment record (spec/lineage.md §Environment): stable facts only, so identical
/// environments produce identical objects.
public enum EnvironmentCapture {
    /// Variables recorded when set (they change numerical results or hardware use).
    public static let allowlist = [
        "CUDA_VISIBLE_DEVICES", "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "TORCH_DETERMINISTIC", "VIRTUAL_ENV", "CONDA_DEFAULT_ENV",
    ]
    public static let lockFiles = [
        "requirements.txt", "requirements.lock", "uv.lock", "poetry.lock", "Pipfile.lock", "environment.yml", "conda-lock.yml",
        "Package.resolved", "Cargo.lock", "package-lock.json",
    ]

    public static func capture(workspace root: String?, into batch: ObjectBatch) throws -> JSONValue {
        var env: [String: JSONValue] = [:]
        var u = utsname()
        uname(&u)
        func field<T>(_ v: T) -> String {
            withUnsafeBytes(of: v) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        env["os"] = .string(osName())
        env["kernel"] = .string(field(u.release))
        env["arch"] = .string(field(u.machine))
        env["cpu"] = .string(cpuModel())
        env["cpus"] = .number(Double(workerCount))
        var tools: [String: JSONValue] = [:]
        let python = ProcessEnvironment.get("MLSTORE_PYTHON") ?? "python3"
        let py = Subprocess.run([python, "-c", "import sys, platform; print(platform.python_version()); print(sys.executable)"], timeout: 30)
        if py.ok {
            let lines = py.stdout.split(separator: "\n").map(String.init)
            tools["python"] = .string(lines.first ?? "")
            if lines.count > 1 { tools["python_executable"] = .string(lines[1]) }
            let freeze = Subprocess.run([python, "-m", "pip", "freeze", "--disable-pip-version-check"], timeout: 60)
            if freeze.ok {
                let pkgs = freeze.stdout.split(separator: "\n").map { String($0) }.filter { !$0.isEmpty }.sorted()
                env["pip_freeze"] = .array(pkgs.map { .string($0) })
            }
        }
        let swiftVersion = Subprocess.run(["swift", "--version"], timeout: 30)
        if swiftVersion.ok, let first = (swiftVersion.stdout + swiftVersion.stderr).split(separator: "\n").first(where: { $0.contains("Swift version") }) {
            tools["swift"] = .string(String(first))
        }
        env["tools"] = .object(tools)
        var locks: [String: JSONValue] = [:]
        if let root {
            for name in lockFiles {
                let p = root + "/" + name
                if let st = try Sys.lstatIfExists(p), st.type == .regular, st.size <= 64 << 20 {
                    locks[name] = .string(try batch.add(kind: .blob, payload: try Sys.readFile(p)).hex)
                }
            }
        }
        env["lock_files"] = .object(locks)
        var vars: [String: JSONValue] = [:]
        for k in allowlist { if let v = ProcessEnvironment.get(k) { vars[k] = .string(v) } }
        env["env_vars"] = .object(vars)
        return .object(env)
    }

    static func osName() -> String {
        guard let text = try? Sys.readFile("/etc/os-release", limit: 65536) else { return "unknown" }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("PRETTY_NAME=") {
            return String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: "\"")
        }
        return "unknown"
    }

    static func cpuModel() -> String {
        guard let text = try? Sys.readFile("/proc/cpuinfo", limit: 1 << 20) else { return "unknown" }
        for line in String(decoding: text, as: UTF8.self).split(separator: "\n") where line.hasPrefix("model name") {
            return line.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingCharacters(in: " \t") } ?? "unknown"
        }
        return "unknown"
    }

    /// Differences between two environment records, as readable lines (used by reproduce and diff).
    public static func differences(_ a: JSONValue, _ b: JSONValue) -> [String] {
        var out: [String] = []
        let fa = a.flattened(), fb = b.flattened()
        for key in Set(fa.keys).union(fb.keys).sorted() where key != "pip_freeze" {
            let x = fa[key], y = fb[key]
            if x != y { out.append("\(key): \(x?.display ?? "(none)") → \(y?.display ?? "(none)")") }
        }
        let pa = Set((a["pip_freeze"]?.array ?? []).compactMap(\.string))
        let pb = Set((b["pip_freeze"]?.array ?? []).compactMap(\.string))
        for p in pa.subtracting(pb).sorted() { out.append("package removed or changed: \(p)") }
        for p in pb.subtracting(pa).sorted() { out.append("package added or changed: \(p)") }
        return out
    }
}
