// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "mlstore",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mlstore", targets: ["mlstore"]),
        .library(name: "MLStoreCore", targets: ["MLStoreCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // Only MLStoreServer (`mlstore serve`) links the HTTP server stack.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C libraries from the system; only MLStoreBasics imports them.
        .systemLibrary(
            name: "CMLStoreZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CMLStoreCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .systemLibrary(name: "CMLStoreSys"),
        .systemLibrary(
            name: "CMLStoreSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Basics: errors, hashing, compression, the syscall layer.
        .target(name: "MLStoreBasics", dependencies: ["CMLStoreZlib", "CMLStoreCrypto", "CMLStoreSys", "CMLStoreSQLite"]),
        // Core: objects, chunking, packs, trees, the workspace index, checkout.
        .target(name: "MLStoreCore", dependencies: ["MLStoreBasics", .product(name: "Yams", package: "Yams")]),
        // Server: the HTTP remote and the web UI (`mlstore serve`).
        .target(
            name: "MLStoreServer",
            dependencies: [
                "MLStoreCore", "MLStoreBasics",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]),
        // CLI: argument parsing and rendering over the libraries.
        .target(
            name: "MLStoreCLI",
            dependencies: [
                "MLStoreCore", "MLStoreBasics", "MLStoreServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "mlstore", dependencies: ["MLStoreCLI"]),
        .executableTarget(name: "mlstore-bench", dependencies: ["MLStoreCore", "MLStoreBasics"]),

        .target(name: "MLStoreTestSupport", dependencies: ["MLStoreCore", "MLStoreBasics"]),
        .testTarget(name: "MLStoreBasicsTests", dependencies: ["MLStoreBasics", "MLStoreTestSupport"]),
        .testTarget(
            name: "MLStoreCoreTests", dependencies: ["MLStoreCore", "MLStoreBasics", "MLStoreTestSupport"]),
        .testTarget(
            name: "MLStoreEndToEndTests",
            dependencies: ["mlstore", "MLStoreCore", "MLStoreBasics", "MLStoreTestSupport"]),
        .testTarget(
            name: "MLStoreServerTests",
            dependencies: ["MLStoreServer", "MLStoreCore", "MLStoreBasics", "MLStoreTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
