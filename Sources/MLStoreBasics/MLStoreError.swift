/// The one error type of mlstore.
///
/// Every error carries a ``Code`` (what kind of failure, which also decides the process exit status),
/// a message that says what went wrong, a hint that says what to do, an optional underlying cause, and
/// the source location that raised it. Equality compares codes only, so tests can match on the kind.
public struct MLStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An extensible error code. New codes are added as static constants.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// The process exit status for a command that fails with this code (see spec/cli.md).
        public let exitStatus: Int32
        public init(_ name: String, exitStatus: Int32) {
            self.name = name
            self.exitStatus = exitStatus
        }
        public var description: String { name }

        /// Generic failure.
        public static let failed = Code("failed", exitStatus: 1)
        /// Bad command-line input (a flag, a path, a revision that does not parse).
        public static let usage = Code("usage", exitStatus: 2)
        /// A named thing (object, path, ref, store) does not exist.
        public static let notFound = Code("not-found", exitStatus: 3)
        /// Stored data failed verification: hash mismatch, truncation, malformed encoding.
        public static let corrupt = Code("corrupt", exitStatus: 4)
        /// A format or codec version this build does not understand.
        public static let unsupported = Code("unsupported", exitStatus: 4)
        /// Refused: the operation would lose data or conflicts with a concurrent change.
        public static let conflict = Code("conflict", exitStatus: 5)
        /// A path or tree entry that would escape the workspace or is otherwise unsafe.
        public static let unsafePath = Code("unsafe-path", exitStatus: 6)
        /// A system call failed (disk full, permission denied, I/O error).
        public static let io = Code("io", exitStatus: 7)
        /// A lock is held by another process.
        public static let locked = Code("locked", exitStatus: 8)
        /// Not allowed: missing or wrong credentials, or a token without the needed scope.
        public static let denied = Code("denied", exitStatus: 9)
    }

    public let code: Code
    public let message: String
    public let hint: String?
    public let underlying: String?
    public let file: String
    public let line: Int

    public init(
        _ code: Code, _ message: String, hint: String? = nil, underlying: (any Error)? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.hint = hint
        self.underlying = underlying.map { String(describing: $0) }
        self.file = file
        self.line = line
    }

    public var description: String {
        var text = message
        if let underlying { text += " (\(underlying))" }
        if let hint { text += "\nhint: \(hint)" }
        return text
    }

    public static func == (lhs: MLStoreError, rhs: MLStoreError) -> Bool { lhs.code == rhs.code }
}

extension MLStoreError {
    /// A corrupt-object error that names the object.
    public static func corruptObject(
        _ id: String, _ detail: String, where location: String? = nil, file: String = #fileID, line: Int = #line
    ) -> MLStoreError {
        let place = location.map { " in \($0)" } ?? ""
        return MLStoreError(
            .corrupt, "object \(id) is corrupt\(place): \(detail)",
            hint: "run `mlstore fsck` to list every damaged object; restore it from a remote or re-add the file",
            file: file, line: line)
    }
}
