import Foundation
import Yams

/// The exec and http handlers' checks: their fields, their limits, and where templates may go.
///
/// Templates in exec `command` and `env` and http `url` and `headers` are checked like every other template. Two
/// places refuse them: the program (`command[0]`), and the script of an interpreter's `-c`/`-e` (`sh -c '…'`,
/// `python3 -c '…'`): there an event's text would become code. Handlers read the event from stdin (the envelope as
/// JSON) or from variables set in `env`.
extension DefinitionReader {
    /// Programs whose `-c` (or `-e`, `--eval`) argument is code.
    static let interpreters: Set<String> = [
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox",
        "python", "python2", "python3", "pypy", "pypy3", "perl", "ruby", "node", "nodejs", "deno", "bun", "php", "lua",
        "luajit", "tclsh", "osascript", "pwsh", "Rscript",
    ]

    /// The options after which an interpreter's next argument is a script.
    static func takesScript(_ option: String, interpreter: String) -> Bool {
        if ["--eval", "--command", "-Command", "--print", "-p"].contains(option) { return true }
        guard option.hasPrefix("-"), !option.hasPrefix("--"), option.count > 1 else { return false }
        let letters = option.dropFirst()
        // Shells and Python: -c (also combined, as in `bash -lc`); Perl, Ruby, Node, PHP…: -e (Perl also -E, PHP -r).
        if letters.contains("c") { return true }
        if !["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "csh", "tcsh", "busybox"].contains(interpreter) {
            return letters.contains("e") || letters.contains("E") || letters.contains("r")
        }
        return false
    }

    /// The name an interpreter goes by: the last path component, without a version (`python3.11` → `python3`).
    static func interpreterName(_ program: String) -> String {
        let base = program.split(separator: "/").last.map(String.init) ?? program
        if let dot = base.firstIndex(of: "."), base[base.index(after: dot)...].allSatisfy({ $0.isNumber || $0 == "." }) {
            return String(base[..<dot])
        }
        return base
    }

    mutating func execHandler(_ body: Node) -> Handler? {
        guard let e = mapping(body, path: "handler.exec", known: ExecHandler.CodingKeys.allCases.map(\.rawValue))
        else { return nil }
        let command = stringList(e, "command", required: true)
        if let command, command.isEmpty {
            report("handler.exec.command", e["command"], "expected the program and its arguments, found an empty list")
        } else if let first = command?.first, first.value.isEmpty {
            report(first.path, first.node, "expected the program to run, found an empty string")
        }
        if let command { checkCommandTemplates(command) }
        let env = stringMap(e, "env") ?? [:]
        if let envNode = e["env"] { checkMapTemplates(envNode, path: "handler.exec.env") }
        let directory = string(e, "working_directory", required: false)
        if let directory, directory.isEmpty {
            report("handler.exec.working_directory", e["working_directory"], "expected a directory, found an empty string")
        }
        if let directory, directory.contains("{{") {
            report(
                "handler.exec.working_directory", e["working_directory"],
                "a template in working_directory lets an event choose where the program runs; name the directory literally")
        }
        var limits: ExecLimits?
        if let node = value(e, "limits", required: false),
            let l = mapping(node, path: "handler.exec.limits", known: ExecLimits.CodingKeys.allCases.map(\.rawValue))
        {
            limits = ExecLimits(
                memoryMB: int(l, "memory_mb", positive: true), cpuSeconds: int(l, "cpu_seconds", positive: true),
                openFiles: int(l, "open_files", positive: true), processes: int(l, "processes", positive: true))
            if let files = limits?.openFiles, files < 4 {
                report("handler.exec.limits.open_files", l["open_files"], "expected at least 4 (stdin, stdout, stderr and one more), found \(files)")
            }
        }
        guard let command, !command.isEmpty else { return nil }
        return .exec(ExecHandler(command: command.map(\.value), env: env, workingDirectory: directory, limits: limits))
    }

    mutating func checkCommandTemplates(_ command: [(value: String, node: Node, path: String)]) {
        for item in command { checkTemplates(item.value, node: item.node, path: item.path) }
        guard let program = command.first else { return }
        if program.value.contains("{{") {
            report(
                program.path, program.node,
                "a template in the program to run lets an event choose what runs; name the program literally and let it read the event from stdin (the envelope as JSON) or from env"
            )
            return
        }
        var index = 1
        var interpreter = Self.interpreterName(program.value)
        // `env [-i] [NAME=value …] program …`: look through to the program.
        if interpreter == "env" {
            while index < command.count, command[index].value.hasPrefix("-") || command[index].value.contains("=") { index += 1 }
            guard index < command.count else { return }
            if command[index].value.contains("{{") {
                report(
                    command[index].path, command[index].node,
                    "a template in the program that env runs lets an event choose what runs; name the program literally")
                return
            }
            interpreter = Self.interpreterName(command[index].value)
            index += 1
        }
        guard Self.interpreters.contains(interpreter) else { return }
        while index < command.count {
            let argument = command[index]
            if Self.takesScript(argument.value, interpreter: interpreter), index + 1 < command.count {
                let script = command[index + 1]
                if script.value.contains("{{") {
                    report(
                        script.path, script.node,
                        "a template inside the script of '\(interpreter) \(argument.value)' would let an event's text run as code; read the event from stdin (the envelope as JSON) or pass the value through env (env: {NAME: \"{{…}}\"}) and use \"$NAME\" in the script"
                    )
                }
                index += 2
                continue
            }
            index += 1
        }
    }

    /// Checks the templates of a mapping's values (env, headers); templates in its keys are refused.
    mutating func checkMapTemplates(_ node: Node, path: String) {
        guard case .mapping(let mapping) = node else { return }
        for (keyNode, valueNode) in mapping {
            let name = keyNode.string ?? "?"
            if name.contains("{{") {
                report(path, keyNode, "a template in a name ('\(name)') is not filled; write the name literally, templates go in values")
            }
            if case .scalar(let scalar) = valueNode {
                checkTemplates(scalar.string, node: valueNode, path: "\(path).\(name)")
            }
        }
    }

    mutating func httpHandler(_ body: Node) -> Handler? {
        guard let h = mapping(body, path: "handler.http", known: HTTPHandler.CodingKeys.allCases.map(\.rawValue))
        else { return nil }
        let url = string(h, "url", required: true)
        if let url, let node = h["url"] {
            checkTemplates(url, node: node, path: "handler.http.url")
            if let problem = Self.urlProblem(url) {
                report("handler.http.url", node, problem)
            } else if let problem = Self.urlTemplateProblem(url) {
                report("handler.http.url", node, problem)
            }
        }
        let headers = stringMap(h, "headers") ?? [:]
        if let headersNode = h["headers"] { checkMapTemplates(headersNode, path: "handler.http.headers") }
        let timeout = int(h, "timeout_seconds", positive: true)
        let follow = bool(h, "follow_redirects") ?? false
        guard let url else { return nil }
        return .http(HTTPHandler(url: url, headers: headers, timeoutSeconds: timeout, followRedirects: follow))
    }

    /// A template before the path (in the scheme, host or port) would let an event choose where the request goes.
    static func urlTemplateProblem(_ url: String) -> String? {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if url[..<schemeEnd.upperBound].contains("{{") || authority.contains("{{") {
            return
                "a template in the URL's scheme, host or port lets an event choose where the request goes; name the host literally and put templates in the path or query (their values are percent-encoded)"
        }
        return nil
    }
}
