import AgentryAdmin
import AgentryCore
import AgentryRuntime
import Foundation
import NIOHTTP1
import Testing

@Suite("+ Add Agent in a browser", .serialized)
struct AddAgentBrowserTests {
    /// A definition whose line 7 holds a priority that does not exist.
    static func definition(id: String, priority: String) -> String {
        """
        metadata: {id: \(id), name: Added from the page, version: 1.0.0, author: tests, description: Registered in a browser.}
        goal:
          type: continuous
          description: Take the page's test events.
        triggers:
          - type: page.\(id)
            priority: \(priority)
        handler:
          builtin: noop

        """
    }

    @Test("the dialog shows a definition's problem at its line, puts the caret there, and registers the fixed definition as a draft")
    func pasteCheckFixRegister() async throws {
        try await withAdminServer { a in
            let id = TestEnvironment.uniqueName("add-")
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"), "the page renders its first snapshot")

            // The Agents section's button opens the dialog, modal, with the text field focused.
            _ = try browser.eval("document.querySelector('[data-testid=add-agent-open]').click()")
            #expect(try browser.wait(5, "document.getElementById('add-agent').open && document.activeElement.id === 'add-yaml'"))
            #expect(try browser.eval("document.getElementById('add-agent').matches(':modal')") == .bool(true))
            #expect(try browser.eval("document.getElementById('add-tab-yaml').getAttribute('aria-selected')") == "true")

            // Read a definition with `priority: urgent` on line 7 from a file, and Check.
            let broken = Self.definition(id: id, priority: "urgent")
            #expect(broken.split(separator: "\n", omittingEmptySubsequences: false)[6] == "    priority: urgent")
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(id).yaml")
            try broken.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            #expect(try browser.send("upload #add-yaml-file \(file.path)")[path: "ok"] == .bool(true))
            #expect(
                try browser.wait(5, "document.getElementById('add-yaml').value === \(JSON.serialize(.string(broken)))"),
                "the file is read into the text field")
            #expect((try browser.eval("document.getElementById('add-yaml-status').textContent")?.stringValue ?? "").contains("\(id).yaml"))
            _ = try browser.eval("document.querySelector('[data-testid=add-yaml-check]').click()")
            let marked = "document.querySelector('#add-yaml-result [data-testid=line-problem][data-line=\"7\"]')"
            #expect(try browser.wait(10, "!!\(marked)"), "the problem is shown under line 7")
            let message = try browser.eval("\(marked).textContent")?.stringValue ?? ""
            #expect(message.contains("priority") && message.contains("urgent"), "its message: \(message)")
            #expect(
                try browser.eval("[...document.querySelectorAll('#add-yaml-result tr.bad')].map(r => r.dataset.line)") == .array([.string("7")]),
                "line 7 alone is marked")
            #expect(try browser.eval("document.querySelector('#add-yaml-result tr[data-line=\"7\"] code').textContent") == "    priority: urgent")
            #expect(try browser.eval("document.querySelector('#add-yaml-result tr[data-line=\"7\"] td.ln').textContent") == "7")
            #expect(try browser.eval("document.getElementById('add-yaml-status').dataset.kind") == "error")
            #expect(try await a.request(.GET, "/api/agents/\(id)").status == 404, "Check registers nothing")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("add-agent-problem.png").path)")

            // The problem in the list puts the caret on line 7.
            let problem = "document.querySelector('#add-yaml-result [data-testid=add-problem]')"
            #expect(try browser.eval("\(problem).dataset.line") == "7")
            #expect((try browser.eval("\(problem).textContent")?.stringValue ?? "").hasPrefix("Line 7"))
            _ = try browser.eval("\(problem).click()")
            #expect(try browser.eval("document.activeElement.id") == "add-yaml")
            #expect(
                try browser.eval(
                    "(() => { const t = document.getElementById('add-yaml'); return t.value.slice(0, t.selectionStart).split('\\n').length })()")
                    == .int(7), "the caret is on line 7")

            // Fixed, it checks clean; registered, it is a draft listed under Agents.
            let fixed = Self.definition(id: id, priority: "high")
            _ = try browser.eval(
                "(() => { const t = document.getElementById('add-yaml'); t.value = \(JSON.serialize(.string(fixed))); t.dispatchEvent(new Event('input')); return true })()"
            )
            _ = try browser.eval("document.querySelector('[data-testid=add-yaml-check]').click()")
            #expect(
                try browser.wait(10, "document.getElementById('add-yaml-status').dataset.kind === 'ok'"), "the fixed definition checks clean")
            #expect((try browser.eval("document.getElementById('add-yaml-status').textContent")?.stringValue ?? "").contains("new draft"))
            #expect(try browser.eval("document.querySelectorAll('#add-yaml-result [data-testid=line-problem]').length") == .int(0))
            _ = try browser.eval("document.querySelector('[data-testid=add-yaml-register]').click()")
            #expect(
                try browser.wait(10, "document.getElementById('add-yaml-status').textContent.includes('is a draft')"), "registered as a draft")
            let row = "document.querySelector('[data-testid=agent][data-agent-id=\"\(id)\"] [data-testid=agent-draft]')"
            #expect(try browser.wait(10, "\(row)?.textContent === 'none (draft 1.0.0)'"), "the agent is listed, not published, its draft 1.0.0")
            let stored = try await a.request(.GET, "/api/agents/\(id)")
            #expect(stored.status == 200 && stored.json?[path: "status"] == "draft", "\(stored.text)")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("add-agent.png").path)")

            // Escape, pressed as a user does, closes it and gives the focus back to the button.
            #expect(try browser.send("key ESCAPE")[path: "ok"] == .bool(true))
            #expect(try browser.wait(5, "!document.getElementById('add-agent').open"), "Escape closes the dialog")
            #expect(try browser.eval("document.activeElement.dataset.testid") == "add-agent-open")
        }
    }

    @Test("the catalog tab says so when no catalog is configured; the dialog fits a phone's width")
    func catalogTabWithoutCatalog() async throws {
        try await withAdminServer { a in
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)", width: 390, height: 844)
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"))
            _ = try browser.eval("document.querySelector('[data-testid=add-agent-open]').click()")
            _ = try browser.eval("document.querySelector('[data-testid=add-tab-catalog]').click()")
            #expect(try browser.eval("document.getElementById('add-panel-catalog').hidden") == .bool(false))
            #expect(try browser.eval("document.getElementById('add-panel-yaml').hidden") == .bool(true))
            #expect(
                try browser.wait(10, "document.getElementById('add-catalog-status').dataset.kind === 'error'"), "the catalog cannot be read")
            let text = try browser.eval("document.getElementById('add-catalog-status').textContent")?.stringValue ?? ""
            #expect(text.contains("AGENTRY_CATALOG"), "it says how to configure one: \(text)")
            let dialog = "document.getElementById('add-agent')"
            #expect(
                try browser.eval("\(dialog).getBoundingClientRect().right <= window.innerWidth && \(dialog).scrollWidth <= \(dialog).clientWidth + 1")
                    == .bool(true), "no sideways scroll at 390 px")
            _ = try browser.eval("document.querySelector('[data-testid=add-tab-yaml]').click()")
            #expect(
                try browser.eval("document.getElementById('add-yaml').getBoundingClientRect().right <= window.innerWidth") == .bool(true))
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("add-agent-phone.png").path)")
        }
    }

    @Test(
        "the catalog tab lists a catalog's bundles with their signers, searches, and installs one with its dependency, showing the report or the conflict"
    )
    func catalogTabInstalls() async throws {
        let tag = TestEnvironment.uniqueName("cb")
        let made = try BundleAdminTests.catalog(tag: tag)
        defer { try? FileManager.default.removeItem(atPath: (made.catalog as NSString).deletingLastPathComponent) }
        try await withAdminServer(
            configure: { $0.catalog = made.catalog },
            bundles: BundleSettings(directory: made.bundles, trustedKeyFiles: [made.trustedKeys])
        ) { a in
            let token = try #require(a.token)
            let browser = try HeadlessBrowser(url: a.base + "/?token=\(token)")
            defer { browser.close() }
            #expect(try browser.wait(20, "document.body.dataset.ready === 'true'"))
            _ = try browser.eval("document.querySelector('[data-testid=add-agent-open]').click()")
            _ = try browser.eval("document.querySelector('[data-testid=add-tab-catalog]').click()")
            let cards = "[...document.querySelectorAll('#add-catalog-list [data-testid=bundle]')]"
            #expect(try browser.wait(10, "\(cards).length === 4"), "one entry per bundle id")
            let card = { (id: String) in "document.querySelector('#add-catalog-list [data-testid=bundle][data-bundle-id=\"\(id)\"]')" }
            let main = card("\(tag)-main"), rebooter = card("\(tag)-rebooter")
            #expect(
                try browser.eval("[...\(rebooter).querySelectorAll('option')].map(o => o.value)") == .array(["2.0.0", "1.4.0", "1.2.0"]),
                "its versions, the highest first")
            #expect(try browser.eval("\(main).querySelector('[data-testid=bundle-signer]').dataset.trusted") == "true")
            #expect(try browser.eval("\(card("\(tag)-stranger")).querySelector('[data-testid=bundle-signer]').dataset.trusted") == "false")
            let facts = try browser.eval("\(main).querySelector('dl').textContent")?.stringValue ?? ""
            #expect(facts.contains("\(tag)-rebooter ^1.2") && facts.contains("devices.reboot") && facts.contains("devices: read, reboot"), "\(facts)")

            // Search narrows the list; Install with publish installs the dependency first and shows the report.
            _ = try browser.eval(
                "(() => { const q = document.getElementById('add-catalog-q'); q.value = '\(tag)-MAIN'; q.form.requestSubmit(); return true })()")
            #expect(try browser.wait(10, "\(cards).length === 1 && !!\(main)"), "the search finds the one bundle")
            _ = try browser.eval("\(main).querySelector('[data-testid=bundle-publish]').click()")
            _ = try browser.eval("\(main).querySelector('[data-testid=bundle-install]').click()")
            let report = "\(main).querySelector('[data-testid=install-report]')"
            #expect(try browser.wait(15, "\(report).dataset.kind === 'ok'"), "installed")
            #expect(
                try browser.eval(
                    "[...\(report).querySelectorAll('[data-testid=installed-bundle]')].map(r => r.dataset.bundleId + ' ' + r.dataset.version)")
                    == .array([.string("\(tag)-rebooter 1.4.0"), .string("\(tag)-main 2.1.0")]))
            #expect((try browser.eval("\(report).textContent")?.stringValue ?? "").contains("published: \(tag)-main 2.1.0"))
            let agent = try await a.request(.GET, "/api/agents/\(tag)-main")
            #expect(agent.json?[path: "status"] == "published", "\(agent.text)")
            _ = try browser.send("shot \(StatusPageBrowserTests.artifacts.appendingPathComponent("add-agent-catalog.png").path)")

            // A bundle whose dependency no version fits: the conflict, in its entry.
            _ = try browser.eval(
                "(() => { const q = document.getElementById('add-catalog-q'); q.value = 'picky'; q.form.requestSubmit(); return true })()")
            let picky = card("\(tag)-picky")
            #expect(try browser.wait(10, "\(cards).length === 1 && !!\(picky)"))
            _ = try browser.eval("\(picky).querySelector('[data-testid=bundle-install]').click()")
            #expect(try browser.wait(15, "\(picky).querySelector('[data-testid=install-report]').dataset.kind === 'error'"))
            let refusal = try browser.eval("\(picky).querySelector('[data-testid=install-report]').textContent")?.stringValue ?? ""
            #expect(refusal.contains("needs >=3.0.0") && refusal.contains("available 1.2.0, 1.4.0, 2.0.0"), "\(refusal)")
        }
    }
}
