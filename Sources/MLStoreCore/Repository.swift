import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// A store on disk (`<workspace>/.mlstore`, or a bare store directory) with its workspace, if any.
///
/// ```swift
/// let repo = try Repository.initialize(at: "/work/project")
/// let same = try Repository.discover(from: "/work/project/data/sub")   // found upward, as git does
/// ```
public final class Repository: Sendable {
    /// The store format this build writes and the newest it reads (spec/objects.md §Store layout).
    public static let formatVersion = 1
    public static let storeDirectoryName = ".mlstore"

    /// The store directory (`.mlstore`, or the bare store itself).
    public let storeDirectory: String
    /// The workspace root, nil for a bare store.
    public let workspaceRoot: String?
    public let objects: ObjectStore

    init(storeDirectory: String, workspaceRoot: String?) throws {
        self.storeDirectory = storeDirectory
        self.workspaceRoot = workspaceRoot
        try Self.checkFormat(storeDirectory)
        objects = try ObjectStore(directory: storeDirectory + "/objects")
    }

    public var isBare: Bool { workspaceRoot == nil }

    /// The workspace root, or a clear error for a bare store.
    public func requireWorkspace() throws -> String {
        guard let workspaceRoot else {
            throw MLStoreError(.usage, "\(storeDirectory) is a bare store without a workspace", hint: "run this command in a workspace (a directory with .mlstore)")
        }
        return workspaceRoot
    }

    static func formatFileContents(_ version: Int) -> [UInt8] { Array("mlstore-format \(version)\n".utf8) }

    static func checkFormat(_ dir: String) throws {
        let text: String
        do {
            text = String(decoding: try Sys.readFile(dir + "/format", limit: 4096), as: UTF8.self)
        } catch let e as SystemError where e.errno == ENOENT || e.errno == ENOTDIR {
            throw MLStoreError(.notFound, "\(dir) is not an mlstore store (no format file)", hint: "run `mlstore init` to create one")
        }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count == 2, parts[0] == "mlstore-format", let v = Int(parts[1]) else {
            throw MLStoreError(.corrupt, "\(dir)/format is malformed: \(text.debugDescription)")
        }
        guard v <= formatVersion else {
            throw MLStoreError(
                .unsupported, "the store at \(dir) has format version \(v); this mlstore understands up to \(formatVersion)",
                hint: "upgrade mlstore")
        }
    }

    /// Creates a store. With `bare`, `path` itself becomes the store; otherwise `path/.mlstore`.
    /// - Returns: the opened repository. Re-initialising an existing store is harmless.
    @discardableResult
    public static func initialize(at path: String, bare: Bool = false) throws -> Repository {
        let root = Path.absolute(path, base: Sys.currentDirectory())
        let store = bare ? root : root + "/" + storeDirectoryName
        if let st = try Sys.lstatIfExists(store + "/format"), st.type == .regular {
            return try Repository(storeDirectory: store, workspaceRoot: bare ? nil : root)
        }
        try Sys.mkdirs(store)
        for d in ["objects", "objects/pack", "refs", "refs/heads", "refs/tags", "refs/stages", "logs", "tmp"] {
            try Sys.mkdir(store + "/" + d)
        }
        if !bare {
            if (try Sys.lstatIfExists(store + "/HEAD")) == nil {
                try Sys.writeFileAtomically(store + "/HEAD", Array("ref: refs/heads/main\n".utf8))
            }
        }
        if (try Sys.lstatIfExists(store + "/config")) == nil {
            try Sys.writeFileAtomically(store + "/config", Array("[core]\n\tbare = \(bare)\n".utf8))
        }
        // The format file is written last: its presence marks a complete store.
        try Sys.writeFileAtomically(store + "/format", formatFileContents(formatVersion))
        return try Repository(storeDirectory: store, workspaceRoot: bare ? nil : root)
    }

    /// Finds the store from `directory` upward (a `.mlstore` directory, or a bare store itself).
    public static func discover(from directory: String) throws -> Repository {
        var dir = Path.absolute(directory, base: Sys.currentDirectory())
        while true {
            let candidate = dir == "/" ? "/.mlstore" : dir + "/.mlstore"
            if let st = try? Sys.lstatIfExists(candidate), st.isDirectory {
                return try Repository(storeDirectory: candidate, workspaceRoot: dir)
            }
            if let st = try? Sys.lstatIfExists(dir + "/format"), st.type == .regular,
                (try? Sys.lstatIfExists(dir + "/objects"))??.isDirectory == true
            {
                return try Repository(storeDirectory: dir, workspaceRoot: nil)
            }
            if dir == "/" { break }
            dir = Path.parent(dir)
        }
        throw MLStoreError(
            .notFound, "not inside an mlstore workspace (no .mlstore here or in any parent directory)",
            hint: "run `mlstore init` to create one, or pass -C <dir>")
    }

    /// Opens the store at exactly `path` (a workspace root or a bare store).
    public static func open(at path: String) throws -> Repository {
        let root = Path.absolute(path, base: Sys.currentDirectory())
        if let st = try Sys.lstatIfExists(root + "/.mlstore"), st.isDirectory {
            return try Repository(storeDirectory: root + "/.mlstore", workspaceRoot: root)
        }
        return try Repository(storeDirectory: root, workspaceRoot: nil)
    }

    /// Path of the workspace index (the staging area and stat cache).
    public var indexPath: String { storeDirectory + "/index" }
    public var tempDirectory: String { storeDirectory + "/tmp" }
}
