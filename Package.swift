// swift-tools-version: 6.1
import PackageDescription

// Every target: Swift 6 language mode (strict concurrency) plus these upcoming features.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "herald", targets: ["HeraldCLI"]),
        .executable(name: "herald-bench", targets: ["HeraldBench"]),
        // For the micro-benchmarks (Benchmarks/, its own package depending on this one by path), so
        // that normal builds never compile the benchmark library.
        .library(
            name: "HeraldHotPaths",
            targets: ["HeraldCore", "HeraldConfig", "HeraldEngine", "HeraldProviders", "HeraldTemplating", "HeraldHTTPRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        // MARK: C shims (fixed-argument wrappers over variadic C APIs)
        .target(
            name: "CRabbitMQShim",
            linkerSettings: [.linkedLibrary("rabbitmq")]
        ),
        .target(
            name: "CCurlShim",
            linkerSettings: [.linkedLibrary("curl")]
        ),

        // MARK: Libraries, one job each
        .target(
            name: "HeraldCore",
            dependencies: [],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldBroker",
            dependencies: [
                "CRabbitMQShim",
                "HeraldCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldHTTPRuntime",
            dependencies: [
                "CCurlShim",
                "HeraldCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldStore",
            dependencies: [
                "HeraldCore",
                "HeraldFilter",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldTemplating",
            dependencies: ["HeraldCore", .product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldFilter",
            dependencies: ["HeraldCore"],
            swiftSettings: strictSettings
        ),
        // What a provider is: its description, every template in it compiled (parsed by HeraldConfig, run by HeraldProviders).
        .target(
            name: "HeraldProviderModel",
            dependencies: ["HeraldCore", "HeraldTemplating"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldConfig",
            dependencies: [
                "HeraldCore",
                "HeraldFilter",
                "HeraldTemplating",
                "HeraldProviderModel",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldProviders",
            dependencies: [
                "HeraldCore",
                "HeraldTemplating",
                "HeraldProviderModel",
                "HeraldHTTPRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Providers' status callbacks (delivery receipts): verified, then read by their YAML declaration.
        .target(
            name: "HeraldReceipts",
            dependencies: [
                "HeraldCore", "HeraldTemplating", "HeraldProviderModel", "HeraldProviders",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldMessaging",
            dependencies: [
                "HeraldCore", "HeraldBroker", "HeraldStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Every decision about a delivery, as pure functions: plan, claim decision, settle.
        .target(
            name: "HeraldEngine",
            dependencies: ["HeraldCore", "HeraldConfig"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldGateway",
            dependencies: [
                "HeraldCore",
                "HeraldProviderModel",
                "HeraldStore",
                "HeraldBroker",
                "HeraldMessaging",
                "HeraldConfig",
                "HeraldEngine",
                "HeraldHTTPRuntime",
                "HeraldTemplating",
                "HeraldProviders",
                "HeraldReceipts",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            // The OpenAPI document is compiled into the binary: every deployment serves the one
            // describing the code it runs.
            resources: [.embedInCode("openapi.yaml")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HeraldWorker",
            dependencies: [
                "HeraldCore",
                "HeraldStore",
                "HeraldBroker",
                "HeraldMessaging",
                "HeraldHTTPRuntime",
                "HeraldConfig",
                "HeraldProviderModel",
                "HeraldProviders",
                "HeraldEngine",
                "HeraldFilter",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // The formats operators read: ECS JSON log lines, the Prometheus exposition with help texts.
        .target(
            name: "HeraldObservability",
            dependencies: [
                "HeraldCore", "HeraldFilter",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "HeraldCLI",
            dependencies: [
                "HeraldCore",
                "HeraldMessaging",
                "HeraldObservability",
                "HeraldStore",
                "HeraldGateway",
                "HeraldWorker",
                "HeraldConfig",
                "HeraldTemplating",
                "HeraldProviders",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),

        .executableTarget(
            name: "HeraldBench",
            dependencies: [
                "HeraldConfig", "HeraldCore", "HeraldStore", "HeraldFilter",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Tests
        .testTarget(
            name: "HeraldCoreTests",
            dependencies: ["HeraldCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldEngineTests",
            dependencies: [
                "HeraldEngine", "HeraldCore", "HeraldConfig", "HeraldFilter", "HeraldMessaging", "HeraldStore", "HeraldBroker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldFilterTests",
            dependencies: ["HeraldFilter", "HeraldCore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldConfigTests",
            dependencies: ["HeraldConfig", "HeraldCore", "HeraldTemplating", "HeraldFilter", "HeraldProviderModel"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldProvidersTests",
            dependencies: [
                "HeraldProviders",
                "HeraldProviderModel",
                "HeraldCore",
                "HeraldTemplating",
                "HeraldHTTPRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldReceiptsTests",
            dependencies: ["HeraldReceipts", "HeraldProviders", "HeraldProviderModel", "HeraldCore", "HeraldTemplating"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldStoreTests",
            dependencies: [
                "HeraldStore", "HeraldCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldWorkerTests",
            dependencies: ["HeraldCore", "HeraldWorker", "HeraldHTTPRuntime", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldObservabilityTests",
            dependencies: [
                "HeraldObservability", "HeraldCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldGatewayTests",
            dependencies: ["HeraldGateway", "HeraldCore", "HeraldStore"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldBrokerTests",
            dependencies: ["HeraldBroker"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldHTTPRuntimeTests",
            dependencies: [
                "HeraldHTTPRuntime",
                .product(name: "Logging", package: "swift-log"),
                // In-process HTTP/SMTP servers on 127.0.0.1 for the real-socket tests.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HeraldIntegrationTests",
            dependencies: [
                "HeraldCore",
                "HeraldStore",
                "HeraldBroker",
                "HeraldHTTPRuntime",
                "HeraldFilter",
                "HeraldConfig",
                "HeraldProviderModel",
                "HeraldProviders",
                "HeraldGateway",
                "HeraldWorker",
                "HeraldEngine",
                "HeraldMessaging",
                "HeraldReceipts",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
