import Foundation

/// Command-line options (parsed by hand: this target depends only on MLStoreCore and MLStoreBasics).
struct Options {
    var quick = false
    var runs: Int?
    var out: String?
    var work: String?
    var install = false
    var keep = false
    var only: String?
    var tools: String?
    var skipExternal = false
    var skipMicro = false
    var mlstore: String?
    var build = true

    static let usage = """
        Usage: swift run -c release mlstore-bench [options]

        Benchmarks mlstore: in-process micro-benchmarks of its building blocks (SHA-256, FastCDC, zlib,
        the entropy probe, the file importer, fsync'd disk writes, 64 vs 256 KiB chunk dedup), then
        bench/external.sh, which times openssl, cp, git, git-lfs, DVC and mlstore on the same seeded
        workloads in the same run. Prints one table (median seconds, peak RSS, stored bytes, ratios
        mlstore/tool) and writes a JSON report plus the table as markdown.

          --quick            small workloads (whole run well under a minute; what CI runs)
          --runs N           timed runs per end-to-end measurement (default 3, quick 1); the median
                             is reported. Micro-benchmarks use max(N, 3) (quick) or max(N, 5) runs.
          --out FILE         JSON report (default: bench/out/results-<date>.json; the table goes
                             next to it as .md)
          --work DIR         scratch directory for external.sh (default: $TMPDIR or /tmp,
                             /mlstore-external-bench; DVC's venv lives there)
          --install          let external.sh apt-get install git-lfs/hyperfine/time and pip install
                             DVC into WORK/venv (needed once for DVC rows)
          --keep             keep external.sh's generated data and repos (reused next time)
          --only LIST        external workloads: model,model-mod,files,csv
          --tools LIST       external tools: openssl,cp,git,lfs,dvc,mlstore
          --mlstore PATH     mlstore binary to time (default: the one next to this executable,
                             rebuilt first with `swift build -c release --product mlstore`)
          --no-build         do not run `swift build` for the mlstore binary
          --skip-external    micro-benchmarks only
          --skip-micro       external tools only
          --tracking [N]     instead: the tracking benchmark (N commits; see TrackingBench.swift)
          -h, --help         this help
        """

    static func parse(_ args: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value(_ name: String) throws -> String {
            if let eq = args[i].firstIndex(of: "=") { return String(args[i][args[i].index(after: eq)...]) }
            i += 1
            guard i < args.count, !args[i].isEmpty else { throw UsageError("\(name) needs a value") }
            return args[i]
        }
        while i < args.count {
            let a = args[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            switch name {
            case "--quick": o.quick = true
            case "--install": o.install = true
            case "--keep": o.keep = true
            case "--skip-external": o.skipExternal = true
            case "--skip-micro": o.skipMicro = true
            case "--no-build": o.build = false
            case "--runs":
                let v = try value(name)
                guard let n = Int(v), n > 0 else { throw UsageError("--runs must be a positive integer, got '\(v)'") }
                o.runs = n
            case "--out": o.out = absolutePath(try value(name))
            case "--work": o.work = absolutePath(try value(name))
            case "--only": o.only = try value(name)
            case "--tools": o.tools = try value(name)
            case "--mlstore": o.mlstore = absolutePath(try value(name))
            case "-h", "--help":
                print(usage)
                exit(0)
            default: throw UsageError("unknown argument '\(a)'")
            }
            i += 1
        }
        return o
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
