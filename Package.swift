// swift-tools-version:6.1
import PackageDescription

/// Settings every target of ours shares (as Hummingbird does): explicit `any`, and imports that say what a file uses.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "crm-ingest",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "crm-ingest", targets: ["crm-ingest"]),
        .executable(name: "crm-ingest-bench", targets: ["crm-ingest-bench"]),
        // The libraries the fuzz targets (Fuzz/, a package of its own) link against.
        .library(name: "CRMCore", targets: ["CRMCore"]),
        .library(name: "CRMConfig", targets: ["CRMConfig"]),
        .library(name: "SNSSupport", targets: ["SNSSupport"]),
        .library(name: "AWSSigV4", targets: ["AWSSigV4"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // C libraries at the edge: one Swift target each will wrap them.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        // glibc's <malloc.h> (mallopt), for the executable's start-up.
        .systemLibrary(name: "CMalloc"),
        // SQLite's process-wide settings (sqlite3_config is variadic): the SQLite store applies them before its
        // first connection. The library and its header are GRDB's system SQLite (libsqlite3-dev).
        .systemLibrary(name: "CSQLiteTuning", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // librabbitmq wrapped: connections, channels, consuming, publishing with confirms. Blocking; one thread each.
        .target(name: "AMQPClient", dependencies: ["CRabbitMQ"], swiftSettings: swiftSettings),

        // Proca's encrypted personal data: NaCl crypto_box through libsodium.
        .target(name: "ProcaCrypto", dependencies: ["CSodium", "CRMCore"], swiftSettings: swiftSettings),

        // libcurl wrapped: a blocking HTTP client with keep-alive, for the SQS poller's own thread.
        .target(name: "CurlHTTP", dependencies: ["CCurl"], swiftSettings: swiftSettings),

        // The SQS API (AWS JSON 1.0, SigV4) over CurlHTTP. Blocking; one client per poller thread.
        .target(name: "SQSClient", dependencies: ["CurlHTTP", "AWSSigV4", "CRMCore", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),

        // The domain core: events, decoding, mapping, actions, the store protocol. No C, no NIO.
        .target(
            name: "CRMCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // AWS Signature Version 4: canonical requests, Authorization headers, presigned URLs. Pure; no I/O, no clock.
        .target(
            name: "AWSSigV4",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // The YAML configuration file: parsing, environment expansion, validation with YAML paths.
        .target(
            name: "CRMConfig",
            dependencies: ["CRMCore", "AMQPClient", "AWSSigV4", "SNSSupport", "ProcaCrypto", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings
        ),
        // The embedded SQLite store.
        .target(
            name: "CRMStoreSQLite",
            dependencies: [
                "CRMCore",
                "CRMSourceSupport",
                "CSQLiteTuning",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL store (postgres-nio): the same CRMStore contract as SQLite, for several daemons on one database.
        .target(
            name: "CRMStorePostgres",
            dependencies: [
                "CRMCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // What every source shares: lanes by key, the lane work queue, stop flags.
        .target(
            name: "CRMSourceSupport",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: swiftSettings
        ),
        // The RabbitMQ source: consumer thread, lanes, acks after commit, dead-lettering, reconnects.
        .target(
            name: "CRMSourceRabbitMQ",
            dependencies: [
                "CRMCore", "CRMConfig", "AMQPClient", "CRMSourceSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // SNS support for the SQS source: unwrapping SNS notifications, evaluating SNS filter policies. Pure; no I/O.
        .target(name: "SNSSupport", dependencies: ["CRMCore"], swiftSettings: swiftSettings),
        // The SQS source: poller threads, a settler thread (deletes, visibility), SNS unwrapping, filter policies.
        .target(
            name: "CRMSourceSQS",
            dependencies: [
                "CRMCore", "CRMConfig", "SQSClient", "SNSSupport", "AWSSigV4", "CRMSourceSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // HTTP: incoming integrations (JWT or open, deduplication) and the operational endpoints, on Hummingbird 2.
        .target(
            name: "CRMSourceHTTP",
            dependencies: [
                "CRMCore", "CRMConfig", "CRMSourceSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The application: commands, the daemon's services, the ingest runner.
        .target(
            name: "CRMIngest",
            dependencies: [
                "CRMCore", "CRMConfig", "CRMStoreSQLite", "CRMStorePostgres", "CRMSourceRabbitMQ", "CRMSourceSQS", "CRMSourceHTTP", "CRMSourceSupport",
                "CurlHTTP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("Defaults/crm-ingest.yaml")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "crm-ingest",
            dependencies: ["CRMIngest", .target(name: "CMalloc", condition: .when(platforms: [.linux]))],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "crm-ingest-bench",
            dependencies: [
                "AMQPClient", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "Sources/CRMBench",
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "CRMCoreTests", dependencies: ["CRMCore", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: swiftSettings),
        .testTarget(name: "CRMConfigTests", dependencies: ["CRMConfig", "CRMCore", "AMQPClient", "AWSSigV4", "SNSSupport"], swiftSettings: swiftSettings),
        // The store contract suite runs against both stores (Contract/), beside each store's own tests.
        .testTarget(
            name: "CRMStoreTests",
            dependencies: [
                "CRMStoreSQLite", "CRMStorePostgres", "CRMCore", "CRMTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CRMIngestTests",
            dependencies: [
                "CRMIngest", "CRMCore", "CRMConfig", "CRMStoreSQLite", "CRMTestSupport", "AMQPClient", "CRMSourceSQS", "SQSClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CRMSourceRabbitMQTests",
            dependencies: [
                "CRMSourceRabbitMQ", "CRMCore", "CRMConfig", "CRMStoreSQLite", "CRMStorePostgres", "AMQPClient", "CRMTestSupport", "CurlHTTP",
                "CRMSourceSupport", "AWSSigV4", "SQSClient", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "AWSSigV4Tests", dependencies: ["AWSSigV4"], swiftSettings: swiftSettings),
        .testTarget(name: "SNSSupportTests", dependencies: ["SNSSupport", "CRMCore"], swiftSettings: swiftSettings),
        // Real servers for the integration tests (started by scripts/, shared by the test targets).
        .target(
            name: "CRMTestSupport",
            dependencies: ["AWSSigV4", "SQSClient", "CurlHTTP", "CRMCore", "CRMStorePostgres", .product(name: "Logging", package: "swift-log")],
            path: "Tests/CRMTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SQSClientTests", dependencies: ["SQSClient", "AWSSigV4", "CRMCore", "CRMTestSupport", "CurlHTTP", .product(name: "Logging", package: "swift-log")], swiftSettings: swiftSettings),
        .testTarget(
            name: "CRMSourceSQSTests",
            dependencies: [
                "CRMSourceSQS", "SQSClient", "AWSSigV4", "CRMCore", "CRMConfig", "CRMStoreSQLite", "CRMStorePostgres", "CRMTestSupport",
                "CRMSourceSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CRMSourceHTTPTests",
            dependencies: [
                "CRMSourceHTTP", "CRMCore", "CRMConfig", "CRMSourceSupport", "CRMStoreSQLite", "CurlHTTP", "CRMTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "ProcaCryptoTests", dependencies: ["ProcaCrypto", "CRMCore", "CRMStoreSQLite"], swiftSettings: swiftSettings),
        .testTarget(name: "SystemLibraryTests", dependencies: ["CRabbitMQ", "CCurl"], swiftSettings: swiftSettings),
    ]
)
