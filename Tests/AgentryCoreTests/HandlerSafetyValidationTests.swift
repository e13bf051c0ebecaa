import Foundation
import Testing

@testable import AgentryCore

/// The valid definition of the validation tests (12 lines) with `handler` (at line 13).
private func definition(handler: String) -> String {
    base + "handler:\n" + handler.split(separator: "\n").map { "  \($0)" }.joined(separator: "\n") + "\n"
}

private func problems(_ yaml: String) -> [ValidationProblem] {
    do {
        _ = try AgentDefinition.parse(yaml: yaml)
        return []
    } catch {
        return error.problems
    }
}

@Suite("Handler definitions: templates, limits, redirects and YAML anchors")
struct HandlerSafetyValidationTests {
    @Test("a template in command[0] is refused, naming the field and what to do instead")
    func templateInProgram() {
        let found = problems(definition(handler: "exec: {command: ['{{payload.tool}}', --check]}"))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.path == "handler.exec.command[0]")
        #expect(found.first?.message.contains("name the program literally") == true, "\(found)")
        #expect(found.first?.message.contains("stdin") == true)
    }

    @Test("a template inside an interpreter's -c or -e script is refused; in a plain argument or in env it is filled")
    func templateInScript() {
        for command in [
            "[/bin/sh, -c, 'echo {{payload.name}}']", "[bash, -lc, 'echo {{payload.name}}']",
            "[/usr/bin/python3.11, -c, 'print(\"{{payload.name}}\")']", "[perl, -e, 'print \"{{id}}\"']",
            "[/usr/bin/env, LC_ALL=C, sh, -c, 'echo {{payload.name}}']",
        ] {
            let found = problems(definition(handler: "exec: {command: \(command)}"))
            #expect(found.count == 1, "\(command): \(found)")
            #expect(found.first?.path.hasPrefix("handler.exec.command[") == true, "\(command): \(found)")
            #expect(found.first?.message.contains("env: {NAME:") == true, "\(command): \(found)")
        }
        let fine = definition(
            handler: """
                exec:
                  command: [/bin/sh, -c, 'echo "$NAME"', sh, '{{payload.name}}']
                  env: {NAME: '{{payload.name}}'}
                """)
        #expect(problems(fine).isEmpty, "\(problems(fine))")
        #expect((try? AgentDefinition.parse(yaml: definition(handler: "exec: {command: [/usr/bin/printf, '%s', '{{payload.name}}']}"))) != nil)
    }

    @Test("templates in exec env and http url and headers are checked like every other template")
    func templatesChecked() {
        let env = problems(definition(handler: "exec: {command: [/bin/true], env: {X: '{{nope}}'}}"))
        #expect(env.map(\.path) == ["handler.exec.env.X"], "\(env)")
        let url = problems(definition(handler: "http: {url: 'https://example.com/{{payload.}}'}"))
        #expect(url.map(\.path) == ["handler.http.url"], "\(url)")
        let header = problems(definition(handler: "http: {url: 'https://example.com/x', headers: {X-Id: '{{paylod.id}}'}}"))
        #expect(header.map(\.path) == ["handler.http.headers.X-Id"], "\(header)")
        #expect(header.first?.message.contains("paylod") == true)
        let host = problems(definition(handler: "http: {url: 'https://{{payload.host}}.example.com/x'}"))
        #expect(host.map(\.path) == ["handler.http.url"], "\(host)")
    }

    @Test("URL values are percent-encoded when rendered; header values lose their line breaks")
    func urlRendering() {
        let event = Event(type: "t", payload: ["path": "../admin?x=1#y", "name": "a b/c", "h": "v\r\nX-Evil: 1"], priority: .normal, source: "test")
        #expect(
            EventTemplate.renderURL("https://example.com/items/{{payload.path}}?q={{payload.name}}", with: event)
                == "https://example.com/items/..%2Fadmin%3Fx%3D1%23y?q=a%20b%2Fc")
        #expect(!EventTemplate.renderHeader("{{payload.h}}", with: event).contains("\n"))
    }

    @Test("exec limits and follow_redirects are read, written back and checked")
    func limitsAndRedirects() throws {
        let yaml = definition(
            handler: """
                exec:
                  command: [/bin/true]
                  limits: {memory_mb: 512, cpu_seconds: 30, open_files: 64, processes: 100}
                """)
        let parsed = try AgentDefinition.parse(yaml: yaml)
        guard case .exec(let exec)? = parsed.handler else {
            Issue.record("not exec")
            return
        }
        #expect(exec.limits == ExecLimits(memoryMB: 512, cpuSeconds: 30, openFiles: 64, processes: 100))
        #expect(try AgentDefinition.parse(yaml: parsed.yaml()) == parsed)
        #expect(ExecLimits().withDefaults(timeoutSeconds: 60) == ExecLimits(cpuSeconds: 60, openFiles: 1024))
        let bad = problems(definition(handler: "exec: {command: [/bin/true], limits: {open_files: 0, memory: 3}}"))
        #expect(Set(bad.map(\.path)) == ["handler.exec.limits.open_files", "handler.exec.limits.memory"], "\(bad)")
        let http = try AgentDefinition.parse(yaml: definition(handler: "http: {url: 'https://example.com/x', follow_redirects: true}"))
        guard case .http(let h)? = http.handler else {
            Issue.record("not http")
            return
        }
        #expect(h.followRedirects)
        #expect(try AgentDefinition.parse(yaml: http.yaml()) == http)
    }

    @Test("YAML anchors and aliases are refused with their line and column")
    func anchorsRefused() {
        let yaml = definition(handler: "exec:\n  command: &cmd [/bin/true]\n  env: {A: x}")
        let found = problems(yaml)
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.line == 15 && found.first?.column == 14, "\(found)")
        #expect(found.first?.message.contains("anchors and aliases are not accepted") == true)
        // Text that only looks like one is fine: in quotes, in a plain scalar, in a block scalar, in a comment.
        let fine = definition(
            handler: """
                exec:
                  command: ['&x', "*y", a&b, /bin/sh]   # &comment
                  env:
                    NOTE: |
                      &not-an-anchor *nor-an-alias
                    OTHER: Tom & Jerry, &co
                """)
        #expect(problems(fine).isEmpty, "\(problems(fine))")
    }

    @Test("an alias bomb (billion laughs) is refused at once, with little memory")
    func aliasBomb() {
        var yaml =
            definition(handler: "builtin: noop")
            + "config:\n  approval_required_for: []\nworker_labels:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        let levels = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        for (previous, level) in zip(levels, levels.dropFirst()) {
            yaml += "  \(level): &\(level) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
        }
        let clock = ContinuousClock()
        let started = clock.now
        let found = problems(yaml)
        let elapsed = clock.now - started
        #expect(found.count == 1 && found.first?.message.contains("anchors and aliases") == true, "\(found)")
        #expect(found.first?.line == 18, "\(found)")
        // Generous: a refusal takes milliseconds; expanding 9⁹ nodes would take minutes.
        #expect(elapsed < .seconds(1), "took \(elapsed)")
    }
}
