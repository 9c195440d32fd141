import MLStoreBasics

#if canImport(Glibc)
    import Glibc
#endif

/// AWS credentials: an access key, its secret, and (for temporary credentials) a session token.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// Where they came from, for messages ("environment", "profile dev in ~/.aws/credentials").
    public var source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String = "given") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }

    /// Credentials from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
    /// else from the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`),
    /// profile `AWS_PROFILE` (or `default`). Empty variables count as unset. Never stored by mlstore.
    /// - Throws: `.failed` naming both places when neither has credentials.
    public static func resolve(environment env: [String: String]) throws -> AWSCredentials {
        func value(_ k: String) -> String? { env[k].flatMap { $0.isEmpty ? nil : $0 } }
        if let key = value("AWS_ACCESS_KEY_ID"), let secret = value("AWS_SECRET_ACCESS_KEY") {
            return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"), source: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        }
        let profile = value("AWS_PROFILE") ?? "default"
        let file = value("AWS_SHARED_CREDENTIALS_FILE") ?? ((value("HOME") ?? "") + "/.aws/credentials")
        if let bytes = try? Sys.readFile(file, limit: 1 << 20) {
            let ini = parseINI(String(decoding: bytes, as: UTF8.self))
            if let section = ini[profile], let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] {
                return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: section["aws_session_token"], source: "profile \(profile) in \(file)")
            }
            if value("AWS_PROFILE") != nil {
                throw MLStoreError(.failed, "AWS profile \(profile) has no aws_access_key_id/aws_secret_access_key in \(file)",
                                   hint: "add them to that profile, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
            }
        }
        throw MLStoreError(.failed, "no AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set and \(file) has no profile \(profile)",
                           hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials), or a profile in ~/.aws/credentials chosen with AWS_PROFILE; mlstore never stores credentials in its config")
    }

    /// The region of a profile in `~/.aws/config` (`[default]` or `[profile NAME]`), if any.
    static func profileRegion(environment env: [String: String]) -> String? {
        func value(_ k: String) -> String? { env[k].flatMap { $0.isEmpty ? nil : $0 } }
        let profile = value("AWS_PROFILE") ?? "default"
        let file = value("AWS_CONFIG_FILE") ?? ((value("HOME") ?? "") + "/.aws/config")
        guard let bytes = try? Sys.readFile(file, limit: 1 << 20) else { return nil }
        let ini = parseINI(String(decoding: bytes, as: UTF8.self))
        return (ini[profile == "default" ? "default" : "profile " + profile] ?? ini[profile])?["region"]
    }

    /// `[section]` → key → value (keys lower-cased; `#`/`;` comments).
    static func parseINI(_ text: String) -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        var section = ""
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = line.dropFirst().dropLast().trimmingCharacters(in: " \t")
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { continue }
            let k = line[..<eq].trimmingCharacters(in: " \t").lowercased()
            let v = line[line.index(after: eq)...].trimmingCharacters(in: " \t")
            out[section, default: [:]][k] = v
        }
        return out
    }
}

/// AWS Signature Version 4 for S3 (header-based): canonical request → string to sign → signature with a
/// key derived by HMAC-SHA256 from the secret, date, region and service.
///
/// ```swift
/// let signer = SigV4(credentials: creds, region: "us-east-1")
/// let headers = signer.sign(method: "GET", host: "bucket.s3.amazonaws.com", path: "/key", query: [],
///                           headers: ["range": "bytes=0-9"], payloadHash: SigV4.emptyPayloadHash, date: now)
/// ```
public struct SigV4: Sendable {
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"

    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Percent-encodes everything but `A-Z a-z 0-9 - . _ ~` (and `/` when `keepSlash`), as SigV4 requires.
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                let hex: [Character] = Array("0123456789ABCDEF")
                out.append("%")
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            }
        }
        return out
    }

    /// The canonical query string: parameters encoded, sorted by name then value, joined with `&`. Send the
    /// request with exactly this string so what is signed is what the server sees.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        query.map { (encode($0.0), encode($0.1)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// `yyyyMMdd'T'HHmmss'Z'` for a Unix time.
    public static func amzDate(_ time: Int) -> String {
        var t = time_t(time)
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int32, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, w - s.count)) + s
        }
        return pad(tm.tm_year + 1900, 4) + pad(tm.tm_mon + 1, 2) + pad(tm.tm_mday, 2) + "T" + pad(tm.tm_hour, 2) + pad(tm.tm_min, 2) + pad(tm.tm_sec, 2) + "Z"
    }

    /// The pieces of one signature (exposed for tests against published vectors).
    public struct Signed: Sendable {
        public var canonicalRequest: String
        public var stringToSign: String
        public var signature: String
        public var authorization: String
        /// Every header to send (the given ones plus `x-amz-date`, `x-amz-content-sha256`, the session token
        /// and `authorization`), names lower-case.
        public var headers: [String: String]
    }

    /// Derives `kSigning` = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    public static func signingKey(secret: String, date: String, region: String, service: String) -> [UInt8] {
        let kDate = HMACSHA256.mac(key: Array(("AWS4" + secret).utf8), message: Array(date.utf8))
        let kRegion = HMACSHA256.mac(key: kDate, message: Array(region.utf8))
        let kService = HMACSHA256.mac(key: kRegion, message: Array(service.utf8))
        return HMACSHA256.mac(key: kService, message: Array("aws4_request".utf8))
    }

    /// Signs a request.
    /// - Parameters:
    ///   - host: the `Host` header value (with `:port` when not the scheme's default).
    ///   - path: the URI path, already encoded (see ``encode(_:keepSlash:)``).
    ///   - query: parameters (unencoded); sent as ``canonicalQuery(_:)``.
    ///   - headers: headers to sign and send (names any case); `host` is added.
    ///   - payloadHash: hex SHA-256 of the body, or ``unsignedPayload``.
    ///   - date: Unix time of the request.
    public func sign(method: String, host: String, path: String, query: [(String, String)], headers: [String: String],
                     payloadHash: String, date: Int) -> Signed {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        var all: [String: String] = [:]
        for (k, v) in headers { all[k.lowercased()] = v }
        all["host"] = host
        all["x-amz-date"] = amzDate
        all["x-amz-content-sha256"] = payloadHash
        if let token = credentials.sessionToken { all["x-amz-security-token"] = token }
        let names = all.keys.sorted()
        let canonicalHeaders = names.map { n in
            let v = all[n]!.trimmingCharacters(in: " \t").split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            return n + ":" + v + "\n"
        }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [method, path.isEmpty ? "/" : path, Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash]
            .joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Hex.encode(SHA256.hash(Array(canonicalRequest.utf8)))].joined(separator: "\n")
        let key = Self.signingKey(secret: credentials.secretAccessKey, date: day, region: region, service: service)
        let signature = Hex.encode(HMACSHA256.mac(key: key, message: Array(stringToSign.utf8)))
        let authorization = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        all["authorization"] = authorization
        return Signed(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature, authorization: authorization, headers: all)
    }
}

/// Base64 (RFC 4648, with padding), for `x-amz-checksum-sha256`.
enum Base64 {
    private static let table: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 2 < bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [table[Int(n >> 18)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], table[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [table[Int(n >> 18)], table[Int(n >> 12 & 63)], UInt8(ascii: "="), UInt8(ascii: "=")]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [table[Int(n >> 18)], table[Int(n >> 12 & 63)], table[Int(n >> 6 & 63)], UInt8(ascii: "=")]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
