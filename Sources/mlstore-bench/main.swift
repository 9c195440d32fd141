// mlstore-bench: micro-benchmarks of mlstore's building blocks plus bench/external.sh (openssl, cp, git,
// git-lfs, DVC and mlstore on the same seeded workloads), combined into one table and one JSON report.
//
//   swift run -c release mlstore-bench --quick     # CI: well under a minute
//   swift run -c release mlstore-bench             # full: 1 GiB model, 20,000 files, 256 MiB CSV (~25 min)
//
// See spec/performance.md for the method and the reference results.
import Foundation
import MLStoreBasics
import MLStoreCore

func benchMain() -> Int32 {
    let options: Options
    do {
        options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    } catch {
        stderrPrint("mlstore-bench: error: \(error)\n\n" + Options.usage)
        return 2
    }
    let started = now()
    let date = Date()
    let mode = options.quick ? "quick" : "full"
    let runs = options.runs ?? (options.quick ? 1 : 3)
    let root = ExternalBench.findPackageRoot()
    let machine = Machine.current()

    let work = options.work ?? ((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/mlstore-external-bench")
    do {
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    } catch {
        stderrPrint("mlstore-bench: error: cannot create \(work): \(error)")
        return 1
    }

    var micro: [MicroResult] = []
    var dedup: [DedupResult] = []
    var failed = false
    if !options.skipMicro {
        let microRuns = max(runs, options.quick ? 3 : 5)
        do {
            (micro, dedup) = try MicroBench(quick: options.quick, runs: microRuns, scratchDirectory: work).run()
        } catch {
            stderrPrint("mlstore-bench: micro-benchmarks failed: \(error)")
            failed = true
        }
    }

    var external: [String: Any]?
    if !options.skipExternal {
        let ext = ExternalBench(options: options, packageRoot: root)
        let bin = ext.mlstoreBinary()
        if bin == nil {
            stderrPrint("mlstore-bench: warning: no mlstore binary (build it: swift build -c release --product mlstore); timing the other tools only")
        }
        do {
            external = try ext.run(mlstore: bin, reportPath: work + "/external.json")
        } catch {
            stderrPrint("mlstore-bench: error: \(error)")
            failed = true
        }
    }

    let report = Report(mode: mode, runs: runs, machine: machine, micro: micro, dedup: dedup, external: external, date: date)
    print(report.text)

    let stamp: String = {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyy-MM-dd-HHmmss"
        return f.string(from: date)
    }()
    let out = options.out ?? ((root ?? FileManager.default.currentDirectoryPath) + "/bench/out/results-\(mode)-\(stamp).json")
    do {
        let md = try report.write(jsonPath: out)
        print("JSON: \(out)\ntable: \(md)\ntotal \(fmt(now() - started, 1)) s")
    } catch {
        stderrPrint("mlstore-bench: error: cannot write \(out): \(error)")
        failed = true
    }
    return failed ? 1 : 0
}

exit(trackingBenchMain(Array(CommandLine.arguments.dropFirst())) ?? benchMain())
