public import AgentryBundles
public import Foundation

/// Where installed bundles' files go and which keys their signatures must come from.
///
/// - `AGENTRY_BUNDLES_DIR` / `--bundles-dir`: the directory the installer places files under, each bundle version
///   in `<dir>/<bundle-id>/<version>/`; default `/var/lib/agentry/bundles`. A worker allows the programs under it
///   to run (it is added to its exec allowlist).
/// - `AGENTRY_TRUSTED_KEYS` / `--trusted-keys`: trusted keys files (``TrustedKeys``), colon-separated; default none,
///   which makes every signed bundle untrusted.
public struct BundleSettings: Sendable, Hashable {
    public static let defaultDirectory = "/var/lib/agentry/bundles"

    public var directory: String
    public var trustedKeyFiles: [String]

    public init(directory: String = BundleSettings.defaultDirectory, trustedKeyFiles: [String] = []) {
        self.directory = directory
        self.trustedKeyFiles = trustedKeyFiles
    }

    /// The flags when given, else the environment, else the defaults. `trustedKeys` is colon-separated.
    public static func resolve(
        directory: String? = nil, trustedKeys: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> BundleSettings {
        func value(_ flag: String?, _ variable: String) -> String? {
            if let flag, !flag.isEmpty { return flag }
            if let env = environment[variable], !env.isEmpty { return env }
            return nil
        }
        return BundleSettings(
            directory: value(directory, "AGENTRY_BUNDLES_DIR") ?? defaultDirectory,
            trustedKeyFiles: (value(trustedKeys, "AGENTRY_TRUSTED_KEYS") ?? "").split(separator: ":").map(String.init))
    }

    /// The directory as an absolute path (a relative one is taken from the current directory).
    public var absoluteDirectory: String {
        let path = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// The keys of the trusted keys files (none when no file is configured).
    public func trustedKeys() throws(BundleError) -> TrustedKeys {
        try TrustedKeys.load(paths: trustedKeyFiles)
    }
}
