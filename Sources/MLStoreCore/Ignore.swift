import MLStoreBasics
import Synchronization

/// `.mlstoreignore` files with gitignore syntax: `#` comments, `!` negation, trailing `/` for
/// directories only, a `/` elsewhere anchors the pattern to the file's directory, `*`, `?`, `[a-z]`,
/// and `**` across directories. A file in a directory applies below it; the last matching pattern wins;
/// nothing below an ignored directory can be re-included (as in git).
public final class IgnoreRules: @unchecked Sendable {
    struct Pattern {
        var glob: [UInt8]
        var negated: Bool
        var directoryOnly: Bool
        var anchored: Bool
        var base: String  // directory of the ignore file, workspace-relative ("" = root)
    }

    public static let fileName = ".mlstoreignore"
    let root: String
    private let cache = Mutex<[String: [Pattern]]>([:])

    public init(workspaceRoot: String) { root = workspaceRoot }

    /// Parses the lines of one ignore file located in `base`.
    static func parse(_ text: String, base: String) -> [Pattern] {
        var out: [Pattern] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            while line.hasSuffix(" ") && !line.hasSuffix("\\ ") { line = line.dropLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            var negated = false
            if line.hasPrefix("!") {
                negated = true
                line = line.dropFirst()
            } else if line.hasPrefix("\\!") || line.hasPrefix("\\#") {
                line = line.dropFirst()
            }
            var directoryOnly = false
            if line.hasSuffix("/") {
                directoryOnly = true
                line = line.dropLast()
            }
            if line.isEmpty { continue }
            var anchored = line.contains("/")
            if line.hasPrefix("/") {
                line = line.dropFirst()
                anchored = true
            }
            out.append(Pattern(glob: Array(line.utf8), negated: negated, directoryOnly: directoryOnly, anchored: anchored, base: base))
        }
        return out
    }

    func patterns(in directory: String) -> [Pattern] {
        if let p = cache.withLock({ $0[directory] }) { return p }
        let file = Path.join(Path.join(root, directory), Self.fileName)
        let text = (try? Sys.readFile(file, limit: 1 << 20)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let parsed = Self.parse(text, base: directory)
        cache.withLock { $0[directory] = parsed }
        return parsed
    }

    /// Whether `path` (workspace-relative) is ignored, given whether it is a directory. Checks that no
    /// parent directory is ignored either.
    public func isIgnored(_ path: String, isDirectory: Bool) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        var dir = ""
        for (i, part) in parts.enumerated() {
            let p = Path.join(dir, part)
            let isDir = i < parts.count - 1 ? true : isDirectory
            if matches(p, isDirectory: isDir, parentsOf: dir) { return true }
            dir = p
        }
        return false
    }

    /// Whether `path` is ignored by the files of its ancestors, assuming those ancestors are not ignored
    /// (the walker already checked them).
    public func matches(_ path: String, isDirectory: Bool, parentsOf parent: String) -> Bool {
        if Path.basename(path) == Repository.storeDirectoryName || Path.basename(path) == ".git" { return true }
        var dirs = [""]
        var d = ""
        for part in parent.split(separator: "/") {
            d = Path.join(d, String(part))
            dirs.append(d)
        }
        var ignored = false
        for dir in dirs {
            for pat in patterns(in: dir) {
                if pat.directoryOnly && !isDirectory { continue }
                let rel = dir.isEmpty ? path : String(path.dropFirst(dir.count + 1))
                let subject = pat.anchored ? rel : Path.basename(rel)
                if Self.glob(pat.glob, Array(subject.utf8)) { ignored = !pat.negated }
            }
        }
        return ignored
    }

    /// gitignore glob with `**`; `*` and `?` do not match `/`.
    static func glob(_ p: [UInt8], _ t: [UInt8]) -> Bool {
        match(p, 0, t, 0)
    }

    private static let slash = UInt8(ascii: "/")
    private static let star = UInt8(ascii: "*")

    private static func match(_ p: [UInt8], _ pi0: Int, _ t: [UInt8], _ ti0: Int) -> Bool {
        var pi = pi0
        var ti = ti0
        while pi < p.count {
            let c = p[pi]
            if c == star {
                let isDouble = pi + 1 < p.count && p[pi + 1] == star
                if isDouble && (pi == 0 || p[pi - 1] == slash) && (pi + 2 == p.count || p[pi + 2] == slash) {
                    if pi + 2 == p.count { return true }  // trailing /** matches everything below
                    // "**/" matches zero or more directories.
                    let rest = pi + 3
                    var k = ti
                    while true {
                        if match(p, rest, t, k) { return true }
                        guard let next = t[k...].firstIndex(of: slash) else { return false }
                        k = next + 1
                    }
                }
                var next = pi + 1
                while next < p.count && p[next] == star { next += 1 }
                var k = ti
                while true {
                    if match(p, next, t, k) { return true }
                    if k >= t.count || t[k] == slash { return false }
                    k += 1
                }
            }
            guard ti < t.count else { return false }
            switch c {
            case UInt8(ascii: "?"):
                if t[ti] == slash { return false }
            case UInt8(ascii: "["):
                guard let (ok, end) = matchClass(p, pi, t[ti]) else {
                    if t[ti] != c { return false }
                    break
                }
                if !ok || t[ti] == slash { return false }
                pi = end
                ti += 1
                continue
            case UInt8(ascii: "\\"):
                if pi + 1 < p.count {
                    pi += 1
                    if t[ti] != p[pi] { return false }
                } else if t[ti] != c {
                    return false
                }
            default:
                if t[ti] != c { return false }
            }
            pi += 1
            ti += 1
        }
        return ti == t.count
    }

    /// Matches a `[...]` class at `p[start]`; returns (matched, index after `]`), or nil if unterminated.
    private static func matchClass(_ p: [UInt8], _ start: Int, _ ch: UInt8) -> (Bool, Int)? {
        var i = start + 1
        var negate = false
        if i < p.count && (p[i] == UInt8(ascii: "!") || p[i] == UInt8(ascii: "^")) {
            negate = true
            i += 1
        }
        var matched = false
        var first = true
        while i < p.count && (first || p[i] != UInt8(ascii: "]")) {
            first = false
            var lo = p[i]
            if lo == UInt8(ascii: "\\") && i + 1 < p.count {
                i += 1
                lo = p[i]
            }
            if i + 2 < p.count && p[i + 1] == UInt8(ascii: "-") && p[i + 2] != UInt8(ascii: "]") {
                let hi = p[i + 2]
                if ch >= lo && ch <= hi { matched = true }
                i += 3
            } else {
                if ch == lo { matched = true }
                i += 1
            }
        }
        guard i < p.count else { return nil }
        return (matched != negate, i + 1)
    }
}
