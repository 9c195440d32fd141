import MLStoreBasics

/// The JSON messages of the HTTP remote protocol (spec/http.md, spec/openapi.yaml), shared by the client
/// (``HTTPRemote``) and the server (`mlstore serve`). Objects travel in ``WireFormat``, not JSON.
public enum HTTPProtocol {
    public static let version = 1
    public static let apiPrefix = "/api/v1"
    /// Ref namespaces a client may read and move.
    public static let refPrefixes = ["refs/heads/", "refs/tags/", "refs/stages/", "refs/runs/", "refs/models/"]
    /// Header naming the push lease a request belongs to.
    public static let leaseHeader = "X-MLStore-Lease"
    public static let kindHeader = "X-MLStore-Kind"
    public static let sizeHeader = "X-MLStore-Size"

    public struct Info: Codable, Sendable {
        public var service: String
        public var protocolVersion: Int
        public var formatVersion: Int
        /// What the caller may do: "none", "read" or "write".
        public var scope: String
        public var head: String?
        public init(service: String = "mlstore", protocolVersion: Int = HTTPProtocol.version, formatVersion: Int, scope: String, head: String?) {
            self.service = service
            self.protocolVersion = protocolVersion
            self.formatVersion = formatVersion
            self.scope = scope
            self.head = head
        }
    }

    public struct Refs: Codable, Sendable {
        public var refs: [String: ObjectID]
        public var head: String?
        public init(refs: [String: ObjectID], head: String?) {
            self.refs = refs
            self.head = head
        }
    }

    public struct SetHead: Codable, Sendable {
        public var branch: String
        public init(branch: String) { self.branch = branch }
    }

    /// A compare-and-swap on one ref. `expect`: `"absent"`, `"any"`, or the 64-hex value the ref must hold.
    public struct RefUpdate: Codable, Sendable {
        public var name: String
        public var new: ObjectID?
        public var expect: String
        public var actor: Signature
        public var message: String
        public init(name: String, new: ObjectID?, expecting: RefExpectation, actor: Signature, message: String) {
            self.name = name
            self.new = new
            switch expecting {
            case .any: expect = "any"
            case .absent: expect = "absent"
            case .value(let v): expect = v.hex
            }
            self.actor = actor
            self.message = message
        }

        public func expectation() throws -> RefExpectation {
            switch expect {
            case "any": return .any
            case "absent": return .absent
            default:
                guard let id = ObjectID(hex: expect) else {
                    throw MLStoreError(.usage, "expect must be \"absent\", \"any\" or a 64-hex object id, not '\(expect)'")
                }
                return .value(id)
            }
        }
    }

    public struct RefUpdated: Codable, Sendable {
        public var name: String
        public var old: ObjectID?
        public var new: ObjectID?
        public init(name: String, old: ObjectID?, new: ObjectID?) {
            self.name = name
            self.old = old
            self.new = new
        }
    }

    public struct Uploaded: Codable, Sendable {
        public var objectsWritten: Int
        public var objectsSkipped: Int
        public var storedBytes: Int64
        public var payloadBytes: Int64
        public init(_ s: ObjectBatch.Stats) {
            objectsWritten = s.objectsWritten
            objectsSkipped = s.objectsSkipped
            storedBytes = s.storedBytes
            payloadBytes = s.payloadBytes
        }
        public var stats: ObjectBatch.Stats {
            var s = ObjectBatch.Stats()
            s.objectsWritten = objectsWritten
            s.objectsSkipped = objectsSkipped
            s.storedBytes = storedBytes
            s.payloadBytes = payloadBytes
            return s
        }
    }

    public struct Lease: Codable, Sendable {
        public var id: String
        public var ttlSeconds: Double
        public init(id: String, ttlSeconds: Double) {
            self.id = id
            self.ttlSeconds = ttlSeconds
        }
    }

    /// Every error response: the ``MLStoreError`` code name, message and hint (and for a failed
    /// compare-and-swap, the ref's current value).
    public struct ErrorBody: Codable, Sendable {
        public var code: String
        public var error: String
        public var hint: String?
        public var current: ObjectID?
        public init(code: String, error: String, hint: String?, current: ObjectID? = nil) {
            self.code = code
            self.error = error
            self.hint = hint
            self.current = current
        }
    }

    /// The HTTP status for an error code.
    public static func status(for code: MLStoreError.Code) -> Int {
        switch code {
        case .usage: 400
        case .denied: 403
        case .notFound: 404
        case .conflict: 409
        case .locked: 423
        case .corrupt: 422
        case .unsupported: 422
        case .unsafePath: 400
        default: 500
        }
    }

    public static func code(named name: String) -> MLStoreError.Code {
        let all: [MLStoreError.Code] = [.failed, .usage, .notFound, .corrupt, .unsupported, .conflict, .unsafePath, .io, .locked, .denied]
        return all.first { $0.name == name } ?? .failed
    }
}
