import Foundation
import MLStoreBasics
import Synchronization

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// How to reach an S3-compatible store. Stored in `.mlstore/config` as `remote.<name>.endpoint`,
/// `.region`, `.pathstyle`, `.conditionalwrites` (never credentials).
public struct S3Settings: Sendable, Equatable {
    /// `http(s)://host[:port]` of a non-AWS store; nil = AWS (`https://s3.<region>.amazonaws.com`).
    public var endpoint: String?
    public var region: String?
    /// Path-style (`endpoint/bucket/key`) instead of virtual-hosted (`bucket.endpoint/key`); nil = automatic
    /// (path-style for IP addresses, `localhost` and buckets with dots, else virtual-hosted).
    public var pathStyle: Bool?
    /// false only when the user accepted a store without conditional writes (`--unsafe-no-conditional-writes`).
    public var conditionalWrites: Bool = true

    public init(endpoint: String? = nil, region: String? = nil, pathStyle: Bool? = nil, conditionalWrites: Bool = true) {
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.conditionalWrites = conditionalWrites
    }

    /// The config keys (under `remote.<name>.`) and values these settings are stored as.
    public var configEntries: [(String, String)] {
        var out: [(String, String)] = []
        if let endpoint { out.append(("endpoint", endpoint)) }
        if let region { out.append(("region", region)) }
        if let pathStyle { out.append(("pathstyle", pathStyle ? "true" : "false")) }
        if !conditionalWrites { out.append(("conditionalwrites", "false")) }
        return out
    }

    public static let configKeys = ["endpoint", "region", "pathstyle", "conditionalwrites"]

    /// Reads settings from config-style pairs (`endpoint`, `region`, `pathstyle`/`path-style`, `conditionalwrites`).
    public init(entries: [String: String]) throws {
        for (k, v) in entries {
            switch k.lowercased() {
            case "endpoint": endpoint = v.isEmpty ? nil : v
            case "region": region = v.isEmpty ? nil : v
            case "pathstyle", "path-style", "path_style": pathStyle = try Self.bool(v, k)
            case "conditionalwrites", "conditional-writes": conditionalWrites = try Self.bool(v, k)
            default: throw MLStoreError(.usage, "unknown S3 remote setting '\(k)'", hint: "known: endpoint, region, path-style")
            }
        }
        if let e = endpoint {
            guard e.hasPrefix("http://") || e.hasPrefix("https://"), URLComponents(string: e)?.host?.isEmpty == false else {
                throw MLStoreError(.usage, "S3 endpoint '\(e)' is not an http(s):// URL", hint: "e.g. --endpoint http://127.0.0.1:8333")
            }
        }
    }

    static func bool(_ v: String, _ key: String) throws -> Bool {
        switch v.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw MLStoreError(.usage, "\(key) must be true or false, not '\(v)'")
        }
    }
}

/// Minimal XML reading for S3 responses (flat element values; entities decoded).
enum S3XML {
    /// The inner text of every `<tag>…</tag>`, in order.
    static func values(_ tag: String, in text: String) -> [String] {
        var out: [String] = []
        var rest = text[...]
        let open = "<\(tag)>", close = "</\(tag)>"
        while let a = rest.range(of: open), let b = rest[a.upperBound...].range(of: close) {
            out.append(decode(String(rest[a.upperBound..<b.lowerBound])))
            rest = rest[b.upperBound...]
        }
        return out
    }

    static func value(_ tag: String, in text: String) -> String? { values(tag, in: text).first }

    static func decode(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 {
                let entity = s[s.index(after: i)..<semi]
                var scalar: Unicode.Scalar?
                switch entity {
                case "amp": scalar = "&"
                case "lt": scalar = "<"
                case "gt": scalar = ">"
                case "quot": scalar = "\""
                case "apos": scalar = "'"
                default:
                    if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16) { scalar = Unicode.Scalar(v) }
                    else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()) { scalar = Unicode.Scalar(v) }
                }
                if let scalar {
                    out.unicodeScalars.append(scalar)
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

/// An S3 client for one bucket: SigV4-signed requests over ``HTTPClient``, S3 errors mapped to
/// ``MLStoreError`` with messages that name the bucket and endpoint.
public final class S3Client: @unchecked Sendable {
    public let bucket: String
    public let region: String
    public let pathStyle: Bool
    /// `scheme://host[:port]` (no trailing slash), for messages and URLs.
    public let endpoint: String
    let scheme: String
    let hostPort: String
    let basePath: String
    let http: HTTPClient
    private let environment: [String: String]
    private let credentialState = Mutex<AWSCredentials?>(nil)

    /// - Parameters:
    ///   - environment: where credentials, `AWS_REGION`/`AWS_DEFAULT_REGION` and `AWS_ENDPOINT_URL(_S3)` come from.
    public init(bucket: String, settings: S3Settings, environment: [String: String] = ProcessInfo.processInfo.environment,
                credentials: AWSCredentials? = nil) throws {
        func env(_ k: String) -> String? { environment[k].flatMap { $0.isEmpty ? nil : $0 } }
        self.bucket = bucket
        self.environment = environment
        region = settings.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? AWSCredentials.profileRegion(environment: environment) ?? "us-east-1"
        let endpointURL = settings.endpoint ?? env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL") ?? "https://s3.\(region).amazonaws.com"
        guard let c = URLComponents(string: endpointURL), let scheme = c.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = c.host, !host.isEmpty
        else {
            throw MLStoreError(.usage, "S3 endpoint '\(endpointURL)' is not an http(s):// URL", hint: "e.g. --endpoint http://127.0.0.1:8333")
        }
        self.scheme = scheme
        let defaultPort = scheme == "https" ? 443 : 80
        hostPort = c.port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        var base = c.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        basePath = base
        endpoint = "\(scheme)://\(hostPort)\(base)"
        let isIP = host.allSatisfy { $0.isNumber || $0 == "." } || host.contains(":") || host == "localhost"
        pathStyle = settings.pathStyle ?? (isIP || bucket.contains(".") || bucket.lowercased() != bucket)
        http = HTTPClient()
        if let credentials { credentialState.withLock { $0 = credentials } }
    }

    func credentials() throws -> AWSCredentials {
        if let c = credentialState.withLock({ $0 }) { return c }
        let c = try AWSCredentials.resolve(environment: environment)
        credentialState.withLock { $0 = c }
        return c
    }

    /// `s3://bucket/key`, for messages.
    public func describe(_ key: String?) -> String { "s3://\(bucket)" + (key.map { "/" + $0 } ?? "") }

    /// `MLSTORE_S3_TRACE=1` prints every request and its duration to stderr.
    static let trace = ProcessInfo.processInfo.environment["MLSTORE_S3_TRACE"] == "1"
    static let processStart = Date()

    /// Sends a signed request (with retries on 5xx and timeouts).
    /// - Parameters:
    ///   - key: the object key, or nil for the bucket.
    ///   - payloadHash: hex SHA-256 of the body; computed for in-memory bodies when nil.
    func send(_ method: String, key: String?, query: [(String, String)] = [], headers: [String: String] = [:],
              body: HTTPClient.Body = .none, payloadHash: String? = nil, sink: HTTPClient.Sink = .memory) throws -> HTTPClient.Response {
        let creds = try credentials()
        var path = basePath
        if pathStyle { path += "/" + SigV4.encode(bucket) }
        if let key { path += "/" + SigV4.encode(key, keepSlash: true) } else if !pathStyle { path += "/" }
        let host = pathStyle ? hostPort : "\(bucket).\(hostPort)"
        let q = SigV4.canonicalQuery(query)
        let url = "\(scheme)://\(host)\(path)" + (q.isEmpty ? "" : "?" + q)
        let hash: String
        switch body {
        case .none: hash = payloadHash ?? SigV4.emptyPayloadHash
        case .data(let d): hash = payloadHash ?? Hex.encode(d.withUnsafeBytes { SHA256.hash($0) })
        case .file: hash = payloadHash ?? SigV4.unsignedPayload
        }
        let signer = SigV4(credentials: creds, region: region)
        let what = "\(method) \(describe(key)) at \(endpoint)"
        let started = Date()
        defer {
            if Self.trace {
                let t = String(format: "%.3f", started.timeIntervalSince(Self.processStart))
                FileHandle.standardError.write(Data("s3: [\(t)] \(method) \(url) \(String(format: "%.3f", Date().timeIntervalSince(started))) s\n".utf8))
            }
        }
        return try http.send({
            let signed = signer.sign(method: method, host: host, path: path, query: query, headers: headers, payloadHash: hash, date: Int(Date().timeIntervalSince1970))
            var h = signed.headers
            h["host"] = nil  // URLSession sets Host from the URL (same value).
            return HTTPClient.Request(method: method, url: url, headers: h, body: body)
        }, sink: sink, what: what)
    }

    /// Maps a failed response to an error naming the bucket, key and endpoint.
    func error(_ r: HTTPClient.Response, key: String?, operation: String) -> MLStoreError {
        let text = String(decoding: r.body.prefix(4096), as: UTF8.self)
        let code = S3XML.value("Code", in: text) ?? ""
        let message = S3XML.value("Message", in: text) ?? ""
        let detail = [code, message].filter { !$0.isEmpty }.joined(separator: ": ")
        let target = describe(key)
        let source = (try? credentials().source) ?? "no credentials"
        switch r.status {
        case 403:
            var why = "access denied"
            if code == "SignatureDoesNotMatch" { why = "the secret key is wrong (signature does not match)" }
            if code == "InvalidAccessKeyId" { why = "the access key id is not known to the store" }
            if code == "RequestTimeTooSkewed" { why = "the system clock is too far off" }
            return MLStoreError(.failed, "\(operation) \(target) at \(endpoint): 403 Forbidden, \(why)\(detail.isEmpty ? "" : " (\(detail))")",
                                hint: "check the credentials (now from \(source); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or pick a profile in ~/.aws/credentials with AWS_PROFILE), that they may read and write bucket \(bucket), and the region (\(region); --region)")
        case 404 where code == "NoSuchBucket" || (code.isEmpty && key == nil):
            return MLStoreError(.notFound, "bucket \(bucket) does not exist at \(endpoint) (\(operation) \(target))",
                                hint: "check the remote URL and --endpoint, or create the bucket (e.g. `aws s3 mb s3://\(bucket) --endpoint-url \(endpoint)`)")
        case 404:
            return MLStoreError(.notFound, "\(target) does not exist at \(endpoint)\(detail.isEmpty ? "" : " (\(detail))")")
        case _ where r.status == 301 || r.status == 307 || (r.status == 400 && (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect")):
            let actual = r.header("x-amz-bucket-region") ?? S3XML.value("Region", in: text)
            if let actual, actual != region {
                return MLStoreError(.failed, "bucket \(bucket) is in region \(actual), not \(region) (\(endpoint))", hint: "add the remote with --region \(actual)")
            }
            return MLStoreError(.failed, "\(operation) \(target) at \(endpoint): HTTP \(r.status) \(detail)", hint: "check --region and --endpoint")
        default:
            return MLStoreError(.io, "\(operation) \(target) at \(endpoint) failed: HTTP \(r.status)\(detail.isEmpty ? "" : " \(detail)")",
                                hint: r.status >= 500 ? "the store had trouble; mlstore retried with backoff, try again later" : nil)
        }
    }

    static func isMissingKey(_ r: HTTPClient.Response) -> Bool {
        guard r.status == 404 else { return false }
        return !String(decoding: r.body.prefix(4096), as: UTF8.self).contains("NoSuchBucket")
    }

    static func etag(_ r: HTTPClient.Response) -> String? { r.header("etag") }

    // MARK: Operations

    /// GETs an object; nil if the key does not exist.
    func get(_ key: String) throws -> (data: Data, etag: String?)? {
        let r = try send("GET", key: key)
        if Self.isMissingKey(r) { return nil }
        guard r.status == 200 else { throw error(r, key: key, operation: "reading") }
        return (r.body, Self.etag(r))
    }

    /// GETs bytes `[offset, offset + length)` of an object into page-backed memory.
    func getRange(_ key: String, offset: Int64, length: Int) throws -> PageBuffer {
        let buffer = try PageBuffer(capacity: length)
        let r = try send("GET", key: key, headers: ["range": "bytes=\(offset)-\(offset + Int64(length) - 1)"], sink: .buffer(buffer))
        if r.status == 416 {
            throw MLStoreError(.corrupt, "\(describe(key)) is shorter than expected (bytes \(offset)+\(length) requested; truncated?)")
        }
        guard r.status == 206 else {
            if r.status == 200 {
                throw MLStoreError(.unsupported, "\(endpoint) ignored a Range request for \(describe(key))", hint: "mlstore needs ranged GETs (every S3-compatible store has them)")
            }
            throw error(r, key: key, operation: "reading")
        }
        guard buffer.count == length else {
            throw MLStoreError(.corrupt, "\(describe(key)) returned \(buffer.count) bytes for a \(length)-byte range (truncated?)")
        }
        return buffer
    }

    /// Streams an object into a file; false if the key does not exist.
    func download(_ key: String, to path: String) throws -> Bool {
        let r = try send("GET", key: key, sink: .file(path))
        if Self.isMissingKey(r) { return false }
        guard r.status == 200 else { throw error(r, key: key, operation: "reading") }
        return true
    }

    enum PutOutcome: Equatable {
        case stored(etag: String?)
        /// 412 (or 404 for `If-Match` on a missing key, as some servers answer).
        case preconditionFailed
    }

    enum Condition {
        case none
        /// `If-None-Match: *`: only if absent.
        case absent
        /// `If-Match: <etag>`: only if unchanged.
        case etag(String)
    }

    static func conditionHeaders(_ c: Condition) -> [String: String] {
        switch c {
        case .none: return [:]
        case .absent: return ["if-none-match": "*"]
        case .etag(let e): return ["if-match": e]
        }
    }

    /// PUTs an object from memory, with a SHA-256 checksum the server verifies.
    func put(_ key: String, _ data: Data, condition: Condition = .none) throws -> PutOutcome {
        let digest = data.withUnsafeBytes { SHA256.hash($0) }
        var headers = Self.conditionHeaders(condition)
        headers["x-amz-checksum-sha256"] = Base64.encode(digest)
        let r = try send("PUT", key: key, headers: headers, body: .data(data), payloadHash: Hex.encode(digest))
        return try putOutcome(r, key: key, condition: condition)
    }

    /// PUTs a whole file, streamed; `sha256` is its digest (signed and sent as the checksum).
    func put(_ key: String, file: String, sha256: [UInt8], condition: Condition = .none) throws -> PutOutcome {
        var headers = Self.conditionHeaders(condition)
        headers["x-amz-checksum-sha256"] = Base64.encode(sha256)
        let r = try send("PUT", key: key, headers: headers, body: .file(file), payloadHash: Hex.encode(sha256))
        return try putOutcome(r, key: key, condition: condition)
    }

    private func putOutcome(_ r: HTTPClient.Response, key: String, condition: Condition) throws -> PutOutcome {
        if (200..<300).contains(r.status) { return .stored(etag: Self.etag(r)) }
        if r.status == 412 { return .preconditionFailed }
        if case .etag = condition, Self.isMissingKey(r) { return .preconditionFailed }
        throw error(r, key: key, operation: "writing")
    }

    /// DELETEs an object (optionally only if its ETag matches). Deleting a missing key succeeds.
    func delete(_ key: String, condition: Condition = .none) throws -> PutOutcome {
        let r = try send("DELETE", key: key, headers: Self.conditionHeaders(condition))
        if (200..<300).contains(r.status) { return .stored(etag: nil) }
        if r.status == 412 { return .preconditionFailed }
        if Self.isMissingKey(r) {
            if case .etag = condition { return .preconditionFailed }
            return .stored(etag: nil)
        }
        throw error(r, key: key, operation: "deleting")
    }

    struct Listed: Sendable {
        var key: String
        var size: Int64
        var etag: String?
    }

    /// Every object under a prefix (ListObjectsV2, all pages).
    func list(prefix: String, maxKeys: Int? = nil) throws -> [Listed] {
        var out: [Listed] = []
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix)]
            if let maxKeys { query.append(("max-keys", String(maxKeys))) }
            if let token { query.append(("continuation-token", token)) }
            let r = try send("GET", key: nil, query: query)
            guard r.status == 200 else { throw error(r, key: prefix.isEmpty ? nil : prefix + "…", operation: "listing") }
            let text = String(decoding: r.body, as: UTF8.self)
            for block in Self.blocks("Contents", in: text) {
                guard let key = S3XML.value("Key", in: block) else { continue }
                out.append(Listed(key: key, size: Int64(S3XML.value("Size", in: block) ?? "") ?? -1, etag: S3XML.value("ETag", in: block)))
            }
            token = S3XML.value("IsTruncated", in: text) == "true" ? S3XML.value("NextContinuationToken", in: text) : nil
        } while token != nil && (maxKeys.map { out.count < $0 } ?? true)
        return out
    }

    /// The raw inner text of each `<tag>…</tag>` block.
    static func blocks(_ tag: String, in text: String) -> [String] {
        var out: [String] = []
        var rest = text[...]
        while let a = rest.range(of: "<\(tag)>"), let b = rest[a.upperBound...].range(of: "</\(tag)>") {
            out.append(String(rest[a.upperBound..<b.lowerBound]))
            rest = rest[b.upperBound...]
        }
        return out
    }

    // MARK: Multipart upload

    func createMultipartUpload(_ key: String) throws -> String {
        let r = try send("POST", key: key, query: [("uploads", "")], headers: ["x-amz-checksum-algorithm": "SHA256"])
        guard r.status == 200, let id = S3XML.value("UploadId", in: String(decoding: r.body, as: UTF8.self)) else {
            throw error(r, key: key, operation: "starting a multipart upload of")
        }
        return id
    }

    struct Part: Sendable {
        var number: Int
        var etag: String
        var checksum: String
    }

    /// Uploads one part from a file whose SHA-256 is `sha256` (signed, and sent as the part checksum).
    func uploadPart(_ key: String, uploadID: String, number: Int, file: String, sha256 digest: [UInt8]) throws -> Part {
        let checksum = Base64.encode(digest)
        let r = try send("PUT", key: key, query: [("partNumber", String(number)), ("uploadId", uploadID)],
                         headers: ["x-amz-checksum-sha256": checksum], body: .file(file), payloadHash: Hex.encode(digest))
        guard r.status == 200, let etag = Self.etag(r) else { throw error(r, key: key, operation: "uploading part \(number) of") }
        return Part(number: number, etag: etag, checksum: checksum)
    }

    /// Completes a multipart upload (optionally only if the key is absent).
    func completeMultipartUpload(_ key: String, uploadID: String, parts: [Part], condition: Condition) throws -> PutOutcome {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for p in parts.sorted(by: { $0.number < $1.number }) {
            xml += "<Part><PartNumber>\(p.number)</PartNumber><ETag>\(S3XML.escape(p.etag))</ETag><ChecksumSHA256>\(p.checksum)</ChecksumSHA256></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let r = try send("POST", key: key, query: [("uploadId", uploadID)], headers: Self.conditionHeaders(condition), body: .data(Data(xml.utf8)))
        if r.status == 412 { return .preconditionFailed }
        // S3 may report a failure inside a 200 response.
        let text = String(decoding: r.body.prefix(4096), as: UTF8.self)
        if r.status == 200, text.contains("<Error>") {
            if text.contains("PreconditionFailed") { return .preconditionFailed }
            throw error(HTTPClient.Response(status: 500, headers: r.headers, body: r.body), key: key, operation: "completing the upload of")
        }
        guard r.status == 200 else { throw error(r, key: key, operation: "completing the upload of") }
        return .stored(etag: Self.etag(r))
    }

    func abortMultipartUpload(_ key: String, uploadID: String) {
        _ = try? send("DELETE", key: key, query: [("uploadId", uploadID)])
    }

    /// Unfinished multipart uploads under a prefix: (key, upload id, started).
    func listMultipartUploads(prefix: String) throws -> [(key: String, uploadID: String, initiated: String)] {
        let r = try send("GET", key: nil, query: [("uploads", ""), ("prefix", prefix)])
        guard r.status == 200 else { throw error(r, key: nil, operation: "listing multipart uploads in") }
        let text = String(decoding: r.body, as: UTF8.self)
        return Self.blocks("Upload", in: text).compactMap { b in
            guard let k = S3XML.value("Key", in: b), let id = S3XML.value("UploadId", in: b) else { return nil }
            return (k, id, S3XML.value("Initiated", in: b) ?? "")
        }
    }
}
