import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

extension Repository {
    public var refs: Refs { Refs(storeDirectory: storeDirectory) }

    public func config() throws -> Config { try Config(path: storeDirectory + "/config") }

    /// The author for new records: `MLSTORE_AUTHOR_NAME`/`_EMAIL`, then `user.name`/`user.email` in the
    /// store's config, then git's config, then the login and host names. `MLSTORE_AUTHOR_DATE`
    /// (`<unix seconds> [+hhmm]`) fixes the time, for reproducible tests.
    public func identity(role: String = "AUTHOR") -> Signature {
        let env = ProcessEnvironment.self
        let cfg = try? config()
        var name = env.get("MLSTORE_\(role)_NAME") ?? env.get("MLSTORE_AUTHOR_NAME") ?? cfg?.get("user.name")
        var email = env.get("MLSTORE_\(role)_EMAIL") ?? env.get("MLSTORE_AUTHOR_EMAIL") ?? cfg?.get("user.email")
        if name == nil || email == nil {
            let git = Subprocess.run(["git", "config", "--get-regexp", "^user\\.(name|email)$"], cwd: workspaceRoot ?? storeDirectory)
            for line in git.stdout.split(separator: "\n") {
                let kv = line.split(separator: " ", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { continue }
                if kv[0] == "user.name" && name == nil { name = kv[1] }
                if kv[0] == "user.email" && email == nil { email = kv[1] }
            }
        }
        let user = env.get("USER") ?? env.get("LOGNAME") ?? "unknown"
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        let hostname = String(cString: host)
        var (time, offset) = Self.now()
        if let fixed = env.get("MLSTORE_\(role)_DATE") ?? env.get("MLSTORE_AUTHOR_DATE") {
            let f = fixed.split(separator: " ")
            if let t = f.first.flatMap({ Int64($0) }) {
                time = t
                offset = 0
                if f.count > 1, let sig = try? Signature(parsing: "x <y> 0 \(f[1])") { offset = sig.offsetMinutes }
            }
        }
        return Signature(name: name ?? user, email: email ?? "\(user)@\(hostname)", time: time, offsetMinutes: offset)
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
