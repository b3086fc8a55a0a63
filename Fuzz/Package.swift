// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets for crm-ingest's parsers and decoders: one executable per target, each exporting
/// `LLVMFuzzerTestOneInput` (libFuzzer's runtime brings `main`). Built and run by `make fuzz` (scripts/fuzz.sh) with
/// `swift build -c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address` (the script says
/// why both). A separate package, so that the root package's `swift build` and `make test` never see them.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// A fuzz target: `Sources/<name>/`, linked against the root package's libraries it feeds, and against
/// FuzzConfiguration when it decodes messages under the fuzz configuration.
func fuzzTarget(_ name: String, _ libraries: [String], configured: Bool) -> Target {
    .executableTarget(
        name: name,
        dependencies: libraries.map { .product(name: $0, package: "crm-ingest") } + ["FuzzSupport"]
            + (configured ? ["FuzzConfiguration"] : []),
        swiftSettings: swiftSettings
    )
}

/// Every fuzz target (scripts/fuzz.sh runs them in this order), the libraries it links, and whether it uses the
/// shared fuzz configuration.
let targets: [(name: String, libraries: [String], configured: Bool)] = [
    ("FuzzDefaultFormat", ["CRMCore"], true),
    ("FuzzCustomFormat", ["CRMCore"], true),
    ("FuzzProcaFormat", ["CRMCore"], true),
    ("FuzzJomablueFormat", ["CRMCore"], true),
    ("FuzzAltcraftImportFormat", ["CRMCore"], true),
    ("FuzzHTTPIntegration", ["CRMCore", "CRMConfig"], true),
    ("FuzzJSONFlattening", ["CRMCore"], false),
    ("FuzzSNSUnwrap", ["CRMCore", "SNSSupport"], false),
    ("FuzzSNSFilterPolicy", ["CRMCore", "SNSSupport"], false),
    ("FuzzConfigParser", ["CRMConfig"], false),
    ("FuzzSigV4Canonicalizer", ["AWSSigV4"], false),
]

let package = Package(
    name: "crm-ingest-fuzz",
    platforms: [.macOS(.v15)],
    products: targets.map { .executable(name: $0.name, targets: [$0.name]) },
    dependencies: [.package(name: "crm-ingest", path: "..")],
    targets: targets.map { fuzzTarget($0.name, $0.libraries, configured: $0.configured) } + [
        // What the targets share: reading the fuzzer's bytes, splitting them into fields.
        .target(name: "FuzzSupport", swiftSettings: swiftSettings),
        // The configuration the event-decoder targets run under: one source per format.
        .target(
            name: "FuzzConfiguration",
            dependencies: [.product(name: "CRMConfig", package: "crm-ingest"), .product(name: "CRMCore", package: "crm-ingest")],
            swiftSettings: swiftSettings
        ),
    ]
)
