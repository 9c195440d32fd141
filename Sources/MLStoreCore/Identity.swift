import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

extension Repository {
    public var refs: Refs { Refs(storeDirectory: storeDirectory) }

    public func config() throws -> Config { try Config(path: storeDirectory + "/config") }

    /// The author for new records: `MLSTORE_AUTHOR_NAME`/`_EMAIL`, then `user.name`/`user.email` in the
    /// store's config, then git's config as git itself resolves it in the workspace (the repository's own
    /// config over the global one), then the login and host names. `MLSTORE_AUTHOR_DATE`
    /// (`<unix seconds> [+hhmm]`) fixes the time, for reproducible tests. A name or email that would make
    /// an unreadable record (`<`, `>`, a line break or another control character) is refused, naming
    /// where it came from, before anything is written.
    public func identity(role: String = "AUTHOR") throws -> Signature {
        let env = ProcessEnvironment.self
        let cfg = try? config()
        var name: (value: String, source: String)?
        var email: (value: String, source: String)?
        for key in ["MLSTORE_\(role)_NAME", "MLSTORE_AUTHOR_NAME"] where name == nil {
            if let v = env.get(key) { name = (v, "the environment variable \(key)") }
        }
        for key in ["MLSTORE_\(role)_EMAIL", "MLSTORE_AUTHOR_EMAIL"] where email == nil {
            if let v = env.get(key) { email = (v, "the environment variable \(key)") }
        }
        if name == nil, let v = cfg?.get("user.name") { name = (v, "user.name in \(storeDirectory)/config") }
        if email == nil, let v = cfg?.get("user.email") { email = (v, "user.email in \(storeDirectory)/config") }
        if name == nil || email == nil {
            // `git config --get` prints the value git uses: the repository's config over the global one.
            let dir = workspaceRoot ?? storeDirectory
            for (key, slot) in [("user.name", 0), ("user.email", 1)] where (slot == 0 ? name : email) == nil {
                let r = Subprocess.run(["git", "config", "--get", key], cwd: dir)
                guard r.status == 0 else { continue }
                var v = r.stdout
                if v.hasSuffix("\n") { v.removeLast() }
                guard !v.isEmpty else { continue }
                if slot == 0 { name = (v, "git's \(key)") } else { email = (v, "git's \(key)") }
            }
        }
        let user = env.get("USER") ?? env.get("LOGNAME") ?? "unknown"
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostname = String(cString: host)
        for (field, value) in [("name", name), ("email", email)] {
            guard let value, let problem = Signature.problem(with: value.value, field: field) else { continue }
            throw MLStoreError(.usage, "the author \(field) '\(Signature.printable(value.value))' from \(value.source) \(problem)",
                               hint: "set a plain \(field) (`mlstore config user.\(field) …`, or MLSTORE_AUTHOR_\(field.uppercased()))")
        }
        var (time, offset) = Self.now()
        if let fixed = env.get("MLSTORE_\(role)_DATE") ?? env.get("MLSTORE_AUTHOR_DATE") {
            let f = fixed.split(separator: " ")
            if let t = f.first.flatMap({ Int64($0) }) {
                time = t
                offset = 0
                if f.count > 1, let sig = try? Signature(parsing: "x <y> 0 \(f[1])") { offset = sig.offsetMinutes }
            }
        }
        let fallbackName = Signature.problem(with: user, field: "name") == nil ? user : "unknown"
        let fallbackEmail = "\(fallbackName)@\(Signature.problem(with: hostname, field: "email") == nil ? hostname : "localhost")"
        return Signature(name: name?.value ?? fallbackName, email: email?.value ?? fallbackEmail, time: time, offsetMinutes: offset)
    }

    static func now() -> (Int64, Int) {
        var t = time_t(0)
        time(&t)
        var local = tm()
        localtime_r(&t, &local)
        return (Int64(t), Int(local.tm_gmtoff) / 60)
    }
}

/// Environment variables (read without Foundation).
public enum ProcessEnvironment {
    public static func get(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        let s = String(cString: v)
        return s.isEmpty ? nil : s
    }

    public static var all: [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}
