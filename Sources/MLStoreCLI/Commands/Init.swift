import ArgumentParser
import MLStoreBasics
import MLStoreCore

extension MLStoreCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "init",
            abstract: "Create a store in a directory (default: the current one).",
            discussion: "Creates <dir>/.mlstore. With --bare, <dir> itself becomes a store without a workspace (for remotes). Running it again is harmless.")

        @Argument(help: "Directory to initialize.")
        var directory: String = "."

        @Flag(help: "Create a bare store (no workspace), e.g. a shared remote.")
        var bare = false

        @Flag(help: "Print machine-readable JSON.")
        var json = false

        func run() throws {
            let existed = (try? Repository.open(at: directory)) != nil
            let repo = try Repository.initialize(at: directory, bare: bare)
            if json {
                try Terminal.printJSON(["store": repo.storeDirectory, "workspace": repo.workspaceRoot ?? "", "reinitialized": existed ? "true" : "false"])
            } else {
                print("\(existed ? "Reinitialized existing" : "Initialized empty") \(bare ? "bare " : "")mlstore store in \(repo.storeDirectory)")
            }
        }
    }
}
