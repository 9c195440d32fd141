import MLStoreBasics
import MLStoreTestSupport
import Testing

@testable import MLStoreCore

/// SigV4 against the published AWS S3 examples ("Signature Calculations for the Authorization Header:
/// Transferring Payload in a Single Chunk") and against botocore for S3 keys and queries with reserved
/// characters, session tokens and conditional headers.
@Suite("SigV4 signing") struct SigV4Tests {
    static let awsExample = AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    /// 20130524T000000Z
    static let exampleDate = 1_369_353_600

    @Test("the signing key derivation example (iam, 20120215)")
    func signingKey() {
        let key = SigV4.signingKey(secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date: "20120215", region: "us-east-1", service: "iam")
        #expect(Hex.encode(key) == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d")
    }

    @Test("GET object with a range (AWS example 1)")
    func getObject() {
        let s = SigV4(credentials: Self.awsExample, region: "us-east-1")
        let signed = s.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", query: [],
                            headers: ["Range": "bytes=0-9"], payloadHash: SigV4.emptyPayloadHash, date: Self.exampleDate)
        #expect(signed.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test("PUT object with a reserved character in the key (AWS example 2)")
    func putObject() {
        let s = SigV4(credentials: Self.awsExample, region: "us-east-1")
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = Hex.encode(SHA256.hash(body))
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let path = "/" + SigV4.encode("test$file.text", keepSlash: true)
        #expect(path == "/test%24file.text")
        let signed = s.sign(method: "PUT", host: "examplebucket.s3.amazonaws.com", path: path, query: [],
                            headers: ["Date": "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY"],
                            payloadHash: hash, date: Self.exampleDate)
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test("GET bucket lifecycle: a query parameter without a value (AWS example 3)")
    func lifecycle() {
        let s = SigV4(credentials: Self.awsExample, region: "us-east-1")
        let signed = s.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: [("lifecycle", "")],
                            headers: [:], payloadHash: SigV4.emptyPayloadHash, date: Self.exampleDate)
        #expect(signed.canonicalRequest.split(separator: "\n", omittingEmptySubsequences: false)[2] == "lifecycle=")
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test("list objects: query parameters sorted (AWS example 4)")
    func listObjects() {
        let s = SigV4(credentials: Self.awsExample, region: "us-east-1")
        let signed = s.sign(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: [("prefix", "J"), ("max-keys", "2")],
                            headers: [:], payloadHash: SigV4.emptyPayloadHash, date: Self.exampleDate)
        #expect(SigV4.canonicalQuery([("prefix", "J"), ("max-keys", "2")]) == "max-keys=2&prefix=J")
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    /// Vectors computed with botocore's S3SigV4Auth (path-style, a port in the host, a session token).
    static let botocore = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret/KEY+x", sessionToken: "tok en")
    static let botocoreDate = 1_795_853_189  // 20261128T080629Z

    @Test("ListObjectsV2 with '/', space, '+' and '=' in the query (botocore)")
    func listV2() {
        let s = SigV4(credentials: Self.botocore, region: "eu-west-1")
        let query = [("list-type", "2"), ("prefix", "team/a b/ref"), ("continuation-token", "x+y=")]
        #expect(SigV4.canonicalQuery(query) == "continuation-token=x%2By%3D&list-type=2&prefix=team%2Fa%20b%2Fref")
        let signed = s.sign(method: "GET", host: "127.0.0.1:8333", path: "/my-bucket", query: query, headers: [:],
                            payloadHash: SigV4.emptyPayloadHash, date: Self.botocoreDate)
        #expect(signed.headers["x-amz-security-token"] == "tok en")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=9e23b2104f29bffbea84ce75ec229c36e388b80c40a1bca69d21e2984dfd188e")
    }

    @Test("conditional PUT with a checksum header and an encoded key (botocore)")
    func conditionalPut() {
        let s = SigV4(credentials: Self.botocore, region: "eu-west-1")
        let path = "/my-bucket/" + SigV4.encode("team/a b/refs/heads/m@in", keepSlash: true)
        #expect(path == "/my-bucket/team/a%20b/refs/heads/m%40in")
        let hash = Hex.encode(SHA256.hash(Array("hello".utf8)))
        let signed = s.sign(method: "PUT", host: "127.0.0.1:8333", path: path, query: [],
                            headers: ["If-Match": "\"abc\"", "x-amz-checksum-sha256": "AAAA"], payloadHash: hash, date: Self.botocoreDate)
        #expect(signed.signature == "c91d808fedbbe021204ae68b27406f25af0ae0f38d9e5eaf3e448b0451e1846a")
    }

    @Test("base64 for checksums")
    func base64() {
        #expect(Base64.encode([]) == "")
        #expect(Base64.encode(Array("f".utf8)) == "Zg==")
        #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.encode(SHA256.hash(Array("hello".utf8))) == "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
    }

    @Test("credentials: environment first, then the AWS_PROFILE profile; empty variables are unset")
    func credentials() throws {
        let dir = TempDir("creds")
        try Sys.writeFileAtomically(dir.file("credentials"), Array("""
            [default]
            aws_access_key_id = DEF
            aws_secret_access_key = defsecret

            [dev]
            aws_access_key_id=DEV
            aws_secret_access_key=devsecret
            aws_session_token=devtoken
            """.utf8))
        let file = dir.file("credentials")
        let env = try AWSCredentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "ENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SHARED_CREDENTIALS_FILE": file])
        #expect(env.accessKeyID == "ENV")
        let def = try AWSCredentials.resolve(environment: ["AWS_ACCESS_KEY_ID": "", "AWS_SHARED_CREDENTIALS_FILE": file])
        #expect(def.accessKeyID == "DEF" && def.secretAccessKey == "defsecret" && def.sessionToken == nil)
        let dev = try AWSCredentials.resolve(environment: ["AWS_PROFILE": "dev", "AWS_SHARED_CREDENTIALS_FILE": file])
        #expect(dev.accessKeyID == "DEV" && dev.sessionToken == "devtoken" && dev.source.contains("profile dev"))
        #expect(throws: MLStoreError(.failed, "")) { try AWSCredentials.resolve(environment: ["AWS_PROFILE": "nope", "AWS_SHARED_CREDENTIALS_FILE": file]) }
        #expect(throws: MLStoreError(.failed, "")) { try AWSCredentials.resolve(environment: ["HOME": dir.file("none")]) }
    }

    @Test("s3:// URLs: bucket, prefix, settings in the query; credentials refused")
    func urls() throws {
        let a = try S3Remote.parse("s3://bucket/team/models/")
        #expect(a.bucket == "bucket" && a.prefix == "team/models" && a.query.isEmpty)
        let b = try S3Remote.parse("s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A8333&pathstyle=true")
        #expect(b.prefix == "" && b.query["endpoint"] == "http://127.0.0.1:8333" && b.query["pathstyle"] == "true")
        #expect(throws: MLStoreError(.usage, "")) { try S3Remote.parse("s3://key:secret@bucket/x") }
        #expect(throws: MLStoreError(.usage, "")) { try S3Remote.parse("s3:///x") }
        #expect(throws: MLStoreError(.usage, "")) { try S3Remote.parse("s3://b/../x") }
        let r = try S3Remote(url: "s3://b/p?endpoint=http://127.0.0.1:9000", environment: [:])
        #expect(r.client.pathStyle && r.client.endpoint == "http://127.0.0.1:9000" && r.client.region == "us-east-1")
        let aws = try S3Remote(url: "s3://b/p", settings: S3Settings(region: "eu-west-1"), environment: [:])
        #expect(!aws.client.pathStyle && aws.client.endpoint == "https://s3.eu-west-1.amazonaws.com")
        let env = try S3Remote(url: "s3://b", environment: ["AWS_ENDPOINT_URL": "http://localhost:4566", "AWS_REGION": "ap-south-1"])
        #expect(env.client.pathStyle && env.client.endpoint == "http://localhost:4566" && env.client.region == "ap-south-1")
        #expect(throws: MLStoreError(.usage, "")) { try S3Remote(url: "s3://b?endpoint=ftp://x", environment: [:]) }
    }

    @Test("S3 XML: values, entities")
    func xml() {
        let text = "<ListBucketResult><Contents><Key>a&amp;b</Key><ETag>&quot;e1&quot;</ETag><Size>3</Size></Contents><Contents><Key>c</Key></Contents><IsTruncated>false</IsTruncated></ListBucketResult>"
        #expect(S3XML.values("Key", in: text) == ["a&b", "c"])
        #expect(S3XML.value("ETag", in: text) == "\"e1\"")
        #expect(S3Client.blocks("Contents", in: text).count == 2)
        #expect(S3XML.decode("&#65;&#x42;&lt;") == "AB<")
    }
}
