// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// Linux only (no other platform is declared): exec handlers are spawned and watched with epoll, eventfd and pidfd
// (CSpawn, ChildReactor).
let package = Package(
    name: "agentry",
    products: [
        .executable(name: "agentry", targets: ["agentry"]),
        .library(name: "AMQP", targets: ["AMQP"]),
        .library(name: "AgentryCore", targets: ["AgentryCore"]),
        .library(name: "AgentryStore", targets: ["AgentryStore"]),
        .library(name: "AgentryBus", targets: ["AgentryBus"]),
        .library(name: "AgentryRuntime", targets: ["AgentryRuntime"]),
        .library(name: "AgentryAdmin", targets: ["AgentryAdmin"]),
        .library(name: "AgentryBundles", targets: ["AgentryBundles"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Exactly the version the store's workarounds were measured on (Database.swift, Database+Sessions.swift,
        // DatabaseConfiguration.swift: each says the symptom and how to check whether a newer version still needs it).
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        // Agent bundles are zip archives.
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AgentryCore",
            dependencies: [
                .product(name: "Yams", package: "Yams")
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AgentryStore",
            dependencies: [
                "AgentryCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // Compiled into the binary, so that agentry runs from any directory; --migrations DIR overrides.
            resources: [.embedInCode("Migrations")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AgentryBus",
            dependencies: [
                "AgentryCore",
                "AMQP",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ],
            // Compiled into the binary; --topology DIR overrides.
            resources: [.embedInCode("Topology")],
            swiftSettings: swiftSettings
        ),
        // Agent bundles: the manifest, packing, reading and verifying archives, Ed25519 signatures, catalogs and the
        // resolution of subagent dependencies. No database or broker: the installer (AgentryRuntime) uses it.
        .target(
            name: "AgentryBundles",
            dependencies: [
                "AgentryCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // posix_spawn with a process group of its own and every inherited descriptor closed, for exec handlers.
        .target(name: "CSpawn"),
        .target(
            name: "AgentryRuntime",
            dependencies: [
                "AgentryCore",
                "AgentryStore",
                "AgentryBus",
                "AgentryBundles",
                "AMQP",
                "CSpawn",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AgentryAdmin",
            dependencies: [
                "AgentryCore",
                "AgentryStore",
                "AgentryBus",
                "AgentryRuntime",
                "AgentryBundles",
                "AMQP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "Yams", package: "Yams"),
                // Webhook signatures: HMAC-SHA256 and constant-time comparison.
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The admin API's contract (the server's types and routes are generated from it at build time) and the
            // status page, compiled into the binary.
            resources: [
                .embedInCode("openapi.yaml"),
                .embedInCode("Resources/status.html"),
                .embedInCode("Resources/status.css"),
                .embedInCode("Resources/console"),
            ],
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        .executableTarget(
            name: "agentry",
            dependencies: [
                "AgentryAdmin",
                "AgentryBundles",
                "AgentryCore",
                "AgentryStore",
                "AgentryBus",
                "AgentryRuntime",
                "AMQP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "agentry-bench",
            dependencies: [
                "AMQP",
                "AgentryCore",
                "AgentryStore",
                "AgentryBus",
                "AgentryRuntime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The AMQP client's pure decisions (URL lists, endpoint rotation), without a broker.
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AgentryCoreTests",
            dependencies: ["AgentryCore"],
            // Read by the tests from the source tree.
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        // Runtime's pure decisions (trigger matching, retry waits, group commit), without servers.
        .testTarget(
            name: "AgentryRuntimeTests",
            dependencies: [
                "AMQP",
                "AgentryCore",
                "AgentryRuntime",
                "AgentryStore",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Bundles' format, signatures and dependency resolution, without servers.
        .testTarget(
            name: "AgentryBundlesTests",
            dependencies: [
                "AgentryBundles",
                "AgentryCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "AMQP",
                "AgentryBundles",
                "AgentryAdmin",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                "AgentryCore",
                "AgentryStore",
                "AgentryBus",
                "AgentryRuntime",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
