import Foundation
import Testing

@testable import AgentryBundles

@Suite("Bundle archives")
struct BundleArchiveTests {
    @Test("a path that climbs out, is absolute or has a backslash is refused")
    func unsafePaths() {
        #expect(BundlePath.refusal("handlers/run.sh") == nil)
        #expect(BundlePath.refusal("../etc/passwd")?.contains("'..'") == true)
        #expect(BundlePath.refusal("/etc/passwd")?.contains("absolute") == true)
        #expect(BundlePath.refusal("a\\b")?.contains("backslash") == true)
    }
}
